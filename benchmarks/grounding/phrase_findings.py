"""Reading a benchmark's findings back from report text by the phrases its report writer uses.

This is a *known-phrase* reader: it knows the wordings of :mod:`benchmarks.grounding.report_writer` (diagnosis
names and synonyms, the grading systems, margin/LVI/lymph-node sentences) and nothing else. It checks the
generator (every reference report must read back to its truth) and scores generated reports when the general
findings extractor (``scripts.metrics.extract_findings``) is not available; it is not a clinical text reader.

Both raw reports and the model's decoded (already cleaned) text are read after HistGen cleaning
(:func:`scripts.text.clean_report`), so "Grade: II" and "grade ii" read the same.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from scripts.text import clean_report

from .findings import DIAGNOSES

__all__ = ["read_findings"]

_ROMAN_GRADE = {"i": "1", "ii": "2", "iii": "3"}
_DIFFERENTIATION = {"well": "1", "moderately": "2", "poorly": "3"}
_NUMBER_WORDS = {w: i for i, w in enumerate(
    ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
     "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"))}
_GRADE = re.compile(r"\bgrade (\d|iii|ii|i)\b|\b(well|moderately|poorly) differentiated\b")
_MARGIN_POSITIVE = ("extends to the inked", "margin is involved", "present at the inked", "margins are positive",
                    "margins involved", "margins positive")
_MARGIN_NEGATIVE = ("free of tumour", "uninvolved", "margins are negative", "margins negative", "clear of all margins")
_LVI_WORDS = ("lymphovascular", "angiolymphatic", "lvi")
_NEGATION = re.compile(r"\b(no|not|absent)\b")
_NODE_COUNT = re.compile(r"\b([a-z]+|\d+) (?:positive )?of \d+\b|\bwith metastasis (\d+)\b")


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in clean_report(text).split(" . ")]


def _one(values: set[str]) -> str | None:
    return next(iter(values)) if len(values) == 1 else None


def _diagnosis(cleaned: str, diagnoses: Sequence[str]) -> str | None:
    phrases = sorted(((clean_report(p)[:-2].strip(), name) for name in diagnoses
                      for p in (name, *DIAGNOSES[name].synonyms)), key=lambda pn: -len(pn[0]))
    found: set[str] = set()
    for phrase, name in phrases:  # longest first; a matched span is blanked so it counts once
        pattern = re.compile(rf"\b{re.escape(phrase)}\b")
        if pattern.search(cleaned):
            found.add(name)
            cleaned = pattern.sub(" ", cleaned)
    return _one(found)


def _grade(cleaned: str) -> str | None:
    found = set()
    for number, words in _GRADE.findall(cleaned):
        found.add(_DIFFERENTIATION[words] if words else _ROMAN_GRADE.get(number, number))
    return _one(found)


def _margin(sentences: list[str]) -> str | None:
    found = set()
    for sentence in sentences:
        if any(p in sentence for p in _MARGIN_POSITIVE):
            found.add("positive")
        elif any(p in sentence for p in _MARGIN_NEGATIVE):
            found.add("negative")
    return _one(found)


def _lvi(sentences: list[str]) -> str | None:
    found = {"absent" if _NEGATION.search(s) else "present"
             for s in sentences if any(re.search(rf"\b{w}\b", s) for w in _LVI_WORDS)}
    return _one(found)


def _lymph_nodes(sentences: list[str]) -> str | None:
    found = set()
    for sentence in sentences:
        if "lymph node" not in sentence:
            continue
        if "no metastatic" in sentence or "negative for metastatic" in sentence:
            found.add("negative")
            continue
        match = _NODE_COUNT.search(sentence)
        if match:
            count = match.group(1) or match.group(2)
            value = int(count) if count.isdigit() else _NUMBER_WORDS.get(count)
            if value is not None:
                found.add("positive" if value > 0 else "negative")
    return _one(found)


def read_findings(text: str, diagnoses: Sequence[str]) -> dict[str, str | None]:
    """The five findings a report states, by the benchmark's own phrases.

    Args:
        text: a raw report or decoded model output.
        diagnoses: the benchmark's diagnosis names (only these are looked for).

    Returns:
        ``{finding: value}`` with the values of ``labels.csv``; None where the text states none or several
        conflicting values.
    """
    cleaned = clean_report(text)
    sentences = _sentences(text)
    return {
        "diagnosis": _diagnosis(cleaned, diagnoses),
        "grade": _grade(cleaned),
        "margin": _margin(sentences),
        "lymphovascular_invasion": _lvi(sentences),
        "lymph_nodes": _lymph_nodes(sentences),
    }
