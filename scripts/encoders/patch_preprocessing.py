"""Patch preprocessing as a MONAI transform chain: uint8 RGB patch batches -> an encoder's input.

Every transform here is a ``monai.transforms.Transform`` that takes a whole batch ``[B, 3, H, W]`` and runs on
the batch's device, so the chain costs what the torchvision chain it replaces cost. The chains are
``monai.transforms.Compose`` objects, declared in ``configs/extract_features.json`` as ``preprocessing``:

- :func:`encoder_preprocessing`: an encoder's own steps (resize, optional centre crop, scale to [0, 1],
  per-channel normalisation); ``encoder.transform`` is this chain (see ``scripts.encoders.make_patch_transform``).
- :class:`PatchPreprocessing`: the chain the extractor runs by default: optional stain normalisation
  (``stain_normalization="macenko"``: MONAI's ``monai.apps.pathology.transforms.NormalizeHEStains``, applied
  patch by patch on the CPU, as MONAI's implementation is numpy), then the encoder's own steps.

Example:
    >>> from scripts.encoders import build_encoder
    >>> enc = build_encoder("builtin-small")
    >>> chain = PatchPreprocessing(enc, stain_normalization="macenko")
    >>> chain(torch.randint(0, 256, (4, 3, 256, 256), dtype=torch.uint8)).shape
    torch.Size([4, 3, 224, 224])
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from monai.transforms import Compose, Transform
from monai.utils import TransformBackends
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

__all__ = [
    "ENCODER_DEFAULT",
    "STAIN_NORMALIZATIONS",
    "NormalizePatches",
    "PatchPreprocessing",
    "PerPatchTransform",
    "ResizePatches",
    "ScalePatches",
    "describe_preprocessing",
    "encoder_preprocessing",
    "stain_normalizer",
]

logger = logging.getLogger(__name__)

#: Values of the ``stain_normalization`` setting (recorded in feature files and ``feature_extraction.json``).
STAIN_NORMALIZATIONS = ("none", "macenko")
#: The ``preprocessing`` record of the default chain (the encoder's own steps after the optional stain step).
ENCODER_DEFAULT = "encoder"


class ResizePatches(Transform):
    """Resize a batch ``uint8 [B, 3, H, W]`` to ``[B, 3, size, size]`` (antialiased), then centre-crop.

    Resizing runs on the uint8 image, as PIL does in the reference pipelines (and several times faster on the
    CPU than resizing floats).

    Args:
        size: output side in pixels.
        crop_pct: fraction of the resized image kept by the centre crop: the batch is resized to
            ``size / crop_pct`` first (1.0: no crop).
        interpolation: torchvision interpolation name (``"bicubic"``, ``"bilinear"``, ...).
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, size: int, crop_pct: float = 1.0, interpolation: str | InterpolationMode = "bicubic") -> None:
        if not 0.0 < crop_pct <= 1.0:
            raise ValueError(f"crop_pct must be in (0, 1], got {crop_pct}")
        self.size = int(size)
        self.crop_pct = float(crop_pct)
        self.interpolation = InterpolationMode(interpolation) if isinstance(interpolation, str) else interpolation
        self.resized = int(round(self.size / self.crop_pct))

    def __call__(self, patches: torch.Tensor) -> torch.Tensor:
        out = TF.resize(patches, [self.resized, self.resized], interpolation=self.interpolation, antialias=True)
        if self.resized != self.size:
            out = TF.center_crop(out, [self.size, self.size])
        return out


class ScalePatches(Transform):
    """uint8 ``[B, 3, H, W]`` -> float32 in [0, 1] (x / 255, clamped; float input is taken as already in [0, 1])."""

    backend = [TransformBackends.TORCH]

    def __call__(self, patches: torch.Tensor) -> torch.Tensor:
        return TF.to_dtype(patches, torch.float32, scale=True).clamp(0.0, 1.0)


class NormalizePatches(Transform):
    """Subtract ``mean`` and divide by ``std`` per channel of a float batch ``[B, 3, H, W]`` (RGB, [0, 1] units)."""

    backend = [TransformBackends.TORCH]

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]

    def __call__(self, patches: torch.Tensor) -> torch.Tensor:
        return TF.normalize(patches, mean=self.mean, std=self.std)


class PerPatchTransform(Transform):
    """Apply a one-image numpy transform (``uint8 [H, W, 3] -> uint8 [H, W, 3]``, e.g. MONAI's ``NormalizeHEStains``)
    to each patch of a batch ``uint8 [B, 3, H, W]``; the result is on the batch's device.

    A patch the transform refuses (MONAI's stain extraction raises ``ValueError`` for a patch with almost no
    stained pixels) is kept as it was; :attr:`unchanged` counts them until :meth:`pop_unchanged`.

    Args:
        transform: the one-image transform.
        name: how it is named in logs.
    """

    backend = [TransformBackends.NUMPY]

    def __init__(self, transform: Callable[[np.ndarray], np.ndarray], name: str | None = None) -> None:
        self.transform = transform
        self.name = name or type(transform).__name__
        self.unchanged = 0

    def pop_unchanged(self) -> int:
        """The number of patches kept as they were since the last call (and reset it)."""
        count, self.unchanged = self.unchanged, 0
        return count

    def __call__(self, patches: torch.Tensor) -> torch.Tensor:
        if patches.dtype != torch.uint8:
            raise TypeError(f"{self.name}: expects uint8 patches [B, 3, H, W], got {patches.dtype}")
        images = patches.permute(0, 2, 3, 1).cpu().numpy()
        out = np.empty_like(images)
        for index, image in enumerate(images):
            try:
                out[index] = np.clip(self.transform(image), 0, 255)
            except (ValueError, np.linalg.LinAlgError):
                out[index] = image
                self.unchanged += 1
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous().to(patches.device)


def stain_normalizer(method: str, **params: Any) -> PerPatchTransform | None:
    """The batch transform of a ``stain_normalization`` setting: None for ``"none"``, MONAI's Macenko
    ``NormalizeHEStains(**params)`` for ``"macenko"``.

    Raises:
        ValueError: an unknown method.
    """
    if method not in STAIN_NORMALIZATIONS:
        raise ValueError(f"stain_normalization must be one of {STAIN_NORMALIZATIONS}, got {method!r}")
    if method == "none":
        return None
    from monai.apps.pathology.transforms import NormalizeHEStains

    return PerPatchTransform(NormalizeHEStains(**params), name="NormalizeHEStains")


def encoder_preprocessing(
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    crop_pct: float = 1.0,
    interpolation: str | InterpolationMode = "bicubic",
) -> Compose:
    """An encoder's own steps as a MONAI chain: uint8 ``[B, 3, H, W]`` -> float ``[B, 3, input_size, input_size]``.

    Steps: :class:`ResizePatches` (to ``input_size / crop_pct``, centre crop ``input_size``),
    :class:`ScalePatches`, :class:`NormalizePatches` (``mean``, ``std``).
    """
    return Compose([ResizePatches(input_size, crop_pct, interpolation), ScalePatches(), NormalizePatches(mean, std)])


class PatchPreprocessing(Compose):
    """The extractor's chain: the optional stain normalisation, then the encoder's own steps (``encoder.transform``).

    Args:
        encoder: a patch encoder (``scripts.encoders.build_encoder``); its ``transform`` is a MONAI ``Compose``
            (its transforms are taken over) or any callable on batches.
        stain_normalization: ``"none"`` or ``"macenko"`` (:data:`STAIN_NORMALIZATIONS`).
        stain_params: arguments of MONAI's ``NormalizeHEStains`` (``tli``, ``alpha``, ``beta``, ``target_he``,
            ``max_cref``); MONAI's defaults when None.
    """

    def __init__(self, encoder: Any, stain_normalization: str = "none", stain_params: dict | None = None) -> None:
        stain = stain_normalizer(stain_normalization, **(stain_params or {}))
        own = encoder.transform
        steps = list(own.transforms) if isinstance(own, Compose) else [own]
        super().__init__(([stain] if stain is not None else []) + steps)
        self.stain_normalization = stain_normalization
        self.stain = stain

    def pop_unchanged(self) -> int:
        """Patches the stain step kept as they were since the last call (0 without stain normalisation)."""
        return self.stain.pop_unchanged() if self.stain is not None else 0


def describe_preprocessing(chain: Any) -> str:
    """The ``preprocessing`` record of a chain: :data:`ENCODER_DEFAULT` for a :class:`PatchPreprocessing` (its
    stain step is recorded as ``stain_normalization``), else ``"custom: <transform names>"``."""
    if isinstance(chain, PatchPreprocessing):
        return ENCODER_DEFAULT
    steps = chain.transforms if isinstance(chain, Compose) else [chain]
    return "custom: " + ", ".join(getattr(step, "name", None) or type(step).__name__ for step in steps)
