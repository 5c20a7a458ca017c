"""Handlers that write what a person reads: ``eval/metrics.json``, ``eval/reports.csv``, ``eval/findings.csv``,
per-slide reports and their findings (``<id>.txt``, ``<id>.findings.json``).

Reports are written twice: as prose (``report`` / ``generated``: sentence case, punctuation attached,
:func:`scripts.text.prose.report_prose`) for a person, and as the model's tokens (``report_tokens`` /
``generated_tokens``) that the metrics and the findings reader use. ``reference`` is the annotation's own
text; ``reference_tokens`` is the tokenised form the scores compare against. Every report file and
``reports.csv`` carry the model's notice (:func:`scripts.engines.model_provenance.output_notice`): the
research-use notice, and ``SYNTHETIC-DATA MODEL — NOT FOR DIAGNOSIS`` for a model trained on synthetic data.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events

from scripts.atomic_io import atomic_write_csv, atomic_write_json, atomic_write_text
from scripts.ids import UnsafeIdError, output_file
from scripts.metrics import CATEGORICAL_FINDINGS, FindingsVocabulary, ReportFindings, extract_findings
from scripts.metrics.findings_scores import findings_comparison
from scripts.text.prose import report_prose

from .model_provenance import RESEARCH_NOTICE, SYNTHETIC_WARNING, is_synthetic, output_notice, provenance_summary

logger = logging.getLogger("histgen.outputs")

#: Finding columns of ``reports.csv`` (inference): every field of :class:`scripts.metrics.ReportFindings`.
FINDING_COLUMNS = [field.name for field in dataclasses.fields(ReportFindings)]

#: Columns of ``eval/findings.csv``: the slide id, then reference / generated / correct per finding.
FINDINGS_TABLE_COLUMNS = ["id"] + [
    f"{name}_{part}" for name in CATEGORICAL_FINDINGS for part in ("reference", "generated", "correct")
] + ["all_correct"]


def finding_cells(findings: ReportFindings | None) -> dict[str, Any]:
    """``{column: value}`` for :data:`FINDING_COLUMNS` (empty cells where the report does not say)."""
    values = findings.to_dict() if findings is not None else {}
    return {name: "" if values.get(name) is None else values[name] for name in FINDING_COLUMNS}


#: ``reports.csv`` columns of inference before the finding columns (feature mode).
REPORT_TABLE_COLUMNS = ["id", "report", "report_tokens", "notice"]
#: ``eval/reports.csv`` columns.
EVALUATION_TABLE_COLUMNS = ["id", "generated", "generated_tokens", "reference", "reference_tokens", "notice"]


def report_file_text(tokens: str, provenance: dict[str, Any] | None = None) -> str:
    """The text of ``<id>.txt``: the synthetic-data warning first (when it applies), the report as prose, its
    tokens, the research-use notice and the model's one-line provenance."""
    lines = [f"{SYNTHETIC_WARNING} (trained only on synthetic slides)"] if is_synthetic(provenance) else []
    lines += [report_prose(tokens), "", f"Tokens (the form the metrics score): {tokens}", "", RESEARCH_NOTICE,
              f"Provenance: {provenance_summary(provenance)}"]
    return "\n".join(lines) + "\n"


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
        count = len(output["hypotheses"])
        refs = output.get("references") or [None] * count
        raw = output.get("raw_reports") or [None] * count
        return [{"id": slide_id, "generated": hyp, "reference": ref, "raw_reference": text}
                for slide_id, hyp, ref, text in zip(output["slide_ids"], output["hypotheses"], refs, raw)]


class EvaluationWriter(_CollectReports):
    """Writes ``metrics.json``, ``reports.csv`` (:data:`EVALUATION_TABLE_COLUMNS`) and ``findings.csv``.

    ``reports.csv``: ``generated`` is the report as prose, ``generated_tokens`` the model's tokens (scored),
    ``reference`` the annotation's own text, ``reference_tokens`` its tokenised form (scored), ``notice``
    the model's notice.

    ``findings.csv`` has one row per report: ``id``, then per categorical finding its reference value, its
    generated value and ``yes``/``no`` (empty where the reference does not state it), then ``all_correct``
    (:data:`FINDINGS_TABLE_COLUMNS`).

    Args:
        output_dir: the ``eval`` folder.
        info: extra fields for ``metrics.json`` (split, checkpoint, dataset...).
        findings_vocabulary: known diagnoses for reading the findings (the model's
            ``findings_vocabulary.json``); None reads rule-based phrases.
        write_findings: False skips ``findings.csv``.
        provenance: the model's ``provenance.json`` record (its notice goes into ``reports.csv``).
    """

    def __init__(self, output_dir: str | os.PathLike[str], info: dict[str, Any] | None = None,
                 findings_vocabulary: FindingsVocabulary | None = None, write_findings: bool = True,
                 provenance: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.output_dir = Path(output_dir)
        self.info = info or {}
        self.findings_vocabulary = findings_vocabulary
        self.write_findings = write_findings
        self.provenance = provenance

    def table_rows(self) -> list[dict[str, Any]]:
        """Rows of ``reports.csv``: prose and tokens of the generated and the reference report."""
        notice = output_notice(self.provenance)
        return [{"id": row["id"], "generated": report_prose(row["generated"]), "generated_tokens": row["generated"],
                 "reference": row["raw_reference"] if row.get("raw_reference") else "",
                 "reference_tokens": row["reference"] if row["reference"] is not None else "", "notice": notice}
                for row in self.rows]

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
        atomic_write_csv(self.output_dir / "reports.csv", self.table_rows(), EVALUATION_TABLE_COLUMNS)
        if self.write_findings:
            table = self.findings_rows()
            atomic_write_csv(self.output_dir / "findings.csv", table, FINDINGS_TABLE_COLUMNS)
            wrong = sum(r["all_correct"] == "no" for r in table)
            logger.info("findings of %d reports (%d with a wrong finding) -> %s", len(table), wrong,
                        self.output_dir / "findings.csv")
        atomic_write_json(self.output_dir / "metrics.json", {**self.info, "num_reports": len(self.rows),
                                                              "metrics": metrics})
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if not k.endswith("_eligible"))
        logger.info("%d reports scored: %s -> %s", len(self.rows), shown, self.output_dir / "metrics.json")


class ReportWriter(_CollectReports):
    """Inference: ``<id>.txt`` and ``<id>.findings.json`` per slide plus ``reports.csv`` in ``output_dir``.

    ``reports.csv`` = :data:`REPORT_TABLE_COLUMNS` (``id, report`` as prose, ``report_tokens`` as the model
    wrote it, ``notice``) and one column per finding (:data:`FINDING_COLUMNS`, read from the tokens).
    ``<id>.txt`` is :func:`report_file_text`.

    Args:
        output_dir: the reports folder.
        findings_vocabulary: known diagnoses for reading the findings; None reads rule-based phrases.
        write_findings: False writes neither the findings files nor their columns.
        provenance: the model's ``provenance.json`` record (:func:`scripts.engines.log_model_provenance`);
            None: unknown (the research-use notice only).
    """

    def __init__(self, output_dir: str | os.PathLike[str], findings_vocabulary: FindingsVocabulary | None = None,
                 write_findings: bool = True, provenance: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.output_dir = Path(output_dir)
        self.findings_vocabulary = findings_vocabulary
        self.write_findings = write_findings
        self.provenance = provenance

    @property
    def notice(self) -> str:
        """The ``notice`` cell of every row (:func:`scripts.engines.model_provenance.output_notice`)."""
        return output_notice(self.provenance)

    def report_cells(self, tokens: str) -> dict[str, str]:
        """``report`` (prose), ``report_tokens`` and ``notice`` cells of one report."""
        return {"report": report_prose(tokens) if tokens else "", "report_tokens": tokens, "notice": self.notice}

    def log_written(self, count: int) -> None:
        logger.info("wrote %d reports to %s", count, self.output_dir)
        if is_synthetic(self.provenance):
            logger.warning("%s: these %d reports come from a model trained only on synthetic slides", SYNTHETIC_WARNING,
                           count)

    def write_reports(self) -> dict[str, dict[str, Any]]:
        """``<id>.txt`` (and ``<id>.findings.json``) per row; returns ``{id: finding cells}``."""
        cells: dict[str, dict[str, Any]] = {}
        for row in self.rows:
            try:  # an id is a file name here: one that would leave output_dir is refused, the others go on
                path = output_file(self.output_dir, str(row["id"]), ".txt", "report id")
            except UnsafeIdError as err:
                logger.error("%s; its report is only in reports.csv", err)
                continue
            atomic_write_text(path, report_file_text(row["generated"], self.provenance))
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
        table = [{"id": r["id"], **self.report_cells(r["generated"]), **cells.get(r["id"], {})} for r in self.rows]
        atomic_write_csv(self.output_dir / "reports.csv", table, [*REPORT_TABLE_COLUMNS, *self.finding_columns])
        self.log_written(len(self.rows))
