"""Slide subtyping: one class per slide from a ``label`` column; cross-entropy, AUC, confusion matrix."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from scripts.flags import as_flag

from .errors import SlideTableError
from .losses import ClassWeightedCrossEntropy
from .slide_table import SlideRecord, SlideTable
from .targets import ClassTargets
from .task_outputs import SubtypingOutputs
from .tasks import TransferTask

__all__ = ["SubtypingTask"]


@dataclasses.dataclass
class SubtypingTask(TransferTask):
    """One class per slide.

    Args:
        classes: allowed class names in class-id order; None = the CSV's labels, sorted.
        class_weighted: weight the cross-entropy by inverse class frequency of each fold's training part.
    """

    name: ClassVar[str] = "subtyping"
    label_column: ClassVar[str] = "label"
    required_columns: ClassVar[tuple[str, ...]] = ("slide_id", "label")
    val_metric: ClassVar[str] = "auc"
    epoch_metrics: ClassVar[tuple[str, ...]] = ("auc", "balanced_accuracy", "loss")

    classes: Sequence[str] | None = None
    class_weighted: bool = True

    def __post_init__(self) -> None:
        if self.classes is not None:
            self.classes = [str(c) for c in self.classes]
            if len(set(self.classes)) != len(self.classes):
                raise SlideTableError(f"classes {self.classes} holds a name twice")

    def parse_row(self, row: dict[str, str]) -> dict[str, Any]:
        label = row.get(self.label_column, "")
        if not label:
            raise ValueError(f"missing {self.label_column}")
        if self.classes is not None and label not in self.classes:
            raise ValueError(f"unknown class {label!r}; allowed classes: {self.classes}")
        return {"label_name": label}

    def class_names(self, parsed: list[dict[str, Any]]) -> list[str]:
        if self.classes is not None:
            return list(self.classes)
        return sorted({str(item["label_name"]) for item in parsed})

    def record_fields(self, item: dict[str, Any], classes: list[str]) -> dict[str, Any]:
        return {"label": classes.index(str(item["label_name"]))}

    def check_table(self, table: SlideTable) -> None:
        present = {r.label for r in table.records}
        if len(table.classes) < 2:
            raise SlideTableError(f"{table.csv_file}: {self.name} needs at least 2 classes, found {table.classes}")
        absent = [name for i, name in enumerate(table.classes) if i not in present]
        if absent:
            raise SlideTableError(f"{table.csv_file}: class(es) {absent} have no usable slide "
                                  f"(classes: {table.classes})")

    def stratum(self, table: SlideTable) -> tuple[str, np.ndarray]:
        return "label", np.array([r.label for r in table.records])

    def make_targets(self, table: SlideTable) -> ClassTargets:
        return ClassTargets(len(table.classes), weighted=as_flag(self.class_weighted, "class_weighted"))

    def part_counts(self, records: Sequence[SlideRecord], table: SlideTable) -> dict[str, Any]:
        counts = np.bincount([int(r.label) for r in records], minlength=len(table.classes))  # type: ignore[arg-type]
        return {"classes": dict(zip(table.classes, counts.tolist()))}

    def describe_table(self, table: SlideTable) -> str:
        return f"classes {table.classes}"

    def info(self, table: SlideTable) -> dict[str, Any]:
        return {"classes": table.classes}

    def train_params(self) -> dict[str, Any]:
        return {"class_weighted": self.class_weighted}

    def loss(self, targets: Any) -> nn.Module:
        return ClassWeightedCrossEntropy(class_weights=targets)

    def metric(self, table: SlideTable, loss: nn.Module | None = None) -> Any:
        from scripts.metrics import ClassificationMetrics

        return ClassificationMetrics(num_classes=len(table.classes))

    def outputs(self, table: SlideTable) -> SubtypingOutputs:
        return SubtypingOutputs(table)

    def ensemble_row(self, slide_id: str, logits: dict[int, torch.Tensor], infos: dict[int, dict[str, Any]]
                     ) -> dict[str, Any]:
        """``predicted`` and ``prob_<class>``: the fold models' mean softmax (float32 steps)."""
        classes = self.saved_classes(infos)
        probs = np.mean([torch.softmax(logits[k], 0).numpy() for k in sorted(logits)], axis=0)
        return {"slide_id": slide_id, "predicted": classes[int(probs.argmax())],
                **{f"prob_{c}": float(p) for c, p in zip(classes, probs)}}

    def saved_classes(self, infos: dict[int, dict[str, Any]]) -> list[str]:
        return [str(c) for c in next(iter(infos.values())).get("classes") or self.classes or []]

    def ensemble_columns(self, folds: Sequence[int]) -> list[str]:
        return ["slide_id", "predicted", *(f"prob_{c}" for c in self.classes or [])]

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> SubtypingTask:
        return cls(classes=[str(c) for c in info.get("classes") or []])
