"""The list of slides a run processes: a folder scanned recursively, or a CSV list.

CSV layout (header required; ``slide_id`` optional, defaults to the file stem)::

    slide_id,path
    TCGA-AA-0001,TCGA-AA-0001.svs
    case-2,/data/other/case-2.ndpi

Relative paths are taken from the CSV's folder (wherever the run starts, and whatever ``slides_dir`` says).
Slide ids become file names and are checked when each slide is processed (:func:`scripts.ids.check_file_id`):
a bad id is a failed row of the manifest, not a file outside the output folder.

A folder scan lists every entry with a slide extension, including ones that are not readable slide files
(a dangling or looping symbolic link, a folder named ``*.svs``), so each appears in the manifest with its
outcome; :func:`slide_path_problem` names what is wrong with such an entry.
"""

from __future__ import annotations

import csv
import errno
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


def slide_path_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not a readable slide file, or None when it is a regular file (or a link to one).

    Returns one of ``"file not found"``, ``"dangling symbolic link"``, ``"symbolic link loop"``,
    ``"a folder, not a slide file"``, ``"not a regular file"``.
    """
    path = Path(path)
    try:
        path.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symbolic link loop"
        if path.is_symlink():
            return "dangling symbolic link"
        return "file not found"
    if path.is_dir():
        return "a folder, not a slide file"
    if not path.is_file():
        return "not a regular file"
    return None


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
    """All entries with a slide extension under ``slides_dir`` (recursive, sorted by path).

    Entries that are not slide files (links to nothing, link loops, folders named ``*.svs``) are listed
    too, so that the run's manifest records them as failed with :func:`slide_path_problem`'s reason.
    A folder named like a slide is not searched further.

    Raises:
        FileNotFoundError: ``slides_dir`` is not a folder.
    """
    root = Path(slides_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"slides_dir {root} is not a folder")
    files = []
    for folder, dirs, names in os.walk(root):  # does not follow links to folders: no endless walk
        slide_dirs = [d for d in dirs if Path(d).suffix.lower() in suffixes]
        dirs[:] = sorted(d for d in dirs if d not in slide_dirs)
        files.extend(Path(folder) / n for n in [*names, *slide_dirs] if Path(n).suffix.lower() in suffixes)
    return _check_unique([SlideSource(slide_id_of(p), str(p)) for p in sorted(files)], str(root))


def read_slides_csv(slides_csv: str | os.PathLike, slides_dir: str | os.PathLike | None = None) -> list[SlideSource]:
    """Slides listed in a CSV with a ``path`` column (and optional ``slide_id``), in file order.

    Relative paths resolve against the CSV's folder; ``slides_dir`` is not used for them (it is kept in
    the signature for callers that pass both). Listed files need not exist: a missing file becomes a
    failed row of the run's manifest.

    Raises:
        FileNotFoundError: the CSV does not exist.
        ValueError: no ``path`` column, an empty path, or a duplicated slide id.
    """
    csv_path = Path(slides_csv)
    if not csv_path.is_file():
        raise FileNotFoundError(f"slides_csv {csv_path} not found")
    base = csv_path.resolve().parent
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
