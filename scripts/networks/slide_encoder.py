"""HistGen's visual side: a bag of patch features -> patch tokens -> region tokens.

``features [B, N, in_dim]`` -> input standardisation (optional) -> projection and visual embedding ->
cross-modal context (visual prototypes query a learned memory, every patch attends to their responses) ->
patch tokens ``[B, N, d_model]`` -> local-global hierarchical encoder -> region tokens ``[B, R, d_model]``.

:class:`SlideEncoder` is the public piece that :class:`scripts.networks.HistGen` extends with a report
decoder and that the transfer models use on its own; its output is a :class:`SlideEncoding` of tensors.
"""

import functools
import logging
from collections.abc import Iterable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import HistGenConfig
from .context_memory import CrossModalMemory
from .heap_trim import checkpoint_chunks
from .hierarchical_encoder import CHECKPOINT_CHUNK_TOKENS, INFERENCE_CHUNK_TOKENS, LocalGlobalEncoder
from .input_norm import feature_statistics, slide_moments, slide_standardise
from .layers import MultiHeadAttention
from .training_kernels import use_fast_training_kernels

logger = logging.getLogger("histgen.network")

# with patch_precision="auto", bags of fewer patches (B * N) train in float32: below this the casts cost more
# than the bf16 products save, and the small demo and test bags keep float32 arithmetic
BF16_MIN_PATCHES = 4096


@functools.cache
def multiplies_bf16_natively(device_type: str) -> bool:
    """Whether ``device_type`` ("cpu", "cuda") has bf16 matrix units: AMX or AVX512-BF16, or a bf16 GPU."""
    if device_type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device_type == "cpu":
        probes = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
        return any(bool(probe()) for probe in probes if probe is not None)
    return False


def _finding_view(config: HistGenConfig) -> nn.Module:
    """The map from a slide-standardised patch (``in_dim``) to a patch token (``d_model``) for ``slide_norm="heads"``:
    one linear layer, or, with ``finding_view_rank`` r > 0, a random ``in_dim -> r`` layer then an ``r -> d_model``
    one (zero at the start, see ``reset_parameters``): fewer weights to fit from a few hundred slides when the
    features are wide."""
    rank = config.finding_view_rank
    if rank <= 0:
        return nn.Linear(config.in_dim, config.d_model)
    return nn.Sequential(nn.Linear(config.in_dim, rank), nn.Linear(rank, config.d_model))


class SlideEncoding(NamedTuple):
    """What the slide encoder hands to the decoder, the transfer heads and the attention maps.

    Attributes:
        region_tokens: ``[B, R, d_model]`` one token per region of ``region_size - 1`` patches.
        region_mask: ``[B, R] bool``, True for regions holding at least one real patch.
        patch_weights: ``[B, R * (region_size - 1)]`` attentive-pooling weight of each patch inside its region
            (patch order of the input bag; padding gets 0 in the default variant).
        patch_tokens: ``[B, N, d_model]`` each patch after projection and cross-modal context (the encoder's input).
        patch_mask: ``[B, N] bool``, True for real patches (left-aligned).
        finding_tokens: ``[B, N, d_model]`` what the finding heads read: ``patch_tokens`` itself, or with
            ``slide_norm="heads"`` the patch tokens plus the slide-standardised view of each patch.
    """

    region_tokens: torch.Tensor
    region_mask: torch.Tensor
    patch_weights: torch.Tensor
    patch_tokens: torch.Tensor
    patch_mask: torch.Tensor
    finding_tokens: torch.Tensor


class SlideEncoder(nn.Module):
    """Input norm, projection, cross-modal context and local-global encoder of HistGen.

    Parameter names are HistGen's (``projection.*``, ``visual_embed.*``, ``memory_matrix``, ``context.*``,
    ``visual_context_attn.*``, ``encoder.*``, and ``input_mean``/``input_std`` when ``input_norm`` is on), so
    a report model's ``model.pt`` without its ``decoder.*`` entries loads into it.

    Args:
        config: the hyper-parameters; ``config.behaviour`` gives the ``compat`` switches.
        initialise: run :meth:`reset_parameters` (a subclass that adds modules does it once, at its end).
    """

    def __init__(self, config: HistGenConfig, initialise: bool = True) -> None:
        super().__init__()
        self.config = config
        c = config
        flags = c.behaviour
        self.in_dim = c.in_dim
        self.prototype_num = c.prototype_num
        self.input_norm = c.input_norm
        self.slide_norm = c.slide_norm
        # "slide"/"both" feed the slide-standardised view to the projection; "heads" only to the finding heads
        self.projection_reads_slide_view = c.slide_norm in ("slide", "both")
        self.checkpoint_min_patches = c.checkpoint_min_patches
        # checkpointed bags are embedded a run of about this many patches (B * n) at a time
        self.checkpoint_chunk_tokens = CHECKPOINT_CHUNK_TOKENS
        # without gradients the visual-context attention runs on runs of about this many patches (B * n), and the
        # local-global encoder its region layers on runs of regions (0: the whole bag at once)
        self.inference_chunk_tokens = INFERENCE_CHUNK_TOKENS
        self.patch_precision = c.training_precision
        self.accepts_padded_batches = flags.accepts_padded_batches
        self.prototypes_over_padded_axis = flags.prototypes_over_padded_axis
        # identity until fit_input_norm(); saved with the weights only when input_norm is on, so that older
        # checkpoints and imported reference weights still load
        self.register_buffer("input_mean", torch.zeros(c.in_dim), persistent=c.input_norm)
        self.register_buffer("input_std", torch.ones(c.in_dim), persistent=c.input_norm)
        self.projection = nn.Linear(c.in_dim * (2 if c.slide_norm == "both" else 1), c.d_vf)
        self.visual_embed = nn.Sequential(nn.Linear(c.d_vf, c.d_model), nn.ReLU(), nn.Dropout(c.drop_prob_lm))
        # slide_norm="heads": the slide-standardised patches reach the finding heads through this map only (no
        # heads, no map: a parameter without gradients would stop DistributedDataParallel)
        self.finding_view = _finding_view(c) if c.slide_norm == "heads" and c.finding_classes else None
        self.memory_matrix = nn.Parameter(torch.empty(c.cmm_size, c.cmm_dim))
        self.context = CrossModalMemory(c.num_heads, c.d_model, c.topk, c.dropout)
        # every patch attends to the K prototype responses: an [N, K] map per head. Dropping out its
        # probabilities (as the reference does) costs ~1.5 GB and 1 s per step at N = 30,000 and
        # rules out the fused attention kernel, so the default variant does not.
        visual_attn_dropout = c.dropout if flags.visual_attention_dropout else 0.0
        self.visual_context_attn = MultiHeadAttention(c.num_heads, c.d_model, visual_attn_dropout)
        self.encoder = LocalGlobalEncoder(
            c.d_model, c.d_ff, c.num_heads, c.region_size, c.dropout,
            slide_attention_reads_first_patch=flags.slide_attention_reads_first_patch,
            pooling_masks_padding=flags.pooling_masks_padding,
        )
        self.encoder.checkpoint_min_patches = c.checkpoint_min_patches
        if initialise:
            self.reset_parameters()
            if flags.fast_training_kernels:
                use_fast_training_kernels(self)

    def reset_parameters(self) -> None:
        """Initialise as the reference does: Xavier-uniform matrices, memory ~ N(0, 1/cmm_dim)."""
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        nn.init.normal_(self.memory_matrix, 0.0, 1.0 / self.config.cmm_dim)
        if self.finding_view is not None:  # the heads start from the plain patch tokens and learn the view's share
            last = self.finding_view[-1] if isinstance(self.finding_view, nn.Sequential) else self.finding_view
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    @torch.no_grad()
    def fit_input_norm(self, bags: Iterable[Any]) -> "SlideEncoder":
        """Set ``input_mean``/``input_std`` to the per-dimension statistics of every patch in ``bags``.

        Args:
            bags: the training bags: a dataset whose items hold ``"features"`` (e.g.
                :class:`scripts.data.ReportBagDataset` of the train split) or ``[N, D]`` tensors.

        Returns:
            the model itself (so a config can call it in a list of expressions).

        Raises:
            ValueError: the model was built with ``input_norm=False``, or the bags are empty or hold NaN/Inf.
        """
        if not self.input_norm:
            raise ValueError("this model was built with input_norm=False; set it to True to fit the statistics")
        mean, std, count = feature_statistics(bags, self.in_dim)
        self.input_mean.copy_(mean)
        self.input_std.copy_(std)
        logger.info("input normalisation fitted on %d patches (std range %.3g..%.3g)", count,
                    float(std.min()), float(std.max()))
        return self

    def normalise_inputs(self, features: torch.Tensor) -> torch.Tensor:
        """``(features - input_mean) / input_std`` when ``input_norm`` is on, else ``features`` unchanged."""
        if not self.input_norm:
            return features
        return (features - self.input_mean) / self.input_std

    def check_inputs(self, features: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Validate ``features [B, N, in_dim]`` and return the patch mask ``[B, N] bool`` (all True for None)."""
        if features.dim() != 3:
            raise ValueError(f"features must be [B, N, D], got {features.dim()} dimensions")
        if features.shape[-1] != self.in_dim:
            raise ValueError(
                f"features have dimension {features.shape[-1]}, the model expects in_dim={self.in_dim} "
                "(wrong dimension D for this model)"
            )
        if features.shape[1] == 0:
            raise ValueError("empty bag: features have N = 0 patches")
        if mask is None:
            return torch.ones(features.shape[0], features.shape[1], dtype=torch.bool, device=features.device)
        mask = mask.to(device=features.device, dtype=torch.bool)
        if mask.shape[0] != features.shape[0] or mask.shape[1] != features.shape[1] or mask.dim() != 2:
            raise ValueError(f"mask shape {mask.shape} does not match features [B, N] = {features.shape[:2]}")
        if not bool(mask.any(dim=1).all()):
            raise ValueError("a bag in the batch has no real patch (mask all False)")
        if not self.accepts_padded_batches:
            if not bool(mask.all()):
                raise ValueError(
                    "compat='histgen-v1' reproduces the reference, which has no padding: use batch_size=1 "
                    "(or bags of equal size), or compat='default' for padded batches"
                )
        else:
            expected = torch.arange(mask.shape[1], device=mask.device)[None] < mask.sum(dim=1, keepdim=True)
            if not torch.equal(mask, expected):
                raise ValueError("mask must be left-aligned: real patches first, padding at the end of each bag")
        return mask

    def prototype_indices(self, mask: torch.Tensor) -> torch.Tensor:
        """Patch index of each visual prototype: ``[B, K] long``, evenly spaced over each bag's real patches."""
        k = self.prototype_num
        if self.prototypes_over_padded_axis:
            idx = torch.linspace(0, mask.shape[1] - 1, steps=k).long().to(mask.device)
            return idx.expand(mask.shape[0], k)
        lengths: list[int] = mask.sum(dim=1).tolist()
        rows: list[torch.Tensor] = []
        for n in lengths:
            rows.append(torch.linspace(0, n - 1, steps=k).long())
        return torch.stack(rows).to(mask.device)

    def project_patches(
        self,
        features: torch.Tensor,
        mask: torch.Tensor | None = None,
        moments: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Input norm, projection and visual embedding: ``[B, N, in_dim]`` -> ``[B, N, d_model]``.

        ``slide_norm="slide"`` replaces the input-normalised features by the slide-standardised ones, ``"both"``
        reads ``[input-normalised, slide-standardised]`` (``mask [B, N] bool`` marks the real patches; None means
        every patch is real; ``moments`` are the whole slides' mean and std when ``features`` is a run of their
        patches, see :func:`scripts.networks.input_norm.slide_moments`).

        The projection (``in_dim -> d_vf``) and the embedding's linear layer (``d_vf -> d_model``) have no
        non-linearity between them, so for large bags the two weights are multiplied first and the patches go
        through one ``in_dim -> d_model`` product: the same function and, through the chain rule, the same
        gradients for both weights, without the ``[B, N, d_vf]`` intermediate (6x fewer multiply-adds at the
        released sizes once ``N`` passes a few hundred patches).
        """
        if not self.projection_reads_slide_view:
            x = self.normalise_inputs(features)
        else:
            real = torch.ones_like(features[..., 0], dtype=torch.bool) if mask is None else mask
            x = slide_standardise(features, real, moments=moments)
            if self.slide_norm == "both":
                x = torch.cat([self.normalise_inputs(features), x], dim=-1)
        embed = self.visual_embed[0]
        d_in, d_mid, d_out = self.projection.in_features, self.projection.out_features, embed.out_features
        patches = x.shape[0] * x.shape[1]
        if patches * (d_in * d_mid + d_mid * d_out) > (patches + d_mid) * d_in * d_out:
            weight = torch.matmul(embed.weight, self.projection.weight)  # [d_model, in_dim]
            bias = torch.mv(embed.weight, self.projection.bias) + embed.bias
            h = F.linear(x, weight, bias)
        else:
            h = embed(self.projection(x))
        return self.visual_embed[2](self.visual_embed[1](h))

    def embed_patches(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Projection, visual embedding and the visual side of the cross-modal context: ``[B, N, d_model]``."""
        # the residual stream stays in the input's precision (float32) when the products run in bf16
        x = self.project_patches(features, mask).to(features.dtype)
        responses = self.prototype_responses(x, mask)
        if not torch.is_grad_enabled():
            return self._visual_context_in_runs(x, responses)
        return self.visual_context(x, responses)

    def _visual_context_in_runs(self, x: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
        """:meth:`visual_context` a run of patches at a time, the responses' keys and values projected once: the same
        result, with the attention's temporaries in cache (inference only)."""
        attn = self.visual_context_attn
        tokens = self.inference_chunk_tokens
        if tokens <= 0 or x.shape[0] * x.shape[1] <= tokens:
            return self.visual_context(x, responses)
        k, v = attn.project_kv(responses, responses)
        parts: list[torch.Tensor] = []
        for xs in x.split(max(1, tokens // x.shape[0]), dim=1):
            parts.append(xs + attn.attend(xs, k, v))
        return torch.cat(parts, dim=1)

    def prototype_responses(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The memory's responses to the visual prototypes (patches evenly spaced over each bag): ``[B, K, d]``."""
        idx = self.prototype_indices(mask)
        prototypes = torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        return self.context(prototypes, self.memory_matrix)

    def visual_context(self, x: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
        """Every patch of ``x [B, n, d_model]`` attends to the prototype responses (residual): ``[B, n, d_model]``."""
        return x + self.visual_context_attn(x, responses, responses)

    @torch.jit.unused
    def _checkpointed_embed_patches(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """:meth:`embed_patches` recomputed in the backward pass, a run of patches at a time.

        Every step but the prototypes' memory read is per patch, so the bag is cut into runs of about
        ``checkpoint_chunk_tokens`` patches: the projection runs run by run (only the ``[B, N, d_model]`` result is
        kept), the prototypes are gathered from it as in :meth:`embed_patches`, and the visual-context attention
        runs run by run again. Nothing of size ``[B, N, in_dim]`` or ``[B, heads, N, K]`` is kept or recomputed
        for the whole bag at once (at 100,000 patches that recomputation held ~2 GB).
        """
        run = max(1, self.checkpoint_chunk_tokens // features.shape[0])
        patches = features.shape[0] * features.shape[1]
        moments = slide_moments(features, mask) if self.projection_reads_slide_view else None
        runs = [(fs, ms, moments) for fs, ms in zip(features.split(run, dim=1), mask.split(run, dim=1))]
        x = torch.cat(checkpoint_chunks(self._project_run, runs, patches), dim=1)
        responses = self.prototype_responses(x, mask)
        runs = [(xs, responses) for xs in x.split(run, dim=1)]
        return torch.cat(checkpoint_chunks(self.visual_context, runs, patches), dim=1)

    @torch.jit.unused
    def _project_run(self, features: torch.Tensor, mask: torch.Tensor,
                     moments: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        return self.project_patches(features, mask, moments).to(features.dtype)

    @torch.jit.export
    def encode(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> SlideEncoding:
        """Encode bags into patch and region tokens.

        Args:
            features: ``[B, N, in_dim]`` float patch features.
            mask: ``[B, N] bool`` (True = real patch, real patches first) or None for unpadded bags.

        Returns:
            a :class:`SlideEncoding`.
        """
        patch_mask = self.check_inputs(features, mask)
        if not torch.jit.is_scripting() and self.training and torch.is_grad_enabled():
            if self.trains_in_bf16(features):
                return self._encode_in_bf16(features, patch_mask)
        return self._encode(features, patch_mask)

    def _encode(self, features: torch.Tensor, patch_mask: torch.Tensor) -> SlideEncoding:
        if not torch.jit.is_scripting() and self.training and torch.is_grad_enabled() and (
                features.shape[0] * features.shape[1] >= self.checkpoint_min_patches):
            x = self._checkpointed_embed_patches(features, patch_mask)
        else:
            x = self.embed_patches(features, patch_mask)
        region_tokens, region_mask, patch_weights = self.encoder(x, patch_mask)
        return SlideEncoding(region_tokens, region_mask, patch_weights, x, patch_mask,
                             self.finding_tokens(x, features, patch_mask))

    def finding_tokens(self, patch_tokens: torch.Tensor, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """What the finding heads read: ``patch_tokens``, plus ``finding_view`` of the slide-standardised
        features with ``slide_norm="heads"`` (``[B, N, d_model]``)."""
        view = self.finding_view
        if view is None:
            return patch_tokens
        standardised = slide_standardise(features, mask)
        return patch_tokens + view(standardised).to(patch_tokens.dtype)

    @torch.jit.unused
    def trains_in_bf16(self, features: torch.Tensor) -> bool:
        """Whether this training pass runs the patch-level products in bf16 (see ``HistGenConfig.patch_precision``)."""
        if self.patch_precision == "bf16":
            return True
        if self.patch_precision == "fp32" or features.dtype != torch.float32:
            return False
        return features.shape[0] * features.shape[1] >= BF16_MIN_PATCHES and multiplies_bf16_natively(
            features.device.type)

    @torch.jit.unused
    def _encode_in_bf16(self, features: torch.Tensor, patch_mask: torch.Tensor) -> SlideEncoding:
        """:meth:`_encode` under bf16 autocast; the encoding handed on is in the features' dtype again."""
        with torch.autocast(features.device.type, dtype=torch.bfloat16):
            encoding = self._encode(features, patch_mask)
        dtype = features.dtype
        return SlideEncoding(encoding.region_tokens.to(dtype), encoding.region_mask, encoding.patch_weights.to(dtype),
                             encoding.patch_tokens.to(dtype), patch_mask, encoding.finding_tokens.to(dtype))

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> SlideEncoding:
        """:meth:`encode`."""
        return self.encode(features, mask)
