"""Which text reader turns a report into findings for scoring.

- generated benchmarks: the project's findings extractor (``scripts.metrics.extract_findings``) when the
  installed ``scripts`` has it, mapped onto the benchmark's values; otherwise the benchmark's known-phrase
  reader (:mod:`benchmarks.grounding.phrase_findings`), and the table says which one scored it;
- the demos: the demo's own diagnosis phrases (``scripts.demo.reports.diagnoses_in_text``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from scripts.text import clean_report

from .phrase_findings import read_findings

__all__ = ["FindingsReader", "benchmark_reader", "demo_reader"]


@dataclass(frozen=True)
class FindingsReader:
    """A named function ``text -> {finding: value or None}``."""

    name: str
    read: Callable[[str], dict[str, str | None]]


def benchmark_reader(diagnoses: Sequence[str]) -> FindingsReader:
    """The reader for a generated benchmark with ``diagnoses``."""
    return FindingsReader("known phrases (benchmarks.grounding.phrase_findings)",
                          partial(read_findings, diagnoses=tuple(diagnoses)))


def _demo_diagnosis(text: str) -> dict[str, str | None]:
    from scripts.demo.reports import diagnoses_in_text

    found = diagnoses_in_text(clean_report(text))
    return {"diagnosis": found[0] if len(found) == 1 else None}


def demo_reader() -> FindingsReader:
    """The reader for the embedded demos (diagnosis only)."""
    return FindingsReader("demo diagnosis phrases (scripts.demo.reports)", _demo_diagnosis)
