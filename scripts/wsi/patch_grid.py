"""Regular patch grid over a slide, kept where the tissue mask covers enough of each patch.

Patch boxes live in level-0 pixels; their tissue fractions are measured on the low-resolution
mask by mapping each box into mask coordinates and integrating the mask exactly over the
(fractional) box with a summed-area table, so no full-resolution mask is ever built.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .read_plan import ReadPlan
from .tissue_mask import TissueMask


@dataclass
class PatchGrid:
    """Patches kept on one slide.

    Attributes:
        coords: ``[N, 2]`` int64, level-0 ``(x, y)`` of each patch's top-left corner, row-major order.
        tissue_fractions: ``[N]`` float32, tissue fraction of each kept patch.
        patch_size_level0: patch side in level-0 pixels.
        candidates: number of grid positions before the tissue filter.
    """

    coords: np.ndarray
    tissue_fractions: np.ndarray
    patch_size_level0: int
    candidates: int

    def __len__(self) -> int:
        return int(self.coords.shape[0])


def box_fractions(mask: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Mean of ``mask`` over continuous boxes given in mask pixel units.

    Args:
        mask: ``[h, w]`` bool or float.
        boxes: ``[N, 4]`` float ``(x0, y0, x1, y1)``; parts outside the mask count as 0.

    Returns:
        ``[N]`` float64 in ``[0, 1]``.
    """
    h, w = mask.shape
    table = np.zeros((h + 1, w + 1), dtype=np.float64)
    table[1:, 1:] = np.asarray(mask, dtype=np.float64).cumsum(0).cumsum(1)
    x0, y0, x1, y1 = (boxes[:, i] for i in range(4))
    area = np.maximum((x1 - x0) * (y1 - y0), 1e-12)
    x0, x1 = np.clip(x0, 0, w), np.clip(x1, 0, w)
    y0, y1 = np.clip(y0, 0, h), np.clip(y1, 0, h)

    def integral(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        # The summed-area table is bilinear inside each cell, so linear interpolation is exact.
        return ndimage.map_coordinates(table, [ys, xs], order=1, mode="nearest")

    inside = integral(x1, y1) - integral(x0, y1) - integral(x1, y0) + integral(x0, y0)
    return np.clip(inside / area, 0.0, 1.0)


def grid_positions(level0_size: tuple[int, int], level_size: tuple[int, int], plan: ReadPlan) -> np.ndarray:
    """All full-patch grid positions ``[M, 2]`` int64 (x, y at level 0), row-major.

    A position is kept when the patch fits inside level 0 and its read window fits inside the
    read level.
    """
    w0, h0 = level0_size
    wl, hl = level_size
    p0, s0, ds = plan.patch_size_level0, plan.step_level0, plan.downsample

    def axis(extent0: int, extent_level: int) -> np.ndarray:
        xs = np.arange(0, max(extent0 - p0 + 1, 0), s0, dtype=np.int64)
        return xs[np.floor(xs / ds).astype(np.int64) + plan.read_size <= extent_level]

    xs, ys = axis(w0, wl), axis(h0, hl)
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def build_patch_grid(
    tissue: TissueMask,
    level0_size: tuple[int, int],
    level_size: tuple[int, int],
    plan: ReadPlan,
    tissue_fraction: float,
) -> PatchGrid:
    """Grid positions whose tissue fraction is ``>= tissue_fraction``.

    Args:
        tissue: the slide's tissue mask.
        level0_size: ``(width, height)`` of level 0.
        level_size: ``(width, height)`` of the read level ``plan.level``.
        plan: read plan (patch size and step at level 0).
        tissue_fraction: minimum tissue fraction in ``[0, 1]`` (0 keeps every patch that touches tissue).
    """
    positions = grid_positions(level0_size, level_size, plan)
    p0 = float(plan.patch_size_level0)
    sx, sy = tissue.scale
    if len(positions) == 0:
        fractions = np.zeros(0, dtype=np.float64)
    else:
        boxes = np.stack(
            [
                positions[:, 0] / sx,
                positions[:, 1] / sy,
                (positions[:, 0] + p0) / sx,
                (positions[:, 1] + p0) / sy,
            ],
            axis=1,
        )
        fractions = box_fractions(tissue.mask, boxes)
    keep = fractions >= tissue_fraction - 1e-9
    if tissue_fraction <= 0:
        keep &= fractions > 0
    return PatchGrid(
        coords=positions[keep].astype(np.int64),
        tissue_fractions=fractions[keep].astype(np.float32),
        patch_size_level0=plan.patch_size_level0,
        candidates=int(len(positions)),
    )
