"""Patch encoders behind one small interface (``PatchEncoder``), built by name with ``build_encoder``.

Example:
    >>> from scripts.encoders import build_encoder, list_encoders
    >>> enc = build_encoder("builtin-small")
    >>> enc.embed_dim, enc.input_size, len(enc.checksum)
    (128, 64, 16)
"""

from scripts import quiet_cucim  # noqa: F401  (first: cuCIM's start-up lines stay quiet)
from scripts.encoders.encoder_registry import build_encoder, list_encoders
from scripts.encoders.patch_encoder import IMAGENET_MEAN, IMAGENET_STD, PatchEncoder, make_patch_transform
from scripts.encoders.patch_preprocessing import (
    STAIN_NORMALIZATIONS,
    PatchPreprocessing,
    describe_preprocessing,
    encoder_preprocessing,
)
from scripts.encoders.timm_encoder import TIMM_PRESETS, TimmPreset

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "STAIN_NORMALIZATIONS",
    "TIMM_PRESETS",
    "PatchEncoder",
    "PatchPreprocessing",
    "TimmPreset",
    "build_encoder",
    "describe_preprocessing",
    "encoder_preprocessing",
    "list_encoders",
    "make_patch_transform",
]
