"""``<slide_id>_heatmap.png``: per-patch values painted over the slide thumbnail, with a colour bar.

The background is the tissue-mask image (the slide at about ``mask_mpp``) at the size of
:func:`scripts.wsi.slide_thumbnail.render_thumbnail`'s ``<slide_id>_thumb.png``, without contour or boxes;
each patch (level-0 ``coords`` and side) is filled with the colour of its value. The colour bar sits in
the corner of the image that holds the least tissue, on a white box, labelled with ``label`` and the
lines of ``notes`` (what the colours mean).

Three scales:

- ``"linear"``: colours span ``[vmin, vmax]`` (default ``[min(0, min value), max value]``), one opacity;
- ``"ratio"``: for values relative to an average (1 = average), coloured by ``log2(value)`` on a diverging
  map centred at 1, symmetric (``1/k .. k`` with ``k = max(2, largest ratio either way)``). Opacity grows
  with the distance from 1, so average patches stay see-through and the tissue under them visible.
- ``"percentile"``: per-slide scaling for weights whose spread differs from slide to slide (an attention
  map's 0.92-1.06 as much as 0.1-10): colours span the slide's own ``low``-th to ``high``-th percentile
  (default 2nd and 98th), on a diverging map centred at the median; opacity grows with the distance from
  the median, so typical patches leave the tissue visible and the extremes stand out. The colour bar's
  ticks name the percentiles and their values.

This module only draws numbers on a slide; what the numbers mean (e.g. a report model's attention) is
up to the caller.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .slide_thumbnail import render_thumbnail, save_png_atomic
from .tissue_mask import TissueMask

__all__ = ["PERCENTILE_RANGE", "SCALES", "render_value_heatmap", "save_value_heatmap"]

SCALES = ("linear", "ratio", "percentile")
_DEFAULT_CMAPS = {"linear": "inferno", "ratio": "RdBu_r", "percentile": "RdBu_r"}
#: ``"percentile"`` scale: the percentiles of the slide's values at the ends of the colour bar.
PERCENTILE_RANGE = (2.0, 98.0)


def _colormap(name: str):
    from matplotlib import colormaps

    return colormaps[name]


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap font size
        return ImageFont.load_default()


def _least_tissue_corner(mask: np.ndarray, box_w: float, box_h: float) -> str:
    """``"tl" | "tr" | "bl" | "br"``: the corner whose box (fractions of the image) covers the least tissue."""
    h, w = mask.shape
    bh, bw = max(1, int(round(box_h * h))), max(1, int(round(box_w * w)))
    boxes = {
        "tr": mask[:bh, w - bw :],
        "br": mask[h - bh :, w - bw :],
        "tl": mask[:bh, :bw],
        "bl": mask[h - bh :, :bw],
    }
    return min(boxes, key=lambda k: int(boxes[k].sum()))  # ties: top-right first


def _ordinal(value: float) -> str:
    number = f"{value:g}"
    last = number[-1]
    suffix = "th" if number.endswith(("11", "12", "13")) else {"1": "st", "2": "nd", "3": "rd"}.get(last, "th")
    return number + suffix


def _format(value: float) -> str:
    return f"{value:.3g}"


def _draw_colour_bar(image: Image.Image, corner: str, ticks: list[tuple[float, str]], cmap_name: str,
                     label: str, notes: tuple[str, ...] = ()) -> None:
    """Vertical colour bar; ``ticks`` are (position in [0, 1] from bottom, text); ``notes`` go under the label."""
    width, height = image.size
    font_size = max(10, round(min(width, height) / 40))
    font = _font(font_size)
    note_font = _font(max(9, round(font_size * 0.85)))
    bar_w = max(8, round(font_size * 0.9))
    bar_h = max(40, round(height * (0.28 if not notes else 0.18)))  # notes take room: the box stays as small
    draw = ImageDraw.Draw(image, "RGBA")
    text_w = max(draw.textlength(text, font=font) for _, text in ticks)
    label_w = max([draw.textlength(label, font=font)] + [draw.textlength(n, font=note_font) for n in notes])
    pad = max(4, font_size // 2)
    notes_h = len(notes) * (font_size + 2)
    box_w = int(max(bar_w + pad + text_w, label_w) + 2 * pad)
    box_h = int(bar_h + font_size + notes_h + 3 * pad)
    x0 = pad if corner in ("tl", "bl") else width - box_w - pad
    y0 = pad if corner in ("tl", "tr") else height - box_h - pad
    draw.rectangle((x0, y0, x0 + box_w, y0 + box_h), fill=(255, 255, 255, 215), outline=(90, 90, 90, 255))
    draw.text((x0 + pad, y0 + pad), label, fill=(0, 0, 0, 255), font=font)
    for i, note in enumerate(notes):
        draw.text((x0 + pad, y0 + pad + (i + 1) * (font_size + 2)), note, fill=(40, 40, 40, 255), font=note_font)
    bx, by = x0 + pad, y0 + 2 * pad + font_size + notes_h
    gradient = _colormap(cmap_name)(np.linspace(1.0, 0.0, bar_h))[:, :3]
    bar = (np.repeat(gradient[:, None, :], bar_w, axis=1) * 255).astype(np.uint8)
    image.paste(Image.fromarray(bar), (int(bx), int(by)))
    draw.rectangle((bx, by, bx + bar_w - 1, by + bar_h - 1), outline=(60, 60, 60, 255))
    for position, text in ticks:
        ty = by + (1.0 - position) * (bar_h - 1)
        draw.line((bx + bar_w, ty, bx + bar_w + pad // 2, ty), fill=(0, 0, 0, 255))
        draw.text((bx + bar_w + pad, ty - font_size / 2), text, fill=(0, 0, 0, 255), font=font)


def _colour_positions(
    values: np.ndarray, scale: str, vmin: float | None, vmax: float | None
) -> tuple[np.ndarray, np.ndarray, list[tuple[float, str]]]:
    """Colour-map positions in [0, 1], opacity weights in [0, 1] and colour-bar ticks for ``values``."""
    finite = values[np.isfinite(values)]
    if scale == "linear":
        lo = float(vmin) if vmin is not None else float(min(0.0, finite.min())) if finite.size else 0.0
        hi = float(vmax) if vmax is not None else float(finite.max()) if finite.size else 1.0
        if hi <= lo:
            hi = lo + 1.0
        positions = np.clip((values - lo) / (hi - lo), 0.0, 1.0)
        ticks = [(1.0, _format(hi)), (0.5, _format((lo + hi) / 2)), (0.0, _format(lo))]
        return positions, np.ones_like(positions), ticks
    if scale == "ratio":
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log2(values)  # 0 -> -inf (the far end of the bar); negative or NaN -> NaN (neutral colour)
        finite_logs = logs[np.isfinite(logs)]
        widest = float(2 ** np.abs(finite_logs).max()) if finite_logs.size else 2.0
        k = float(vmax) if vmax is not None else max(2.0, widest)
        t = np.clip(logs / np.log2(k), -1.0, 1.0)
        ticks = [(1.0, _format(k)), (0.75, _format(k**0.5)), (0.5, "1"), (0.25, _format(k**-0.5)),
                 (0.0, _format(1 / k))]
        return (t + 1.0) / 2.0, np.nan_to_num(np.abs(t)), ticks
    if scale == "percentile":
        low, high = PERCENTILE_RANGE if vmin is None and vmax is None else (vmin or PERCENTILE_RANGE[0],
                                                                            vmax or PERCENTILE_RANGE[1])
        if not finite.size:
            return np.full_like(values, np.nan), np.zeros_like(values), [(0.5, "no values")]
        lo, mid, hi = (float(v) for v in np.percentile(finite, [low, 50.0, high]))
        if hi - lo <= 1e-12 * max(1.0, abs(mid)):  # all patches alike: nothing to contrast
            return np.full_like(values, 0.5), np.zeros_like(values), [(0.5, f"all {_format(mid)}")]
        # below the median: lo..mid -> 0..0.5; above: mid..hi -> 0.5..1 (the median is the neutral colour)
        below = 0.5 * (values - lo) / max(mid - lo, 1e-12)
        above = 0.5 + 0.5 * (values - mid) / max(hi - mid, 1e-12)
        positions = np.clip(np.where(values <= mid, below, above), 0.0, 1.0)
        ticks = [(1.0, f"high {_format(hi)} ({_ordinal(high)} pct)"), (0.5, f"median {_format(mid)}"),
                 (0.0, f"low {_format(lo)} ({_ordinal(low)} pct)")]
        return positions, np.nan_to_num(np.abs(positions - 0.5) * 2.0), ticks
    raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")


def render_value_heatmap(
    tissue: TissueMask,
    coords: np.ndarray,
    patch_size_level0: int,
    values: np.ndarray,
    label: str = "value",
    scale: str = "linear",
    cmap: str | None = None,
    alpha: float = 0.7,
    min_alpha: float = 0.12,
    vmin: float | None = None,
    vmax: float | None = None,
    max_side: int = 1024,
    min_side: int = 512,
    notes: tuple[str, ...] | list[str] = (),
) -> Image.Image:
    """Paint one value per patch over the slide thumbnail.

    Args:
        tissue: the slide's tissue mask (its image is the background).
        coords: ``[N, 2]`` level-0 ``(x, y)`` of the patches' top-left corners.
        patch_size_level0: patch side in level-0 pixels.
        values: ``[N]`` float, one per patch (NaN patches are left unpainted).
        label: colour-bar title.
        scale: ``"linear"``, ``"ratio"`` or ``"percentile"`` (see the module docstring).
        cmap: matplotlib colour-map name (default ``inferno`` for linear, ``RdBu_r`` for ratio and percentile).
        alpha: opacity of the patch colours (ratio, percentile: of the most extreme ones).
        min_alpha: ratio, percentile: opacity of patches at 1 / at the median.
        vmin, vmax: linear: colour range (default ``[min(0, min value), max value]``); ratio: ``vmax`` is the
            largest ratio shown (``vmin`` unused); percentile: the percentiles at the ends of the bar
            (default :data:`PERCENTILE_RANGE`).
        max_side, min_side: thumbnail size rule of :func:`render_thumbnail` (the same defaults give the
            size of ``<slide_id>_thumb.png``).
        notes: lines under the legend's title saying what the colours mean.

    Returns:
        RGB image of the thumbnail's size.
    """
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(values) != len(coords):
        raise ValueError(f"{len(values)} values for {len(coords)} patch coordinates")
    cmap = cmap or _DEFAULT_CMAPS.get(scale, "inferno")
    positions, strength, ticks = _colour_positions(values, scale, vmin, vmax)
    size = render_thumbnail(tissue, np.zeros((0, 2)), patch_size_level0, max_side=max_side, min_side=min_side,
                            empty_note=None).size
    base = Image.fromarray(tissue.image)
    if base.size != size:
        base = base.resize(size, Image.BILINEAR)
    # level-0 pixels per thumbnail pixel, per axis (the mask image covers the slide at tissue.scale)
    sx = tissue.scale[0] * tissue.image.shape[1] / base.width
    sy = tissue.scale[1] * tissue.image.shape[0] / base.height
    colours = _colormap(cmap)(np.nan_to_num(positions, nan=0.5))
    opacity = alpha if scale == "linear" else min_alpha + (alpha - min_alpha) * strength
    opacity = np.broadcast_to(opacity, positions.shape)
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for (x, y), value, rgba, a in zip(coords, values, colours, opacity):
        if not np.isfinite(value):
            continue
        x0, y0 = x / sx, y / sy
        box = (x0, y0, max(x0, (x + patch_size_level0) / sx - 1), max(y0, (y + patch_size_level0) / sy - 1))
        fill = (int(rgba[0] * 255), int(rgba[1] * 255), int(rgba[2] * 255), int(round(255 * float(a))))
        draw.rectangle(box, fill=fill)
    image = Image.alpha_composite(base.convert("RGBA"), overlay).convert("RGB")
    corner = _least_tissue_corner(tissue.mask, 0.25, 0.4)
    _draw_colour_bar(image, corner, ticks, cmap, label, tuple(notes))
    return image


def save_value_heatmap(path: str | os.PathLike, *args, **kwargs) -> Path:
    """:func:`render_value_heatmap` written atomically as PNG to ``path``."""
    return save_png_atomic(render_value_heatmap(*args, **kwargs), path)
