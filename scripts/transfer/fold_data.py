"""The current fold of a cross-validation: which slides are in train/val/test, and the targets fitted on train.

Datasets, the loss and the handlers all hold the same :class:`CrossValidationData` and read the current fold
from it when they run, so one set of MONAI engines trains every fold in turn
(:class:`scripts.transfer.CrossValidation` calls :meth:`CrossValidationData.set_fold`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from scripts.flags import as_flag

from .errors import SplitError
from .slide_table import SlideRecord, SlideTable
from .splits import PARTS, FoldSplit
from .targets import ClassTargets, SurvivalTargets, csv_lines

__all__ = ["CrossValidationData", "make_targets"]

logger = logging.getLogger("histgen.transfer")


def make_targets(table: SlideTable, n_bins: int = 4, class_weighted: bool = True) -> ClassTargets | SurvivalTargets:
    """The targets of the table's task."""
    if table.task == "subtyping":
        return ClassTargets(len(table.classes), weighted=as_flag(class_weighted, "class_weighted"))
    return SurvivalTargets(n_bins)


class CrossValidationData:
    """Slides, folds and the current fold.

    Args:
        table: the slides.
        folds: every fold's split (from :func:`scripts.transfer.load_or_make_folds`).
        targets: :class:`ClassTargets` or :class:`SurvivalTargets`; refitted on each fold's training part.
        fold: run only this fold, or None for all.

    Every selected fold is checked at construction (a class absent from a training part, an all-censored
    training part, a val or test part without an event), so a bad fold fails before any training.
    """

    def __init__(self, table: SlideTable, folds: Sequence[FoldSplit], targets: ClassTargets | SurvivalTargets,
                 fold: int | None = None) -> None:
        self.table = table
        self.folds = list(folds)
        self.targets = targets
        self.num_folds = len(self.folds)
        if fold is not None and not 0 <= int(fold) < self.num_folds:
            raise SplitError(f"fold must be in 0..{self.num_folds - 1} (num_folds={self.num_folds}), got {fold}")
        self.fold_ids = [int(fold)] if fold is not None else list(range(self.num_folds))
        self._by_id = table.by_id()
        self.fold: int | None = None
        self._parts: dict[str, list[SlideRecord]] = {p: [] for p in PARTS}
        for k in self.fold_ids:
            self._check_fold(self.folds[k])
        self.set_fold(self.fold_ids[0])  # data loaders built before the fold loop need a non-empty dataset

    @property
    def task(self) -> str:
        return self.table.task

    @property
    def num_outputs(self) -> int:
        """Outputs of the model: C classes or n_bins hazards."""
        if isinstance(self.targets, ClassTargets):
            return self.targets.num_classes
        return self.targets.n_bins

    def _records(self, split: FoldSplit, part: str) -> list[SlideRecord]:
        return [self._by_id[s] for s in split.part(part)]

    def _check_fold(self, split: FoldSplit) -> None:
        for part in PARTS:
            if not split.part(part):
                raise SplitError(f"fold {split.fold}: the {part} part is empty; use fewer folds or more data")
        self.targets.fit(self._records(split, "train"), where=f"fold {split.fold} train")
        if self.task == "survival":
            for part in ("val", "test"):
                records = self._records(split, part)
                if not any(r.event for r in records):
                    raise SplitError(f"fold {split.fold} {part}: all {len(records)} slides are censored (event=0; "
                                     f"{csv_lines(records)} of {self.table.csv_file.name}), the concordance index "
                                     "is undefined; use fewer folds or more data")

    def set_fold(self, fold: int) -> None:
        """Make ``fold`` current and fit the targets on its training part."""
        split = self.folds[fold]
        self.fold = fold
        self._parts = {p: self._records(split, p) for p in PARTS}
        self.targets.fit(self._parts["train"], where=f"fold {fold} train")

    def records(self, part: str) -> list[SlideRecord]:
        """The current fold's slides of ``part`` (``"train"``, ``"val"`` or ``"test"``)."""
        if self.fold is None:
            raise RuntimeError("no current fold: call set_fold() first")
        return self._parts[part]

    def describe(self) -> dict[str, Any]:
        """Counts of the current fold, for logs and result files."""
        info: dict[str, Any] = {"fold": self.fold, "num_folds": self.num_folds}
        for part in PARTS:
            records = self._parts[part]
            entry: dict[str, Any] = {"slides": len(records), "cases": len({r.case_id for r in records})}
            if self.task == "subtyping":
                counts = np.bincount([int(r.label) for r in records], minlength=len(self.table.classes))  # type: ignore[arg-type]
                entry["classes"] = dict(zip(self.table.classes, counts.tolist()))
            else:
                entry["events"] = int(sum(int(r.event) for r in records))  # type: ignore[arg-type]
            info[part] = entry
        info.update(self.targets.describe())
        return info
