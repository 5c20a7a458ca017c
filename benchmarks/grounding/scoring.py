"""Scoring generated test reports against the slides' true findings.

A finding is right when the reader (:mod:`benchmarks.grounding.finding_readers`) reads the slide's true value
from the generated text; a report that states no value, or several, is wrong. ``chance`` is the best constant
answer's accuracy on the same test slides (the majority value's share).
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .dataset import read_labels
from .finding_readers import FindingsReader, benchmark_reader, demo_reader
from .findings import FINDINGS, finding_values
from .params import BenchmarkParams

__all__ = ["BenchmarkTruth", "ReportScores", "demo_truth", "read_reports_csv", "score_reports", "synthetic_truth"]


@dataclass(frozen=True)
class BenchmarkTruth:
    """What the scores compare with.

    Attributes:
        findings: the findings scored, in table order.
        classes: finding -> its values.
        splits: split -> slide ids.
        values: slide id -> finding -> true value.
        reader: reads findings from text.
    """

    findings: tuple[str, ...]
    classes: dict[str, tuple[str, ...]]
    splits: dict[str, list[str]]
    values: dict[str, dict[str, str]]
    reader: FindingsReader

    def chance(self, split: str = "test") -> dict[str, float]:
        """Per finding, the majority value's share of ``split``."""
        ids = self.splits[split]
        return {f: Counter(self.values[i][f] for i in ids).most_common(1)[0][1] / len(ids) for f in self.findings}


@dataclass(frozen=True)
class ReportScores:
    """Per-finding accuracy of generated reports and how many diagnoses they name.

    Attributes:
        accuracy: finding -> share of test slides whose generated report states the true value.
        diagnoses_written: number of distinct diagnoses the generated reports name.
        unread: finding -> reports stating no (or a conflicting) value.
        num_reports: test reports scored.
        blind: finding -> the accuracy expected of reports that state the same mix of values without reading the
            slide: the sum over values of (share of reports stating it) x (share of slides that have it). A
            shuffled-pairs control that writes several values sits near this, which can be below ``chance``
            (the majority share, what a constant writer gets).
    """

    accuracy: dict[str, float]
    diagnoses_written: int
    unread: dict[str, int]
    num_reports: int
    blind: dict[str, float]


def synthetic_truth(params: BenchmarkParams, labels_file: str | os.PathLike[str],
                    annotation_file: str | os.PathLike[str] | None = None, use_extractor: bool = True
                    ) -> BenchmarkTruth:
    """The truth of a generated benchmark (its ``labels.csv``) and its reader
    (:func:`~benchmarks.grounding.finding_readers.benchmark_reader`; ``annotation_file`` gives the extractor
    its vocabulary)."""
    labels = read_labels(labels_file)
    splits: dict[str, list[str]] = {}
    for slide_id, row in labels.items():
        splits.setdefault(row["split"], []).append(slide_id)
    return BenchmarkTruth(
        findings=FINDINGS,
        classes={f: finding_values(f, params.diagnoses) for f in FINDINGS},
        splits=splits,
        values={slide_id: {f: row[f] for f in FINDINGS} for slide_id, row in labels.items()},
        reader=benchmark_reader(params.diagnoses, annotation_file, use_extractor),
    )


def demo_truth(annotation_file: str | os.PathLike[str]) -> BenchmarkTruth:
    """The truth of an embedded demo (its true-pair annotation's ``diagnosis`` per slide)."""
    from scripts.demo.tissue_classes import DIAGNOSIS_CLASSES

    annotation = json.loads(Path(annotation_file).read_text(encoding="utf-8"))
    splits = {s: [item["id"] for item in annotation[s]] for s in ("train", "val", "test")}
    values = {item["id"]: {"diagnosis": item["diagnosis"]} for s in ("train", "val", "test") for item in annotation[s]}
    return BenchmarkTruth(("diagnosis",), {"diagnosis": tuple(DIAGNOSIS_CLASSES)}, splits, values, demo_reader())


def read_reports_csv(path: str | os.PathLike[str]) -> dict[str, str]:
    """``eval/reports.csv`` -> ``{id: generated tokens}`` (``generated_tokens``; ``generated`` in older tables)."""
    with Path(path).open(newline="", encoding="utf-8-sig") as handle:
        return {row["id"]: row.get("generated_tokens", row["generated"]) for row in csv.DictReader(handle)}


def score_reports(generated: dict[str, str], truth: BenchmarkTruth, split: str = "test") -> ReportScores:
    """Score generated reports (``{slide id: text}``) on ``split``'s slides.

    Raises:
        ValueError: a slide of the split has no generated report.
    """
    ids = truth.splits[split]
    missing = [i for i in ids if i not in generated]
    if missing:
        raise ValueError(f"{len(missing)} {split} slide(s) have no generated report, e.g. {missing[:3]}")
    read = {i: truth.reader.read(generated[i]) for i in ids}
    accuracy = {f: sum(read[i].get(f) == truth.values[i][f] for i in ids) / len(ids) for f in truth.findings}
    unread = {f: sum(read[i].get(f) is None for i in ids) for f in truth.findings}
    written = {read[i]["diagnosis"] for i in ids if read[i].get("diagnosis") is not None}
    blind = {}
    for f in truth.findings:
        stated = Counter(read[i].get(f) for i in ids if read[i].get(f) is not None)
        true = Counter(truth.values[i][f] for i in ids)
        blind[f] = sum(count * true[value] for value, count in stated.items()) / len(ids) ** 2
    return ReportScores(accuracy, len(written), unread, len(ids), blind)
