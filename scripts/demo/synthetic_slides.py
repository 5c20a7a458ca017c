"""Synthetic pyramidal whole-slide images for the embedded demo and the tests.

A slide is drawn from a small procedural model: a low-resolution *layout* (tissue islands on glass, a lesion
of the slide's diagnosis covering ``tumour_fraction`` of the tissue, optional necrosis inside it, marker-pen
strokes) and one seamlessly tiling texture *swatch* per tissue component (``scripts.demo.tissue_textures``).
Tiles are rendered one at a time straight from that model. A slide whose level 0 fits in
``PYRAMID_IN_MEMORY_BYTES`` (the demo's 2,048 px slides) keeps its level 0 and area-averages it for the
intermediate levels, as a scanner builds its pyramid (a fifth less rendering), and renders only its coarsest level
from the model; a larger one renders every level from the model, so memory stays at a few tiles plus the layout
whatever the slide size. Every level shows the same tissue.

The file is an Aperio-style SVS: JPEG-compressed tiles, every level a top-level TIFF page (no SubIFDs), an
``Aperio Image Library`` ImageDescription with ``MPP`` and ``AppMag``, and TIFF resolution tags in
centimetres. OpenSlide, cuCIM and MONAI's ``WSIReader`` (both backends) read it with the same dimensions,
levels and micrometres per pixel.

Example:
    >>> info = write_synthetic_slide("demo.svs", "adenocarcinoma", seed=0, size=(4096, 4096))
    >>> info.level_dimensions
    ((4096, 4096), (1024, 1024), (256, 256))
    >>> rows = make_demo_slides("demo_slides", n_per_class=2, seed=0)   # also writes demo_slides/manifest.csv

CLI: ``python -m scripts.demo.synthetic_slides --out_dir DIR [--n_per_class 2] [--size 4096] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import csv
import functools
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.ndimage
import tifffile

from scripts.demo.tissue_classes import (
    COMPONENT_IDS,
    COMPONENTS,
    DIAGNOSES,
    DIAGNOSIS_CLASSES,
    PEN_COLOURS,
)
from scripts.demo.tissue_textures import downsample_swatch, periodic_noise, render_swatch

__all__ = [
    "EDGE_NOISE",
    "MANIFEST_COLUMNS",
    "SWATCH_PERIOD",
    "SlideInfo",
    "SyntheticSlide",
    "bank_entries",
    "bank_swatch",
    "bank_swatch_path",
    "make_demo_slides",
    "read_manifest",
    "write_synthetic_slide",
]

_LAYOUT_SIDE = 768  # default longest side of the layout grid in cells
SWATCH_PERIOD = 1024  # default side of the texture swatches in level-0 pixels
_GRAIN_PERIOD = 251  # prime, so the sensor grain never lines up with tiles or swatches
_APERIO_HEADER = "Aperio Image Library v12.0.16"
#: slides whose level-0 RGB pixels fit in this many bytes build their lower levels by area-averaging level 0
PYRAMID_IN_MEMORY_BYTES = 64 * 2**20

MANIFEST_COLUMNS: tuple[str, ...] = (
    "slide_id",
    "slide_path",
    "diagnosis",
    "seed",
    "tumour_fraction",
    "tissue_fraction",
    "lesion_fraction",
    "necrosis_fraction",
    "pen_marks",
    "width",
    "height",
    "mpp",
    "levels",
)


# ----------------------------------------------------------------------------------------------------------
# layout
# ----------------------------------------------------------------------------------------------------------
@dataclass
class _Layout:
    """The slide's low-resolution plan; fields are [h, w] on a grid of ``scale`` level-0 pixels per cell.

    The ``*_sdf`` fields are signed distances in level-0 pixels (> 0 inside). ``ink_od`` [h, w, 3] is the
    optical density of marker ink, ``stain`` [h, w] a smooth relative stain-intensity change.
    """

    scale: float
    tissue_sdf: np.ndarray
    lesion_sdf: np.ndarray
    necrosis_sdf: np.ndarray
    ink_od: np.ndarray
    stain: np.ndarray
    labels: np.ndarray
    pen_mask: np.ndarray


def _signed_distance(mask: np.ndarray, scale: float) -> np.ndarray:
    """Signed distance (level-0 px, > 0 inside) of a boolean layout mask, lightly smoothed."""
    if not mask.any():
        return np.full(mask.shape, -1e6, np.float32)
    if mask.all():
        return np.full(mask.shape, 1e6, np.float32)
    inside = scipy.ndimage.distance_transform_edt(mask)
    outside = scipy.ndimage.distance_transform_edt(~mask)
    sdf = np.where(mask, inside - 0.5, 0.5 - outside).astype(np.float32)
    return scipy.ndimage.gaussian_filter(sdf, 0.8) * np.float32(scale)


def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    side = int(2 ** math.ceil(math.log2(max(shape))))
    return periodic_noise(rng, side, sigma)[: shape[0], : shape[1]]


def _tissue_mask(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    field_ = np.full(shape, -1.0, np.float32)
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
        a, b = rng.uniform(0.16, 0.32) * h, rng.uniform(0.16, 0.32) * w
        theta = rng.uniform(0, np.pi)
        u = ((yy - cy) * np.cos(theta) + (xx - cx) * np.sin(theta)) / a
        v = (-(yy - cy) * np.sin(theta) + (xx - cx) * np.cos(theta)) / b
        field_ = np.maximum(field_, 1.0 - np.sqrt(u * u + v * v))
    side = min(h, w)
    field_ += 0.25 * _noise(rng, shape, side / 14) + 0.08 * _noise(rng, shape, side / 40)
    edge = np.minimum(np.minimum(yy, h - 1 - yy), np.minimum(xx, w - 1 - xx)) / (0.08 * side)
    field_ -= 2.0 * np.clip(1.0 - edge, 0.0, 1.0)
    mask = field_ > 0
    if mask.sum() < 0.02 * h * w:  # a freak draw: fall back on one central island
        mask = ((yy - h / 2) / (0.3 * h)) ** 2 + ((xx - w / 2) / (0.3 * w)) ** 2 < 1.0
    return mask


def _region_within(rng, inside: np.ndarray, fraction: float, sigma: float, bump: float) -> np.ndarray:
    """A blob-like sub-region covering ``fraction`` of ``inside`` (noise plus a bump around a random point)."""
    if fraction <= 0 or not inside.any():
        return np.zeros_like(inside)
    if fraction >= 1:
        return inside.copy()
    ys, xs = np.nonzero(inside)
    pick = int(rng.integers(len(ys)))
    yy, xx = np.mgrid[0 : inside.shape[0], 0 : inside.shape[1]].astype(np.float32)
    radius = max(2.0, math.sqrt(fraction * len(ys) / math.pi))
    field_ = _noise(rng, inside.shape, sigma) + bump * np.exp(
        -((yy - ys[pick]) ** 2 + (xx - xs[pick]) ** 2) / (2 * radius**2)
    )
    threshold = np.quantile(field_[inside], 1.0 - fraction)
    return inside & (field_ > threshold)


def _pen_strokes(rng, shape: tuple[int, int], around: np.ndarray, width_cells: float):
    """Marker strokes: a loose loop around ``around`` (or the tissue) and a short line in the margin."""
    h, w = shape
    ink = np.zeros((h, w, 3), np.float32)
    alpha_total = np.zeros((h, w), np.float32)
    colours = list(PEN_COLOURS.values())
    ys, xs = np.nonzero(around)
    strokes = []
    if len(ys):
        cy, cx = ys.mean(), xs.mean()
        ry = max(4.0, 1.25 * (ys.max() - ys.min()) / 2 + 2 * width_cells)
        rx = max(4.0, 1.25 * (xs.max() - xs.min()) / 2 + 2 * width_cells)
        start = rng.uniform(0, 2 * np.pi)
        t = np.linspace(start, start + rng.uniform(1.5, 1.95) * np.pi, 800)
        wobble = 1.0 + 0.06 * np.sin(3 * t + rng.uniform(0, 6))
        strokes.append((cy + ry * wobble * np.sin(t), cx + rx * wobble * np.cos(t)))
    if rng.random() < 0.7:
        y0, x0 = rng.uniform(0.04, 0.2) * h, rng.uniform(0.1, 0.6) * w
        t = np.linspace(0, 1, 400)
        length = rng.uniform(0.15, 0.3) * w
        strokes.append((y0 + 0.03 * h * np.sin(2 * np.pi * t * rng.uniform(0.5, 1.5)), x0 + length * t))
    for sy, sx in strokes:
        dense = max(2, int(np.hypot(np.diff(sy), np.diff(sx)).sum() * 2))
        t = np.linspace(0, len(sy) - 1, dense)
        py = np.clip(np.round(np.interp(t, np.arange(len(sy)), sy)).astype(int), 0, h - 1)
        px = np.clip(np.round(np.interp(t, np.arange(len(sx)), sx)).astype(int), 0, w - 1)
        line = np.ones((h, w), bool)
        line[py, px] = False
        dist = scipy.ndimage.distance_transform_edt(line)
        alpha = np.clip(width_cells / 2 - dist + 0.5, 0, 1) * rng.uniform(0.75, 0.95)
        alpha *= np.clip(0.9 + 0.1 * _noise(rng, shape, 2.0), 0, 1)
        colour = colours[int(rng.integers(len(colours)))]
        od = -np.log(np.asarray(colour, np.float32) / 255.0)
        ink += alpha[..., None].astype(np.float32) * od
        alpha_total = np.maximum(alpha_total, alpha)
    return ink, alpha_total > 0.3


def _make_layout(
    diagnosis: str, seed: int, size: tuple[int, int], tumour_fraction: float, pen_marks: bool, blank: bool,
    layout_side: int = _LAYOUT_SIDE,
) -> _Layout:
    width, height = size
    scale = max(1.0, math.ceil(max(width, height) / layout_side))
    shape = (max(1, math.ceil(height / scale)), max(1, math.ceil(width / scale)))
    rng = np.random.default_rng([seed, 7919])
    if blank:
        tissue = np.zeros(shape, bool)
    else:
        tissue = _tissue_mask(rng, shape)
    side = min(shape)
    lesion = _region_within(rng, tissue, tumour_fraction, side / 10, 1.5)
    necrosis = _region_within(rng, lesion, DIAGNOSES[diagnosis].necrosis_fraction, side / 30, 0.5)
    labels = np.zeros(shape, np.uint8)
    labels[tissue] = COMPONENT_IDS["stroma"]
    labels[lesion] = COMPONENT_IDS[diagnosis]
    labels[necrosis] = COMPONENT_IDS["necrosis"]
    if pen_marks and not blank:
        pen_width = max(2.0, 0.006 * min(width, height) / scale)
        ink, pen_mask = _pen_strokes(rng, shape, lesion if lesion.any() else tissue, pen_width)
    else:
        ink, pen_mask = np.zeros((*shape, 3), np.float32), np.zeros(shape, bool)
    return _Layout(
        scale=scale,
        tissue_sdf=_signed_distance(tissue, scale),
        lesion_sdf=_signed_distance(lesion, scale),
        necrosis_sdf=_signed_distance(necrosis, scale),
        ink_od=scipy.ndimage.gaussian_filter(ink, (0.6, 0.6, 0)),
        stain=0.08 * _noise(rng, shape, side / 6),
        labels=labels,
        pen_mask=pen_mask,
    )


class _TileSampler:
    """Bilinear sampling of layout fields at one tile's pixel centres (separable: rows, then columns).

    Args:
        shape: (h, w) of the layout grid.
        rows, cols: fractional layout-cell coordinates of the tile's pixel rows [n] and columns [m].
    """

    def __init__(self, shape: tuple[int, int], rows: np.ndarray, cols: np.ndarray) -> None:
        self.row_slice, self.r0, self.r1, self.fr = self._axis(rows, shape[0])
        self.col_slice, self.c0, self.c1, self.fc = self._axis(cols, shape[1])

    @staticmethod
    def _axis(coords: np.ndarray, size: int):
        c = np.clip(coords, 0, size - 1)
        lo = np.floor(c).astype(np.int64)
        hi = np.minimum(lo + 1, size - 1)
        first, last = int(lo.min()), int(hi.max())
        return slice(first, last + 1), lo - first, hi - first, (c - lo).astype(np.float32)

    def crop(self, grid: np.ndarray) -> np.ndarray:
        """The layout cells that the tile's samples read (their min/max bound every sample)."""
        return grid[self.row_slice, self.col_slice]

    def sample(self, grid: np.ndarray) -> np.ndarray:
        """[h, w] or [h, w, C] layout field -> [n, m] or [n, m, C] float32."""
        crop = self.crop(grid).astype(np.float32, copy=False)
        tail = (None,) * (crop.ndim - 2)
        fr = self.fr[(slice(None), None, *tail)]
        fc = self.fc[(None, slice(None), *tail)]
        by_rows = crop[self.r0] * (1.0 - fr) + crop[self.r1] * fr
        return by_rows[:, self.c0] * (1.0 - fc) + by_rows[:, self.c1] * fc


def _wrapped_range(array: np.ndarray, axis: int, start: int, length: int) -> np.ndarray:
    """``array`` indexed by ``(start + i) % period`` for ``i < length`` along ``axis``, built from slices."""
    period = array.shape[axis]
    start %= period
    index = [slice(None)] * array.ndim
    if start + length <= period:
        index[axis] = slice(start, start + length)
        return array[tuple(index)]
    pieces, done = [], 0
    while done < length:
        stop = min(period, start + length - done)
        index[axis] = slice(start, stop)
        pieces.append(array[tuple(index)])
        done += stop - start
        start = 0
    return np.concatenate(pieces, axis=axis)


def _periodic_take(swatch: np.ndarray, y: int, x: int, height: int, width: int) -> np.ndarray:
    """swatch[(y + i) % P, (x + j) % P] for a height x width window (copies of slices, no fancy indexing)."""
    return _wrapped_range(_wrapped_range(swatch, 0, y, height), 1, x, width)


@functools.lru_cache(maxsize=32)
def _swatch(component: str, period: int, mpp: float, seed: int) -> np.ndarray:
    return render_swatch(COMPONENTS[component], period, mpp, seed)


# ----------------------------------------------------------------------------------------------------------
# the texture bank: swatches shared by many slides
# ----------------------------------------------------------------------------------------------------------
#: Pseudo-component of the bank: the noise that roughens region edges.
EDGE_NOISE = "<edge>"


def bank_entries(variants: int) -> list[tuple[str, int]]:
    """Every ``(component, variant)`` of a texture bank of ``variants`` swatches per component (+ edge noise)."""
    return [(name, v) for name in (*COMPONENTS, EDGE_NOISE) for v in range(int(variants))]


def _bank_seed(component: str, variant: int) -> int:
    component_id = COMPONENT_IDS.get(component, len(COMPONENT_IDS))
    return int(np.random.SeedSequence([int(variant), component_id, 0x7E47]).generate_state(1)[0])


def _render_bank_swatch(component: str, variant: int, period: int, mpp: float) -> np.ndarray:
    """[P, P, 3] uint8 texture, or [P, P] float32 edge noise (zero mean, max |value| <= a few)."""
    if component == EDGE_NOISE:
        rng = np.random.default_rng(_bank_seed(component, variant))
        return 0.65 * periodic_noise(rng, period, 6.0 / mpp) + 0.35 * periodic_noise(rng, period, 2.0 / mpp)
    return render_swatch(COMPONENTS[component], period, mpp, _bank_seed(component, variant))


def bank_swatch_path(cache_dir: str | os.PathLike, component: str, variant: int, period: int, mpp: float) -> Path:
    """The ``.npy`` file of one bank swatch in ``cache_dir``."""
    name = "edge" if component == EDGE_NOISE else _slug(component)
    return Path(cache_dir) / f"{name}-v{int(variant)}-p{int(period)}-mpp{float(mpp):g}.npy"


@functools.lru_cache(maxsize=96)
def bank_swatch(
    component: str, variant: int, period: int, mpp: float, cache_dir: str | None = None, factor: int = 1
) -> np.ndarray:
    """One bank swatch at ``1 / factor`` of its resolution, rendered once per process (and per ``cache_dir``).

    With ``cache_dir`` the full-resolution swatch is read from (or written to, atomically) a ``.npy`` file
    there, so the processes that write a demo's slides render each bank swatch once between them.
    """
    if factor > 1:
        full = bank_swatch(component, variant, period, mpp, cache_dir)
        if component == EDGE_NOISE:
            return downsample_swatch(full[..., None], factor)[..., 0]
        return downsample_swatch(full, factor)
    if cache_dir is None:
        return _render_bank_swatch(component, variant, period, mpp)
    path = bank_swatch_path(cache_dir, component, variant, period, mpp)
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        pass
    swatch = _render_bank_swatch(component, variant, period, mpp)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, swatch, allow_pickle=False)
    os.replace(tmp, path)
    return swatch


# ----------------------------------------------------------------------------------------------------------
# the procedural slide
# ----------------------------------------------------------------------------------------------------------
class SyntheticSlide:
    """A procedural slide that renders any region of any pyramid level on demand.

    Args:
        diagnosis: one of ``DIAGNOSIS_CLASSES``.
        seed: random seed; the same arguments give the same pixels.
        size: (width, height) of level 0 in pixels.
        mpp: micrometres per pixel at level 0 (texture sizes follow it).
        tumour_fraction: share of the tissue covered by the lesion, in [0, 1].
        pen_marks: draw marker-pen strokes.
        blank: glass only (no tissue, no pen marks).
        downsample: factor between consecutive levels (4 like Aperio, or 2).
        levels: number of levels, or "auto" (add levels while the next one is at least 256 px on its
            longer side).
        period: side of the texture swatches in level-0 pixels (a multiple of ``downsample ** (levels - 1)``
            keeps lower levels exact).
        texture_variants: 0 (default): the slide renders its own swatches from its seed (~60 % of the
            time of a 2048 px slide). ``V > 0``: each component's swatch is one of ``V`` shared bank
            swatches (:func:`bank_swatch`), picked and shifted by a random offset per slide; the
            statistics of every texture are the same, the rendering is paid once per bank, not per slide.
        texture_cache: folder where bank swatches are kept as ``.npy`` files (shared by processes).
        layout_side: longest side of the layout grid (label map) in cells; its cost grows with the square.
            Region edges keep level-0 detail through the edge noise whatever the grid.
    """

    def __init__(
        self,
        diagnosis: str,
        seed: int,
        size: tuple[int, int] = (4096, 4096),
        mpp: float = 0.5,
        tumour_fraction: float = 0.5,
        pen_marks: bool = True,
        blank: bool = False,
        downsample: int = 4,
        levels: int | str = "auto",
        period: int = SWATCH_PERIOD,
        texture_variants: int = 0,
        texture_cache: str | os.PathLike | None = None,
        layout_side: int = _LAYOUT_SIDE,
    ) -> None:
        if diagnosis not in DIAGNOSES:
            raise ValueError(f"unknown diagnosis {diagnosis!r}; expected one of {DIAGNOSIS_CLASSES}")
        width, height = (int(v) for v in size)
        if width < 16 or height < 16:
            raise ValueError(f"slide size {size} is too small (minimum 16 x 16 px)")
        if not 0.0 <= tumour_fraction <= 1.0:
            raise ValueError(f"tumour_fraction must be in [0, 1], got {tumour_fraction}")
        if mpp <= 0:
            raise ValueError(f"mpp must be positive, got {mpp}")
        if downsample not in (2, 4):
            raise ValueError(f"downsample must be 2 or 4, got {downsample}")
        self.diagnosis, self.seed, self.mpp = diagnosis, int(seed), float(mpp)
        self.tumour_fraction, self.pen_marks, self.blank = float(tumour_fraction), bool(pen_marks), bool(blank)
        self.downsample, self.period = downsample, int(period)
        self.level_dimensions = self._pyramid(width, height, downsample, levels)
        if layout_side < 16:
            raise ValueError(f"layout_side must be at least 16 cells, got {layout_side}")
        self.layout = _make_layout(
            diagnosis, self.seed, (width, height), tumour_fraction, pen_marks, blank, int(layout_side)
        )
        self._level_swatches: dict[tuple[str, int], np.ndarray] = {}
        grain_rng = np.random.default_rng([self.seed, 104729])
        self._grain = (1.6 * grain_rng.standard_normal((_GRAIN_PERIOD, _GRAIN_PERIOD))).astype(np.float32)
        self.texture_variants = max(0, int(texture_variants))
        self._texture_cache = None if texture_cache is None else str(texture_cache)
        # bank mode: per component, (variant, level-0 offset); offsets are multiples of the coarsest level's
        # downsample so every level shows the same shifted texture
        self._bank: dict[str, tuple[int, int, int]] = {}
        if self.texture_variants:
            bank_rng = np.random.default_rng([self.seed, 15485863])
            unit = self.downsample ** (len(self.level_dimensions) - 1)
            steps = max(1, self.period // unit)
            for name in (*COMPONENTS, EDGE_NOISE):
                variant = int(bank_rng.integers(self.texture_variants))
                oy, ox = (int(v) * unit for v in bank_rng.integers(steps, size=2))
                self._bank[name] = (variant, oy, ox)
            self._edge = bank_swatch(EDGE_NOISE, self._bank[EDGE_NOISE][0], self.period, self.mpp, self._texture_cache)
        else:
            self._edge = 0.65 * periodic_noise(grain_rng, self.period, 6.0 / self.mpp) + 0.35 * periodic_noise(
                grain_rng, self.period, 2.0 / self.mpp
            )
        self._edge_max = float(np.abs(self._edge).max())

    @staticmethod
    def _pyramid(width: int, height: int, downsample: int, levels: int | str) -> tuple[tuple[int, int], ...]:
        dims = [(width, height)]
        if levels == "auto":
            while max(dims[-1]) // downsample >= 256:
                dims.append((max(1, dims[-1][0] // downsample), max(1, dims[-1][1] // downsample)))
            return tuple(dims)
        if not isinstance(levels, int) or levels < 1:
            raise ValueError(f"levels must be a positive int or 'auto', got {levels!r}")
        for _ in range(levels - 1):
            nxt = (dims[-1][0] // downsample, dims[-1][1] // downsample)
            if min(nxt) < 1:
                raise ValueError(f"{levels} levels at downsample {downsample} do not fit a {width}x{height} slide")
            dims.append(nxt)
        return tuple(dims)

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 (width, height)."""
        return self.level_dimensions[0]

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        """Level-0 width over each level's width (what OpenSlide reports)."""
        return tuple(self.dimensions[0] / w for w, _ in self.level_dimensions)

    def _component_seed(self, component: str) -> int:
        return int(np.random.SeedSequence([self.seed, COMPONENT_IDS[component]]).generate_state(1)[0])

    def _texture(self, component: str, level: int) -> np.ndarray:
        key = (component, level)
        if key not in self._level_swatches:
            if self.texture_variants:
                variant = self._bank[component][0]
                self._level_swatches[key] = bank_swatch(
                    component, variant, self.period, self.mpp, self._texture_cache, self.downsample**level
                )
            else:
                base = _swatch(component, self.period, self.mpp, self._component_seed(component))
                self._level_swatches[key] = downsample_swatch(base, self.downsample**level)
        return self._level_swatches[key]

    def _edge_noise(self, level: int) -> np.ndarray:
        key = (EDGE_NOISE, level)
        if key not in self._level_swatches:
            if self.texture_variants:
                variant = self._bank[EDGE_NOISE][0]
                self._level_swatches[key] = bank_swatch(
                    EDGE_NOISE, variant, self.period, self.mpp, self._texture_cache, self.downsample**level
                )
            else:
                self._level_swatches[key] = downsample_swatch(self._edge[..., None], self.downsample**level)[..., 0]
        return self._level_swatches[key]

    def _take(self, component: str, level: int, y: int, x: int, height: int, width: int) -> np.ndarray:
        """A window of a component's texture (or the edge noise) at one level, shifted by the slide's offset."""
        swatch = self._edge_noise(level) if component == EDGE_NOISE else self._texture(component, level)
        if component in self._bank:
            factor = self.downsample**level
            _, oy, ox = self._bank[component]
            y, x = y + oy // factor, x + ox // factor
        return _periodic_take(swatch, y, x, height, width)

    def render(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        """Pixels of a region of one level.

        Args:
            level: pyramid level (0 = full resolution).
            x, y: top-left corner in that level's pixel coordinates (regions may extend past the edge).
            width, height: region size in that level's pixels.

        Returns:
            region: [height, width, 3] uint8 RGB.
        """
        if not 0 <= level < len(self.level_dimensions):
            raise ValueError(f"level {level} out of range (slide has {len(self.level_dimensions)} levels)")
        lw, lh = self.level_dimensions[level]
        sx, sy = self.dimensions[0] / lw, self.dimensions[1] / lh
        layout = self.layout
        sampler = _TileSampler(
            layout.labels.shape,
            (np.arange(y, y + height) + 0.5) * sy / layout.scale - 0.5,
            (np.arange(x, x + width) + 0.5) * sx / layout.scale - 0.5,
        )
        out = self._take("background", level, y, x, height, width).astype(np.float32)
        if self.blank:
            return out.clip(0, 255).astype(np.uint8)
        soft = 1.2 * max(sx, sy)
        edge_amplitude = max(8.0, 1.5 * layout.scale)
        edge = None

        def mask(sdf: np.ndarray, jitter: float) -> np.ndarray | float:
            nonlocal edge
            crop = sampler.crop(sdf)
            reach = jitter * edge_amplitude * self._edge_max + soft  # no sample can cross 0.5 beyond this
            if crop.max() < -reach:
                return 0.0
            if crop.min() > reach:
                return 1.0
            if edge is None:
                edge = self._take(EDGE_NOISE, level, y, x, height, width) * edge_amplitude
            return np.clip((sampler.sample(sdf) + jitter * edge) / soft + 0.5, 0.0, 1.0)

        tissue = mask(layout.tissue_sdf, 1.0)
        if np.any(tissue):
            lesion = mask(layout.lesion_sdf, 0.6)
            necrosis = mask(layout.necrosis_sdf, 0.6) * lesion
            tissue_px = np.broadcast_to(np.float32(tissue), (height, width))
            weights = {
                "stroma": tissue_px * (1.0 - lesion),
                self.diagnosis: tissue_px * (lesion - necrosis),
                "necrosis": tissue_px * necrosis,
            }
            out *= (1.0 - tissue_px)[..., None]
            for component, weight in weights.items():
                if weight.max() > 0:
                    texture = self._take(component, level, y, x, height, width)
                    out += weight[..., None] * texture
            stain = sampler.sample(layout.stain) * tissue_px
            out = 255.0 - (255.0 - out) * (1.0 + stain)[..., None]
            grain = _periodic_take(self._grain, y, x, height, width)
            out += (grain * tissue_px)[..., None]
        if self.pen_marks and sampler.crop(layout.ink_od).max() > 1e-3:
            out *= np.exp(-sampler.sample(layout.ink_od))
        return out.clip(0, 255).astype(np.uint8)

    def iter_tiles(self, level: int, tile: int) -> Iterator[np.ndarray]:
        """Tiles of one level in row-major order, each [tile, tile, 3] uint8 (edge tiles run past the edge)."""
        lw, lh = self.level_dimensions[level]
        for ty in range(0, lh, tile):
            for tx in range(0, lw, tile):
                yield self.render(level, tx, ty, tile, tile)

    def label_map(self) -> np.ndarray:
        """Component id per layout cell ([h, w] uint8, ids from ``tissue_classes.COMPONENT_IDS``)."""
        return self.layout.labels


# ----------------------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------------------
@dataclass
class SlideInfo:
    """What was written, with fractions measured on the layout grid.

    Attributes:
        path: the slide file.
        slide_id: file stem.
        level_dimensions: (width, height) per level; ``level_downsamples`` as OpenSlide reports them.
        tumour_fraction: the requested lesion share of the tissue.
        tissue_fraction: tissue share of the slide area.
        lesion_fraction, necrosis_fraction: lesion (including necrosis) and necrosis share of the tissue.
        pen_fraction: share of the slide area under marker ink.
        label_map: [h, w] uint8 component ids on a grid of ``label_scale`` level-0 pixels per cell.
        pen_mask: [h, w] bool, cells under marker ink (the label map shows the tissue beneath).
        seconds: wall time of the write.
    """

    path: Path
    slide_id: str
    diagnosis: str
    seed: int
    width: int
    height: int
    mpp: float
    tile: int
    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]
    tumour_fraction: float
    tissue_fraction: float
    lesion_fraction: float
    necrosis_fraction: float
    pen_marks: bool
    pen_fraction: float
    blank: bool
    label_scale: float
    label_map: np.ndarray = field(repr=False)
    pen_mask: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0), bool))
    file_bytes: int = 0
    seconds: float = 0.0

    def to_record(self, relative_to: str | os.PathLike | None = None) -> dict:
        """A flat row for a manifest (``MANIFEST_COLUMNS`` first); ``slide_path`` relative when asked."""
        path = Path(self.path)
        if relative_to is not None:
            path = Path(os.path.relpath(path, relative_to))
        return {
            "slide_id": self.slide_id,
            "slide_path": str(path),
            "diagnosis": self.diagnosis,
            "seed": self.seed,
            "tumour_fraction": round(self.tumour_fraction, 4),
            "tissue_fraction": round(self.tissue_fraction, 4),
            "lesion_fraction": round(self.lesion_fraction, 4),
            "necrosis_fraction": round(self.necrosis_fraction, 4),
            "pen_marks": self.pen_marks,
            "width": self.width,
            "height": self.height,
            "mpp": self.mpp,
            "levels": len(self.level_dimensions),
        }


def _aperio_description(slide: SyntheticSlide, level: int, tile: int, quality: int, slide_id: str) -> str:
    width, height = slide.dimensions
    head = f"{_APERIO_HEADER} \r\n{width}x{height} [0,0 {width}x{height}] ({tile}x{tile})"
    if level > 0:
        lw, lh = slide.level_dimensions[level]
        return f"{head} -> {lw}x{lh} JPEG/RGB Q={quality}"
    fields = [
        f"{head} JPEG/RGB Q={quality}",
        f"AppMag = {10.0 / slide.mpp:g}",
        f"MPP = {slide.mpp:g}",
        f"Filename = {slide_id}",
        "ScanScope ID = SYNTHETIC",
        "Generator = scripts.demo.synthetic_slides",
    ]
    return "|".join(fields)


def _tiles_of(image: np.ndarray, tile: int) -> Iterator[np.ndarray]:
    """Row-major ``[tile, tile, 3]`` tiles of ``image`` (edge tiles padded by repeating the last row/column)."""
    height, width = image.shape[:2]
    pad_h, pad_w = -height % tile, -width % tile
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    for ty in range(0, height, tile):
        for tx in range(0, width, tile):
            yield image[ty : ty + tile, tx : tx + tile]


def _area_downsample(image: np.ndarray, factor: int, size: tuple[int, int]) -> np.ndarray:
    """Area-average ``image [H, W, 3] uint8`` by ``factor`` to ``size`` (width, height), rounding half up."""
    width, height = size
    rows = image[: height * factor, : width * factor].reshape(height, factor, width * factor * 3)
    total = rows[:, 0].astype(np.uint16)  # factor**2 * 255 fits for factors up to 4
    for dy in range(1, factor):
        total += rows[:, dy]
    columns = total.reshape(height, width, factor, 3)
    block = columns[:, :, 0].copy()
    for dx in range(1, factor):
        block += columns[:, :, dx]
    area = factor * factor
    return ((block + area // 2) // area).astype(np.uint8)


def _pyramid_tiles(slide: SyntheticSlide, tile: int) -> Iterator[Iterator[np.ndarray]]:
    """One tile iterator per level.

    When level 0 fits in ``PYRAMID_IN_MEMORY_BYTES`` it is rendered once and kept, and each intermediate level is
    area-averaged from the one above; the coarsest level (the thumbnail that tissue detection reads) is always
    rendered from the model, so the tissue masks, and with them the demo's patches and features, are those of
    slides rendered level by level. Larger slides render every level from the model.
    """
    width, height = slide.dimensions
    last = len(slide.level_dimensions) - 1
    if width * height * 3 > PYRAMID_IN_MEMORY_BYTES or last < 2:
        for level in range(last + 1):
            yield slide.iter_tiles(level, tile)
        return
    rows = -(-height // tile)
    cols = -(-width // tile)
    image = np.empty((rows * tile, cols * tile, 3), np.uint8)
    tiles = slide.iter_tiles(0, tile)
    for ty in range(rows):
        for tx in range(cols):
            image[ty * tile : (ty + 1) * tile, tx * tile : (tx + 1) * tile] = next(tiles)
    image = image[:height, :width]
    yield _tiles_of(image, tile)
    for level_size in slide.level_dimensions[1:last]:
        image = _area_downsample(image, slide.downsample, level_size)
        yield _tiles_of(image, tile)
    yield slide.iter_tiles(last, tile)


def write_synthetic_slide(
    path: str | os.PathLike,
    diagnosis: str,
    seed: int,
    size: tuple[int, int] = (4096, 4096),
    tile: int = 256,
    mpp: float = 0.5,
    levels: int | str = "auto",
    tumour_fraction: float = 0.5,
    pen_marks: bool = True,
    blank: bool = False,
    downsample: int = 4,
    jpeg_quality: int = 85,
    texture_variants: int = 0,
    texture_cache: str | os.PathLike | None = None,
    layout_side: int = _LAYOUT_SIDE,
    encode_threads: int | None = None,
) -> SlideInfo:
    """Write one synthetic Aperio-style SVS (JPEG tiles, levels as top-level pages).

    Args:
        path: output file (``.svs`` or ``.tif``); written to a temporary name, then renamed.
        diagnosis: one of ``DIAGNOSIS_CLASSES``.
        seed: random seed; the same arguments give the same file.
        size: level-0 (width, height) in pixels.
        tile: TIFF tile side (a multiple of 16).
        mpp: micrometres per pixel at level 0.
        levels: number of pyramid levels or "auto".
        tumour_fraction: share of the tissue covered by the diagnosis' lesion texture, in [0, 1].
        pen_marks: draw marker-pen strokes.
        blank: glass only, no tissue and no pen marks (for the "tissue-free slide" path).
        downsample: factor between levels (4 like Aperio, or 2).
        jpeg_quality: JPEG quality of the tiles.
        texture_variants, texture_cache: shared texture bank (:class:`SyntheticSlide`); 0 renders the
            slide's own swatches.
        layout_side: cells on the longer side of the layout grid (the label map).
        encode_threads: JPEG-encoding threads (default: the machine's cores; 1 when several processes
            write slides side by side).

    Returns:
        SlideInfo of the written file.
    """
    start = time.perf_counter()
    path = Path(path)
    if tile % 16 or tile <= 0:
        raise ValueError(f"{path.name}: tile must be a positive multiple of 16, got {tile}")
    slide = SyntheticSlide(
        diagnosis, seed, size, mpp, tumour_fraction, pen_marks, blank, downsample, levels,
        texture_variants=texture_variants, texture_cache=texture_cache, layout_side=layout_side,
    )
    width, height = slide.dimensions
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    bigtiff = width * height * 3 > 3 * 2**30
    try:
        with tifffile.TiffWriter(tmp, bigtiff=bigtiff) as tif:
            levels = _pyramid_tiles(slide, tile)
            for level, (lw, lh) in enumerate(slide.level_dimensions):
                level_mpp = slide.mpp * slide.level_downsamples[level]
                tif.write(
                    next(levels),
                    shape=(lh, lw, 3),
                    dtype=np.uint8,
                    tile=(tile, tile),
                    photometric="rgb",
                    compression="jpeg",
                    compressionargs={"level": int(jpeg_quality)},
                    description=_aperio_description(slide, level, tile, jpeg_quality, path.stem),
                    resolution=(1e4 / level_mpp, 1e4 / level_mpp),
                    resolutionunit="CENTIMETER",
                    subfiletype=0,
                    metadata=None,
                    software=False,
                    maxworkers=encode_threads or os.cpu_count() or 1,
                    buffersize=16 * 2**20,  # raw bytes per compression pass: bounds memory
                )
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    labels = slide.layout.labels
    tissue = labels != COMPONENT_IDS["background"]
    n_tissue = max(int(tissue.sum()), 1)
    necrotic = labels == COMPONENT_IDS["necrosis"]
    lesion = (labels == COMPONENT_IDS[diagnosis]) | necrotic
    return SlideInfo(
        path=path,
        slide_id=path.stem,
        diagnosis=diagnosis,
        seed=int(seed),
        width=width,
        height=height,
        mpp=slide.mpp,
        tile=tile,
        level_dimensions=slide.level_dimensions,
        level_downsamples=slide.level_downsamples,
        tumour_fraction=float(tumour_fraction),
        tissue_fraction=float(tissue.mean()),
        lesion_fraction=float(lesion.sum() / n_tissue),
        necrosis_fraction=float(necrotic.sum() / n_tissue),
        pen_marks=bool(pen_marks and not blank),
        pen_fraction=float(slide.layout.pen_mask.mean()),
        blank=bool(blank),
        label_scale=slide.layout.scale,
        label_map=labels,
        pen_mask=slide.layout.pen_mask,
        file_bytes=path.stat().st_size,
        seconds=time.perf_counter() - start,
    )


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def make_demo_slides(
    out_dir: str | os.PathLike,
    n_per_class: int,
    seed: int,
    size: tuple[int, int] = (4096, 4096),
    classes: Sequence[str] = DIAGNOSIS_CLASSES,
    pen_mark_probability: float = 0.5,
    **slide_kwargs,
) -> list[dict]:
    """Write ``n_per_class`` slides of every diagnosis and a ``manifest.csv`` beside them.

    Each slide draws its own seed and its ``tumour_fraction`` from the diagnosis'
    ``tumour_fraction_range``. The manifest holds ``MANIFEST_COLUMNS`` with ``slide_path`` relative to
    ``out_dir``; the returned rows hold absolute paths.

    Args:
        out_dir: output folder (created).
        n_per_class: slides per diagnosis.
        seed: master seed.
        size: level-0 (width, height) of every slide.
        classes: diagnoses to draw (default: all of ``DIAGNOSIS_CLASSES``).
        pen_mark_probability: chance that a slide carries pen marks.
        **slide_kwargs: passed to ``write_synthetic_slide`` (tile, mpp, levels, downsample, jpeg_quality).

    Returns:
        rows: one dict per slide (``MANIFEST_COLUMNS``), ``slide_path`` absolute.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for diagnosis in classes:
        if diagnosis not in DIAGNOSES:
            raise ValueError(f"unknown diagnosis {diagnosis!r}; expected one of {DIAGNOSIS_CLASSES}")
        low, high = DIAGNOSES[diagnosis].tumour_fraction_range
        for i in range(n_per_class):
            slide_seed = int(rng.integers(2**31 - 1))
            info = write_synthetic_slide(
                out_dir / f"synth-{_slug(diagnosis)}-{i:03d}.svs",
                diagnosis,
                slide_seed,
                size=size,
                tumour_fraction=float(rng.uniform(low, high)),
                pen_marks=bool(rng.random() < pen_mark_probability),
                **slide_kwargs,
            )
            rows.append(info.to_record())
    manifest = out_dir / "manifest.csv"
    tmp = manifest.with_name(f".{manifest.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(MANIFEST_COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "slide_path": os.path.relpath(row["slide_path"], out_dir)})
    os.replace(tmp, manifest)
    return rows


def read_manifest(manifest: str | os.PathLike) -> list[dict]:
    """Rows of a ``manifest.csv`` written by ``make_demo_slides``, with ``slide_path`` made absolute."""
    manifest = Path(manifest)
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["slide_path"] = str((manifest.parent / row["slide_path"]).resolve())
    return rows


def main(argv: Sequence[str] | None = None) -> list[dict]:
    """Command line: write ``n_per_class`` synthetic slides per diagnosis and their manifest."""
    parser = argparse.ArgumentParser(description="Write synthetic pyramidal slides (Aperio-style SVS) for the demo.")
    parser.add_argument("--out_dir", required=True, help="output folder (slides + manifest.csv)")
    parser.add_argument("--n_per_class", type=int, default=2, help="slides per diagnosis")
    parser.add_argument("--size", type=int, default=4096, help="level-0 width and height in pixels")
    parser.add_argument("--seed", type=int, default=0, help="master seed")
    parser.add_argument("--mpp", type=float, default=0.5, help="micrometres per pixel at level 0")
    parser.add_argument("--tile", type=int, default=256, help="TIFF tile side")
    args = parser.parse_args(argv)
    rows = make_demo_slides(
        args.out_dir, args.n_per_class, args.seed, (args.size, args.size), mpp=args.mpp, tile=args.tile
    )
    print(f"wrote {len(rows)} slides and {Path(args.out_dir) / 'manifest.csv'}")
    return rows


if __name__ == "__main__":
    main()
