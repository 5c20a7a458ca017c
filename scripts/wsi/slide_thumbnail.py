"""``<slide_id>_thumb.png``: the mask image with the tissue contour and the kept patches drawn.

A slide that keeps no patch (no tissue found: extraction fails for it) gets a banner saying so across the
image, so its thumbnail is never mistaken for a processed slide.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from scripts.atomic_io import atomic_path

from .tissue_mask import TissueMask

CONTOUR_RGB = (0, 200, 0)
GRID_RGB = (30, 60, 230)
#: Banner of a thumbnail without patches.
NO_PATCHES_NOTE = ("NO TISSUE PATCHES FOUND", "this slide was not reported (see manifest.csv)")


def _draw_banner(image: Image.Image, lines: tuple[str, ...]) -> None:
    """White box with dark-red text across the middle of ``image``."""
    from PIL import ImageFont

    size = max(12, round(min(image.size) / 24))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    draw = ImageDraw.Draw(image, "RGBA")
    widths = [draw.textlength(line, font=font) for line in lines]
    pad = size // 2
    box_w, box_h = max(widths) + 2 * pad, len(lines) * (size + pad) + pad
    x0, y0 = (image.width - box_w) / 2, (image.height - box_h) / 2
    draw.rectangle((x0, y0, x0 + box_w, y0 + box_h), fill=(255, 255, 255, 230), outline=(150, 0, 0, 255), width=2)
    for i, line in enumerate(lines):
        draw.text((x0 + pad + (max(widths) - widths[i]) / 2, y0 + pad + i * (size + pad)), line,
                  fill=(150, 0, 0, 255), font=font)


def render_thumbnail(
    tissue: TissueMask, coords: np.ndarray, patch_size_level0: int, max_side: int = 1024, min_side: int = 512,
    empty_note: tuple[str, ...] | None = NO_PATCHES_NOTE,
) -> Image.Image:
    """Draw the tissue contour (green) and the patch boxes (blue) on the mask image.

    Args:
        tissue: the slide's tissue mask (its ``image`` is the background).
        coords: ``[N, 2]`` level-0 ``(x, y)`` of kept patches.
        patch_size_level0: patch side in level-0 pixels.
        max_side: the longer side of the output is at most this many pixels.
        min_side: smaller mask images are enlarged to this longer side (patch boxes stay visible).
        empty_note: banner lines drawn when ``coords`` is empty (None: no banner).
    """
    image = tissue.image.copy()
    edge = tissue.mask & ~ndimage.binary_erosion(tissue.mask, iterations=1, border_value=0)
    edge = ndimage.binary_dilation(edge, iterations=max(1, round(max(image.shape[:2]) / 600)))
    image[edge] = CONTOUR_RGB
    thumb = Image.fromarray(image)
    longest = max(thumb.size)
    zoom = max_side / longest if longest > max_side else max(1.0, min_side / longest)
    if zoom != 1.0:
        thumb = thumb.resize((max(1, round(thumb.width * zoom)), max(1, round(thumb.height * zoom))), Image.BILINEAR)
    draw = ImageDraw.Draw(thumb)
    sx, sy = tissue.scale[0] / zoom, tissue.scale[1] / zoom
    for x, y in np.asarray(coords).reshape(-1, 2):
        box = (x / sx, y / sy, (x + patch_size_level0) / sx - 1, (y + patch_size_level0) / sy - 1)
        draw.rectangle(box, outline=GRID_RGB, width=1)
    if empty_note and len(np.asarray(coords).reshape(-1, 2)) == 0:
        _draw_banner(thumb, tuple(empty_note))
    return thumb


def save_png_atomic(image: Image.Image, path: str | os.PathLike) -> Path:
    """Save ``image`` as PNG via a temporary file and ``os.replace``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
        os.chmod(tmp, 0o644)
    return path
