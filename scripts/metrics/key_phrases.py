"""Clinical correctness of generated reports: do they name the same key phrases (diagnosis, grade ...)?

Matching (the same for references and generated texts):

1. both texts and phrases are cleaned with :func:`scripts.text.clean_report` (so "Grade: 3" and
   "grade 3" match, and already-cleaned decoded text stays as it is) and split into words;
2. a phrase matches where its words appear consecutively, as whole words ("carcinoma" does not match
   "adenocarcinomas"; phrases never span a sentence end, since ``"."`` is a word);
3. within one group, phrases are matched longest first and a matched span is used once, so
   "squamous cell carcinoma" does not also count as "carcinoma" when both are listed.

Negation is not understood: "no carcinoma" mentions "carcinoma". HistGen's cleaning removes what looks
like a list marker, so "grade 2. Margins ..." cleans to "grade . margins ..." and "grade 2" is not
mentioned there (in the model's targets either): choose phrases that survive cleaning.

Scoring, per group: a pair is *eligible* when its reference mentions exactly one phrase of the group, and
*correct* when the generated text mentions that phrase and no other phrase of the group. Results::

    {"<group>_accuracy": correct / eligible (NaN when nothing is eligible),
     "<group>_correct": int, "<group>_eligible": int,
     "<group>_set_accuracy": same-set rate over pairs whose reference mentions >= 1 phrase of the group,
     "<group>_set_eligible": int}

A plain list of phrases is one group named ``key_phrase`` (``key_phrase_accuracy``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from scripts.text import clean_report

__all__ = ["DEFAULT_GROUP", "find_key_phrases", "key_phrase_accuracy", "key_phrase_matches"]

DEFAULT_GROUP = "key_phrase"


def _words(text: str) -> list[str]:
    return clean_report(text).split()


def _phrase_words(phrase: str) -> tuple[str, ...]:
    words = tuple(w for w in _words(phrase) if w != ".")
    if not words:
        raise ValueError(f"key phrase {phrase!r} has no words after cleaning")
    return words


def _groups(key_phrases: Sequence[str] | Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    if isinstance(key_phrases, str):
        raise TypeError("key_phrases must be a list of phrases or a {group: [phrases]} mapping, not a string")
    groups = dict(key_phrases) if isinstance(key_phrases, Mapping) else {DEFAULT_GROUP: key_phrases}
    result = {}
    for name, phrases in groups.items():
        if isinstance(phrases, str) or not phrases:
            raise ValueError(f"key phrase group {name!r} must be a non-empty list of phrases")
        result[str(name)] = list(phrases)
    return result


def find_key_phrases(text: str, phrases: Sequence[str]) -> set[str]:
    """The phrases of one group that ``text`` mentions (longest match first, whole words)."""
    candidates = sorted(((_phrase_words(p), p) for p in phrases), key=lambda item: -len(item[0]))
    words = _words(text)
    found: set[str] = set()
    position = 0
    while position < len(words):
        for phrase_words, phrase in candidates:
            if tuple(words[position : position + len(phrase_words)]) == phrase_words:
                found.add(phrase)
                position += len(phrase_words)
                break
        else:
            position += 1
    return found


def key_phrase_matches(
    generated: Sequence[str],
    references: Sequence[str],
    key_phrases: Sequence[str] | Mapping[str, Sequence[str]],
) -> list[dict[str, Any]]:
    """Per pair and group: the phrases found in the reference and in the generated text.

    Returns:
        ``[{"<group>": {"reference": set, "generated": set, "eligible": bool, "correct": bool}, ...}, ...]``
    """
    if len(generated) != len(references):
        raise ValueError(f"{len(generated)} generated texts but {len(references)} references")
    groups = _groups(key_phrases)
    rows = []
    for gen, ref in zip(generated, references):
        row = {}
        for name, phrases in groups.items():
            in_ref = find_key_phrases(ref, phrases)
            in_gen = find_key_phrases(gen, phrases)
            row[name] = {
                "reference": in_ref,
                "generated": in_gen,
                "eligible": len(in_ref) == 1,
                "correct": len(in_ref) == 1 and in_gen == in_ref,
            }
        rows.append(row)
    return rows


def key_phrase_accuracy(
    generated: Sequence[str],
    references: Sequence[str],
    key_phrases: Sequence[str] | Mapping[str, Sequence[str]],
) -> dict[str, float | int]:
    """Per-group accuracy of key phrases (see the module docstring for the exact rule).

    Example:
        >>> key_phrase_accuracy(["adenocarcinoma, grade 2."], ["Adenocarcinoma; grade 3."],
        ...                     {"diagnosis": ["adenocarcinoma", "squamous cell carcinoma"],
        ...                      "grade": ["grade 1", "grade 2", "grade 3"]})["diagnosis_accuracy"]
        1.0
    """
    rows = key_phrase_matches(generated, references, key_phrases)
    result: dict[str, float | int] = {}
    for name in _groups(key_phrases):
        cells = [row[name] for row in rows]
        eligible = sum(c["eligible"] for c in cells)
        correct = sum(c["correct"] for c in cells)
        set_cells = [c for c in cells if c["reference"]]
        set_correct = sum(c["generated"] == c["reference"] for c in set_cells)
        result[f"{name}_accuracy"] = correct / eligible if eligible else math.nan
        result[f"{name}_correct"] = correct
        result[f"{name}_eligible"] = eligible
        result[f"{name}_set_accuracy"] = set_correct / len(set_cells) if set_cells else math.nan
        result[f"{name}_set_eligible"] = len(set_cells)
    return result
