"""Clinical correctness of generated reports: their findings against the findings of the reference reports.

Both texts go through :func:`~scripts.metrics.extract_findings` (the same rules, the same vocabulary), so
decoded (HistGen-cleaned) references are compared with decoded generated reports. Per categorical
finding ``<name>`` (:data:`~scripts.metrics.CATEGORICAL_FINDINGS`):

- ``finding_<name>_accuracy``: among the pairs whose *reference* states the finding, the share whose
  generated report states the same value (a generated report that does not say counts as wrong);
  NaN when no reference states it;
- ``finding_<name>_f1``: macro F1 over the classes the references use (one-vs-rest per class over those
  same pairs; a missing or other generated value is a miss for the reference's class);
- ``finding_<name>_eligible``: how many references state it.

Grades are compared by tier (:func:`~scripts.metrics.grade_tier`): "fuhrman 2", "isup 2", "grade 2" and
"moderately differentiated" are the same tier, so the system a writer chose is not scored as a wrong grade.

Summaries over the findings that at least one reference states: ``finding_mean_accuracy`` (mean of the
accuracies) and ``finding_macro_f1`` (mean of the per-finding F1s); NaN when no reference states any.

REG 2025 challenge keywords (:func:`clinical_keywords`): a report's findings as ``"name=value"`` strings
(the categorical findings plus the lymph-node counts; the tumour size is left out: cleaning scales it)
plus each word of its diagnosis. ``KEY`` of a pair is the Jaccard overlap of the two sets (1.0 when both
are empty: neither report states a finding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .findings_grades import grade_tier
from .findings_rules import CATEGORICAL_FINDINGS, ReportFindings, extract_findings
from .findings_vocabulary import FindingsVocabulary

__all__ = [
    "FINDING_SUMMARY_KEYS",
    "clinical_keywords",
    "compared_values",
    "findings_comparison",
    "findings_scores",
    "keyword_jaccard",
    "scores_from_findings",
]

#: The summary keys :func:`findings_scores` adds to the per-finding ones.
FINDING_SUMMARY_KEYS = ("finding_mean_accuracy", "finding_macro_f1")


def _macro_f1(pairs: list[tuple[str, str | None]]) -> float:
    """Macro F1 over the reference classes of ``(reference, generated)`` pairs."""
    classes = sorted({ref for ref, _ in pairs})
    scores = []
    for cls in classes:
        tp = sum(ref == cls and gen == cls for ref, gen in pairs)
        fp = sum(ref != cls and gen == cls for ref, gen in pairs)
        fn = sum(ref == cls and gen != cls for ref, gen in pairs)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def compared_values(findings: ReportFindings) -> dict[str, str | None]:
    """The categorical findings as scoring compares them (the grade as its tier)."""
    values = findings.categorical()
    values["grade"] = grade_tier(values["grade"])
    return values


def scores_from_findings(
    generated: Sequence[ReportFindings], references: Sequence[ReportFindings]
) -> dict[str, float]:
    """Per-finding accuracy, macro F1 and counts, and their summaries (see the module docstring)."""
    if len(generated) != len(references):
        raise ValueError(f"{len(generated)} generated findings but {len(references)} reference findings")
    result: dict[str, float] = {}
    accuracies, f1s = [], []
    gen_values = [compared_values(g) for g in generated]
    ref_values = [compared_values(r) for r in references]
    for name in CATEGORICAL_FINDINGS:
        pairs = [(ref[name], gen[name]) for gen, ref in zip(gen_values, ref_values) if ref[name] is not None]
        result[f"finding_{name}_eligible"] = float(len(pairs))
        if not pairs:
            result[f"finding_{name}_accuracy"] = math.nan
            result[f"finding_{name}_f1"] = math.nan
            continue
        accuracy = sum(ref == gen for ref, gen in pairs) / len(pairs)
        f1 = _macro_f1(pairs)  # type: ignore[arg-type]
        result[f"finding_{name}_accuracy"] = accuracy
        result[f"finding_{name}_f1"] = f1
        accuracies.append(accuracy)
        f1s.append(f1)
    result["finding_mean_accuracy"] = sum(accuracies) / len(accuracies) if accuracies else math.nan
    result["finding_macro_f1"] = sum(f1s) / len(f1s) if f1s else math.nan
    return result


def findings_scores(
    generated: Sequence[str], references: Sequence[str], vocabulary: FindingsVocabulary | None = None
) -> dict[str, float]:
    """:func:`scores_from_findings` of the findings extracted from two lists of report texts.

    Example:
        >>> scores = findings_scores(["invasive ductal carcinoma . margins negative ."],
        ...                          ["Invasive ductal carcinoma. Margins: involved."])
        >>> scores["finding_diagnosis_accuracy"], scores["finding_margin_accuracy"]
        (1.0, 0.0)
    """
    return scores_from_findings(
        [extract_findings(t, vocabulary) for t in generated], [extract_findings(t, vocabulary) for t in references]
    )


def clinical_keywords(findings: ReportFindings) -> set[str]:
    """The REG-style keyword set of one report's findings (see the module docstring)."""
    values: dict[str, Any] = findings.categorical()
    values["lymph_nodes_positive"] = findings.lymph_nodes_positive
    values["lymph_nodes_examined"] = findings.lymph_nodes_examined
    keywords = {f"{name}={value}" for name, value in values.items() if value is not None}
    if findings.diagnosis:
        keywords.update(findings.diagnosis.split())
    return keywords


def keyword_jaccard(a: set[str], b: set[str]) -> float:
    """|a & b| / |a | b|; 1.0 when both are empty."""
    union = a | b
    return len(a & b) / len(union) if union else 1.0


def findings_comparison(
    generated: ReportFindings, reference: ReportFindings | None
) -> dict[str, Any]:
    """One table row: ``<name>_reference``, ``<name>_generated`` and ``<name>_correct`` per categorical finding.

    ``_correct`` is ``"yes"``/``"no"`` where the reference states the finding, empty where it does not (or
    when there is no reference); ``all_correct`` is ``"yes"`` when every stated finding matches. Values are
    shown as written; grades are judged by tier (``"fuhrman 2"`` against ``"isup 2"`` is correct).
    """
    row: dict[str, Any] = {}
    gen = generated.categorical()
    ref = reference.categorical() if reference is not None else dict.fromkeys(CATEGORICAL_FINDINGS)
    gen_compared = compared_values(generated)
    ref_compared = compared_values(reference) if reference is not None else ref
    judged = []
    for name in CATEGORICAL_FINDINGS:
        row[f"{name}_reference"] = ref[name] or ""
        row[f"{name}_generated"] = gen[name] or ""
        if ref[name] is None:
            row[f"{name}_correct"] = ""
        else:
            judged.append(ref_compared[name] == gen_compared[name])
            row[f"{name}_correct"] = "yes" if judged[-1] else "no"
    row["all_correct"] = ("yes" if all(judged) else "no") if judged else ""
    return row
