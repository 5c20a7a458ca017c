"""Handlers that write what a person reads: ``eval/metrics.json``, ``eval/reports.csv``, ``eval/findings.csv``,
per-slide reports and their findings (``<id>.txt``, ``<id>.findings.json``)."""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import os
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events

from scripts.atomic_io import atomic_write_json, atomic_write_text
from scripts.ids import UnsafeIdError, output_file
from scripts.metrics import CATEGORICAL_FINDINGS, FindingsVocabulary, ReportFindings, extract_findings
from scripts.metrics.findings_scores import findings_comparison

logger = logging.getLogger("histgen.outputs")

#: Finding columns of ``reports.csv`` (inference): every field of :class:`scripts.metrics.ReportFindings`.
FINDING_COLUMNS = [field.name for field in dataclasses.fields(ReportFindings)]

#: Columns of ``eval/findings.csv``: the slide id, then reference / generated / correct per finding.
FINDINGS_TABLE_COLUMNS = ["id"] + [
    f"{name}_{part}" for name in CATEGORICAL_FINDINGS for part in ("reference", "generated", "correct")
] + ["all_correct"]


def _csv_text(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    # a UTF-8 byte-order mark lets spreadsheet programs detect the encoding
    return "\ufeff" + buffer.getvalue()


def finding_cells(findings: ReportFindings | None) -> dict[str, Any]:
    """``{column: value}`` for :data:`FINDING_COLUMNS` (empty cells where the report does not say)."""
    values = findings.to_dict() if findings is not None else {}
    return {name: "" if values.get(name) is None else values[name] for name in FINDING_COLUMNS}


def write_findings_json(output_dir: Path, slide_id: str, findings: ReportFindings) -> Path:
    """``<output_dir>/<slide_id>.findings.json``: ``{"id": ..., "findings": {...}}`` (atomic)."""
    path = output_file(output_dir, slide_id, ".findings.json", "report id")
    return atomic_write_json(path, {"id": slide_id, "findings": findings.to_dict()})


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
    """Writes ``metrics.json``, ``reports.csv`` (``id, generated, reference``) and ``findings.csv``.

    ``findings.csv`` has one row per report: ``id``, then per categorical finding its reference value, its
    generated value and ``yes``/``no`` (empty where the reference does not state it), then ``all_correct``
    (:data:`FINDINGS_TABLE_COLUMNS`).

    Args:
        output_dir: the ``eval`` folder.
        info: extra fields for ``metrics.json`` (split, checkpoint, dataset...).
        findings_vocabulary: known diagnoses for reading the findings (the model's
            ``findings_vocabulary.json``); None reads rule-based phrases.
        write_findings: False skips ``findings.csv``.
    """

    def __init__(self, output_dir: str | os.PathLike[str], info: dict[str, Any] | None = None,
                 findings_vocabulary: FindingsVocabulary | None = None, write_findings: bool = True) -> None:
        super().__init__()
        self.output_dir = Path(output_dir)
        self.info = info or {}
        self.findings_vocabulary = findings_vocabulary
        self.write_findings = write_findings

    def findings_rows(self) -> list[dict[str, Any]]:
        rows = []
        for row in self.rows:
            generated = extract_findings(row["generated"], self.findings_vocabulary)
            reference = (extract_findings(row["reference"], self.findings_vocabulary)
                         if row["reference"] is not None else None)
            rows.append({"id": row["id"], **findings_comparison(generated, reference)})
        return rows

    def __call__(self, engine: Engine) -> None:
        metrics = {k: float(v) for k, v in engine.state.metrics.items() if isinstance(v, (int, float))}
        atomic_write_text(self.output_dir / "reports.csv", _csv_text(self.rows, ["id", "generated", "reference"]))
        if self.write_findings:
            table = self.findings_rows()
            atomic_write_text(self.output_dir / "findings.csv", _csv_text(table, FINDINGS_TABLE_COLUMNS))
            wrong = sum(r["all_correct"] == "no" for r in table)
            logger.info("findings of %d reports (%d with a wrong finding) -> %s", len(table), wrong,
                        self.output_dir / "findings.csv")
        atomic_write_json(self.output_dir / "metrics.json", {**self.info, "num_reports": len(self.rows),
                                                              "metrics": metrics})
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if not k.endswith("_eligible"))
        logger.info("%d reports scored: %s -> %s", len(self.rows), shown, self.output_dir / "metrics.json")


class ReportWriter(_CollectReports):
    """Inference: ``<id>.txt`` and ``<id>.findings.json`` per slide plus ``reports.csv`` in ``output_dir``.

    ``reports.csv`` = ``id, report`` and one column per finding (:data:`FINDING_COLUMNS`).

    Args:
        output_dir: the reports folder.
        findings_vocabulary: known diagnoses for reading the findings; None reads rule-based phrases.
        write_findings: False writes neither the findings files nor their columns.
    """

    def __init__(self, output_dir: str | os.PathLike[str], findings_vocabulary: FindingsVocabulary | None = None,
                 write_findings: bool = True) -> None:
        super().__init__()
        self.output_dir = Path(output_dir)
        self.findings_vocabulary = findings_vocabulary
        self.write_findings = write_findings

    def write_reports(self) -> dict[str, dict[str, Any]]:
        """``<id>.txt`` (and ``<id>.findings.json``) per row; returns ``{id: finding cells}``."""
        cells: dict[str, dict[str, Any]] = {}
        for row in self.rows:
            try:  # an id is a file name here: one that would leave output_dir is refused, the others go on
                path = output_file(self.output_dir, str(row["id"]), ".txt", "report id")
            except UnsafeIdError as err:
                logger.error("%s; its report is only in reports.csv", err)
                continue
            atomic_write_text(path, row["generated"] + "\n")
            if self.write_findings:
                findings = extract_findings(row["generated"], self.findings_vocabulary)
                write_findings_json(self.output_dir, row["id"], findings)
                cells[row["id"]] = finding_cells(findings)
        return cells

    @property
    def finding_columns(self) -> list[str]:
        return FINDING_COLUMNS if self.write_findings else []

    def __call__(self, engine: Engine) -> None:
        cells = self.write_reports()
        table = [{"id": r["id"], "report": r["generated"], **cells.get(r["id"], {})} for r in self.rows]
        atomic_write_text(self.output_dir / "reports.csv", _csv_text(table, ["id", "report", *self.finding_columns]))
        logger.info("wrote %d reports to %s", len(self.rows), self.output_dir)
