"""Any timm model as a patch encoder, with its weights from a local file, and presets for pathology models.

``build_timm_encoder("vit_small_patch16_224", "weights.pth")`` builds
``timm.create_model(name, pretrained=False, num_classes=0, **kwargs)`` and loads the file (strictly by
default). Pathology foundation models that ship as timm checkpoints have presets: the architecture, the
keyword arguments their model cards give to ``timm.create_model``, the output size and the normalisation.
The weights are gated downloads; the preset never fetches them, you pass the local file.

Preset facts (from each model's Hugging Face model card / config; all 224 px input):

- ``uni`` (MahmoodLab/UNI): ``vit_large_patch16_224``, img_size 224, patch_size 16, init_values 1e-5,
  dynamic_img_size; D 1024; ImageNet mean/std.
- ``uni2-h`` (MahmoodLab/UNI2-h): ``vit_giant_patch14_224``, img_size 224, patch_size 14, depth 24,
  num_heads 24, embed_dim 1536, mlp_ratio 2.66667 * 2, init_values 1e-5, no_embed_class, SwiGLUPacked + SiLU,
  reg_tokens 8, dynamic_img_size; D 1536; ImageNet mean/std.
- ``virchow2`` (paige-ai/Virchow2): ``vit_huge_patch14_224``, img_size 224, init_values 1e-5,
  mlp_ratio 5.3375, SwiGLUPacked + SiLU, reg_tokens 4, dynamic_img_size; embedding = [CLS token, mean of the
  patch tokens] (registers excluded), D 2560; ImageNet mean/std.
- ``gigapath`` (prov-gigapath/prov-gigapath): ``vit_giant_patch14_dinov2`` with img_size 224, patch_size 16,
  embed_dim 1536, depth 40, num_heads 24, init_values 1e-5, mlp_ratio 5.33334; D 1536; ImageNet mean/std
  after resize to 256 and centre crop 224.
- ``h-optimus-0`` (bioptimus/H-optimus-0): ``vit_giant_patch14_reg4_dinov2``, img_size 224,
  init_values 1e-5, global_pool "token", dynamic_img_size False; D 1536; mean (0.707223, 0.578729, 0.703617),
  std (0.211883, 0.230117, 0.177517).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch

from scripts.encoders.checkpoint_files import (
    file_checksum,
    load_checked,
    read_state_dict,
    select_submodule,
    state_checksum,
    strip_prefixes,
)
from scripts.encoders.patch_encoder import IMAGENET_MEAN, IMAGENET_STD, PatchEncoder, make_patch_transform

__all__ = [
    "TIMM_PRESETS",
    "TimmPatchEncoder",
    "TimmPreset",
    "build_preset_encoder",
    "build_timm_encoder",
    "create_timm_model",
]

logger = logging.getLogger(__name__)

#: Pooling of a ViT's final tokens: the model's own head, or [CLS, mean of patch tokens] (Virchow).
POOLINGS = ("model", "cls+mean")

#: kwargs values named here are resolved to timm objects when the model is built (keeps imports lazy).
_TIMM_OBJECTS = {"SwiGLUPacked": ("timm.layers", "SwiGLUPacked")}


@dataclass(frozen=True)
class TimmPreset:
    """A pathology model that loads through timm from a local checkpoint.

    Attributes:
        model_name: timm architecture name.
        kwargs: extra ``timm.create_model`` keyword arguments (``"SwiGLUPacked"`` is resolved to the timm class).
        embed_dim: output size D.
        mean, std: input normalisation.
        pooling: ``"model"`` (timm's own pooling) or ``"cls+mean"``.
        crop_pct: resize to ``input_size / crop_pct`` then centre-crop (1.0: plain resize).
        input_size: model input side.
        source: where the facts come from.
    """

    model_name: str
    kwargs: Mapping[str, Any]
    embed_dim: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pooling: str = "model"
    crop_pct: float = 1.0
    input_size: int = 224
    source: str = ""


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


TIMM_PRESETS: Mapping[str, TimmPreset] = _frozen(
    {
        "uni": TimmPreset(
            "vit_large_patch16_224",
            _frozen({"img_size": 224, "patch_size": 16, "init_values": 1e-5, "dynamic_img_size": True}),
            1024,
            source="huggingface.co/MahmoodLab/UNI",
        ),
        "uni2-h": TimmPreset(
            "vit_giant_patch14_224",
            _frozen(
                {
                    "img_size": 224,
                    "patch_size": 14,
                    "depth": 24,
                    "num_heads": 24,
                    "init_values": 1e-5,
                    "embed_dim": 1536,
                    "mlp_ratio": 2.66667 * 2,
                    "no_embed_class": True,
                    "mlp_layer": "SwiGLUPacked",
                    "act_layer": "silu",
                    "reg_tokens": 8,
                    "dynamic_img_size": True,
                }
            ),
            1536,
            source="huggingface.co/MahmoodLab/UNI2-h",
        ),
        "virchow2": TimmPreset(
            "vit_huge_patch14_224",
            _frozen(
                {
                    "img_size": 224,
                    "init_values": 1e-5,
                    "mlp_ratio": 5.3375,
                    "mlp_layer": "SwiGLUPacked",
                    "act_layer": "silu",
                    "reg_tokens": 4,
                    "dynamic_img_size": True,
                }
            ),
            2560,
            pooling="cls+mean",
            source="huggingface.co/paige-ai/Virchow2",
        ),
        "gigapath": TimmPreset(
            "vit_giant_patch14_dinov2",
            _frozen(
                {
                    "img_size": 224,
                    "in_chans": 3,
                    "patch_size": 16,
                    "embed_dim": 1536,
                    "depth": 40,
                    "num_heads": 24,
                    "init_values": 1e-5,
                    "mlp_ratio": 5.33334,
                }
            ),
            1536,
            crop_pct=224 / 256,
            source="huggingface.co/prov-gigapath/prov-gigapath",
        ),
        "h-optimus-0": TimmPreset(
            "vit_giant_patch14_reg4_dinov2",
            _frozen({"img_size": 224, "init_values": 1e-5, "dynamic_img_size": False, "global_pool": "token"}),
            1536,
            mean=(0.707223, 0.578729, 0.703617),
            std=(0.211883, 0.230117, 0.177517),
            source="huggingface.co/bioptimus/H-optimus-0",
        ),
    }
)


def _resolve(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    import importlib

    out = dict(kwargs)
    for key, value in kwargs.items():
        if isinstance(value, str) and value in _TIMM_OBJECTS:
            module, attr = _TIMM_OBJECTS[value]
            out[key] = getattr(importlib.import_module(module), attr)
    return out


def create_timm_model(model_name: str, *, encoder: str, **kwargs) -> torch.nn.Module:
    """``timm.create_model(model_name, pretrained=False, num_classes=0, **kwargs)`` with a clear error."""
    import timm

    if model_name.startswith(("hf-hub:", "hf_hub:", "local-dir:")):
        raise ValueError(
            f"encoder {encoder!r}: {model_name!r} would fetch a config from the hub; name the timm architecture "
            f"(e.g. 'vit_large_patch16_224') or a preset ({', '.join(TIMM_PRESETS)}) and pass the weights file"
        )
    try:
        return timm.create_model(model_name, pretrained=False, num_classes=0, **_resolve(kwargs))
    except RuntimeError as err:
        if "Unknown model" in str(err):
            raise ValueError(f"encoder {encoder!r}: timm has no model named {model_name!r}") from err
        raise


class TimmPatchEncoder(PatchEncoder):
    """A timm model behind the ``PatchEncoder`` interface.

    Args:
        model: the timm model (``num_classes=0``).
        pooling: ``"model"``: ``model(x)``; ``"cls+mean"``: concatenate the class token and the mean of the
            patch tokens of ``model.forward_features(x)`` (register tokens excluded).
        (other args as in ``PatchEncoder``)
    """

    def __init__(
        self, name: str, model: torch.nn.Module, embed_dim: int, input_size: int, transform, checksum: str, pooling: str
    ) -> None:
        super().__init__(name, embed_dim, input_size, transform, checksum)
        if pooling not in POOLINGS:
            raise ValueError(f"encoder {name!r}: pooling must be one of {POOLINGS}, got {pooling!r}")
        self.model = model
        self.pooling = pooling

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """batch: [B, 3, S, S] float -> [B, D] float32."""
        self._check_input(batch)
        if self.pooling == "model":
            out = self.model(batch)
        else:
            tokens = self.model.forward_features(batch)  # [B, prefix + patches, D]
            prefix = int(getattr(self.model, "num_prefix_tokens", 1))
            out = torch.cat([tokens[:, 0], tokens[:, prefix:].mean(dim=1)], dim=-1)
        return out.float()


def _input_size(model: torch.nn.Module, kwargs: Mapping[str, Any]) -> int:
    size = kwargs.get("img_size")
    if size is None:
        size = model.pretrained_cfg.get("input_size", (3, 224, 224))[-1]
    return int(size[-1] if isinstance(size, Sequence) else size)


def build_timm_encoder(
    model_name: str,
    checkpoint: str | os.PathLike | None,
    *,
    name: str | None = None,
    strict: bool = True,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    crop_pct: float = 1.0,
    pooling: str = "model",
    input_size: int | None = None,
    allow_random_init: bool = False,
    seed: int = 0,
    **timm_kwargs: Any,
) -> TimmPatchEncoder:
    """Build a timm model and fill it from a local checkpoint.

    Args:
        model_name: timm architecture, e.g. ``"vit_large_patch16_224"``.
        checkpoint: ``.pth``/``.bin``/``.safetensors`` state dict, raw or nested under
            ``"teacher"``/``"state_dict"``/``"model"``; ``module.`` prefixes are stripped and, when keys
            carry a ``backbone.`` prefix, only those are kept. A classifier head in the file is dropped.
        name: encoder name to record (default ``"timm:<model_name>"``).
        strict: raise on missing or unexpected keys (shape mismatches always raise).
        mean, std, crop_pct: input normalisation and crop (see ``make_patch_transform``).
        pooling: ``"model"`` or ``"cls+mean"`` (see ``TimmPatchEncoder``).
        input_size: input side; default ``img_size`` from the kwargs, else the architecture's default.
        allow_random_init: with no checkpoint, keep timm's random init (seeded by ``seed``) instead of
            raising; for benchmarks and tests only.
        **timm_kwargs: passed to ``timm.create_model``.
    """
    name = name or f"timm:{model_name}"
    if checkpoint is None and not allow_random_init:
        read_state_dict(None, encoder=name)  # raises the "needs a local checkpoint" error
    if checkpoint is not None:
        state = read_state_dict(checkpoint, encoder=name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = create_timm_model(model_name, encoder=name, **timm_kwargs)
    if checkpoint is not None:
        state = strip_prefixes(select_submodule(state, ("backbone.",)), ("module.",))
        own = model.state_dict()
        head = model.pretrained_cfg.get("classifier") or "head"
        heads = (head,) if isinstance(head, str) else tuple(head)
        dropped = [k for k in state if k not in own and any(k.startswith(h + ".") for h in heads)]
        if dropped:
            logger.info("encoder %s: dropping classifier weights %s (num_classes=0)", name, dropped)
        state = {k: v for k, v in state.items() if k not in dropped}
        missing, unexpected = load_checked(model, state, encoder=name, source=checkpoint, strict=strict)
        if missing or unexpected:
            logger.warning(
                "encoder %s: %d missing, %d unexpected keys (strict=False)", name, len(missing), len(unexpected)
            )
        checksum = file_checksum(checkpoint)
    else:
        checksum = state_checksum(model.state_dict())
    size = int(input_size) if input_size is not None else _input_size(model, timm_kwargs)
    num_features = int(getattr(model, "num_features", 0))
    embed_dim = 2 * num_features if pooling == "cls+mean" else num_features
    transform = make_patch_transform(size, mean, std, crop_pct)
    return TimmPatchEncoder(name, model, embed_dim, size, transform, checksum, pooling)


def build_preset_encoder(preset: str, checkpoint: str | os.PathLike | None, **overrides: Any) -> TimmPatchEncoder:
    """A ``TIMM_PRESETS`` model from its local checkpoint; ``overrides`` replace preset kwargs."""
    spec = TIMM_PRESETS[preset]
    options: dict[str, Any] = {
        "name": preset,
        "mean": spec.mean,
        "std": spec.std,
        "pooling": spec.pooling,
        "crop_pct": spec.crop_pct,
        "input_size": spec.input_size,
        **dict(spec.kwargs),
    }
    options.update(overrides)
    return build_timm_encoder(spec.model_name, checkpoint, **options)

