"""Survival: follow-up ``time`` and ``event`` per case; discrete-time hazards, concordance, Kaplan-Meier."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from .errors import SlideTableError, SplitError
from .losses import DiscreteTimeSurvivalLoss, survival_outputs
from .slide_table import SlideRecord, SlideTable, problem_list
from .targets import SurvivalTargets, csv_lines
from .task_outputs import SurvivalOutputs
from .tasks import TransferTask

__all__ = ["SurvivalTask", "ensemble_survival_curve"]


def _parse_time(text: str) -> tuple[float | None, str | None]:
    if not text:
        return None, "missing time"
    try:
        value = float(text)
    except ValueError:
        return None, f"time {text!r} is not a number"
    if not math.isfinite(value):
        return None, f"time {text!r} is not finite"
    if value < 0:
        return None, f"time {text!r} is negative"
    return value, None


def _parse_event(text: str) -> tuple[int | None, str | None]:
    if text in ("0", "1", "0.0", "1.0"):
        return int(float(text)), None
    shown = repr(text) if text else "missing"
    return None, f"event {shown} must be 1 (observed) or 0 (censored)"


def ensemble_survival_curve(curves: Sequence[tuple[Sequence[float], Sequence[float]]]
                            ) -> tuple[list[float], list[float]]:
    """Mean survival curve of fold models with different time bins.

    Args:
        curves: per fold model, its bin edges ``[0, t_1, ..., t_{K-1}, inf]`` and its ``S_j`` ``[K]``
            (probability of surviving past the end of bin j).

    Returns:
        ``times``: the sorted finite inner edges of every model; ``survival``: at each time, the mean over the
        models of their step function (1 before their first edge, ``S_j`` from the end of bin j on).
    """
    times = sorted({float(edge) for edges, _ in curves for edge in list(edges)[1:-1]})
    survival = []
    for t in times:
        values = []
        for edges, surv in curves:
            ended = int(np.searchsorted(np.asarray(list(edges)[1:-1], dtype=np.float64), t, side="right"))
            values.append(1.0 if ended == 0 else float(surv[ended - 1]))
        survival.append(float(np.mean(values)))
    return times, survival


@dataclasses.dataclass
class SurvivalTask(TransferTask):
    """Time to an event, censored or observed; slides of one case share the case's outcome.

    Args:
        n_bins: time bins (the hazard model's outputs), cut at each fold's training quantiles.
        alpha: weight of the uncensored-only term of the discrete-time likelihood.
        time_unit: label of the time axis (e.g. ``"months"``).
    """

    name: ClassVar[str] = "survival"
    required_columns: ClassVar[tuple[str, ...]] = ("slide_id", "case_id", "time", "event")
    val_metric: ClassVar[str] = "c_index"
    epoch_metrics: ClassVar[tuple[str, ...]] = ("c_index", "loss")

    n_bins: int = 4
    alpha: float = 0.15
    time_unit: str = ""

    def parse_row(self, row: dict[str, str]) -> dict[str, Any]:
        time, time_error = _parse_time(row.get("time", ""))
        event, event_error = _parse_event(row.get("event", ""))
        errors = [e for e in (time_error, event_error) if e]
        if errors:
            raise ValueError("; ".join(errors))
        return {"time": time, "event": event}

    def check_rows(self, csv_file: Path, parsed: list[dict[str, Any]]) -> None:
        """Slides of one case must agree on time and event."""
        first: dict[str, dict[str, Any]] = {}
        problems = []
        for item in parsed:
            seen = first.setdefault(str(item["case_id"]), item)
            if seen is not item and (seen["time"] != item["time"] or seen["event"] != item["event"]):
                problems.append((int(item["line"]), str(item["slide_id"]),
                                 f"case {item['case_id']!r} has time {item['time']}, event {item['event']} here but "
                                 f"time {seen['time']}, event {seen['event']} on line {seen['line']}"))
        if problems:
            raise SlideTableError(problem_list(csv_file, problems, "row(s) disagree with their case's outcome"))

    def record_fields(self, item: dict[str, Any], classes: list[str]) -> dict[str, Any]:
        return {"time": float(item["time"]), "event": int(item["event"])}

    def check_table(self, table: SlideTable) -> None:
        if not any(r.event for r in table.records):
            raise SlideTableError(f"{table.csv_file}: all {len(table.records)} usable slides are censored "
                                  "(event=0): survival needs observed events")

    def stratum(self, table: SlideTable) -> tuple[str, np.ndarray]:
        return "event", np.array([r.event for r in table.records])

    def make_targets(self, table: SlideTable) -> SurvivalTargets:
        return SurvivalTargets(self.n_bins)

    def check_eval_part(self, records: Sequence[SlideRecord], where: str, table: SlideTable) -> None:
        if not any(r.event for r in records):
            raise SplitError(f"{where}: all {len(records)} slides are censored (event=0; "
                             f"{csv_lines(records)} of {table.csv_file.name}), the concordance index "
                             "is undefined; use fewer folds or more data")

    def part_counts(self, records: Sequence[SlideRecord], table: SlideTable) -> dict[str, Any]:
        return {"events": int(sum(int(r.event) for r in records))}  # type: ignore[arg-type]

    def describe_table(self, table: SlideTable) -> str:
        events = sum(int(r.event) for r in table.records)  # type: ignore[arg-type]
        return f"{events} slides with an observed event, {len(table) - events} censored"

    def info(self, table: SlideTable) -> dict[str, Any]:
        return {"n_bins": self.n_bins, "alpha": self.alpha, "time_unit": self.time_unit}

    def train_params(self) -> dict[str, Any]:
        return {"n_bins": self.n_bins, "alpha": self.alpha}

    def registry_tags(self) -> dict[str, Any]:
        return {"data.time_unit": self.time_unit}

    def loss(self, targets: Any) -> nn.Module:
        return DiscreteTimeSurvivalLoss(alpha=self.alpha)

    def metric(self, table: SlideTable, loss: nn.Module | None = None) -> Any:
        from scripts.metrics import SurvivalMetrics

        from .metric_inputs import survival_metric_inputs

        return SurvivalMetrics(case_ids=table.case_ids, output_transform=survival_metric_inputs(loss))  # type: ignore[arg-type]

    def outputs(self, table: SlideTable) -> SurvivalOutputs:
        return SurvivalOutputs(table, self.time_unit)

    def ensemble_row(self, slide_id: str, logits: dict[int, torch.Tensor], infos: dict[int, dict[str, Any]]
                     ) -> dict[str, Any]:
        """``risk`` (mean of the fold models' ``-sum_j S_j``), ``risk_fold_<k>``, and the ensemble's survival
        curve at the union of the fold models' bin edges (``survival_times``, ``survival``)."""
        curves, risks = [], {}
        for k in sorted(logits):
            _, survival, risk = survival_outputs(logits[k][None])
            risks[k] = float(risk)
            curves.append((infos[k]["bin_edges"], survival[0].tolist()))
        times, survival_curve = ensemble_survival_curve(curves)
        return {"slide_id": slide_id, "risk": float(np.mean(list(risks.values()))),
                **{f"risk_fold_{k}": r for k, r in risks.items()}, "survival_times": times, "survival": survival_curve}

    def ensemble_columns(self, folds: Sequence[int]) -> list[str]:
        return ["slide_id", "risk", *(f"risk_fold_{k}" for k in folds)]

    def serving_columns(self, folds: Sequence[int]) -> list[tuple[str, str]]:
        return [*super().serving_columns(folds), ("survival_times", "double[]"), ("survival", "double[]")]

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> SurvivalTask:
        network = info.get("network") or {}
        return cls(n_bins=int(info.get("n_bins", network.get("num_outputs", 4))), alpha=float(info.get("alpha", 0.15)),
                   time_unit=str(info.get("time_unit", "")))
