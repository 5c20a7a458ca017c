"""Tissue mask of a slide, computed on a low-resolution image (CLAM-like).

Steps on an RGB image at about ``mask_mpp`` microns per pixel:

1. HSV saturation ``S = 255 * (max - min) / max`` per pixel; pixels darker than ``min_value``
   (HSV value) get ``S = 0`` (black scanner margins have noisy saturation);
2. median filter (``median_kernel`` px, square);
3. threshold: Otsu on ``S`` or a fixed ``saturation_threshold``, never below ``min_saturation``
   (a blank slide's JPEG noise must not become tissue);
4. morphological closing (``close_size`` px, square);
5. filling holes smaller than ``max_hole_area_um2`` (all holes when None);
6. removing tissue pieces smaller than ``min_tissue_area_um2``.

The image comes from the coarsest level that is at least as fine as ``mask_mpp``, read in strips
and block-averaged when that level is finer, so level 0 is never rasterised as one array (slides
beyond OpenCV's and PIL's 65,535 px limits work).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.filters.rank import median as rank_median

from .slide_reader import Slide

_STRIP_PIXELS = 1 << 24  # pixels read per strip when block-averaging a fine level (~48 MB RGB)


@dataclass(frozen=True)
class TissueMaskParams:
    """Tissue-mask settings (all thresholds are config keys).

    Attributes:
        mask_mpp: microns per pixel of the mask image (8 ~ 1.25x).
        saturation_threshold: fixed threshold on saturation 0..255, or None for Otsu.
        min_saturation: lower bound of the threshold actually used.
        min_value: pixels with HSV value (max of R, G, B) below this are background.
        median_kernel: median filter size in mask pixels (odd; 1 disables).
        close_size: closing structuring element side in mask pixels (0 disables).
        min_tissue_area_um2: tissue pieces smaller than this are dropped.
        max_hole_area_um2: holes smaller than this are filled; None fills all holes.
    """

    mask_mpp: float = 8.0
    saturation_threshold: float | None = None
    min_saturation: float = 15.0
    min_value: int = 30
    median_kernel: int = 7
    close_size: int = 4
    min_tissue_area_um2: float = 20000.0
    max_hole_area_um2: float | None = 20000.0

    def as_dict(self) -> dict:
        """Plain dict (stored in feature-file attributes and compared on re-runs)."""
        return asdict(self)


@dataclass
class TissueMask:
    """A tissue mask and where it sits on the slide.

    Attributes:
        mask: ``[h, w]`` bool, True on tissue.
        image: ``[h, w, 3]`` uint8 RGB the mask was computed from (for thumbnails).
        level: pyramid level the image was read from.
        factor: block-averaging factor applied to that level (1 = level read as is).
        scale: ``(sx, sy)`` level-0 pixels per mask pixel.
        mpp: microns per pixel of the mask image (mean of x and y).
        threshold: saturation threshold used.
    """

    mask: np.ndarray
    image: np.ndarray
    level: int
    factor: int
    scale: tuple[float, float]
    mpp: float
    threshold: float

    @property
    def tissue_pixels(self) -> int:
        return int(self.mask.sum())


def hsv_saturation(rgb: np.ndarray, min_value: int = 0) -> np.ndarray:
    """HSV saturation of ``rgb [h, w, 3] uint8`` as ``uint8 [h, w]`` (0 where value < ``min_value``)."""
    rgb = np.asarray(rgb)
    high = rgb.max(axis=2).astype(np.int32)
    low = rgb.min(axis=2).astype(np.int32)
    sat = np.zeros(high.shape, dtype=np.uint8)
    ok = (high > 0) & (high >= min_value)
    sat[ok] = ((high[ok] - low[ok]) * 255 // high[ok]).astype(np.uint8)
    return sat


def _square(size: int) -> np.ndarray:
    return np.ones((size, size), dtype=bool)


def _remove_small(mask: np.ndarray, min_pixels: float) -> np.ndarray:
    if min_pixels <= 1 or not mask.any():
        return mask
    labels, count = ndimage.label(mask, structure=_square(3))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = sizes >= min_pixels
    keep[0] = False
    return keep[labels]


def _fill_small_holes(mask: np.ndarray, max_pixels: float | None) -> np.ndarray:
    filled = ndimage.binary_fill_holes(mask)
    if max_pixels is None:
        return filled
    holes = filled & ~mask
    labels, count = ndimage.label(holes)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    small = sizes < max_pixels
    small[0] = False
    return mask | small[labels]


def compute_tissue_mask(rgb: np.ndarray, params: TissueMaskParams, mpp: float) -> tuple[np.ndarray, float]:
    """Tissue mask of a low-resolution RGB image.

    Args:
        rgb: ``[h, w, 3]`` uint8.
        params: the thresholds.
        mpp: microns per pixel of ``rgb`` (converts the area thresholds to pixels).

    Returns:
        ``(mask [h, w] bool, saturation threshold used)``.
    """
    sat = hsv_saturation(rgb, params.min_value)
    if params.median_kernel > 1 and min(sat.shape) >= params.median_kernel:
        sat = rank_median(sat, _square(int(params.median_kernel)))
    if params.saturation_threshold is not None:
        threshold = float(params.saturation_threshold)
    else:
        threshold = float(threshold_otsu(sat)) if sat.max() > sat.min() else float(sat.max())
    threshold = max(threshold, float(params.min_saturation))
    mask = sat > threshold
    if params.close_size > 0 and mask.any():
        pad = int(params.close_size)
        padded = np.pad(mask, pad, mode="edge")
        mask = ndimage.binary_closing(padded, structure=_square(pad))[pad:-pad, pad:-pad]
    px_area = mpp * mpp
    hole_px = None if params.max_hole_area_um2 is None else params.max_hole_area_um2 / px_area
    mask = _fill_small_holes(mask, hole_px)
    mask = _remove_small(mask, params.min_tissue_area_um2 / px_area)
    return mask, threshold


def _block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    h, w = image.shape[0] // factor, image.shape[1] // factor
    blocks = image[: h * factor, : w * factor].reshape(h, factor, w, factor, 3)
    return blocks.mean(axis=(1, 3), dtype=np.float32).round().astype(np.uint8)


def read_mask_image(slide: Slide, mask_mpp: float, strip_pixels: int = _STRIP_PIXELS) -> tuple[np.ndarray, int, int]:
    """Low-resolution RGB image of the whole slide at about ``mask_mpp``.

    Args:
        slide: the opened slide.
        mask_mpp: wanted microns per pixel of the image.
        strip_pixels: at most this many pixels of the source level are read at once (rounded up to
            whole rows of blocks) when the level is finer than ``mask_mpp``.

    Returns:
        ``(image [h, w, 3] uint8, level, factor)``: the image is ``level`` block-averaged by ``factor``.
    """
    mpps = [slide.level_mpp(lv) for lv in range(slide.level_count)]
    fine_enough = [lv for lv, m in enumerate(mpps) if m <= mask_mpp * 1.001]
    level = max(fine_enough, key=lambda lv: mpps[lv]) if fine_enough else min(range(len(mpps)), key=mpps.__getitem__)
    factor = max(1, int(math.floor(mask_mpp / mpps[level] + 1e-6)))
    width, height = slide.level_dimensions[level]
    ds = slide.level_downsamples[level]
    if factor == 1:
        return slide.read_region((0, 0), (width, height), level), level, 1
    out_w, out_h = width // factor, height // factor
    if out_w < 1 or out_h < 1:
        return slide.read_region((0, 0), (width, height), level), level, 1
    rows_per_strip = max(factor, (strip_pixels // max(width, 1)) // factor * factor)
    strips = []
    for top in range(0, out_h * factor, rows_per_strip):
        rows = min(rows_per_strip, out_h * factor - top)
        strip = slide.read_region((0, int(round(top * ds))), (out_w * factor, rows), level)
        strips.append(_block_mean(strip, factor))
    return np.concatenate(strips, axis=0), level, factor


def slide_tissue_mask(slide: Slide, params: TissueMaskParams) -> TissueMask:
    """Read the low-resolution image of ``slide`` and compute its tissue mask.

    The mask may be empty; the caller decides whether that is an error (see ``NoTissueError``).
    """
    image, level, factor = read_mask_image(slide, params.mask_mpp)
    level_w, level_h = slide.level_dimensions[level]
    w0, h0 = slide.dimensions
    scale = (factor * w0 / level_w, factor * h0 / level_h)
    mpp = slide.mpp * (scale[0] + scale[1]) / 2.0
    mask, threshold = compute_tissue_mask(image, params, mpp)
    return TissueMask(mask=mask, image=image, level=level, factor=factor, scale=scale, mpp=mpp, threshold=threshold)
