"""Hyper-parameters of the HistGen network."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Literal

from scripts.flags import as_flag

Compat = Literal["default", "histgen-v1"]
COMPAT_MODES: tuple[str, ...] = ("default", "histgen-v1")
PATCH_PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp32")
#: ``slide_norm`` choices: no per-slide statistics, each slide's patches standardised on their own, both views, or
#: the standardised view for the finding heads only.
SLIDE_NORMS: tuple[str, ...] = ("none", "slide", "both", "heads")
# gradient_checkpointing="auto" recomputes the patch-level activations of bags with at least this many patches
CHECKPOINT_MIN_PATCHES = 8_192
_WHOLE_NUMBER_TEXT = re.compile(r"[+-]?[0-9]+")


def _whole_number(key: str, value: object) -> int:
    """``value`` as an int when it is one (``32``, ``32.0``, ``"32"``), else a ValueError naming ``key``."""
    if isinstance(value, bool):
        raise ValueError(f"{key} must be a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _WHOLE_NUMBER_TEXT.fullmatch(value.strip()):
        return int(value.strip())
    raise ValueError(f"{key} must be a whole number, got {value!r}")


@dataclasses.dataclass(frozen=True)
class NetworkBehaviour:
    """What ``compat`` means, as named switches that the network's modules take as constructor arguments.

    ``compat`` is read here and nowhere else: modules never compare ``compat`` strings.

    Attributes:
        slide_attention_reads_first_patch: the encoder's slide-level step reads the first patch of each region
            (and a region counts as real when its first patch is) instead of the region's global token.
        pooling_masks_padding: the attentive pooling inside a region gives padding tokens no weight.
        visual_attention_dropout: dropout on the patch-to-prototype attention probabilities.
        prototypes_over_padded_axis: prototypes are spread over the padded patch axis, not each bag's real patches.
        decoder_masks_padded_regions: the decoder's cross-attention skips regions without a real patch.
        accepts_padded_batches: padded batches (masks with False) are accepted; masks must be left-aligned.
        blocks_empty_report: decoding may not end the report at its first step. The reference's beam search
            (no length penalty) returns the empty report whenever ``log p(EOS | BOS)`` beats the summed
            log-probability of every full report, which a trained model reaches on some slides; validation
            BLEU then drops to 0 for whole epochs and early stopping keeps an early model.
        fast_training_kernels: cheaper dropout masks, attention dropout outside the fused kernel and a fused
            layer norm (:func:`scripts.networks.training_kernels.use_fast_training_kernels`): the same
            function, a faster training step. The fused layer norm also serves evaluation and inference.
    """

    slide_attention_reads_first_patch: bool = False
    pooling_masks_padding: bool = True
    visual_attention_dropout: bool = False
    prototypes_over_padded_axis: bool = False
    decoder_masks_padded_regions: bool = True
    accepts_padded_batches: bool = True
    blocks_empty_report: bool = True
    fast_training_kernels: bool = True

    @classmethod
    def for_compat(cls, compat: str) -> NetworkBehaviour:
        """The switches of ``"default"`` (the corrected network) or ``"histgen-v1"`` (the reference's quirks)."""
        if compat not in COMPAT_MODES:
            raise ValueError(f"compat must be one of {COMPAT_MODES}, got {compat!r}")
        reference = compat == "histgen-v1"
        return cls(
            slide_attention_reads_first_patch=reference,
            pooling_masks_padding=not reference,
            visual_attention_dropout=reference,
            prototypes_over_padded_axis=reference,
            decoder_masks_padded_regions=not reference,
            accepts_padded_batches=not reference,
            blocks_empty_report=not reference,
            fast_training_kernels=not reference,
        )


@dataclasses.dataclass
class HistGenConfig:
    """Shape and behaviour of a HistGen model.

    The defaults are the released configuration of the reference code (DINOv2 ViT-L features,
    4,675-word vocabulary). ``compat`` selects between the corrected network (``"default"``) and an
    exact re-implementation of the reference code's quirks (``"histgen-v1"``); see
    ``docs/network.md`` for the list of differences.

    Attributes:
        in_dim: patch feature size D of the input bags.
        d_vf: width of the input projection (``wsi_mapping`` in the reference).
        d_model: transformer width.
        d_ff: feed-forward width.
        num_heads: attention heads everywhere.
        num_layers: decoder layers (the encoder always has 2 hierarchical layers).
        dropout: transformer dropout.
        drop_prob_lm: dropout after the visual embedding.
        topk: memory slots kept per query in the cross-modal context.
        cmm_size: number of memory slots.
        cmm_dim: memory slot width (must equal d_model).
        region_size: tokens per region, including the region's learned global token.
        prototype_num: visual prototypes that query the memory.
        vocab_size: number of words (the output layer has vocab_size + 1 logits; id 0 is BOS/EOS/PAD).
        max_seq_length: longest generated report in tokens.
        beam_size: default beam width for ``generate``.
        compat: "default" or "histgen-v1".
        gradient_checkpointing: while training, recompute the patch-level activations (projection and
            visual context in runs of patches, region attention in chunks of regions) in the backward pass
            instead of keeping them: much less memory for large bags, about a third more time per step.
            ``"auto"`` (the default) does so for bags of at least ``CHECKPOINT_MIN_PATCHES`` patches (``B * N``),
            ``True``/``False`` always/never.
        patch_precision: arithmetic of the patch-level part of the slide encoder (projection, cross-modal context,
            region attention) while training: ``"auto"`` (bf16 autocast when the model is ``compat="default"``,
            the bag has at least ``BF16_MIN_PATCHES`` patches and the device multiplies bf16 natively: a CUDA GPU
            with bf16 or a CPU with AMX/AVX512-BF16; float32 otherwise), ``"bf16"`` (always while training) or
            ``"fp32"``. The decoder, the loss and evaluation stay float32.
        input_norm: standardise each feature dimension with a mean and std fitted on the training
            bags (:meth:`HistGen.fit_input_norm`) and stored in the model as the buffers
            ``input_mean``/``input_std``. Off in the reference code and in imported checkpoints.
        slide_norm: per-slide standardisation of the patch features before the first projection
            (:func:`scripts.networks.input_norm.slide_standardise`: per-dimension mean and std over the slide's
            real patches). ``"none"`` (the default): off. ``"slide"``: the projection reads each patch
            standardised within its own slide instead of the input-normalised features, so a slide-wide offset or
            scale per dimension (site, scanner, stain) cancels; what the slide's overall feature level says (how
            much of it is tumour) is lost with it. ``"both"``: the projection reads the two side by side
            (``2 * in_dim`` inputs). ``"heads"``: the projection reads the input-normalised features as with
            ``"none"``, and the finding heads read each patch token plus a linear map (``finding_view``) of the
            slide-standardised patch, so the findings see the site-free view while the report's other sentences
            keep the slide's overall level. ``false``/``off`` mean ``"none"``. docs/grounding.md has the
            measured trade-off. Off in the reference code and in imported checkpoints.
        finding_view_rank: with ``slide_norm="heads"``, the rank of ``finding_view``: ``0`` one full
            ``in_dim -> d_model`` linear map (the first version, and what checkpoints without this key hold),
            ``r > 0`` a random ``in_dim -> r`` map and a zero-initialised ``r -> d_model`` one. ``configs/train.json``
            sets 32: the one full map cost the suite's eight-dx-wide (D 1,024, 180 training slides) its grade
            (0.77-0.79 against 0.98), ranks 4-16 cost the rare-patch findings (six-dx LVI, needle grade), 32 keeps
            both (docs/grounding.md). Ignored unless ``slide_norm="heads"`` and there are finding heads.
        finding_classes: ``{finding: number of classes}`` of the finding heads
            (:class:`scripts.networks.finding_heads.SlideFindingHeads`), in head order; empty (the default,
            and always for ``compat="histgen-v1"``) builds no heads. Training fills it from the findings that
            the training reports state (``scripts.engines.finding_labeler``).
    """

    in_dim: int = 1024
    d_vf: int = 2048
    d_model: int = 512
    d_ff: int = 512
    num_heads: int = 8
    num_layers: int = 3
    dropout: float = 0.1
    drop_prob_lm: float = 0.5
    topk: int = 512
    cmm_size: int = 2048
    cmm_dim: int = 512
    region_size: int = 96
    prototype_num: int = 512
    vocab_size: int = 4675
    max_seq_length: int = 100
    beam_size: int = 3
    compat: str = "default"
    gradient_checkpointing: bool | str = "auto"
    patch_precision: str = "auto"
    input_norm: bool = False
    slide_norm: str = "none"
    finding_view_rank: int = 0
    finding_classes: dict[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        # ``--network_def#config#input_norm false`` arrives as the string "false", which is truthy
        self.input_norm = as_flag(self.input_norm, "input_norm")
        self.slide_norm = _slide_norm_choice(self.slide_norm)
        if str(self.gradient_checkpointing).strip().lower() == "auto":
            self.gradient_checkpointing = "auto"
        else:
            self.gradient_checkpointing = as_flag(self.gradient_checkpointing, "gradient_checkpointing")
        NetworkBehaviour.for_compat(self.compat)  # refuses an unknown name
        if self.patch_precision not in PATCH_PRECISIONS:
            raise ValueError(f"patch_precision must be one of {PATCH_PRECISIONS}, got {self.patch_precision!r}")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by num_heads={self.num_heads}")
        if self.cmm_dim != self.d_model:
            raise ValueError(f"cmm_dim ({self.cmm_dim}) must equal d_model ({self.d_model})")
        if self.region_size < 2:
            raise ValueError(f"region_size must be >= 2 (patches + 1 global token), got {self.region_size}")
        if self.input_norm and self.compat == "histgen-v1":
            raise ValueError("input_norm is not part of the reference network: use compat='default'")
        if self.slide_norm != "none" and self.compat == "histgen-v1":
            raise ValueError("slide_norm is not part of the reference network: use compat='default'")
        self.finding_view_rank = _whole_number("finding_view_rank", self.finding_view_rank)
        if self.finding_view_rank < 0:
            raise ValueError(f"finding_view_rank must be >= 0 (0: one full linear map), got {self.finding_view_rank}")
        self.finding_classes = {str(k): int(v) for k, v in dict(self.finding_classes or {}).items()}
        if self.finding_classes and self.compat == "histgen-v1":
            raise ValueError("finding heads are not part of the reference network: use compat='default'")
        small = {k: v for k, v in self.finding_classes.items() if v < 2}
        if small:
            raise ValueError(f"finding_classes: every finding needs >= 2 classes, got {small}")
        if self.topk > self.cmm_size:
            raise ValueError(f"topk ({self.topk}) cannot exceed cmm_size ({self.cmm_size})")

    @classmethod
    def from_dict(cls, values: dict[str, Any], **overrides: Any) -> HistGenConfig:
        """Build a config from a dict, ignoring keys that are not hyper-parameters (e.g. ``bos_idx``)."""
        names = {f.name for f in dataclasses.fields(cls)}
        merged = {k: v for k, v in {**values, **overrides}.items() if k in names}
        return cls(**merged)

    @classmethod
    def from_json(cls, path: str | Path, **overrides: Any) -> HistGenConfig:
        """Read a config JSON (the reference fixture's ``config.json`` keys are accepted)."""
        path = Path(path)
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: HistGen config file not found") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a JSON object of hyper-parameters")
        return cls.from_dict(values, **overrides)

    @property
    def training_precision(self) -> str:
        """``patch_precision`` with ``"auto"`` resolved for the compat mode: ``compat="histgen-v1"`` trains in float32
        throughout, as the reference does; otherwise ``"auto"`` (decided per bag and device) or as set."""
        if self.patch_precision == "auto" and self.compat == "histgen-v1":
            return "fp32"
        return self.patch_precision

    @property
    def checkpoint_min_patches(self) -> int:
        """Smallest bag (``B * N`` patches) whose training pass recomputes its patch-level activations."""
        if self.gradient_checkpointing == "auto":
            return CHECKPOINT_MIN_PATCHES
        return 0 if self.gradient_checkpointing else 2**62

    @property
    def behaviour(self) -> NetworkBehaviour:
        """The named switches that ``compat`` stands for (see :class:`NetworkBehaviour`)."""
        return NetworkBehaviour.for_compat(self.compat)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _slide_norm_choice(value: Any) -> str:
    """``slide_norm`` as one of :data:`SLIDE_NORMS` (``False``/``None``/"false"/"off" -> ``"none"``)."""
    if value is None or value is False or str(value).strip().lower() in ("false", "off", "no", "0"):
        return "none"
    text = str(value).strip().lower()
    if text not in SLIDE_NORMS:
        raise ValueError(f"slide_norm must be one of {SLIDE_NORMS}, got {value!r}")
    return text
