"""The current fold of a cross-validation: which slides are in train/val/test, and the targets fitted on train.

Datasets, the loss and the handlers all hold the same :class:`CrossValidationData` and read the current fold
from it when they run, so one set of MONAI engines trains every fold in turn
(:class:`scripts.transfer.CrossValidation` calls :meth:`CrossValidationData.set_fold`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from .errors import SplitError
from .slide_table import SlideRecord, SlideTable
from .splits import PARTS, FoldSplit
from .tasks import Targets

__all__ = ["CrossValidationData", "make_targets"]

logger = logging.getLogger("histgen.transfer")


def make_targets(table: SlideTable, **options: Any) -> Targets:
    """The targets of the table's task; ``options`` (e.g. ``n_bins=2``) replace the task's own where it has them."""
    fields = {f.name for f in dataclasses.fields(table.task)}
    task = dataclasses.replace(table.task, **{k: v for k, v in options.items() if k in fields})
    return task.make_targets(table)


class CrossValidationData:
    """Slides, folds and the current fold.

    Args:
        table: the slides.
        folds: every fold's split (from :func:`scripts.transfer.load_or_make_folds`).
        targets: the task's targets (:meth:`TransferTask.make_targets`); refitted on each fold's training part.
        fold: run only this fold, or None for all.

    Every selected fold is checked at construction (a class absent from a training part, an all-censored
    training part, a val or test part without an event), so a bad fold fails before any training.
    """

    def __init__(self, table: SlideTable, folds: Sequence[FoldSplit], targets: Targets,
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
        """The task's name (``model_info.json`` and result files)."""
        return self.table.task.name

    @property
    def num_outputs(self) -> int:
        """Outputs of the model: C classes or n_bins hazards."""
        return self.targets.num_outputs

    def _records(self, split: FoldSplit, part: str) -> list[SlideRecord]:
        return [self._by_id[s] for s in split.part(part)]

    def _check_fold(self, split: FoldSplit) -> None:
        for part in PARTS:
            if not split.part(part):
                raise SplitError(f"fold {split.fold}: the {part} part is empty; use fewer folds or more data")
        self.targets.fit(self._records(split, "train"), where=f"fold {split.fold} train")
        for part in ("val", "test"):
            self.table.task.check_eval_part(self._records(split, part), f"fold {split.fold} {part}", self.table)

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
            info[part] = {**entry, **self.table.task.part_counts(records, self.table)}
        info.update(self.targets.describe())
        return info
