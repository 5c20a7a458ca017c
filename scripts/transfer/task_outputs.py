"""What each task writes about a set of predictions: per-slide rows, scores, and its figure.

Each task (:class:`scripts.transfer.TransferTask`) picks its class with ``outputs()``:

- subtyping: ``predictions.csv`` (true and predicted class, class probabilities), the confusion matrix
  (JSON counts and ``confusion_matrix.png``);
- survival: ``predictions.csv`` (time, event, time bin, risk, survival per bin, risk group), the case-level
  concordance index, and ``kaplan_meier.png``: Kaplan-Meier curves of the low/high-risk cases (median split of
  the cases' mean risk) with the log-rank p-value.

The same code serves one fold's test part and the pool of every fold's test part (cross-validation summary).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scripts.metrics import (
    case_level,
    classification_scores,
    concordance_index,
    confusion_matrix_counts,
    median_risk_groups,
    plot_confusion_matrix,
    plot_kaplan_meier,
)

from .losses import survival_outputs
from .slide_table import SlideTable

__all__ = ["SubtypingOutputs", "SurvivalOutputs", "read_csv_rows", "task_outputs"]


def read_csv_rows(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def _fmt(value: float) -> str:
    return f"{value:.6g}"


class SubtypingOutputs:
    """Rows, scores and the confusion matrix of class predictions.

    Args:
        table: the slides (class names, case ids).
    """

    figure_name = "confusion_matrix.png"

    def __init__(self, table: SlideTable) -> None:
        self.table = table
        self.classes = list(table.classes)

    @property
    def columns(self) -> list[str]:
        return ["slide_id", "case_id", "label", "predicted", *(f"prob_{c}" for c in self.classes)]

    def rows(self, logits: torch.Tensor, targets: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        """One row per slide of a batch: ``logits [B, C]``, ``targets["index"]``, ``targets["label"]``."""
        probs = torch.softmax(logits.detach().float().cpu(), dim=1).numpy()
        rows = []
        for i, index in enumerate(targets["index"].cpu().tolist()):
            record = self.table.records[index]
            row = {"slide_id": record.slide_id, "case_id": record.case_id,
                   "label": self.classes[int(record.label)],  # type: ignore[arg-type]
                   "predicted": self.classes[int(probs[i].argmax())]}
            row.update({f"prob_{c}": _fmt(float(p)) for c, p in zip(self.classes, probs[i])})
            rows.append(row)
        return rows

    def report(self, rows: Sequence[dict[str, Any]], folder: str | os.PathLike[str], title: str) -> dict[str, Any]:
        """Scores, confusion matrix (JSON-ready) and ``confusion_matrix.png`` in ``folder``."""
        labels = np.array([self.classes.index(r["label"]) for r in rows])
        probs = np.array([[float(r[f"prob_{c}"]) for c in self.classes] for r in rows])
        scores = classification_scores(labels, probs)
        matrix = confusion_matrix_counts(labels, probs.argmax(axis=1), len(self.classes))
        plot_confusion_matrix(matrix, self.classes, Path(folder) / self.figure_name, title=title)
        return {"metrics": scores, "confusion_matrix": {"classes": self.classes, "rows_true_columns_predicted": matrix},
                "num_slides": len(rows)}

    def pooled_report(self, rows: Sequence[dict[str, Any]], folder: str | os.PathLike[str], title: str
                      ) -> dict[str, Any]:
        """:meth:`report` over several folds' rows (probabilities are on one scale)."""
        return self.report(rows, folder, title)


class SurvivalOutputs:
    """Rows, case-level concordance and the Kaplan-Meier figure of hazard predictions.

    Args:
        table: the slides (case ids, times, events).
        time_unit: label of the time axis (e.g. ``"months"``).
    """

    figure_name = "kaplan_meier.png"

    def __init__(self, table: SlideTable, time_unit: str = "") -> None:
        self.table = table
        self.time_unit = time_unit

    columns = ["slide_id", "case_id", "time", "event", "bin", "risk", "risk_group", "survival"]

    def rows(self, logits: torch.Tensor, targets: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        """One row per slide: ``logits [B, K]``, ``targets["index"]`` (and ``"bin"`` when known)."""
        _, survival, risk = survival_outputs(logits.detach().float().cpu())
        bins = targets["bin"].cpu().tolist() if "bin" in targets else [""] * len(risk)
        rows = []
        for i, index in enumerate(targets["index"].cpu().tolist()):
            record = self.table.records[index]
            rows.append({"slide_id": record.slide_id, "case_id": record.case_id, "time": _fmt(float(record.time)),  # type: ignore[arg-type]
                         "event": int(record.event), "bin": bins[i], "risk": _fmt(float(risk[i])),  # type: ignore[arg-type]
                         "survival": " ".join(_fmt(float(s)) for s in survival[i])})
        return rows

    def report(self, rows: list[dict[str, Any]], folder: str | os.PathLike[str], title: str) -> dict[str, Any]:
        """Case-level c-index and log-rank test, ``kaplan_meier.png``; sets each row's ``risk_group``."""
        cases = case_level([r["case_id"] for r in rows], [float(r["time"]) for r in rows],
                           [int(r["event"]) for r in rows], [float(r["risk"]) for r in rows])
        high = median_risk_groups(cases.risks)
        group_of = {case: ("high" if h else "low") for case, h in zip(cases.case_ids, high)}
        for row in rows:
            row["risk_group"] = row.get("risk_group") or group_of[row["case_id"]]
        return self._report_cases(cases.case_ids, cases.times, cases.events, cases.risks,
                                  np.array([group_of[c] == "high" for c in cases.case_ids]), folder, title,
                                  num_slides=len(rows))

    def pooled_report(self, rows: list[dict[str, Any]], folder: str | os.PathLike[str], title: str) -> dict[str, Any]:
        """Like :meth:`report` over several folds' rows, keeping each fold's own median split (``risk_group``).

        Risks of different fold models are not on one scale, so the pooled c-index is not reported here
        (the summary averages the folds' c-indices instead).
        """
        cases = case_level([r["case_id"] for r in rows], [float(r["time"]) for r in rows],
                           [int(r["event"]) for r in rows], [float(r["risk"]) for r in rows])
        group_of = {r["case_id"]: r["risk_group"] for r in rows}
        high = np.array([group_of[c] == "high" for c in cases.case_ids])
        report = self._report_cases(cases.case_ids, cases.times, cases.events, cases.risks, high, folder, title,
                                    num_slides=len(rows), with_c_index=False)
        return report

    def _report_cases(self, case_ids: list[str], times: np.ndarray, events: np.ndarray, risks: np.ndarray,
                      high: np.ndarray, folder: str | os.PathLike[str], title: str, num_slides: int,
                      with_c_index: bool = True) -> dict[str, Any]:
        km = plot_kaplan_meier(times, events, high, Path(folder) / self.figure_name, title=title,
                               time_unit=self.time_unit)
        metrics: dict[str, float] = {}
        if with_c_index:
            try:
                metrics["c_index"] = concordance_index(times, events, risks)
            except ValueError:
                metrics["c_index"] = float("nan")
        metrics["logrank_p"] = km.pop("logrank_p")
        return {"metrics": metrics, "risk_groups": km, "num_slides": num_slides, "num_cases": len(case_ids),
                "num_events": int(np.sum(events))}


def task_outputs(table: SlideTable) -> Any:
    """The outputs of the table's task (:meth:`scripts.transfer.TransferTask.outputs`)."""
    return table.task.outputs(table)
