"""What a transfer task is: the one protocol that the sibling bundles' workflows, evaluation and serving call.

A task turns a label table into per-slide outcomes and targets, and says which loss trains on them, which Ignite
metric scores them, which rows, scores and figure a prediction gives, and which columns the fold ensemble and
its ``mlflow.pyfunc`` model return. Everything task-specific lives in a :class:`TransferTask` subclass
(:mod:`.task_subtyping`, :mod:`.task_survival`, :mod:`.task_grade`); the rest of :mod:`scripts.transfer` and
:mod:`scripts.serving` only call these methods. A subclass with a ``name`` registers itself, so a saved fold
model (``model_info.json`` ``"task"``) finds its task again with :func:`task_from_info`.

Tasks are dataclasses: their fields are the task's options (``classes``, ``n_bins`` ...), set in the bundle's
``train.json`` (``"task": {"_target_": "scripts.transfer.SubtypingTask", ...}``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from ignite.metrics import Metric

    from .slide_table import SlideRecord, SlideTable

__all__ = ["TASK_TYPES", "Targets", "TaskOutputs", "TransferTask", "as_task", "task_from_info"]

#: Every task with a ``name``, by name (filled by :meth:`TransferTask.__init_subclass__`).
TASK_TYPES: dict[str, type[TransferTask]] = {}


class Targets(Protocol):
    """What a model learns per slide, fitted on each fold's training part (:mod:`.targets`)."""

    num_outputs: int

    def fit(self, train: Sequence[SlideRecord], where: str = "training part") -> None: ...
    def encode(self, record: SlideRecord) -> dict[str, Any]: ...
    def describe(self) -> dict[str, Any]: ...


class TaskOutputs(Protocol):
    """Per-slide rows, scores and the figure of a set of predictions (:mod:`.task_outputs`)."""

    table: SlideTable
    figure_name: str
    columns: list[str]

    def rows(self, logits: torch.Tensor, targets: dict[str, torch.Tensor]) -> list[dict[str, Any]]: ...
    def report(self, rows: list[dict[str, Any]], folder: str | os.PathLike[str], title: str) -> dict[str, Any]: ...
    def pooled_report(self, rows: list[dict[str, Any]], folder: str | os.PathLike[str], title: str
                      ) -> dict[str, Any]: ...


@dataclasses.dataclass
class TransferTask:
    """Base of every transfer task; a subclass overrides the methods marked "each task".

    Class attributes (each task): ``name`` (``model_info.json``'s ``"task"``), ``required_columns`` of the label
    CSV, ``val_metric`` (the default selection metric) and ``epoch_metrics`` (the per-epoch log line).
    """

    name: ClassVar[str] = ""
    required_columns: ClassVar[tuple[str, ...]] = ("slide_id",)
    val_metric: ClassVar[str] = "loss"
    epoch_metrics: ClassVar[tuple[str, ...]] = ("loss",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            TASK_TYPES[cls.name] = cls

    # -- targets from a table ----------------------------------------------------------------------------------
    def parse_row(self, row: dict[str, str]) -> dict[str, Any]:
        """Each task: the outcome fields of one CSV row; raises ``ValueError(reason)`` for a bad row."""
        raise NotImplementedError

    def check_rows(self, csv_file: Path, parsed: list[dict[str, Any]]) -> None:
        """Checks across rows (e.g. slides of one case agree); raises :class:`SlideTableError`. Default: none."""

    def class_names(self, parsed: list[dict[str, Any]]) -> list[str]:
        """The table's class names (index = class id); ``[]`` for a task without classes."""
        return []

    def record_fields(self, item: dict[str, Any], classes: list[str]) -> dict[str, Any]:
        """Each task: the :class:`SlideRecord` outcome fields (``label`` / ``time`` / ``event``) of a parsed row."""
        raise NotImplementedError

    def check_table(self, table: SlideTable) -> None:
        """Each task: refuse a table the task cannot learn from (:class:`SlideTableError`)."""

    def stratum(self, table: SlideTable) -> tuple[str, np.ndarray]:
        """What folds are stratified by: ``(name, [n] values)``."""
        raise NotImplementedError

    def make_targets(self, table: SlideTable) -> Targets:
        """Each task: the targets, refitted on each fold's training part."""
        raise NotImplementedError

    def check_eval_part(self, records: Sequence[SlideRecord], where: str, table: SlideTable) -> None:
        """Refuse a val/test part the metric is undefined on (:class:`SplitError`). Default: none."""

    def part_counts(self, records: Sequence[SlideRecord], table: SlideTable) -> dict[str, Any]:
        """Counts of a fold part for logs and result files (``{"classes": {...}}``, ``{"events": n}``)."""
        return {}

    def describe_table(self, table: SlideTable) -> str:
        """One phrase about the table's outcomes for the log."""
        return ""

    # -- training and scoring ----------------------------------------------------------------------------------
    def loss(self, targets: Targets) -> nn.Module:
        """Each task: the training loss ``loss(logits, targets dict)``."""
        raise NotImplementedError

    def metric(self, table: SlideTable, loss: nn.Module | None = None) -> Metric:
        """Each task: the Ignite metric of the val and test evaluators (its dict holds ``val_metric``)."""
        raise NotImplementedError

    def outputs(self, table: SlideTable) -> TaskOutputs:
        """Each task: rows, scores and figure of a fold's test part and of the pooled test parts."""
        raise NotImplementedError

    # -- what the run records -----------------------------------------------------------------------------------
    def info(self, table: SlideTable) -> dict[str, Any]:
        """The task's fields of ``model_info.json``, each fold's ``metrics.json`` and the MLflow ``data.*`` params
        (what :meth:`from_info` reads back)."""
        return {}

    def train_params(self) -> dict[str, Any]:
        """The task's training options among the MLflow ``train.*`` params."""
        return {}

    def registry_tags(self) -> dict[str, Any]:
        """Extra tags of the registered model version."""
        return {}

    # -- fold ensemble and serving -----------------------------------------------------------------------------
    def ensemble_row(self, slide_id: str, logits: dict[int, torch.Tensor], infos: dict[int, dict[str, Any]]
                     ) -> dict[str, Any]:
        """Each task: one slide's ensemble prediction from each fold model's ``[C or K]`` logits."""
        raise NotImplementedError

    def ensemble_columns(self, folds: Sequence[int]) -> list[str]:
        """Each task: the columns of the inference workflow's ``predictions.csv``."""
        raise NotImplementedError

    def serving_columns(self, folds: Sequence[int]) -> list[tuple[str, str]]:
        """``(name, type)`` of the predictor's and pyfunc model's columns; type ``"string"``, ``"double"`` or
        ``"double[]"``. Default: :meth:`ensemble_columns`, ``slide_id`` and ``predicted`` strings."""
        return [(c, "string" if c in ("slide_id", "predicted") else "double") for c in self.ensemble_columns(folds)]

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> TransferTask:
        """The task of a saved fold model's ``model_info.json``. Default: the task's defaults."""
        return cls()


def as_task(task: str | TransferTask, **options: Any) -> TransferTask:
    """A task object from a task or its name; options that are not None replace its fields.

    Raises:
        ValueError: an unknown task name, or an option the task does not have.
    """
    options = {k: v for k, v in options.items() if v is not None}
    if isinstance(task, TransferTask):
        return dataclasses.replace(task, **options) if options else task
    if task not in TASK_TYPES:
        raise ValueError(f"task must be one of {sorted(TASK_TYPES)}, got {task!r}")
    fields = {f.name for f in dataclasses.fields(TASK_TYPES[task])}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ValueError(f"the {task} task has no option(s) {unknown}; its options: {sorted(fields)}")
    return TASK_TYPES[task](**options)


def task_from_info(info: dict[str, Any], where: str | os.PathLike[str] = "model_info.json") -> TransferTask:
    """The task of a saved fold model (``info["task"]`` names it).

    Raises:
        ValueError: the info names no known task.
    """
    name = str(info.get("task"))
    if name not in TASK_TYPES:
        raise ValueError(f"{where}: model_info.json task {name!r}, expected one of {sorted(TASK_TYPES)}")
    return TASK_TYPES[name].from_info(info)
