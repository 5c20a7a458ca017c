"""The diagnosis of a report: a noun phrase that ends in a diagnosis head word, found by rules.

Candidates (:func:`diagnosis_candidates`): a *head* word (``carcinoma``, ``adenocarcinoma``, ``sarcoma``,
``lymphoma``, ``melanoma``, ``glioblastoma``, ``seminoma``, ``hyperplasia``, ``neoplasm``, ``tumour``, any
word ending in ``carcinoma``/``sarcoma``/``blastoma``/``cytoma``/``glioma``...) extended to the left over
*modifier* words (``invasive``, ``ductal``, ``clear cell renal cell``, ``squamous``...) and to the right
over ``in situ`` (a ``high grade``/``low grade`` inside is skipped: the grade is its own finding); never
across a sentence end. ``"<diagnosis>, <subtype> type"`` is read subtype first (``"renal cell carcinoma,
clear cell type"`` -> ``"clear cell renal cell carcinoma"``; see :func:`_subtype_first`). A candidate is
skipped when it is negated (``"negative for carcinoma"``, ``"no residual tumour"``) and demoted when it sits
in a sentence about margins or lymph nodes (then it is used only when nothing else is found).

Choice (:func:`choose_diagnosis`): a specific phrase beats a bare generic head (``carcinoma``, ``tumour``,
``neoplasm``, ``malignancy``, also with ``metastatic``); then a phrase in a ``DIAGNOSIS`` section, a
sentence that says ``diagnosis`` or a synoptic ``histologic type`` line beats the rest; then the earliest
one.

A report with no diagnosis phrase that says "benign" or negates malignancy ("Benign tissue, negative for
malignancy", "No residual carcinoma") gets the diagnosis ``"benign"`` (:func:`benign_statement`).

With a list of known diagnoses (a :class:`~scripts.metrics.FindingsVocabulary`) the known phrases are
matched first (longest match, whole normalised words), with the same negation and choice rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .findings_text import Sentence, word_tokens

__all__ = [
    "GENERIC_HEADS",
    "DiagnosisCandidate",
    "benign_statement",
    "choose_diagnosis",
    "diagnosis_candidates",
    "known_diagnoses",
]

_HEADS: frozenset[str] = frozenset(
    """carcinoma adenocarcinoma sarcoma lymphoma melanoma mesothelioma glioblastoma glioma astrocytoma
    oligodendroglioma ependymoma seminoma dysgerminoma teratoma thymoma adenoma hyperplasia neoplasm tumour
    malignancy leukemia leukaemia myeloma pheochromocytoma paraganglioma carcinosarcoma cholangiocarcinoma
    leiomyosarcoma liposarcoma meningioma neuroblastoma blastoma dysplasia carcinoid""".split()
)
_HEAD_SUFFIXES = ("carcinoma", "sarcoma", "blastoma", "cytoma", "glioma", "thelioma")

#: Heads that name no type on their own.
GENERIC_HEADS: frozenset[str] = frozenset({"carcinoma", "tumour", "neoplasm", "malignancy", "dysplasia"})

_MODIFIERS: frozenset[str] = frozenset(
    """invasive ductal lobular papillary follicular medullary mucinous serous endometrioid clear cell renal
    squamous urothelial transitional hepatocellular small large non neuroendocrine signet ring chromophobe
    acinar metastatic malignant keratinizing basaloid sarcomatoid spindle pleomorphic tubular micropapillary
    cribriform mixed germ embryonal anaplastic diffuse epithelioid biphasic conventional classic classical
    adenosquamous bronchioloalveolar lepidic solid nodular superficial spreading b t hodgkin hodgkins
    colloid apocrine metaplastic adenoid cystic intraductal intestinal pilocytic oncocytic granular
    thyroid adrenocortical gastrointestinal stromal lymphoid atypical""".split()
)
#: Modifiers that name no subtype ("lobular carcinoma, classic type" is plain lobular carcinoma).
_NOT_SUBTYPES: frozenset[str] = frozenset({"invasive", "metastatic", "malignant", "classic", "classical",
                                          "conventional", "atypical", "mixed"})
_TYPE_WORDS: frozenset[str] = frozenset({"type", "variant", "subtype"})
#: Modifier synonyms inside a diagnosis phrase ("colloid carcinoma" is mucinous carcinoma).
_MODIFIER_SYNONYMS: dict[str, str] = {"colloid": "mucinous"}
_NEGATIONS: frozenset[str] = frozenset({"no", "negative", "without", "free", "absence", "uninvolved", "not"})
_NEGATION_FILLERS: frozenset[str] = frozenset({"for", "of", "evidence", "residual", "any", "definite", "is",
                                               "identified", "invasive", "the", "by", "remaining"})
_OFF_TOPIC: frozenset[str] = frozenset({"margin", "margins", "node", "nodes", "lymph", "ln", "lns", "nodal",
                                        "sentinel", "history", "previous",
                                        "prior", "rule", "r", "o", "clinical"})
_PRIORITY_WORDS: frozenset[str] = frozenset({"diagnosis", "diagnoses", "type"})


def is_head(word: str) -> bool:
    """True for a diagnosis head word (see the module docstring)."""
    return word in _HEADS or (len(word) > 6 and word.endswith(_HEAD_SUFFIXES))


@dataclass(frozen=True)
class DiagnosisCandidate:
    """One diagnosis phrase found in a report: the phrase, where it was, how much to trust it."""

    phrase: str
    sentence: int
    start: int
    preferred: bool
    off_topic: bool = False

    @property
    def generic(self) -> bool:
        """A bare generic head, "metastatic" or not ("carcinoma", "metastatic carcinoma")."""
        words = self.phrase.split()
        return words[-1] in GENERIC_HEADS and set(words[:-1]) <= {"metastatic"}

    def rank(self) -> tuple[int, int, int, int, int]:
        return (int(self.generic), int(self.off_topic), int(not self.preferred), self.sentence, self.start)


def _negated(words: Sequence[str], start: int) -> bool:
    i = start - 1
    while i >= 0 and words[i] in _NEGATION_FILLERS:
        i -= 1
    return i >= 0 and words[i] in _NEGATIONS


def _preferred(sentence: Sentence, first: int, start: int) -> bool:
    if sentence.in_diagnosis_section or sentence.index == first:
        return True
    return any(w in _PRIORITY_WORDS for w in sentence.words[:start])


def _off_topic(sentence: Sentence) -> bool:
    return any(w in _OFF_TOPIC for w in sentence.words)


def _subtype_first(words: Sequence[str]) -> tuple[str, ...]:
    """``words`` with every "<diagnosis>, <subtype> type" written subtype first.

    "renal cell carcinoma clear cell type" -> "clear cell renal cell carcinoma"; "invasive carcinoma lobular
    type" -> "invasive lobular carcinoma" (the subtype goes after a leading "invasive"/"metastatic");
    "variant"/"subtype" as "type". Left as written when the subtype words are no subtype ("classic type") or
    already in the phrase, or are not diagnosis modifiers ("trabecular type": a growth pattern). Modifier
    synonyms are applied too ("colloid carcinoma" -> "mucinous carcinoma").
    """
    out = [_MODIFIER_SYNONYMS.get(w, w) if w in _MODIFIER_SYNONYMS and any(is_head(x) for x in words[i + 1 : i + 4])
           else w for i, w in enumerate(words)]
    end = 0
    while end < len(out):
        if not is_head(out[end]):
            end += 1
            continue
        start = end
        while start > 0 and out[start - 1] in _MODIFIERS:
            start -= 1
        after = end + 1
        if out[after : after + 2] == ["in", "situ"]:
            after += 2
        stop = after
        while stop < len(out) and out[stop] in _MODIFIERS:
            stop += 1
        subtype = out[after:stop]
        phrase = out[start : end + 1]
        if (subtype and stop < len(out) and out[stop] in _TYPE_WORDS and not set(subtype) <= _NOT_SUBTYPES
                and not set(subtype) <= set(phrase)):
            lead = start
            while lead < end and out[lead] in {"invasive", "metastatic"}:
                lead += 1
            out[start : stop + 1] = [*out[start:lead], *subtype, *out[lead:after]]
            end = start + (after - start) + len(subtype)
        else:
            end += 1
    return tuple(out)


def diagnosis_candidates(sentences: Sequence[Sentence]) -> list[DiagnosisCandidate]:
    """Every rule-based diagnosis phrase of a report (see the module docstring)."""
    found: list[DiagnosisCandidate] = []
    first: int | None = None
    for sentence in sentences:
        words = _subtype_first(sentence.words)
        for end, word in enumerate(words):
            if not is_head(word):
                continue
            start = end
            kept = [word]
            while start > 0:
                if words[start - 1] in _MODIFIERS:
                    start -= 1
                    kept.insert(0, words[start])
                elif start > 1 and words[start - 1] == "grade" and words[start - 2] in {"high", "low"}:
                    start -= 2  # "invasive high grade urothelial carcinoma": the grade is its own finding
                else:
                    break
            while kept[0] == "cell" and len(kept) > 1:  # "cell carcinoma" alone: a modifier was lost
                kept.pop(0)
            stop = end + 1
            if words[stop : stop + 2] == ("in", "situ"):
                kept.extend(("in", "situ"))
            if _negated(words, start):
                continue
            if first is None:
                first = sentence.index
            phrase = " ".join(kept)
            found.append(DiagnosisCandidate(phrase, sentence.index, start, _preferred(sentence, first, start),
                                            _off_topic(sentence)))
    return found


def known_diagnoses(sentences: Sequence[Sentence], diagnoses: Sequence[str]) -> list[DiagnosisCandidate]:
    """Mentions of the known ``diagnoses`` (longest match first, whole words), not negated."""
    phrases = sorted(((word_tokens(d), d) for d in diagnoses), key=lambda item: -len(item[0]))
    found: list[DiagnosisCandidate] = []
    first: int | None = None
    for sentence in sentences:
        words = _subtype_first(sentence.words)
        position = 0
        while position < len(words):
            for phrase_words, phrase in phrases:
                if phrase_words and words[position : position + len(phrase_words)] == phrase_words:
                    if not _negated(words, position):
                        if first is None:
                            first = sentence.index
                        preferred = _preferred(sentence, first, position)
                        found.append(DiagnosisCandidate(phrase, sentence.index, position, preferred,
                                                        _off_topic(sentence)))
                    position += len(phrase_words)
                    break
            else:
                position += 1
    return found


_MALIGNANCY_WORDS = frozenset({"malignancy", "malignant", "carcinoma", "tumour", "neoplasm", "neoplasia",
                               "lymphoma", "sarcoma", "adenocarcinoma"})


def benign_statement(sentences: Sequence[Sentence]) -> str | None:
    """``"benign"`` when a sentence not about margins or lymph nodes says "benign" or negates malignancy
    ("negative for malignancy", "no residual carcinoma"); the fallback when no diagnosis phrase is found."""
    for sentence in sentences:
        if _off_topic(sentence):
            continue
        words = sentence.words
        if "benign" in words:
            return "benign"
        if any(w in _MALIGNANCY_WORDS and _negated(words, i) for i, w in enumerate(words)):
            return "benign"
    return None


def choose_diagnosis(candidates: Sequence[DiagnosisCandidate]) -> str | None:
    """The best candidate's phrase (see the module docstring), or None."""
    if not candidates:
        return None
    return min(candidates, key=DiagnosisCandidate.rank).phrase
