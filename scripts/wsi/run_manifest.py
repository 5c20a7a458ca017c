"""``manifest.csv``: one row per slide of a feature-extraction run, written atomically.

Columns: ``slide_id, path, status, n_patches, seconds, error`` with ``status`` in
``{done, skipped, failed}``. With several ranks each rank writes ``manifest.rank<r>.csv`` and
rank 0 merges them into ``manifest.csv`` (in the order of the run's slide list).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from scripts.atomic_io import atomic_path

MANIFEST_NAME = "manifest.csv"
STATUSES = ("done", "skipped", "failed")


@dataclass
class ManifestRow:
    """The outcome for one slide."""

    slide_id: str
    path: str
    status: str
    n_patches: int = 0
    seconds: float = 0.0
    error: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"{self.slide_id}: status must be one of {STATUSES}, got {self.status!r}")


COLUMNS = tuple(f.name for f in fields(ManifestRow))


def rank_manifest_name(rank: int) -> str:
    """File name of rank ``rank``'s partial manifest."""
    return f"manifest.rank{rank}.csv"


def write_manifest(path: str | os.PathLike, rows: Iterable[ManifestRow]) -> Path:
    """Write ``rows`` to ``path`` atomically (temporary file in the same folder, then ``os.replace``)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=COLUMNS)
            writer.writeheader()
            for row in rows:
                record = asdict(row)
                record["seconds"] = f"{row.seconds:.2f}"
                record["error"] = " ".join(str(row.error).split())  # one line per slide
                writer.writerow(record)
        os.chmod(tmp, 0o644)
    return path


def read_manifest(path: str | os.PathLike) -> list[ManifestRow]:
    """Rows of a manifest written by :func:`write_manifest`."""
    with open(path, newline="", encoding="utf-8") as handle:
        return [
            ManifestRow(
                slide_id=r["slide_id"],
                path=r["path"],
                status=r["status"],
                n_patches=int(r["n_patches"] or 0),
                seconds=float(r["seconds"] or 0.0),
                error=r["error"] or "",
            )
            for r in csv.DictReader(handle)
        ]


def merge_rank_manifests(output_dir: str | os.PathLike, world_size: int, order: Sequence[str]) -> Path:
    """Merge ``manifest.rank<r>.csv`` (r < ``world_size``) into ``manifest.csv`` and remove them.

    Args:
        output_dir: the run's output folder.
        world_size: number of ranks.
        order: slide ids in the run's order (rows of unknown ids go last).

    Raises:
        FileNotFoundError: a rank's manifest is missing (that rank died before finishing).
    """
    folder = Path(output_dir)
    rows: list[ManifestRow] = []
    parts = [folder / rank_manifest_name(r) for r in range(world_size)]
    for part in parts:
        if not part.is_file():
            raise FileNotFoundError(f"{part}: missing; did that rank fail?")
        rows.extend(read_manifest(part))
    position = {slide_id: i for i, slide_id in enumerate(order)}
    rows.sort(key=lambda r: position.get(r.slide_id, len(position)))
    merged = write_manifest(folder / MANIFEST_NAME, rows)
    for part in parts:
        part.unlink(missing_ok=True)
    return merged
