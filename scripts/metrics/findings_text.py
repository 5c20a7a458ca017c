"""Report text as the findings extractor reads it: sentences of normalised words.

The same function reads raw pathology reports (TCGA style: numbered lists, ``DIAGNOSIS:`` headers,
synoptic ``Key: value`` lines, upper case, OCR noise) and text cleaned the HistGen way
(:func:`scripts.text.clean_report`: lower case, punctuation gone, sentences joined by ``" . "``).

What it does, in order:

1. lower-cases; joins words broken at a line end by a hyphen (``"carci-\\nnoma"``);
2. marks the lines of a ``DIAGNOSIS`` section (from a ``diagnosis:`` header to the next ``header:``);
3. splits sentences at line ends, at ``;`` and at a ``.`` followed by a space (``"2.3 cm"`` stays whole);
4. splits words: numbers keep their decimal point or slash (``"2.3"``, ``"2/15"``), letter-digit tokens
   stay whole (``"pt2n1"``); a hyphen or slash between letters separates words;
5. repairs OCR noise in long words (a ``0``/``1``/``5`` between letters; one wrong letter in a known
   clinical word, e.g. ``"carcinorna"`` -> ``"carcinoma"``);
6. normalises synonyms and abbreviations word by word (``"infiltrating"`` -> ``"invasive"``,
   ``"tumor"`` -> ``"tumour"``, ``"idc"`` -> ``"invasive ductal carcinoma"``, ``"lympho vascular"`` ->
   ``"lymphovascular"``, plurals of diagnosis words -> singular).

Example:
    >>> [s.words for s in report_sentences("DIAGNOSIS: Infiltrating ductal carcinoma.\\nLVI: absent")]
    [('diagnosis', 'invasive', 'ductal', 'carcinoma'), ('lvi', 'absent')]
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = ["Sentence", "normalise_words", "report_sentences", "word_tokens"]


@dataclass(frozen=True)
class Sentence:
    """One sentence: its normalised words, its position, and whether it lies in a DIAGNOSIS section."""

    words: tuple[str, ...]
    index: int
    in_diagnosis_section: bool


_DIAGNOSIS_HEADER = re.compile(
    r"^\s*(?:\d+\s*[.)]\s*)?(?:final\s+|pathologic(?:al)?\s+|surgical\s+pathology\s+|microscopic\s+)?"
    r"diagnos[ie]s\b[^:\n]{0,40}:"
)
_OTHER_HEADER = re.compile(
    r"^\s*(?:gross|microscopic\s+description|clinical|comment|specimen|history|note|addendum|"
    r"procedure|intraoperative|frozen|synoptic|summary|immunohistochemi|ancillary|received)[^:\n]{0,40}:"
)
_SENTENCE_END = re.compile(r"\.(?=\s|$)|;")
_TOKEN = re.compile(r"\d+(?:[./]\d+)?|[a-z][a-z0-9]*")
_BETWEEN_LETTERS = re.compile(r"(?<=[a-z])[-/](?=[a-z])")
_STAGE_LIKE = re.compile(r"^(?:y|r)?p?[tnm](?:is|x|\d)")
_OCR_DIGIT_IN_WORD = re.compile(r"^[a-z]+[015][a-z]+$|^[a-z]{3,}[015]$")

#: Clinical words whose OCR misspellings (one letter off, two for long words) are repaired.
_KNOWN_WORDS: frozenset[str] = frozenset(
    """adenocarcinoma carcinoma sarcoma lymphoma melanoma mesothelioma glioblastoma astrocytoma
    oligodendroglioma seminoma hyperplasia neoplasm tumour invasive infiltrating infiltrative ductal lobular
    papillary squamous mucinous serous endometrioid urothelial hepatocellular neuroendocrine metastatic
    malignant lymphovascular angiolymphatic perineural perineurial invasion involvement margins margin
    uninvolved involved involving negative positive identified present absent examined differentiated
    undifferentiated dedifferentiated differentiation moderately poorly nottingham gleason fuhrman
    histologic histological lymphatic vascular sentinel diagnosis carcinomas metastasis metastases
    evidence carcinomatous chromophobe transitional keratinizing nonkeratinizing""".split()
)

#: One word -> its normal form (possibly several words).
_WORD_SYNONYMS: dict[str, tuple[str, ...]] = {
    "infiltrating": ("invasive",),
    "tumor": ("tumour",),
    "tumors": ("tumour",),
    "tumours": ("tumour",),
    "carcinomas": ("carcinoma",),
    "adenocarcinomas": ("adenocarcinoma",),
    "sarcomas": ("sarcoma",),
    "lymphomas": ("lymphoma",),
    "melanomas": ("melanoma",),
    "adenomas": ("adenoma",),
    "neoplasms": ("neoplasm",),
    "gliomas": ("glioma",),
    "adenoca": ("adenocarcinoma",),
    "perineurial": ("perineural",),
    "lymphvascular": ("lymphovascular",),
    "lymphaticvascular": ("lymphovascular",),
    "idc": ("invasive", "ductal", "carcinoma"),
    "ilc": ("invasive", "lobular", "carcinoma"),
    "dcis": ("ductal", "carcinoma", "in", "situ"),
    "lcis": ("lobular", "carcinoma", "in", "situ"),
    "scc": ("squamous", "cell", "carcinoma"),
    "rcc": ("renal", "cell", "carcinoma"),
    "ccrcc": ("clear", "cell", "renal", "cell", "carcinoma"),
    "hcc": ("hepatocellular", "carcinoma"),
    "gbm": ("glioblastoma",),
    "moderate": ("moderately",),
    "poor": ("poorly",),
    "differentiation": ("differentiated",),
    "nonkeratinizing": ("non", "keratinizing"),
    "whoisup": ("who", "isup"),
}

#: Two words -> their normal form.
_PAIR_SYNONYMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("lympho", "vascular"): ("lymphovascular",),
    ("lymph", "vascular"): ("lymphovascular",),
    ("lymphatic", "vascular"): ("lymphovascular",),
    ("peri", "neural"): ("perineural",),
    ("angio", "lymphatic"): ("angiolymphatic",),
    ("signet", "ring"): ("signet", "ring"),
}


def _edit_distance_at_most(a: str, b: str, limit: int) -> bool:
    if abs(len(a) - len(b)) > limit:
        return False
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > limit:
            return False
        previous = current
    return previous[-1] <= limit


@functools.lru_cache(maxsize=65536)
def _repair(word: str) -> str:
    """OCR repair of one word (digits inside letters, one or two wrong letters in a known word)."""
    if len(word) >= 6 and _OCR_DIGIT_IN_WORD.match(word) and not (len(word) <= 7 and _STAGE_LIKE.match(word)):
        word = word.translate(str.maketrans("015", "ols"))
    if len(word) < 7 or word in _KNOWN_WORDS or not word.isalpha():
        return word
    for wrong, right in (("rn", "m"), ("vv", "w"), ("cl", "d")):  # letters OCR reads as one another
        if wrong in word and word.replace(wrong, right) in _KNOWN_WORDS:
            return word.replace(wrong, right)
    limit = 2 if len(word) >= 12 else 1
    for known in _KNOWN_WORDS:
        if _edit_distance_at_most(word, known, limit):
            return known
    return word


def normalise_words(words: list[str]) -> tuple[str, ...]:
    """OCR repair, then pair and word synonyms (see the module docstring)."""
    repaired = [_repair(w) for w in words]
    result: list[str] = []
    i = 0
    while i < len(repaired):
        pair = tuple(repaired[i : i + 2])
        if len(pair) == 2 and pair in _PAIR_SYNONYMS:
            result.extend(_PAIR_SYNONYMS[pair])  # type: ignore[index]
            i += 2
            continue
        result.extend(_WORD_SYNONYMS.get(repaired[i], (repaired[i],)))
        i += 1
    return tuple(result)


def word_tokens(text: str) -> tuple[str, ...]:
    """Normalised words of a short text with no sentence structure (a phrase, a vocabulary entry)."""
    text = _BETWEEN_LETTERS.sub(" ", text.lower())
    return normalise_words(_TOKEN.findall(text))


def report_sentences(text: str) -> list[Sentence]:
    """Split a raw or cleaned report into :class:`Sentence` objects (empty ones dropped)."""
    if not isinstance(text, str):
        raise TypeError(f"report text must be a str, got {type(text).__name__}")
    # a word broken at a line end ("carci-\nnoma"; cleaned text has "carci- noma")
    text = re.sub(r"(?<=[a-z])-\s+(?=[a-z])", "", text.lower())
    sentences: list[Sentence] = []
    in_section = False
    for line in text.splitlines():
        if _DIAGNOSIS_HEADER.match(line):
            in_section = True
        elif _OTHER_HEADER.match(line):
            in_section = False
        for part in _SENTENCE_END.split(line):
            words = normalise_words(_TOKEN.findall(_BETWEEN_LETTERS.sub(" ", part)))
            if words:
                sentences.append(Sentence(words, len(sentences), in_section))
    return sentences
