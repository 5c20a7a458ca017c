"""Choose the reading backend (cuCIM or OpenSlide) for one slide file.

cuCIM is the fast default, but it opens only TIFF-family files and, on files it does not handle,
it can misbehave instead of failing: it segfaults on some deflate-compressed TIFFs, reads past the
end of truncated files without complaint and opens TIFFs OpenSlide refuses. ``"auto"`` therefore
gives a file to cuCIM only when a cheap header probe says cuCIM handles it well:

- the extension is ``.svs``, ``.tif`` or ``.tiff`` and OpenSlide's vendor detection says
  ``aperio`` or ``generic-tiff`` (NDPI, MRXS, SCN, Ventana BIF, Philips, DICOM, ... go to OpenSlide);
- every tiled page uses a compression cuCIM decodes (none, LZW, JPEG, Aperio JPEG 2000).

A file whose tile data runs past the end of the file is reported as truncated whatever the backend.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from monai.utils import optional_import

from .slide_errors import SlideOpenError

openslide, _has_openslide = optional_import("openslide")
tifffile, _has_tifffile = optional_import("tifffile")
_cucim, has_cucim = optional_import("cucim")

BACKENDS = ("auto", "cucim", "openslide")
CUCIM_SUFFIXES = (".svs", ".tif", ".tiff")
CUCIM_VENDORS = ("aperio", "generic-tiff")
# TIFF compression codes cuCIM decodes: none, LZW, JPEG, Aperio JPEG 2000 (YCbCr, RGB)
CUCIM_COMPRESSIONS = (1, 5, 7, 33003, 33005)


@dataclass(frozen=True)
class BackendChoice:
    """The backend picked for a file and why.

    Args:
        backend: ``"cucim"`` or ``"openslide"``.
        reason: one line, e.g. ``"aperio JPEG tiles"`` or ``"vendor hamamatsu"``.
    """

    backend: str
    reason: str


def detect_vendor(path: str | os.PathLike) -> str | None:
    """OpenSlide's vendor string for ``path`` (``"aperio"``, ``"hamamatsu"``, ...), None if unknown."""
    if not _has_openslide:
        return None
    try:
        return openslide.OpenSlide.detect_format(str(path))
    except Exception:  # OpenSlide raises on unreadable headers; the caller decides
        return None


def _first_ifd_offset(path: str | os.PathLike) -> int | None:
    """Offset of the first image directory from the TIFF/BigTIFF header, None if not a TIFF."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    order = {b"II": "little", b"MM": "big"}.get(head[:2])
    if order is None or len(head) < 8:
        return None
    version = int.from_bytes(head[2:4], order)
    if version == 42:
        return int.from_bytes(head[4:8], order)
    if version == 43 and len(head) == 16:
        return int.from_bytes(head[8:16], order)
    return None


def check_tiff_tiles(path: str | os.PathLike) -> tuple[bool, str]:
    """Probe a TIFF's pages with tifffile (headers and tile offsets only, no decoding).

    Returns:
        ``(cucim_ok, reason)``: whether every tiled page uses a compression cuCIM decodes.

    Raises:
        SlideOpenError: the first directory or tile data lies past the end of the file (a
            truncated download).
    """
    name = Path(path).name
    size = os.path.getsize(path)
    first_ifd = _first_ifd_offset(path)
    if first_ifd is not None and first_ifd >= size:
        raise SlideOpenError(
            name, f"truncated file: the first TIFF directory is at byte {first_ifd} but the file has {size} bytes"
        )
    try:
        with tifffile.TiffFile(str(path)) as tif:
            tiled = [p for p in tif.pages if getattr(p, "is_tiled", False)]
            if not tiled:
                return False, "no tiled pages"
            for page in tiled:
                code = int(page.tags.valueof(259, 1))  # Compression
                if code not in CUCIM_COMPRESSIONS:
                    return False, f"page {page.index} uses TIFF compression {code}"
                ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts) if c]
                if ends and max(ends) > size:
                    raise SlideOpenError(
                        name,
                        f"truncated file: tile data of page {page.index} ends at byte {max(ends)} "
                        f"but the file has {size} bytes",
                    )
            return True, f"{len(tiled)} tiled pages"
    except SlideOpenError:
        raise
    except Exception as err:  # tifffile cannot parse it: let OpenSlide try and report
        return False, f"tifffile cannot parse it ({type(err).__name__}: {err})"


def choose_backend(path: str | os.PathLike, wsi_backend: str = "auto") -> BackendChoice:
    """Pick the backend that reads ``path``.

    Args:
        path: the slide file.
        wsi_backend: ``"auto"`` (probe the file), ``"cucim"`` or ``"openslide"`` (forced).

    Raises:
        ValueError: unknown ``wsi_backend``.
        SlideOpenError: the file is missing or truncated, or the forced backend is not installed.
    """
    name = Path(path).name
    if wsi_backend not in BACKENDS:
        raise ValueError(f"wsi_backend must be one of {BACKENDS}, got {wsi_backend!r}")
    if not os.path.isfile(path):
        raise SlideOpenError(name, f"file not found: {path}")
    if wsi_backend == "cucim":
        if not has_cucim:
            raise SlideOpenError(name, "wsi_backend='cucim' but cuCIM is not installed")
        return BackendChoice("cucim", "forced")
    if wsi_backend == "openslide":
        if not _has_openslide:
            raise SlideOpenError(name, "wsi_backend='openslide' but openslide-python is not installed")
        return BackendChoice("openslide", "forced")

    suffix = Path(path).suffix.lower()
    if suffix in CUCIM_SUFFIXES and _has_tifffile:
        cucim_ok, reason = check_tiff_tiles(path)  # raises on truncated files
        vendor = detect_vendor(path)
        if vendor is not None and vendor not in CUCIM_VENDORS:
            cucim_ok, reason = False, f"vendor {vendor}"
        if cucim_ok and has_cucim:
            return BackendChoice("cucim", f"{vendor or 'tiff'}: {reason}")
        if not _has_openslide and has_cucim:
            return BackendChoice("cucim", f"{reason}; OpenSlide not installed")
        return BackendChoice("openslide", reason)
    if not _has_openslide:
        raise SlideOpenError(name, f"{suffix} files need OpenSlide, which is not installed")
    return BackendChoice("openslide", f"{suffix} is not a cuCIM format")
