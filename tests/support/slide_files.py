"""Slide files for the tests: pyramids written from real pixels, and the shared fixtures' paths.

Helpers:

- :func:`write_pyramid_tiff`: an RGB array as a JPEG-tiled pyramidal TIFF, Aperio-style (``.svs``,
  MPP in the description) or generic (TIFF resolution tags, optional);
- :func:`cmu_rgb`: the real CMU-1-Small-Region H&E pixels (``[2967, 2220, 3]`` uint8);
- :func:`shared_path`: a file under ``../shared`` or a skip naming it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CMU = SHARED / "fixtures" / "slides" / "CMU-1-Small-Region.svs"
OPENSLIDE_FIXTURES = SHARED / "fixtures" / "openslide"


def shared_path(*parts: str) -> Path:
    """``../shared/<parts>``, or skip the test with the missing path in the reason."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared fixture {path} is absent")
    return path


def cmu_rgb() -> np.ndarray:
    """Pixels of the real CMU-1-Small-Region slide, read once with OpenSlide."""
    import openslide

    path = shared_path("fixtures", "slides", "CMU-1-Small-Region.svs")
    with openslide.OpenSlide(str(path)) as slide:
        return np.asarray(slide.read_region((0, 0), 0, slide.dimensions).convert("RGB"))


def _half(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[0] // 2, image.shape[1] // 2
    return np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))


def write_pyramid_tiff(
    path: str | os.PathLike,
    image: np.ndarray,
    mpp: float | None = 0.5,
    levels: int = 3,
    tile: int = 256,
    aperio: bool = True,
    quality: int = 90,
    compression: str = "jpeg",
) -> Path:
    """Write ``image [H, W, 3] uint8`` as a tiled pyramid with ``levels`` levels (each half the last).

    Args:
        path: output file (``.svs`` for Aperio style, ``.tif`` for generic TIFF).
        image: level-0 pixels.
        mpp: level-0 microns per pixel; None writes no resolution metadata (generic TIFF only).
        levels: number of pyramid levels, written as top-level pages (what OpenSlide and cuCIM read).
        tile: tile side.
        aperio: Aperio-style ImageDescription (``MPP = ...``) instead of TIFF resolution tags.
        quality: JPEG quality.
        compression: tifffile compression name (``"jpeg"``, ``"zlib"``, ``"lzw"``, ...).
    """
    path = Path(path)
    height, width = image.shape[:2]
    options: dict = {"tile": (tile, tile), "photometric": "rgb", "compression": compression, "metadata": None}
    if compression == "jpeg":
        options["compressionargs"] = {"level": quality}
    with tifffile.TiffWriter(path) as writer:
        level_image = image
        for level in range(levels):
            extra: dict = {}
            if aperio:
                header = f"Aperio Image Library v10.0.51\r\n{width}x{height} [0,0 {width}x{height}] ({tile}x{tile})"
                extra["description"] = header + (f" JPEG/RGB Q={quality}|AppMag = 20|MPP = {mpp}" if level == 0 else "")
            elif mpp is not None:
                per_cm = 1e4 / (mpp * 2**level)
                extra.update(resolution=(per_cm, per_cm), resolutionunit="CENTIMETER")
            writer.write(level_image, subfiletype=0 if level == 0 else 1, **options, **extra)
            if level + 1 < levels:
                level_image = _half(level_image)
    return path
