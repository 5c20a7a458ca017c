"""Handlers that write what a person reads: ``eval/metrics.json``, ``eval/reports.csv``, per-slide reports."""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events

from scripts.atomic_io import atomic_write_json, atomic_write_text
from scripts.ids import UnsafeIdError, output_file

logger = logging.getLogger("histgen.outputs")


def _csv_text(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    # a UTF-8 byte-order mark lets spreadsheet programs detect the encoding
    return "\ufeff" + buffer.getvalue()


class EpochRowCollector:
    """Collects one row per item from an engine's iterations; acts on them when the epoch completes.

    Subclasses give :meth:`rows_from` (an iteration's output -> rows) and ``__call__`` (what to do with
    ``self.rows`` at ``EPOCH_COMPLETED``). The rows are cleared when an epoch starts.
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _reset(self, engine: Engine) -> None:
        self.rows = []

    def _collect(self, engine: Engine) -> None:
        self.rows.extend(self.rows_from(engine.state.output))

    def rows_from(self, output: Any) -> list[dict[str, Any]]:
        raise NotImplementedError

    def __call__(self, engine: Engine) -> None:
        raise NotImplementedError


class _CollectReports(EpochRowCollector):
    """Collects ids, generated and reference texts from an evaluator's iterations."""

    def rows_from(self, output: Any) -> list[dict[str, Any]]:
        refs = output.get("references") or [None] * len(output["hypotheses"])
        return [{"id": slide_id, "generated": hyp, "reference": ref}
                for slide_id, hyp, ref in zip(output["slide_ids"], output["hypotheses"], refs)]


class EvaluationWriter(_CollectReports):
    """Writes ``<output_dir>/metrics.json`` and ``<output_dir>/reports.csv`` (``id, generated, reference``).

    Args:
        output_dir: the ``eval`` folder.
        info: extra fields for ``metrics.json`` (split, checkpoint, dataset...).
    """

    def __init__(self, output_dir: str | os.PathLike[str], info: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.output_dir = Path(output_dir)
        self.info = info or {}

    def __call__(self, engine: Engine) -> None:
        metrics = {k: float(v) for k, v in engine.state.metrics.items() if isinstance(v, (int, float))}
        atomic_write_text(self.output_dir / "reports.csv", _csv_text(self.rows, ["id", "generated", "reference"]))
        atomic_write_json(self.output_dir / "metrics.json", {**self.info, "num_reports": len(self.rows),
                                                              "metrics": metrics})
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        logger.info("%d reports scored: %s -> %s", len(self.rows), shown, self.output_dir / "metrics.json")


class ReportWriter(_CollectReports):
    """Inference: one ``<id>.txt`` per slide plus ``reports.csv`` (``id, report``) in ``output_dir``."""

    def __init__(self, output_dir: str | os.PathLike[str]) -> None:
        super().__init__()
        self.output_dir = Path(output_dir)

    def __call__(self, engine: Engine) -> None:
        for row in self.rows:
            try:  # an id is a file name here: one that would leave output_dir is refused, the others go on
                path = output_file(self.output_dir, str(row["id"]), ".txt", "report id")
            except UnsafeIdError as err:
                logger.error("%s; its report is only in reports.csv", err)
                continue
            atomic_write_text(path, row["generated"] + "\n")
        table = [{"id": r["id"], "report": r["generated"]} for r in self.rows]
        atomic_write_text(self.output_dir / "reports.csv", _csv_text(table, ["id", "report"]))
        logger.info("wrote %d reports to %s", len(self.rows), self.output_dir)
