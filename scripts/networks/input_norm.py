"""Per-dimension standardisation of patch features, fitted on the training bags.

Patch encoders give features whose dimensions differ in scale by orders of magnitude (the demo's
``builtin-small`` dimensions that separate two carcinomas vary by 0.001-0.18, others by up to 0.57). The
network's first projection is then slow to pick the small but informative ones up. Fitting a mean and a
standard deviation per dimension on the training split, and storing them in the model as buffers, puts every
dimension on the same footing and travels with the checkpoint, so inference needs no extra file.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

__all__ = ["FeatureStatistics", "feature_statistics", "slide_moments", "slide_standardise"]

#: standard deviations below this are treated as constant dimensions (scaled by 1, not blown up)
MIN_STD = 1e-6


class FeatureStatistics:
    """Running per-dimension mean and standard deviation over patches (float64 sums).

    Example:
        >>> stats = FeatureStatistics(4)
        >>> stats.update(torch.randn(100, 4))
        >>> mean, std = stats.result()
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.count = 0
        self.total = torch.zeros(dim, dtype=torch.float64)
        self.total_sq = torch.zeros(dim, dtype=torch.float64)

    def update(self, features: torch.Tensor) -> None:
        """Add the patches of one bag, ``[N, D]`` (or ``[B, N, D]`` without padding)."""
        rows = features.detach().reshape(-1, features.shape[-1]).to(torch.float64).cpu()
        if rows.shape[1] != self.dim:
            raise ValueError(f"features have dimension {rows.shape[1]}, expected {self.dim}")
        if not bool(torch.isfinite(rows).all()):
            raise ValueError("features hold NaN or Inf values; cannot fit the input normalisation")
        self.count += rows.shape[0]
        self.total += rows.sum(dim=0)
        self.total_sq += (rows * rows).sum(dim=0)

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean [D], std [D])`` as float32; dimensions with std < ``MIN_STD`` get std 1."""
        if self.count == 0:
            raise ValueError("no patches seen: cannot fit the input normalisation on an empty dataset")
        mean = self.total / self.count
        var = (self.total_sq / self.count - mean * mean).clamp_min(0.0)
        std = var.sqrt()
        std = torch.where(std < MIN_STD, torch.ones_like(std), std)
        return mean.float(), std.float()


def _bag_features(item: Any) -> torch.Tensor | None:
    if isinstance(item, torch.Tensor):
        return item
    if isinstance(item, dict):
        features = item.get("features")
        return features if isinstance(features, torch.Tensor) else None  # skipped items carry no features
    raise TypeError(f"expected feature tensors or dataset items with a 'features' tensor, got {type(item).__name__}")


def feature_statistics(bags: Iterable[Any], dim: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Mean and std per dimension over every patch of ``bags``.

    Args:
        bags: feature tensors ``[N, D]``, or dataset items (dicts with ``"features"``), e.g. a
            :class:`scripts.data.ReportBagDataset`; items skipped by ``on_error="skip"`` are passed over.
        dim: feature size D.

    Returns:
        ``(mean [D], std [D], number_of_patches)``.
    """
    stats = FeatureStatistics(dim)
    for item in bags:
        features = _bag_features(item)
        if features is not None:
            stats.update(features)
    mean, std = stats.result()
    return mean, std, stats.count


def slide_moments(
    features: torch.Tensor, mask: torch.Tensor, min_std: float = MIN_STD
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-slide mean and std of each dimension over the slide's real patches (what :func:`slide_standardise` uses).

    Args:
        features: ``[B, N, D]`` patch features.
        mask: ``[B, N] bool``, True for real patches.
        min_std: smallest std returned (a dimension constant within a slide is 0 after centring, not blown up).

    Returns:
        ``(mean [B, 1, D], std [B, 1, D])``, the std at least ``min_std``.
    """
    weights = mask.unsqueeze(-1).to(features.dtype)
    count = weights.sum(dim=1, keepdim=True).clamp_min(1.0)
    mean = (features * weights).sum(dim=1, keepdim=True) / count
    centred = (features - mean) * weights
    std = (centred.square().sum(dim=1, keepdim=True) / count).sqrt()
    return mean, std.clamp_min(min_std)


def slide_standardise(
    features: torch.Tensor,
    mask: torch.Tensor,
    min_std: float = MIN_STD,
    moments: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Standardise each dimension within each slide: ``(x - slide mean) / slide std`` over its real patches.

    A slide-wide offset and scale per dimension (site, scanner and stain differences seen through a patch
    encoder) leave the result unchanged; padded patches stay zero.

    Args:
        features: ``[B, N, D]`` patch features.
        mask: ``[B, N] bool``, True for real patches.
        min_std: smallest divisor (a dimension constant within a slide is 0 there, not blown up).
        moments: the slides' ``(mean, std)`` from :func:`slide_moments` when ``features`` is a run of patches
            cut from whole slides (chunked computation); None computes them from ``features``.

    Returns:
        ``[B, N, D]`` in the features' dtype; a dimension constant within a slide becomes 0 there.
    """
    if moments is None:
        mean, std = slide_moments(features, mask, min_std)
    else:
        mean, std = moments
    return (features - mean) * mask.unsqueeze(-1).to(features.dtype) / std
