"""``build_encoder(name, checkpoint)``: the one place that maps encoder names to builders.

Names:

- ``builtin-small``: fixed random-feature encoder, no file (``seed=``, ``input_size=`` kwargs);
- ``histgen-dinov2-vitl14``: HistGen's DINOv2 ViT-L/14 teacher (``dinov2_cpath_v1.pth``);
- ``resnet50-trunc``: CLAM's truncated ResNet-50 from a torchvision ``resnet50`` state dict;
- ``uni``, ``uni2-h``, ``virchow2``, ``gigapath``, ``h-optimus-0``: timm presets, local checkpoint;
- ``timm:<model_name>``: any timm architecture, local checkpoint (kwargs go to ``timm.create_model``).

Nothing is ever downloaded: every name but ``builtin-small`` needs ``checkpoint``, a local file.

Example:
    >>> enc = build_encoder("uni", "/models/uni/pytorch_model.bin", device="cuda")   # doctest: +SKIP
    >>> enc.name, enc.embed_dim, enc.input_size
    ('uni', 1024, 224)
"""

from __future__ import annotations

import os
from typing import Any

import torch

from scripts.encoders.builtin_small import BUILTIN_SMALL_NAME, BuiltinSmallEncoder
from scripts.encoders.dinov2_checkpoint import HISTGEN_DINOV2_NAME, build_histgen_dinov2
from scripts.encoders.patch_encoder import PatchEncoder
from scripts.encoders.resnet_trunc import RESNET50_TRUNC_NAME, build_resnet50_trunc
from scripts.encoders.timm_encoder import TIMM_PRESETS, build_preset_encoder, build_timm_encoder

__all__ = ["TIMM_PREFIX", "build_encoder", "list_encoders"]

TIMM_PREFIX = "timm:"


def list_encoders() -> list[str]:
    """Names ``build_encoder`` accepts (``timm:<model_name>`` stands for any timm architecture)."""
    return [BUILTIN_SMALL_NAME, HISTGEN_DINOV2_NAME, RESNET50_TRUNC_NAME, *TIMM_PRESETS, f"{TIMM_PREFIX}<model_name>"]


def build_encoder(
    name: str, checkpoint: str | os.PathLike | None = None, device: str | torch.device = "cpu", **kwargs: Any
) -> PatchEncoder:
    """Build a patch encoder by name, load its local weights, move it to ``device`` in eval mode.

    Args:
        name: one of ``list_encoders()``.
        checkpoint: local weights file (required for all but ``builtin-small``).
        device: where the encoder lives.
        **kwargs: builder options: ``strict`` (default True), ``input_size``, and per
            encoder: ``seed`` (builtin-small), ``num_heads``/``embed_dim``/``depth`` (histgen-dinov2-vitl14),
            ``timm.create_model`` kwargs and ``mean``/``std``/``pooling``/``allow_random_init`` (timm).

    Returns:
        encoder: a ``PatchEncoder`` (``name``, ``embed_dim``, ``input_size``, ``transform``, ``checksum``).
    """
    if name == BUILTIN_SMALL_NAME:
        if checkpoint is not None:
            raise ValueError(f"encoder {name!r} has built-in weights; it takes no checkpoint (got {checkpoint})")
        encoder: PatchEncoder = BuiltinSmallEncoder(**kwargs)
    elif name == HISTGEN_DINOV2_NAME:
        encoder = build_histgen_dinov2(checkpoint, **kwargs)
    elif name == RESNET50_TRUNC_NAME:
        encoder = build_resnet50_trunc(checkpoint, **kwargs)
    elif name in TIMM_PRESETS:
        encoder = build_preset_encoder(name, checkpoint, **kwargs)
    elif name.startswith(TIMM_PREFIX) and len(name) > len(TIMM_PREFIX):
        encoder = build_timm_encoder(name[len(TIMM_PREFIX) :], checkpoint, name=name, **kwargs)
    else:
        raise ValueError(f"unknown encoder {name!r}; known: {list_encoders()}")
    encoder.requires_grad_(False)
    return encoder.to(device).eval()
