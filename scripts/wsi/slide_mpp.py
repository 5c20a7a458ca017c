"""Microns per pixel at level 0, read from slide metadata without guessing.

MONAI's readers fall back to values that look like a resolution but are not one: cuCIM reports a
spacing of ``1.0`` with no unit for TIFFs without resolution tags, and MONAI's OpenSlide reader
assumes micrometres when the TIFF resolution unit is missing. Here such values count as missing,
as do values outside ``[MIN_MPP, MAX_MPP]`` (a 72 dpi default of an image editor gives 352.8 um/px).
"""

from __future__ import annotations

from typing import Any

MIN_MPP = 0.01
MAX_MPP = 50.0
_MICRONS_PER_UNIT = {"micrometer": 1.0, "um": 1.0, "µm": 1.0, "millimeter": 1e3, "centimeter": 1e4, "inch": 25400.0}


def _plausible(value: Any) -> float | None:
    try:
        mpp = float(value)
    except (TypeError, ValueError):
        return None
    return mpp if MIN_MPP <= mpp <= MAX_MPP else None


def _mean_plausible(x: Any, y: Any) -> float | None:
    mx, my = _plausible(x), _plausible(y)
    if mx is None or my is None:
        return None
    return (mx + my) / 2.0


def cucim_mpp(wsi: Any) -> float | None:
    """Level-0 um/px of a ``cucim.CuImage`` (Aperio ``MPP`` or a spacing with a length unit)."""
    meta = wsi.metadata
    aperio = meta.get("aperio", {}) or {}
    if aperio.get("MPP"):
        return _plausible(aperio["MPP"])
    info = meta.get("cucim", {}) or {}
    spacing, units = info.get("spacing") or [], info.get("spacing_units") or []
    if len(spacing) >= 2 and len(units) >= 2:
        scale_y, scale_x = _MICRONS_PER_UNIT.get(str(units[0])), _MICRONS_PER_UNIT.get(str(units[1]))
        if scale_y is not None and scale_x is not None:
            return _mean_plausible(spacing[1] * scale_x, spacing[0] * scale_y)
    return None


def openslide_mpp(wsi: Any) -> float | None:
    """Level-0 um/px of an ``openslide.OpenSlide`` (``openslide.mpp-x/y`` or TIFF resolution + unit)."""
    props = wsi.properties
    if props.get("openslide.mpp-x") and props.get("openslide.mpp-y"):
        return _mean_plausible(props["openslide.mpp-x"], props["openslide.mpp-y"])
    unit = str(props.get("tiff.ResolutionUnit", "")).lower()
    microns = _MICRONS_PER_UNIT.get(unit)
    xres, yres = props.get("tiff.XResolution"), props.get("tiff.YResolution")
    if microns is not None and xres and yres:
        try:
            return _mean_plausible(microns / float(xres), microns / float(yres))
        except (ValueError, ZeroDivisionError):
            return None
    return None


def read_level0_mpp(wsi: Any, backend: str) -> float | None:
    """Level-0 microns per pixel of an opened slide object, or None when the metadata has none.

    Args:
        wsi: the object MONAI's ``WSIReader.read`` returned (``CuImage`` or ``OpenSlide``).
        backend: ``"cucim"`` or ``"openslide"``.
    """
    return cucim_mpp(wsi) if backend == "cucim" else openslide_mpp(wsi)
