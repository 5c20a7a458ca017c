"""Cases of several slides for slide inference: the ``--case_csv`` table.

A case CSV has a ``case_id`` and a ``path`` column, one row per slide (a ``path`` cell may also list several
slides separated by ``;``) and an optional ``slide_id`` column::

    case_id,path
    CASE-7,slides/CASE-7-A.svs
    CASE-7,slides/CASE-7-B.svs
    CASE-7,slides/CASE-7-C.svs
    CASE-8,slides/CASE-8-A.svs;slides/CASE-8-B.svs

Relative paths resolve against the CSV's folder. Cases keep the order of their first row, slides the order of
their rows. Each case gets one report (``<case_id>.txt`` and one ``reports.csv`` row); its slides' bags are
concatenated as in training (see :mod:`scripts.data.bag_datasets`).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from scripts.ids import check_file_id

__all__ = ["read_case_csv"]


def read_case_csv(case_csv: str | os.PathLike) -> dict[str, list[tuple[str, str]]]:
    """``{case_id: [(slide_id, path), ...]}`` from a case CSV (see the module docstring).

    Raises:
        FileNotFoundError: the CSV does not exist.
        ValueError: a missing column, an empty case id or path, an unsafe case id, or a slide id used twice
            (the message names the file and line).
    """
    from scripts.wsi.slide_sources import slide_id_of

    path = Path(case_csv)
    if not path.is_file():
        raise FileNotFoundError(f"case_csv {path} not found")
    base = path.resolve().parent
    cases: dict[str, list[tuple[str, str]]] = {}
    seen: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("case_id", "path") if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: needs the columns case_id and path (missing {missing}, found "
                             f"{reader.fieldnames})")
        for line_no, row in enumerate(reader, start=2):
            case_id = (row.get("case_id") or "").strip()
            cells = [p.strip() for p in (row.get("path") or "").split(";") if p.strip()]
            if not case_id or not cells:
                raise ValueError(f"{path}:{line_no}: empty case_id or path")
            check_file_id(case_id, "case id")
            named = (row.get("slide_id") or "").strip()
            if named and len(cells) > 1:
                raise ValueError(f"{path}:{line_no}: a slide_id names one slide, but the row lists {len(cells)}")
            for cell in cells:
                slide_path = Path(cell) if Path(cell).is_absolute() else base / cell
                slide_id = named or slide_id_of(slide_path)
                if slide_id in seen:
                    raise ValueError(f"{path}:{line_no}: slide id {slide_id!r} is listed twice (first in case "
                                     f"{seen[slide_id]!r}); give distinct slide_id values")
                seen[slide_id] = case_id
                cases.setdefault(case_id, []).append((slide_id, str(slide_path)))
    if not cases:
        raise ValueError(f"{path}: no case listed")
    return cases
