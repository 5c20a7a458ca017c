"""HistGen-compatible cleaning of pathology report text.

This is the ``histgen-v1`` cleaning: it reproduces the behaviour of the reference
``clean_report_pathology`` (HistGen, ``modules/tokenizers.py``) character for character, including its
quirks, because the released vocabulary and checkpoints depend on it:

- the character class removed from every sentence is ``[.,?;*!%^&_+():-\\[\\]{}]`` where ``:-\\[`` is a
  *range* (``:`` through ``[``, ASCII 0x3A-0x5B). After lower-casing this removes ``: ; < = > ? @ [``
  (and would remove ``A-Z``); the hyphen ``-`` itself is **kept** ("ki-67" stays "ki-67");
- decimal points vanish ("1.3 cm" -> "13 cm"), slashes vanish ("0/18" -> "018");
- list markers "1. " and " 2. " ... " 5. " are removed or turned into sentence breaks, also inside
  numbers ("grade 1. Pathologic" -> "grade pathologic");
- empty sentences are *kept* (the reference's filter compares a string with ``[]``, which never drops
  anything), so a report of only punctuation cleans to ``" ."``.

Example:
    >>> clean_report("DIAGNOSIS: Carcinoma; grade 2.\\nMargins: free.")
    'diagnosis carcinoma grade . margins free .'
"""

from __future__ import annotations

import re

__all__ = ["CLEANING_NAME", "SENTENCE_JOIN", "clean_report", "report_tokens"]

#: Name of this cleaning, written into ``vocab.json``.
CLEANING_NAME = "histgen-v1"

#: What the cleaned sentences are joined with; the cleaned report also ends with ``" ."``.
SENTENCE_JOIN = " . "

# (old, new, passes): each pass is one non-overlapping ``str.replace`` over the whole text, in this order.
# The pass counts matter for long runs ("________"), so they are kept exactly.
_WHOLE_TEXT_REPLACEMENTS: tuple[tuple[str, str, int], ...] = (
    ("\n", " ", 1),
    ("__", "_", 7),
    ("  ", " ", 6),
    ("..", ".", 8),
    ("1. ", "", 1),
    (". 2. ", ". ", 1),
    (". 3. ", ". ", 1),
    (". 4. ", ". ", 1),
    (". 5. ", ". ", 1),
    (" 2. ", ". ", 1),
    (" 3. ", ". ", 1),
    (" 4. ", ". ", 1),
    (" 5. ", ". ", 1),
)

# The reference character class, written out: ``:-\[`` is the range 0x3A-0x5B.
_REMOVED_CHARACTERS = re.compile(r"[.,?;*!%^&_+():-\[\]{}]")
_REMOVED_BEFORE_CLASS = ('"', "/", "\\", "'")


def _clean_sentence(sentence: str) -> str:
    for character in _REMOVED_BEFORE_CLASS:
        sentence = sentence.replace(character, "")
    return _REMOVED_CHARACTERS.sub("", sentence.strip().lower())


def clean_report(text: str) -> str:
    """Clean one raw report the way HistGen does (``histgen-v1``).

    Args:
        text: the raw report (any case, newlines, punctuation).

    Returns:
        Lower-case sentences joined by ``" . "`` and ending in ``" ."``. Tokens are ``result.split()``.
        An empty or punctuation-only input gives ``" ."``.
    """
    if not isinstance(text, str):
        raise TypeError(f"clean_report expects a str, got {type(text).__name__}")
    for old, new, passes in _WHOLE_TEXT_REPLACEMENTS:
        for _ in range(passes):
            text = text.replace(old, new)
    sentences = text.strip().lower().split(". ")
    return SENTENCE_JOIN.join(_clean_sentence(sentence) for sentence in sentences) + " ."


def report_tokens(text: str) -> list[str]:
    """Tokens of a raw report after :func:`clean_report` (whitespace split; ``"."`` ends a sentence)."""
    return clean_report(text).split()
