"""Readable text from a tokenised report: what a person reads next to what the metrics score.

The model writes (and the captioning metrics compare) the ``histgen-v1`` token form: lower case, sentences
ended by a separate ``.`` token, no other punctuation (``scripts.text.report_cleaning``). :func:`report_prose`
turns that into sentences a pathologist can read:

- each sentence starts with a capital letter and ends with its full stop attached (``"a ." -> "A."``);
- punctuation tokens attach to the word before (``, ; : ? ! ) %``) or after (``(``);
- a sentence that is only a number is a list marker and numbers the next one (``"2 . margins free ." ->
  "2. Margins free."``): numbered findings stay numbered where the model produced them;
- a leading section heading (``diagnosis``, ``margins``, ``comment``...) gets its colon back
  (``"diagnosis malignant lymphoma ." -> "Diagnosis: malignant lymphoma."``);
- ``<unk>`` (a word outside the model's vocabulary) is shown as ``[?]``.

The words are never changed, so ``clean_report(report_prose(tokens))`` gives the tokens back for reports
without ``<unk>`` (a test checks it). Example:

    >>> report_prose("diagnosis malignant lymphoma . tumour occupies about half of the tissue .")
    'Diagnosis: malignant lymphoma. Tumour occupies about half of the tissue.'
"""

from __future__ import annotations

import re

__all__ = ["SECTION_HEADINGS", "UNKNOWN_WORD", "report_prose"]

#: Section headings whose colon the cleaning removed; restored when a sentence starts with one.
SECTION_HEADINGS = (
    "final diagnosis", "diagnosis", "diagnoses", "margins", "margin", "comment", "comments", "note", "specimen",
    "microscopic description", "gross description", "clinical history", "impression", "conclusion", "summary",
)
#: What ``<unk>`` reads as in prose.
UNKNOWN_WORD = "[?]"

_ATTACH_LEFT = {",", ";", ":", "?", "!", ")", "%", "."}
_ATTACH_RIGHT = {"("}
_NUMBER = re.compile(r"^\d+$")
# a heading followed by one of these is a sentence about the word, not a heading ("diagnosis is ...")
_NOT_AFTER_HEADING = {"is", "was", "are", "were", "of", "and", "or", "to", "in", "on", "for", "with", "by", "as",
                      "at", "has", "have", "had", "not", "can", "may", "cannot"}


def _join(tokens: list[str]) -> str:
    text = ""
    for token in tokens:
        if not text or token in _ATTACH_LEFT or text.endswith("("):
            text += token
        else:
            text += " " + token
    return text


def _heading_split(tokens: list[str]) -> tuple[str, list[str]] | None:
    """``(heading, rest)`` when the sentence starts with a section heading followed by its content."""
    for heading in sorted(SECTION_HEADINGS, key=lambda h: -len(h.split())):
        words = heading.split()
        rest = tokens[len(words):]
        if tokens[: len(words)] == words and rest and rest[0] not in _NOT_AFTER_HEADING and rest[0] not in _ATTACH_LEFT:
            return heading, rest
    return None


def _sentence(tokens: list[str]) -> str:
    split = _heading_split(tokens)
    text = f"{split[0]}: {_join(split[1])}" if split else _join(tokens)
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else text + "."


def report_prose(tokens: str) -> str:
    """Sentence-case prose of a tokenised report (see the module docstring).

    Args:
        tokens: the report as the model writes it (space-separated tokens, ``.`` ends a sentence).

    Returns:
        The readable text; ``""`` for a report without words.
    """
    words = [UNKNOWN_WORD if t == "<unk>" else t for t in str(tokens).split()]
    sentences: list[list[str]] = [[]]
    for word in words:
        if word == ".":
            sentences.append([])
        else:
            sentences[-1].append(word)
    parts: list[str] = []
    marker: str | None = None
    for sentence in sentences:
        if not sentence:
            continue
        if len(sentence) == 1 and _NUMBER.match(sentence[0]):
            if marker is not None:  # two markers in a row: keep the first as its own item
                parts.append(f"{marker}.")
            marker = sentence[0]
            continue
        text = _sentence(sentence)
        parts.append(f"{marker}. {text}" if marker is not None else text)
        marker = None
    if marker is not None:
        parts.append(f"{marker}.")
    return " ".join(parts)
