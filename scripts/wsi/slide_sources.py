"""The list of slides a run processes: a folder scanned recursively, or a CSV list.

CSV layout (header required; ``slide_id`` optional, defaults to the file stem)::

    slide_id,path
    TCGA-AA-0001,TCGA-AA-0001.svs
    case-2,/data/other/case-2.ndpi

Relative paths are taken from ``slides_dir`` when given, else from the CSV's folder.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

#: Extensions picked up when scanning a folder. DICOM slides (a folder of .dcm files) are listed
#: through a CSV row naming one of their files.
SLIDE_SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".svslide")


@dataclass(frozen=True)
class SlideSource:
    """One slide to process: its id (output file stem) and path."""

    slide_id: str
    path: str


def slide_id_of(path: str | os.PathLike) -> str:
    """Default slide id: the file name without its extension (``a/b/TCGA-01.svs`` -> ``TCGA-01``)."""
    return Path(path).stem


def _check_unique(sources: list[SlideSource], origin: str) -> list[SlideSource]:
    seen: dict[str, str] = {}
    for src in sources:
        if src.slide_id in seen:
            raise ValueError(
                f"{origin}: slide id {src.slide_id!r} is used twice ({seen[src.slide_id]} and {src.path}); "
                "list the slides in a CSV with distinct slide_id values"
            )
        seen[src.slide_id] = src.path
    return sources


def scan_slides_dir(slides_dir: str | os.PathLike, suffixes: tuple[str, ...] = SLIDE_SUFFIXES) -> list[SlideSource]:
    """All slide files under ``slides_dir`` (recursive, sorted by path).

    Raises:
        FileNotFoundError: ``slides_dir`` is not a folder.
    """
    root = Path(slides_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"slides_dir {root} is not a folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    return _check_unique([SlideSource(slide_id_of(p), str(p)) for p in files], str(root))


def read_slides_csv(slides_csv: str | os.PathLike, slides_dir: str | os.PathLike | None = None) -> list[SlideSource]:
    """Slides listed in a CSV with a ``path`` column (and optional ``slide_id``), in file order.

    Listed files need not exist: a missing file becomes a failed row of the run's manifest.

    Raises:
        FileNotFoundError: the CSV does not exist.
        ValueError: no ``path`` column, an empty path, or a duplicated slide id.
    """
    csv_path = Path(slides_csv)
    if not csv_path.is_file():
        raise FileNotFoundError(f"slides_csv {csv_path} not found")
    base = Path(slides_dir) if slides_dir else csv_path.parent
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "path" not in reader.fieldnames:
            raise ValueError(f"{csv_path}: needs a 'path' column, found {reader.fieldnames}")
        sources = []
        for line_no, row in enumerate(reader, start=2):
            raw = (row.get("path") or "").strip()
            if not raw:
                raise ValueError(f"{csv_path}:{line_no}: empty path")
            path = Path(raw) if Path(raw).is_absolute() else base / raw
            slide_id = (row.get("slide_id") or "").strip() or slide_id_of(path)
            sources.append(SlideSource(slide_id, str(path)))
    return _check_unique(sources, str(csv_path))


def list_slides(
    slides_dir: str | os.PathLike | None = None, slides_csv: str | os.PathLike | None = None
) -> list[SlideSource]:
    """Slides of a run: the CSV when given, else a scan of ``slides_dir``.

    Raises:
        ValueError: neither is given.
    """
    if slides_csv:
        return read_slides_csv(slides_csv, slides_dir)
    if slides_dir:
        return scan_slides_dir(slides_dir)
    raise ValueError("give slides_dir (a folder of slides) or slides_csv (a CSV with a 'path' column)")
