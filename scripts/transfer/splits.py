"""Cross-validation splits by case: k folds of test cases, and a validation part cut from each fold's rest.

Folds come from scikit-learn's ``StratifiedGroupKFold``: the groups are cases (no case is ever in two parts of a
fold, nor in two test folds) and the classes are the labels (subtyping) or the events (survival). Inside a fold,
the non-test cases are split again the same way into train and val (``val_fraction`` of them).

On disk, ``<split_dir>/fold_<k>.json``::

    {"fold": 0, "num_folds": 5, "seed": 0, "val_fraction": 0.2, "stratified_by": "label",
     "csv_file": "...", "counts": {"train": 154, "val": 38, "test": 48},
     "train": ["slide ids"...], "val": [...], "test": [...]}

Saved splits are reused when present (a rerun, another fold, ``evaluate.json``) and checked against the CSV.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np

from scripts.atomic_io import atomic_write_json
from scripts.ids import fold_dir_name

from .distributed import rank0_first
from .errors import SplitError
from .slide_table import SlideTable

__all__ = [
    "PARTS",
    "FoldSplit",
    "check_folds",
    "load_or_make_folds",
    "make_folds",
    "read_folds",
    "require_folds",
    "saved_num_folds",
    "write_folds",
]

logger = logging.getLogger("histgen.transfer")

PARTS: tuple[str, ...] = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class FoldSplit:
    """The slide ids of one fold's parts."""

    fold: int
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def part(self, name: str) -> tuple[str, ...]:
        if name not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, got {name!r}")
        return getattr(self, name)


def stratum_of(table: SlideTable) -> tuple[str, np.ndarray]:
    """What folds are stratified by: the task's ``(name, values)``, e.g. ``("label", labels)``."""
    return table.task.stratum(table)


def _group_kfold(y: np.ndarray, groups: np.ndarray, n_splits: int, seed: int, what: str
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    try:
        return list(splitter.split(np.zeros(len(y)), y, groups))
    except ValueError as err:
        raise SplitError(f"{what}: cannot cut {n_splits} case-disjoint stratified parts from {len(y)} slides "
                         f"({err}); use fewer folds or more data") from err


def make_folds(table: SlideTable, num_folds: int = 5, seed: int = 0, val_fraction: float = 0.2) -> list[FoldSplit]:
    """Split the table's slides into ``num_folds`` folds of train/val/test slide ids, by case, stratified.

    Args:
        table: the slides.
        num_folds: k >= 2; every case is in the test part of exactly one fold.
        seed: shuffling seed.
        val_fraction: share of each fold's non-test cases that form its val part, in (0, 0.5].

    Raises:
        SplitError: fewer cases than folds, or too few to cut a val part.
    """
    if num_folds < 2:
        raise SplitError(f"num_folds must be >= 2, got {num_folds}")
    if not 0.0 < val_fraction <= 0.5:
        raise SplitError(f"val_fraction must be in (0, 0.5], got {val_fraction}")
    _, y = stratum_of(table)
    groups = np.array(table.case_ids)
    num_cases = len(set(groups.tolist()))
    if num_cases < num_folds + 1:
        raise SplitError(f"{table.csv_file}: {num_cases} cases cannot make {num_folds} folds with a val part "
                         f"(need at least {num_folds + 1} cases); use fewer folds")
    ids = np.array(table.slide_ids)
    folds = []
    with warnings.catch_warnings():  # small folds are checked by the callers
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        outer = _group_kfold(y, groups, num_folds, seed, str(table.csv_file))
        for k, (rest, test) in enumerate(outer):
            rest_cases = len(set(groups[rest].tolist()))
            largest_stratum = int(np.unique(y[rest], return_counts=True)[1].max())
            n_inner = min(max(2, round(1.0 / val_fraction)), rest_cases, largest_stratum)
            if n_inner < 2:
                raise SplitError(f"fold {k}: only {rest_cases} non-test case(s), cannot cut a val part")
            train_pos, val_pos = _group_kfold(y[rest], groups[rest], n_inner, seed + 1000 + k, f"fold {k}")[0]
            folds.append(FoldSplit(k, tuple(ids[rest][train_pos]), tuple(ids[rest][val_pos]), tuple(ids[test])))
    return folds


def fold_file(split_dir: str | os.PathLike[str], fold: int) -> Path:
    return Path(split_dir) / f"{fold_dir_name(fold)}.json"


def write_folds(folds: list[FoldSplit], split_dir: str | os.PathLike[str], table: SlideTable, seed: int,
                val_fraction: float) -> list[Path]:
    """Write ``fold_<k>.json`` per fold (atomic)."""
    by, _ = stratum_of(table)
    paths = []
    for split in folds:
        payload = {
            "fold": split.fold, "num_folds": len(folds), "seed": seed, "val_fraction": val_fraction,
            "stratified_by": by, "grouped_by": "case_id", "csv_file": str(table.csv_file),
            "counts": {p: len(split.part(p)) for p in PARTS},
            **{p: list(split.part(p)) for p in PARTS},
        }
        paths.append(atomic_write_json(fold_file(split_dir, split.fold), payload))
    return paths


def read_folds(split_dir: str | os.PathLike[str], table: SlideTable, num_folds: int) -> list[FoldSplit] | None:
    """The saved splits checked against ``table``, or None when ``split_dir`` holds none.

    Slides listed in a split file but skipped from the table (``on_missing="skip"``) are dropped with a
    warning that counts them.

    Raises:
        SplitError: a different number of folds, a fold file missing or unreadable, a slide the CSV does not
            have, a CSV slide in no part, a case in two parts (see :func:`check_folds`).
    """
    folder = Path(split_dir)
    present = sorted(folder.glob("fold_*.json")) if folder.is_dir() else []
    if not present:
        return None
    expected = {fold_file(folder, k).name for k in range(num_folds)}
    names = {p.name for p in present}
    if names != expected:
        raise SplitError(f"{folder}: holds {sorted(names)} but num_folds={num_folds} needs {sorted(expected)}; "
                         f"delete {folder} to make new splits, or set num_folds to match")
    known = set(table.slide_ids)
    skipped = {str(s["slide_id"]) for s in table.skipped}
    folds = []
    for k in range(num_folds):
        path = fold_file(folder, k)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            parts = {p: [str(s) for s in payload[p]] for p in PARTS}
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise SplitError(f"{path}: not a readable split file ({type(err).__name__}: {err})") from err
        dropped = [s for p in PARTS for s in parts[p] if s in skipped]
        if dropped:
            logger.warning("%s: %d slide(s) dropped from the split because they were skipped from the CSV: %s",
                           path, len(dropped), ", ".join(dropped[:10]) + (" ..." if len(dropped) > 10 else ""))
        unknown = [s for p in PARTS for s in parts[p] if s not in known and s not in skipped]
        if unknown:
            raise SplitError(f"{path}: lists {len(unknown)} slide(s) that are not in {table.csv_file}: "
                             f"{unknown[:10]}; delete {folder} to make new splits")
        folds.append(FoldSplit(k, *(tuple(s for s in parts[p] if s in known) for p in PARTS)))
    check_folds(folds, table, source=str(folder))
    return folds


def check_folds(folds: list[FoldSplit], table: SlideTable, source: str = "splits") -> None:
    """Check that every fold puts every slide in exactly one part, no case in two parts, no slide in two tests."""
    cases = dict(zip(table.slide_ids, table.case_ids))
    tested: dict[str, int] = {}
    for split in folds:
        where = f"{source} fold {split.fold}"
        seen: dict[str, str] = {}
        for part in PARTS:
            for slide_id in split.part(part):
                if slide_id in seen:
                    raise SplitError(f"{where}: slide {slide_id!r} is in both {seen[slide_id]} and {part}")
                seen[slide_id] = part
        missing = [s for s in table.slide_ids if s not in seen]
        if missing:
            listed = ", ".join(table.where(s) for s in missing[:5])
            raise SplitError(f"{where}: {len(missing)} slide(s) of the CSV are in no part ({listed}"
                             f"{' ...' if len(missing) > 5 else ''}); the CSV changed since the splits were "
                             "written: delete the split folder to make new splits")
        case_part: dict[str, str] = {}
        for slide_id, part in seen.items():
            case = cases[slide_id]
            if case_part.setdefault(case, part) != part:
                raise SplitError(f"{where}: case {case!r} has slides in both {case_part[case]} and {part} "
                                 f"({table.where(slide_id)})")
        for slide_id in split.test:
            if slide_id in tested:
                raise SplitError(f"{source}: slide {slide_id!r} is in the test part of folds {tested[slide_id]} "
                                 f"and {split.fold}")
            tested[slide_id] = split.fold


def load_or_make_folds(table: SlideTable, split_dir: str | os.PathLike[str], num_folds: int = 5, seed: int = 0,
                       val_fraction: float = 0.2) -> list[FoldSplit]:
    """Reuse the splits in ``split_dir`` (checked against the CSV), or make and write new ones.

    In a distributed run rank 0 decides and writes; the other ranks then read its files.
    """
    with rank0_first():
        folds = read_folds(split_dir, table, num_folds)
        if folds is not None:
            logger.info("reusing the %d-fold splits in %s", num_folds, split_dir)
            return folds
        folds = make_folds(table, num_folds, seed, val_fraction)
        check_folds(folds, table, source="new splits")
        write_folds(folds, split_dir, table, seed, val_fraction)
        logger.info("wrote %d-fold splits by case to %s", num_folds, split_dir)
        return folds


def saved_num_folds(split_dir: str | os.PathLike[str]) -> int:
    """How many ``fold_<k>.json`` files ``split_dir`` holds.

    Raises:
        SplitError: none (training writes them).
    """
    folder = Path(split_dir)
    count = len(list(folder.glob("fold_*.json"))) if folder.is_dir() else 0
    if count == 0:
        raise SplitError(f"{folder}: no fold_<k>.json split files; run the training workflow first")
    return count


def require_folds(table: SlideTable, split_dir: str | os.PathLike[str], num_folds: int | None = None
                  ) -> list[FoldSplit]:
    """The saved splits (checked against the CSV); never makes new ones (evaluation must test on the folds
    the models were trained for).

    Raises:
        SplitError: no split files, or splits that do not fit the CSV.
    """
    num_folds = saved_num_folds(split_dir) if num_folds is None else num_folds
    folds = read_folds(split_dir, table, num_folds)
    if folds is None:
        raise SplitError(f"{split_dir}: no fold_<k>.json split files; run the training workflow first")
    return folds
