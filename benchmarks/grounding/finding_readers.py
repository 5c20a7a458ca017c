"""Which text reader turns a report into findings for scoring.

- generated benchmarks: the project's findings extractor (``scripts.metrics.extract_findings``, with a
  ``FindingsVocabulary`` built from the benchmark's training reports, as for real data) when the installed
  ``scripts`` has it, its values mapped onto the benchmark's (:func:`benchmark_values`); otherwise the
  benchmark's own known-phrase reader (:mod:`benchmarks.grounding.phrase_findings`). The table names the one
  used, and its ``references`` row scores the reader itself on the reference reports;
- the demos: the demo's own diagnosis phrases (``scripts.demo.reports.diagnoses_in_text``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from scripts.text import clean_report

from .phrase_findings import read_findings

__all__ = ["EXTRACTOR_NAME", "PHRASES_NAME", "FindingsReader", "benchmark_reader", "benchmark_values", "demo_reader"]

EXTRACTOR_NAME = "scripts.metrics.extract_findings"
PHRASES_NAME = "known phrases (benchmarks.grounding.phrase_findings; the findings extractor is not installed)"

_DIFFERENTIATION = {"well differentiated": "1", "moderately differentiated": "2", "poorly differentiated": "3"}
_GRADE_NUMBER = re.compile(r"^(?:grade|isup|fuhrman) ([123])$")


@dataclass(frozen=True)
class FindingsReader:
    """A named function ``text -> {finding: value or None}``."""

    name: str
    read: Callable[[str], dict[str, str | None]]


def benchmark_values(found: Mapping[str, Any], diagnoses: Sequence[str]) -> dict[str, str | None]:
    """The extractor's categorical findings (``ReportFindings.categorical()``) in the benchmark's values.

    The diagnosis phrase maps to the benchmark diagnosis whose name or synonym it contains; ``"grade 2"``,
    ``"isup 2"``, ``"fuhrman 2"`` and differentiation words map to ``"1"``-``"3"``; a ``"close"`` margin is an
    uninvolved (``"negative"``) one. Anything else is None (scored as wrong).
    """
    diagnosis = found.get("diagnosis")
    grade = found.get("grade")
    number = _GRADE_NUMBER.match(grade) if grade else None
    margin = found.get("margin")
    return {
        "diagnosis": read_findings(diagnosis, diagnoses)["diagnosis"] if diagnosis else None,
        "grade": number.group(1) if number else _DIFFERENTIATION.get(grade or ""),
        "margin": "negative" if margin == "close" else margin,
        "lymphovascular_invasion": found.get("lymphovascular_invasion"),
        "lymph_nodes": found.get("lymph_node_status"),
    }


def _extracted(text: str, extract: Callable[..., Any], vocabulary: Any, diagnoses: tuple[str, ...]
               ) -> dict[str, str | None]:
    return benchmark_values(extract(text, vocabulary).categorical(), diagnoses)


def benchmark_reader(diagnoses: Sequence[str], annotation_file: str | os.PathLike[str] | None = None,
                     use_extractor: bool = True) -> FindingsReader:
    """The reader for a generated benchmark with ``diagnoses``.

    Args:
        diagnoses: the benchmark's diagnosis names.
        annotation_file: its annotation; the extractor's vocabulary comes from the train reports.
        use_extractor: False forces the known-phrase reader.
    """
    diagnoses = tuple(diagnoses)
    if use_extractor:
        try:
            from scripts.metrics import FindingsVocabulary, extract_findings
        except ImportError:
            pass
        else:
            vocabulary = FindingsVocabulary.from_annotation(annotation_file) if annotation_file else None
            return FindingsReader(EXTRACTOR_NAME + (" + vocabulary of the train reports" if vocabulary else ""),
                                  partial(_extracted, extract=extract_findings, vocabulary=vocabulary,
                                          diagnoses=diagnoses))
    return FindingsReader(PHRASES_NAME, partial(read_findings, diagnoses=diagnoses))


def _demo_diagnosis(text: str) -> dict[str, str | None]:
    from scripts.demo.reports import diagnoses_in_text

    found = diagnoses_in_text(clean_report(text))
    return {"diagnosis": found[0] if len(found) == 1 else None}


def demo_reader() -> FindingsReader:
    """The reader for the embedded demos (diagnosis only)."""
    return FindingsReader("demo diagnosis phrases (scripts.demo.reports)", _demo_diagnosis)
