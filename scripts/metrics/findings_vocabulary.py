"""Which findings values occur in a dataset: diagnosis and grade classes read from the training reports.

``FindingsVocabulary.from_annotation(annotation_file)`` runs :func:`~scripts.metrics.extract_findings` on
every training report, counts the diagnosis phrases (synonyms already merged by the extractor's word
normalisation: "infiltrating ductal carcinoma" counts as "invasive ductal carcinoma"), grades and pT/pN
stages, and keeps the values seen in at least ``min_count`` reports. A diagnosis phrase that is another
phrase of the same reports plus only words that name no subtype ("invasive", "classic", "conventional":
"invasive adenocarcinoma" beside "adenocarcinoma") is counted as that shorter phrase, so one diagnosis does
not become two classes (the finding heads could not tell them apart, and a generated "adenocarcinoma"
would score wrong against a reference "invasive adenocarcinoma"). Words that do name a subtype
("keratinizing", "clear cell") keep their own class. A bare generic head ("carcinoma",
"tumour", "neoplasm") never becomes a diagnosis class. The result is JSON
(``models/findings_vocabulary.json`` beside a trained model)::

    {"format": "histgen-findings-vocabulary-v1", "diagnoses": [...], "grades": [...],
     "pt_stages": [...], "pn_stages": [...], "min_count": 2, "num_reports": 160}

:meth:`FindingsVocabulary.classes` gives the ordered class names per finding (fixed value sets for margin,
lymph-node status, LVI and PNI); :meth:`FindingsVocabulary.labels` turns a report's findings into class
indices (-1 when absent or not a known class), the targets of auxiliary finding heads.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.atomic_io import atomic_write_json

from .findings_diagnosis import GENERIC_HEADS
from .findings_rules import CATEGORICAL_FINDINGS, ReportFindings, extract_findings

__all__ = ["FIXED_FINDING_CLASSES", "REDUNDANT_DIAGNOSIS_WORDS", "VOCABULARY_FORMAT", "FindingsVocabulary",
           "merge_redundant_diagnoses"]

VOCABULARY_FORMAT = "histgen-findings-vocabulary-v1"

#: Findings whose value set does not depend on the data.
FIXED_FINDING_CLASSES: dict[str, tuple[str, ...]] = {
    "margin": ("negative", "close", "positive"),
    "lymph_node_status": ("negative", "positive"),
    "lymphovascular_invasion": ("absent", "present"),
    "perineural_invasion": ("absent", "present"),
}


#: Diagnosis words that name no subtype: a phrase that differs from another only by these is the same class.
REDUNDANT_DIAGNOSIS_WORDS: frozenset[str] = frozenset({"invasive", "classic", "classical", "conventional"})


def merge_redundant_diagnoses(counts: Counter[str]) -> Counter[str]:
    """``counts`` with each phrase that is another counted phrase plus :data:`REDUNDANT_DIAGNOSIS_WORDS`
    counted as that phrase ("invasive adenocarcinoma" -> "adenocarcinoma" when both occur)."""
    merged: Counter[str] = Counter()
    for phrase, count in counts.items():
        base = " ".join(w for w in phrase.split() if w not in REDUNDANT_DIAGNOSIS_WORDS)
        merged[base if base != phrase and base in counts else phrase] += count
    return merged


def _natural_key(value: str) -> tuple[Any, ...]:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", value))


def _frequent(counts: Counter[str], min_count: int, by_frequency: bool) -> tuple[str, ...]:
    kept = [value for value, count in counts.items() if count >= min_count]
    if by_frequency:
        return tuple(sorted(kept, key=lambda v: (-counts[v], v)))
    return tuple(sorted(kept, key=_natural_key))


@dataclass(frozen=True)
class FindingsVocabulary:
    """The finding classes of a dataset.

    Attributes:
        diagnoses: diagnosis phrases, most frequent first.
        grades: grade values (``"grade 2"``, ``"gleason 7"``...), in natural order.
        pt_stages / pn_stages: stage values seen (``"pt2"``, ``"pn0"``), in natural order.
        min_count: the count a value needed to be kept.
        num_reports: how many reports it was built from.
    """

    diagnoses: tuple[str, ...] = ()
    grades: tuple[str, ...] = ()
    pt_stages: tuple[str, ...] = ()
    pn_stages: tuple[str, ...] = ()
    min_count: int = 2
    num_reports: int = 0

    @classmethod
    def from_reports(cls, reports: Iterable[str], min_count: int = 2) -> FindingsVocabulary:
        """Count the findings of ``reports`` (raw texts) and keep values seen ``min_count`` times or more."""
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        counters: dict[str, Counter[str]] = {name: Counter() for name in ("diagnosis", "grade", "pt", "pn")}
        num_reports = 0
        for report in reports:
            findings = extract_findings(report)
            num_reports += 1
            if findings.diagnosis and findings.diagnosis not in GENERIC_HEADS:
                counters["diagnosis"][findings.diagnosis] += 1
            for key, value in (("grade", findings.grade), ("pt", findings.pt_stage), ("pn", findings.pn_stage)):
                if value:
                    counters[key][value] += 1
        return cls(
            diagnoses=_frequent(merge_redundant_diagnoses(counters["diagnosis"]), min_count, by_frequency=True),
            grades=_frequent(counters["grade"], min_count, by_frequency=False),
            pt_stages=_frequent(counters["pt"], min_count, by_frequency=False),
            pn_stages=_frequent(counters["pn"], min_count, by_frequency=False),
            min_count=min_count,
            num_reports=num_reports,
        )

    @classmethod
    def from_annotation(
        cls, annotation_file: str | os.PathLike[str], split: str = "train", min_count: int = 2
    ) -> FindingsVocabulary:
        """From the ``split`` reports of a HistGen annotation JSON (the training reports by default)."""
        from scripts.data import load_annotation

        annotation = load_annotation(annotation_file, required_splits=(split,))
        return cls.from_reports((item["report"] for item in annotation[split]), min_count=min_count)

    def classes(self) -> dict[str, tuple[str, ...]]:
        """Finding name -> ordered class names, for every :data:`CATEGORICAL_FINDINGS` entry."""
        data = {"diagnosis": self.diagnoses, "grade": self.grades, "pt_stage": self.pt_stages,
                "pn_stage": self.pn_stages, **FIXED_FINDING_CLASSES}
        return {name: tuple(data[name]) for name in CATEGORICAL_FINDINGS}

    def labels(self, findings: ReportFindings) -> dict[str, int]:
        """Class index per categorical finding; -1 when the report does not say or the value is unknown."""
        values = findings.categorical()
        result = {}
        for name, names in self.classes().items():
            value = values[name]
            result[name] = names.index(value) if value in names else -1
        return result

    def to_dict(self) -> dict[str, Any]:
        return {"format": VOCABULARY_FORMAT, "diagnoses": list(self.diagnoses), "grades": list(self.grades),
                "pt_stages": list(self.pt_stages), "pn_stages": list(self.pn_stages),
                "min_count": self.min_count, "num_reports": self.num_reports}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "findings vocabulary") -> FindingsVocabulary:
        if not isinstance(data, Mapping) or data.get("format") != VOCABULARY_FORMAT:
            raise ValueError(f"{source}: not a findings vocabulary (expected format {VOCABULARY_FORMAT!r})")
        lists = {}
        for key in ("diagnoses", "grades", "pt_stages", "pn_stages"):
            values = data.get(key, [])
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise ValueError(f"{source}: {key!r} must be a list of strings")
            lists[key] = tuple(values)
        return cls(**lists, min_count=int(data.get("min_count", 2)), num_reports=int(data.get("num_reports", 0)))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON atomically."""
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FindingsVocabulary:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise FileNotFoundError(f"{path}: findings vocabulary not found") from err
        except ValueError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        return cls.from_dict(data, source=str(path))
