"""The grounding table: one row per (benchmark, run), as markdown and as JSON.

Runs per benchmark: ``references`` (the findings reader on the reference test reports, so 1.00 is the
scoring's ceiling), ``model`` (the report bundle on true pairs), ``control`` (the same on class-balanced
shuffled pairs), ``ABMIL`` (one MIL classifier per finding, cells "accuracy / balanced accuracy") and
``chance`` (the majority value's share of the test slides).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .findings import FINDINGS

__all__ = ["COLUMNS", "FINDING_HEADERS", "TableRow", "markdown_table"]

#: Finding -> its column header.
FINDING_HEADERS: dict[str, str] = {
    "diagnosis": "diagnosis",
    "grade": "grade",
    "margin": "margin",
    "lymphovascular_invasion": "LVI",
    "lymph_nodes": "lymph nodes",
}

#: Every column of the markdown table, in order.
COLUMNS: tuple[str, ...] = (
    "benchmark", "run", *FINDING_HEADERS.values(), "BLEU-4", "ROUGE-L", "dx written", "epochs best/run",
    "wall s", "seed", "bags tr/va/te", "patches/bag", "D",
)


@dataclass
class TableRow:
    """One row; None shows as "–".

    Attributes:
        benchmark, run: the row's names.
        accuracy: finding -> accuracy (report findings for model/control, classifier accuracy for ABMIL).
        balanced_accuracy: finding -> balanced accuracy (ABMIL only).
        bleu_4, rouge_l: test text scores (model/control).
        diagnoses_written: distinct diagnoses in the generated reports, and of ``diagnoses_total``.
        best_epoch, epochs_run: the kept epoch and the epochs trained.
        wall_seconds: training + evaluation (model/control) or training of all findings (ABMIL).
        seed, bags, patches, feature_dim: the benchmark's seed and sizes.
    """

    benchmark: str
    run: str
    accuracy: dict[str, float] = field(default_factory=dict)
    balanced_accuracy: dict[str, float] = field(default_factory=dict)
    bleu_4: float | None = None
    rouge_l: float | None = None
    diagnoses_written: int | None = None
    diagnoses_total: int | None = None
    best_epoch: int | None = None
    epochs_run: int | None = None
    wall_seconds: float | None = None
    seed: int | str | None = None
    bags: str | None = None
    patches: str | None = None
    feature_dim: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _number(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _finding_cell(row: TableRow, finding: str) -> str:
    if finding not in row.accuracy:
        return "–"
    cell = _number(row.accuracy[finding])
    if finding in row.balanced_accuracy:
        cell += f" / {_number(row.balanced_accuracy[finding])}"
    return cell


def _cells(row: TableRow) -> list[str]:
    written = "–" if row.diagnoses_written is None else f"{row.diagnoses_written} of {row.diagnoses_total}"
    epochs = "–" if row.epochs_run is None and row.best_epoch is None else (
        f"{row.best_epoch if row.best_epoch is not None else '–'}/{row.epochs_run if row.epochs_run else '–'}")
    return [
        row.benchmark, row.run, *(_finding_cell(row, f) for f in FINDINGS), _number(row.bleu_4, 3),
        _number(row.rouge_l, 3), written, epochs, _number(row.wall_seconds, 0),
        "–" if row.seed is None else str(row.seed), row.bags or "–", row.patches or "–",
        "–" if row.feature_dim is None else str(row.feature_dim),
    ]


def markdown_table(rows: list[TableRow]) -> str:
    """The rows as one GitHub markdown table (header included)."""
    rule = "|" + "|".join("---" if i < 2 else "---:" for i in range(len(COLUMNS))) + "|"
    lines = ["| " + " | ".join(COLUMNS) + " |", rule]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"
