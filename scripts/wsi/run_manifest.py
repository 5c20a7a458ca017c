"""``manifest.csv``: one row per slide of a feature-extraction run, written atomically.

Columns: ``slide_id, path, status, n_patches, seconds, error`` with ``status`` in
``{done, skipped, failed}``. With several ranks each rank writes ``manifest.rank<r>.csv`` and
rank 0 merges them into ``manifest.csv`` (in the order of the run's slide list).
"""

from __future__ import annotations

import csv
import fcntl
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from scripts.atomic_io import atomic_path

MANIFEST_NAME = "manifest.csv"
LOCK_NAME = ".extract_features.lock"
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


class OutputFolderBusyError(RuntimeError):
    """Another feature extraction is writing to the same output folder."""


class OutputFolderLock:
    """An exclusive lock on an extraction output folder, held for the whole run (one per rank).

    Two extractions writing one folder would remove each other's temporary files and overwrite each other's
    ``manifest.csv``; the second one is refused instead, before it touches anything. The lock is an
    ``flock`` on ``<output_dir>/.extract_features.lock`` (rank r > 0 of a distributed run:
    ``.extract_features.rank<r>.lock``): the kernel releases it when the process ends, even by ``kill -9``,
    so a killed run never blocks the next one. (``flock`` may not be shared between machines on some network
    file systems.)

    Raises:
        OutputFolderBusyError: on entry, when another process holds the lock (names the folder and its pid).
    """

    def __init__(self, output_dir: str | os.PathLike, rank: int = 0) -> None:
        name = LOCK_NAME if rank == 0 else LOCK_NAME.replace(".lock", f".rank{rank}.lock")
        self.path = Path(output_dir) / name
        self._handle = None

    def __enter__(self) -> OutputFolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held open while locked)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise OutputFolderBusyError(
                f"{self.path.parent}: another feature extraction is writing here ({holder}); wait for it to "
                f"finish or give another output_dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
