"""``<slide_id>_thumb.png``: the mask image with the tissue contour and the kept patches drawn."""

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


def render_thumbnail(
    tissue: TissueMask, coords: np.ndarray, patch_size_level0: int, max_side: int = 1024, min_side: int = 512
) -> Image.Image:
    """Draw the tissue contour (green) and the patch boxes (blue) on the mask image.

    Args:
        tissue: the slide's tissue mask (its ``image`` is the background).
        coords: ``[N, 2]`` level-0 ``(x, y)`` of kept patches.
        patch_size_level0: patch side in level-0 pixels.
        max_side: the longer side of the output is at most this many pixels.
        min_side: smaller mask images are enlarged to this longer side (patch boxes stay visible).
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
    return thumb


def save_png_atomic(image: Image.Image, path: str | os.PathLike) -> Path:
    """Save ``image`` as PNG via a temporary file and ``os.replace``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
        os.chmod(tmp, 0o644)
    return path
