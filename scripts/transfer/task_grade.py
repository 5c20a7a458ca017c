"""Binary grade (``low`` / ``high``) from a ``grade`` column: the worked example of ``docs/adding_a_task.md``.

A class task like subtyping, so it reuses :class:`SubtypingTask`'s targets, loss, metric and outputs and says
only what differs: its name, its column, its fixed classes, and how it picks the best epoch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

from .task_subtyping import SubtypingTask

__all__ = ["GradeTask"]


@dataclasses.dataclass
class GradeTask(SubtypingTask):
    """Low or high histological grade per slide (CSV ``slide_id,grade[,case_id]``)."""

    name: ClassVar[str] = "grade"
    label_column: ClassVar[str] = "grade"
    required_columns: ClassVar[tuple[str, ...]] = ("slide_id", "grade")
    val_metric: ClassVar[str] = "balanced_accuracy"

    classes: Sequence[str] | None = ("low", "high")

