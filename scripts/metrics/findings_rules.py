"""Rule-based clinical findings of one pathology report (no model weights).

:func:`extract_findings` reads raw reports (TCGA style) and reports cleaned the HistGen way
(:func:`scripts.text.clean_report`) alike; words are normalised by :mod:`.findings_text` first.

Findings and their canonical values:

- ``diagnosis``: a lower-case phrase (:mod:`.findings_diagnosis`), e.g. ``"invasive ductal carcinoma"``, or
  ``"benign"`` for a report that only negates malignancy;
- ``grade``: ``"gleason N"`` (the score: ``"3+4=7"``, ``"score 7"``), ``"isup N"`` (ISUP/WHO grade or grade
  group), ``"fuhrman N"``, ``"grade N"`` (Nottingham/Bloom-Richardson grade or score 3-9, ``"grade II"``,
  ``"G2"``, ``"histologic grade: 2"``), ``"high grade"``/``"low grade"``, or differentiation words
  (``"well differentiated"``, ``"moderately to poorly differentiated"``, ``"undifferentiated"``); the first
  of those families that the report names wins, in that order;
- ``margin``: ``"positive"`` (any margin involved), else ``"close"``, else ``"negative"``;
- ``lymph_nodes_positive`` / ``lymph_nodes_examined``: counts (``"2/15"``, ``"2 of 15"``, ``"two of
  fifteen"``, ``"2 positive of 15 examined"``, synoptic ``"examined: 15"`` / ``"involved: 2"``, ``"0/18"`` -> 0
  of 18; several groups are summed; the examined count of ``"0 of 24"`` is not read again as a merged
  ``"2/4"``; a count of nodes free of tumour, ``"no carcinoma in 20 lymph nodes"``, is 0 of 20);
  ``lymph_node_status``: ``"positive"``/``"negative"`` from the counts, else from words (``"lymph
  nodes negative"``, ``"no lymph node metastasis"``), else from pN (``pN0`` -> negative);
- ``lymphovascular_invasion`` / ``perineural_invasion``: ``"present"``/``"absent"`` (negation: ``"no"``,
  ``"negative for"``, ``"without"``, ``"not identified"``, ``"absent"``, synoptic ``"LVI: no"``); a mention
  without a cue counts as present; ``"indeterminate"``/``"suspicious"`` mentions are ignored;
- ``pt_stage`` / ``pn_stage``: ``"pt2"``, ``"ptis"``, ``"pn1"``, ``"pnx"`` (sub-stage letters dropped: ``pT1c``
  -> ``pt1``; the ``y``/``r`` prefixes too);
- ``tumour_size_mm``: the largest dimension of a tumour measurement (``"2.3 x 1.5 cm"`` -> 23.0).

What HistGen cleaning destroys (and so cannot be read from cleaned text, the model's output included):
decimal points (``"1.3 cm"`` -> ``"13 cm"``: sizes read from cleaned text are 10x too large when the raw
value had one decimal), slashes (``"2/15"`` -> ``"215"``: read back as 2 of 15 only when a split gives
positive <= examined <= 150 and the number sits next to "lymph nodes"; a leading zero ``"018"`` is always
0 of 18; two digits like ``"12"`` are read as a count, not 1 of 2), the digit of a grade that ends a
sentence (``"grade 2. Margins"`` -> ``"grade . margins"``, and the first ``"1. "`` of a report is deleted),
``+``/``=`` of a Gleason score (``"3+4=7"`` -> ``"347"``, read back when the first two digits sum to the
third).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .findings_diagnosis import benign_statement, choose_diagnosis, diagnosis_candidates, is_head, known_diagnoses
from .findings_text import Sentence, report_sentences

if TYPE_CHECKING:
    from .findings_vocabulary import FindingsVocabulary

__all__ = ["CATEGORICAL_FINDINGS", "ReportFindings", "extract_findings"]

#: The findings with a fixed set of values (the ones scored by accuracy and F1).
CATEGORICAL_FINDINGS: tuple[str, ...] = (
    "diagnosis",
    "grade",
    "margin",
    "lymph_node_status",
    "lymphovascular_invasion",
    "perineural_invasion",
    "pt_stage",
    "pn_stage",
)


@dataclass(frozen=True)
class ReportFindings:
    """The clinical findings of one report; None where the report does not say."""

    diagnosis: str | None = None
    grade: str | None = None
    margin: str | None = None
    lymph_nodes_positive: int | None = None
    lymph_nodes_examined: int | None = None
    lymph_node_status: str | None = None
    lymphovascular_invasion: str | None = None
    perineural_invasion: str | None = None
    pt_stage: str | None = None
    pn_stage: str | None = None
    tumour_size_mm: float | None = None

    def categorical(self) -> dict[str, str | None]:
        """``{name: value}`` for every :data:`CATEGORICAL_FINDINGS` entry."""
        return {name: getattr(self, name) for name in CATEGORICAL_FINDINGS}

    def to_dict(self) -> dict[str, Any]:
        """Every field as a JSON-serialisable dict."""
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------- numbers
_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
          "sixteen seventeen eighteen nineteen").split()
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90}
_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4}


def _number_at(words: Sequence[str], i: int) -> tuple[int | None, int]:
    """An integer written at ``words[i]`` (digits or number words up to 99) and how many words it took."""
    if i >= len(words):
        return None, 0
    word = words[i]
    if word.isdigit():
        return int(word), 1
    if word in _UNITS:
        return _UNITS.index(word), 1
    if word in _TENS:
        value = _TENS[word]
        if i + 1 < len(words) and words[i + 1] in _UNITS[1:10]:
            return value + _UNITS.index(words[i + 1]), 2
        return value, 1
    return None, 0


# ------------------------------------------------------------------------------------------------- grade
_DIFFERENTIATION = {"well", "moderately", "poorly"}
_GRADE_FAMILIES = ("gleason", "isup", "fuhrman", "nottingham", "grade", "level", "differentiation")


def _gleason(words: Sequence[str], i: int) -> str | None:
    j = i + 1
    while j < len(words) and words[j] in {"score", "grade", "sum", "pattern", "patterns", "is", "of", "total", "s"}:
        j += 1
    numbers: list[str] = []
    while j < len(words) and words[j].isdigit() and len(numbers) < 4:
        numbers.append(words[j])
        j += 1
    if not numbers:
        return None
    digits = [int(n) for n in numbers]
    first = numbers[0]
    if len(first) == 3 and int(first[0]) + int(first[1]) == int(first[2]):  # "347" from "3+4=7"
        return f"gleason {first[2]}"
    if len(first) == 4 and int(first[0]) + int(first[1]) == int(first[2:]):  # "5510"
        return f"gleason {first[2:]}"
    if len(first) == 2 and first != "10" and 2 <= int(first[0]) + int(first[1]) <= 10:  # "34" from "3+4"
        return f"gleason {int(first[0]) + int(first[1])}"
    if len(digits) >= 3 and digits[0] + digits[1] == digits[2] and digits[2] <= 10:
        return f"gleason {digits[2]}"
    if len(digits) >= 2 and digits[0] <= 5 and digits[1] <= 5 and digits[0] > 1 and digits[1] > 1 \
            and digits[0] + digits[1] <= 10 and not (2 <= digits[0] <= 10 and len(digits) == 3):
        return f"gleason {digits[0] + digits[1]}"
    if 2 <= digits[0] <= 10:
        return f"gleason {digits[0]}"
    return None


def _grade_number(words: Sequence[str], j: int, maximum: int = 4) -> int | None:
    """A grade value at ``words[j]`` (skipping "grade", "group", "nuclear"...): digits, roman, G2."""
    while j < len(words) and words[j] in {"grade", "group", "nuclear", "nucleolar", "histologic", "histological",
                                          "score", "overall", "combined", "is", "of", "who", "isup", "fuhrman", "g"}:
        j += 1
    if j >= len(words):
        return None
    word = words[j].split("/")[0]  # "4/4"
    if word in _ROMAN:
        return _ROMAN[word]
    if re.fullmatch(r"g[1-4]", word):
        return int(word[1])
    if word.isdigit():
        value = int(word)
        if 1 <= value <= maximum:
            return value
    return None


def _nottingham_score_to_grade(score: int) -> int | None:
    if 3 <= score <= 5:
        return 1
    if 6 <= score <= 7:
        return 2
    if 8 <= score <= 9:
        return 3
    return None


def _grade_of(sentences: Sequence[Sentence]) -> str | None:
    found: dict[str, str] = {}
    for sentence in sentences:
        words = sentence.words
        for i, word in enumerate(words):
            if word == "gleason" and "gleason" not in found:
                value = _gleason(words, i)
                if value:
                    found["gleason"] = value
            elif word == "isup" or (word == "grade" and words[i + 1 : i + 2] == ("group",)):
                number = _grade_number(words, i + 1, maximum=5)
                if number is not None:
                    found.setdefault("isup", f"isup {number}")
            elif word == "fuhrman":
                number = _grade_number(words, i + 1)
                if number is None:  # "nuclear grade 2 (fuhrman)"
                    before = list(words[max(0, i - 4) : i])
                    number = next((_grade_number(before, k) for k in range(len(before))
                                   if before[k] == "grade" and _grade_number(before, k) is not None), None)
                if number is not None:
                    found.setdefault("fuhrman", f"fuhrman {number}")
            elif word in {"nottingham", "bloom", "richardson", "sbr", "mbr"}:
                j = i + 1
                while j < len(words) and words[j] in {"richardson", "histologic", "histological", "grade",
                                                      "combined", "modified", "score", "overall", "is"}:
                    j += 1
                number, _ = _number_at([w.split("/")[0] for w in words[j : j + 1]], 0)  # "8/9" -> 8
                if number is not None and 3 <= number <= 9 and "score" in words[i:j]:
                    grade = _nottingham_score_to_grade(number)
                    if grade:
                        found.setdefault("nottingham", f"grade {grade}")
                else:
                    grade = _grade_number(words, j, maximum=3)
                    if grade:
                        found.setdefault("nottingham", f"grade {grade}")
            elif word == "grade" or re.fullmatch(r"g[1-4]", word):
                number = int(word[1]) if word != "grade" else _grade_number(words, i + 1)
                if number is not None:
                    found.setdefault("grade", f"grade {number}")
                elif word == "grade":
                    before = [w for w in words[max(0, i - 2) : i] if w not in {"nuclear", "histologic"}]
                    if before and before[-1] in {"high", "low", "intermediate"}:
                        found.setdefault("level", f"{before[-1]} grade")
            elif word in {"differentiated", "undifferentiated"}:
                value = _differentiation(words, i)
                if value:
                    found.setdefault("differentiation", value)
    for family in _GRADE_FAMILIES:
        if family in found:
            return found[family]
    return None


def _differentiation(words: Sequence[str], i: int) -> str | None:
    if words[i] == "undifferentiated":
        return "undifferentiated"
    levels = []
    j = i - 1
    while j >= 0 and (words[j] in _DIFFERENTIATION or words[j] in {"to", "and"}) and len(levels) < 2:
        if words[j] in _DIFFERENTIATION:
            levels.insert(0, words[j])
        j -= 1
    if not levels:
        return None
    return " to ".join(levels) + " differentiated"


# ------------------------------------------------------------------------------- LVI / PNI (with negation)
_LVI_WORDS = frozenset({"lymphovascular", "angiolymphatic", "lvi", "lvsi"})
_PNI_WORDS = frozenset({"perineural", "pni"})
_TERM_WORDS = _LVI_WORDS | _PNI_WORDS | {"lymphatic", "vascular", "margin", "margins", "lymph", "node", "nodes",
                                         "gleason", "grade", "tumour", "size"}
_POST_NEGATIVE = frozenset({"absent", "negative", "no", "none", "nil", "not", "unidentified"})
_POST_POSITIVE = frozenset({"present", "identified", "positive", "yes", "seen", "detected", "noted",
                            "focal", "extensive", "focally", "multifocal"})
_UNKNOWN = frozenset({"indeterminate", "equivocal", "suspicious", "cannot", "undetermined", "possible"})
_PRE_NEGATIVE = frozenset({"no", "n0", "without", "negative", "absence", "free", "absent", "nor"})
_PRE_SKIP = frozenset({"of", "for", "evidence", "definite", "any", "or", "and", "obvious", "definitive",
                       "identifiable", "lymphovascular", "perineural", "invasion", "lvi", "pni", "angiolymphatic",
                       "lymphatic", "vascular", "space", "is", "there"})


def _invasion_mentions(words: Sequence[str], kind: frozenset[str]) -> list[tuple[int, int]]:
    """(start, end) word spans naming the invasion ``kind`` (LVI: also "lymphatic/vascular invasion")."""
    spans = []
    i = 0
    while i < len(words):
        word = words[i]
        end = i + 1
        if word in kind or (kind is _LVI_WORDS and word in {"lymphatic", "vascular", "microvascular"}
                            and words[i + 1 : i + 2] in {("invasion",), ("space",)}):
            while end < len(words) and words[end] in {"invasion", "space", "involvement", "infiltration",
                                                      "spread", "permeation"}:
                end += 1
            spans.append((i, end))
        i = end
    return spans


def _invasion_status(words: Sequence[str], start: int, end: int) -> str | None:
    post = None
    for word in words[end : end + 5]:
        if word in _TERM_WORDS:
            break
        if word in _UNKNOWN:
            return None
        if word in _POST_NEGATIVE:
            post = "absent"
            break
        if word in _POST_POSITIVE:
            post = "present"
            break
    pre = None
    j = start - 1
    while j >= 0 and words[j] in _PRE_SKIP:
        j -= 1
    if j >= 0 and words[j] in _PRE_NEGATIVE and not (j > 0 and words[j - 1] in _TERM_WORDS | {"invasion"}):
        pre = "absent"
    if j >= 0 and words[j] in _UNKNOWN:
        return None
    if post == "absent" or pre == "absent":
        return "absent"
    return "present"


def _invasion_of(sentences: Sequence[Sentence], kind: frozenset[str]) -> str | None:
    statuses = [
        _invasion_status(s.words, start, end) for s in sentences for start, end in _invasion_mentions(s.words, kind)
    ]
    if "present" in statuses:
        return "present"
    return "absent" if "absent" in statuses else None


# ------------------------------------------------------------------------------------------------ margins
_MARGIN_POSITIVE = frozenset({"positive", "involved", "involving", "involves", "involve", "transected", "extends",
                              "extending", "extend", "abuts", "abutting", "present", "reaches", "at", "focally"})
_MARGIN_NEGATIVE = frozenset({"negative", "free", "uninvolved", "clear", "clean", "widely", "not", "no",
                              "without", "absent", "unremarkable"})


_MARGIN_STOP = (_TERM_WORDS - {"tumour", "margin", "margins"}) | {"invasion"}


def _margin_window(words: Sequence[str], i: int) -> tuple[list[str], list[str]]:
    """Up to 6 words left and 7 right of the margin word at ``i``, each cut at another finding's term."""
    left = list(words[max(0, i - 6) : i])
    for k in range(len(left) - 1, -1, -1):
        if left[k] in _MARGIN_STOP:
            left = left[k + 1 :]
            break
    right = []
    for word in words[i + 1 : i + 8]:
        if word in _MARGIN_STOP:
            break
        right.append(word)
    return left, right


_MARGIN_CLEAR = frozenset({"negative", "free", "uninvolved", "clear", "clean", "widely"})
_DISTANCE_UNITS = frozenset({"mm", "cm", "millimetre", "millimetres", "millimeter", "millimeters"})


def _states_distance(words: Sequence[str]) -> bool:
    """Whether ``words`` measure a distance above zero: a number and a length unit ("4 mm", "0.2 cm"; not "0 mm")."""
    return any(
        words[k + 1] in _DISTANCE_UNITS and words[k].replace(".", "", 1).isdigit() and float(words[k]) > 0
        for k in range(len(words) - 1)
    )


def _margin_status(left: list[str], right: list[str]) -> str | None:
    """positive (an un-negated involvement word; "at" only just before the margin) > close > negative.

    "at" before the margin is the weakest cue ("tumour at the inked margin"): it also opens distance
    statements ("closest margin at 7 mm"), so it is not read as involvement when the same window measures a
    distance or says the margin is free, negative or clear.
    """
    window = [*left, *right]
    weak_at = not (_states_distance(window) or any(word in _MARGIN_CLEAR for word in window))
    for k, word in enumerate(right):
        negated = k > 0 and right[k - 1] in {"not", "no", "without"}
        if word in _MARGIN_POSITIVE and not negated and word != "at":
            return "positive"
    for k, word in enumerate(left):
        negated = (k > 0 and left[k - 1] in {"not", "no", "without"}) or "no" in left[:k]
        if word in _MARGIN_POSITIVE - {"present"} and not negated and (
                word != "at" or (weak_at and k >= len(left) - 4)):
            return "positive"
    if "close" in window:
        return "close"
    if any(word in _MARGIN_NEGATIVE for word in window):
        return "negative"
    return None


def _margin_of(sentences: Sequence[Sentence]) -> str | None:
    statuses = [
        _margin_status(*_margin_window(sentence.words, i))
        for sentence in sentences
        for i, word in enumerate(sentence.words)
        if word in {"margin", "margins"}
    ]
    for value in ("positive", "close", "negative"):
        if value in statuses:
            return value
    return None


# ------------------------------------------------------------------------------------------- lymph nodes
_NODE_WORDS = frozenset({"node", "nodes", "ln", "lns", "nodal"})
_POSITIVE_WORDS = frozenset({"positive", "involved", "metastatic", "metastasis", "metastases", "containing",
                             "with"})
_EXAMINED_WORDS = frozenset({"examined", "identified", "total", "recovered", "retrieved", "dissected",
                             "submitted", "found", "received"})


#: Words after which a number is a grade, score or stage, not a lymph-node count ("grade 2 of 3").
_NOT_A_COUNT = frozenset({"grade", "score", "gleason", "group", "level", "figo", "isup", "stage", "type", "pattern",
                          "fuhrman", "nottingham", "mitoses", "nuclei", "tubules", "size", "measures", "measuring"})


def _split_merged(number: str) -> tuple[int, int] | None:
    """``"215"`` (from a cleaned ``"2/15"``) -> (2, 15), when exactly one plausible split exists."""
    if number.startswith("0") and len(number) >= 2:
        return 0, int(number[1:])
    options = []
    for cut in range(1, len(number)):
        head, tail = number[:cut], number[cut:]
        if tail.startswith("0"):
            continue
        positive, examined = int(head), int(tail)
        if positive <= examined <= 150:
            options.append((positive, examined))
    options.sort(key=lambda pair: (pair[1] >= 100, pair[1]))
    return options[0] if options else None


def _node_words_status(words: Sequence[str]) -> str | None:
    """"positive"/"negative" said in words next to "lymph node(s)" (e.g. "lymph nodes negative")."""
    for i, word in enumerate(words):
        if word not in _NODE_WORDS and word != "lymph":
            continue
        window = []
        for w in words[max(0, i - 4) : i][::-1]:
            if w in {"margin", "margins", "invasion", "perineural", "lymphovascular", "lvi", "pni", "grade"}:
                break
            window.append(w)
        for w in words[i + 1 : i + 7]:
            if w in {"margin", "margins", "invasion", "perineural", "lymphovascular", "lvi", "pni", "grade"}:
                break
            window.append(w)
        seen = set(window)
        if seen & {"negative", "benign", "free", "uninvolved"} or (
                seen & {"no", "without"} and seen & {"metastasis", "metastatic", "metastases", "tumour", "carcinoma"}):
            return "negative"
        if seen & {"positive", "involved", "metastatic", "metastasis", "metastases"}:
            return "positive"
    return None


_NODE_NEGATIVE = frozenset({"negative", "free", "uninvolved", "benign", "reactive"})
_NODE_NEGATORS = frozenset({"no", "without", "not"})
_TUMOUR_WORDS = frozenset({"metastasis", "metastatic", "metastases", "tumour", "carcinoma", "adenocarcinoma",
                           "malignancy", "neoplasm", "disease", "involvement", "involved", "identified"})
_CLAUSE_STOP = frozenset({"margin", "margins", "invasion", "perineural", "lymphovascular", "lvi", "pni", "grade"})


def _negative_count(words: Sequence[str], i: int, used: int) -> bool:
    """True when the count at ``words[i]`` counts nodes said to be free of tumour: a negative word ("negative",
    "free", "benign"...) or a negated tumour word ("no metastatic carcinoma", "without tumour") within 5 words
    before and 6 after, not past another number or another finding's term."""
    left: list[str] = []
    for word in reversed(words[max(0, i - 5) : i]):
        if word[:1].isdigit() or word in _CLAUSE_STOP:
            break
        left.insert(0, word)
    right: list[str] = []
    for word in words[i + used : i + used + 6]:
        if word[:1].isdigit() or word in _CLAUSE_STOP:
            break
        right.append(word)
    window = [*left, *right]
    for k, word in enumerate(window):
        if word in _NODE_NEGATIVE:
            return True
        if word in _NODE_NEGATORS and set(window[k + 1 : k + 4]) & _TUMOUR_WORDS:
            return True
    return False


def _node_counts(sentences: Sequence[Sentence]) -> tuple[int | None, int | None, str | None]:
    ratios: list[tuple[int, int]] = []
    positive_count: int | None = None
    examined_count: int | None = None
    word_status: str | None = None
    for sentence in sentences:
        words = sentence.words
        node_at = [i for i, w in enumerate(words)
                   if w in _NODE_WORDS or w == "lymph" or re.match(r"^y?pn[0-3x]", w)]
        if not node_at:
            continue
        consumed: set[int] = set()  # words already read as part of a count ("0 of 24": the 24)
        for i, word in enumerate(words):
            near = min(abs(i - n) for n in node_at) <= 10
            if not near or i in consumed:
                continue
            if "/" in word:
                head, tail = word.split("/", 1)
                if head.isdigit() and tail.isdigit() and int(head) <= int(tail):
                    ratios.append((int(head), int(tail)))
                continue
            value, used = _number_at(words, i)
            if value is None or (i > 0 and words[i - 1] in _NOT_A_COUNT):
                continue
            consumed.update(range(i, i + used))
            after = words[i + used : i + used + 3]
            k = i + used + (1 if after[:1] in {("positive",), ("involved",)} else 0)  # "2 positive of 15"
            if words[k : k + 1] in {("of",), ("out",)}:
                k += 2 if words[k : k + 2] == ("out", "of") else 1
                total, total_used = _number_at(words, k)
                if total is not None and value <= total:
                    ratios.append((value, total))
                    consumed.update(range(k, k + total_used))
                    continue
            if after[:1] in {("cm",), ("mm",), ("x",)}:
                continue
            before = words[max(0, i - 3) : i]
            context = set(before) | set(after)
            negative = _negative_count(words, i, used)  # "no carcinoma in 20 lymph nodes", "all 14 ... free of tumour"
            positive_context = bool(context & (_POSITIVE_WORDS - {"with"})) and not negative
            merged = word.isdigit() and (
                (word.startswith("0") and len(word) >= 2)
                or (len(word) >= 3 and not context & _EXAMINED_WORDS)
                or (len(word) == 2 and positive_context and word[0] <= word[1])
            )
            if merged:
                split = _split_merged(word)
                if split:
                    ratios.append(split)
                    continue
            if negative:
                if examined_count is None:
                    examined_count, positive_count = value, 0 if positive_count is None else positive_count
            elif context & _EXAMINED_WORDS and examined_count is None and not context & {"involved", "positive"}:
                examined_count = value
            elif context & (_POSITIVE_WORDS - {"with"}) and positive_count is None:
                positive_count = value
            elif context & {"negative", "benign", "free", "uninvolved", "reactive"} and examined_count is None:
                examined_count, positive_count = value, 0 if positive_count is None else positive_count
        if word_status is None:
            word_status = _node_words_status(words)
    if ratios:
        unique = list(dict.fromkeys(ratios))
        return sum(p for p, _ in unique), sum(e for _, e in unique), word_status
    if positive_count is not None and examined_count is not None and positive_count > examined_count:
        positive_count = None
    return positive_count, examined_count, word_status


# ------------------------------------------------------------------------------------------------- stage
_T_STAGE = re.compile(r"^(?:y|r|yr)?p?t(is|x|[0-4])[a-d]?(?:m)?(?:n(x|[0-3]))?")
_N_STAGE = re.compile(r"^(?:y|r|yr)?p?n(x|[0-3])")


def _stages_of(sentences: Sequence[Sentence]) -> tuple[str | None, str | None]:
    pt = pn = None
    for sentence in sentences:
        for i, word in enumerate(sentence.words):
            match = _T_STAGE.match(word)
            before_n = i + 1 < len(sentence.words) and _N_STAGE.match(sentence.words[i + 1]) is not None
            if match and pt is None and (word.startswith(("p", "yp", "rp")) or match.group(2) is not None or before_n):
                pt = f"pt{match.group(1)}"
                if match.group(2) is not None and pn is None:
                    pn = f"pn{match.group(2)}"
                    continue
                rest = word[match.end() :]
                nested = re.match(r"^(?:\d|\(m\)|m)?n(x|[0-3])", rest)
                if nested and pn is None:
                    pn = f"pn{nested.group(1)}"
                continue
            match = _N_STAGE.match(word)
            after_t = i > 0 and _T_STAGE.match(sentence.words[i - 1])
            if match and pn is None and (word.startswith(("p", "yp")) or after_t):
                pn = f"pn{match.group(1)}"
    return pt, pn


# -------------------------------------------------------------------------------------------------- size
_SIZE_CONTEXT = frozenset({"tumour", "mass", "lesion", "size", "dimension", "diameter", "measures", "measuring"})
_SIZE_EXCLUDE = frozenset({"margin", "margins", "specimen", "from", "distance", "node", "nodes", "fragment",
                           "fragments", "aggregate", "received", "portion", "thickness", "depth", "breslow",
                           "invasion", "closest", "lymph"})
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _size_of(sentences: Sequence[Sentence]) -> float | None:
    """Largest dimension (mm) of the first tumour measurement; one that names size/dimension wins."""
    best: tuple[int, float] | None = None
    for sentence in sentences:
        words = sentence.words
        for i, word in enumerate(words):
            if word not in {"cm", "mm"}:
                continue
            values = []
            j = i - 1
            while j >= 0 and (_NUMBER.fullmatch(words[j]) or words[j] in {"x", "by"}):
                if words[j] not in {"x", "by"}:
                    values.append(float(words[j]))
                j -= 1
            before = words[max(0, j - 7) : j + 1]
            context = set(before)
            if not values or set(words[max(0, j - 2) : j + 1]) & _SIZE_EXCLUDE or "from" in words[i + 1 : i + 3]:
                continue
            if not (context & _SIZE_CONTEXT or any(is_head(w) for w in before)):
                continue
            size = max(values) * (10.0 if word == "cm" else 1.0)
            priority = 0 if context & {"size", "dimension", "diameter"} else 1
            if best is None or priority < best[0]:
                best = (priority, size)
    return best[1] if best else None


# -------------------------------------------------------------------------------------------------- main
def extract_findings(text: str, vocabulary: FindingsVocabulary | None = None) -> ReportFindings:
    """The clinical findings of one report, raw or HistGen-cleaned (see the module docstring).

    Args:
        text: the report.
        vocabulary: known diagnoses of the dataset; when given, its phrases are matched first (a rule-based
            phrase is still returned when none of them is mentioned).

    Returns:
        A :class:`ReportFindings` (None for what the report does not say).

    Example:
        >>> extract_findings("DIAGNOSIS: Infiltrating ductal carcinoma, Nottingham grade 2 of 3. "
        ...                  "No LVI. Margins negative. Lymph nodes: 0/12.").categorical()["diagnosis"]
        'invasive ductal carcinoma'
    """
    sentences = report_sentences(text)
    diagnosis = None
    if vocabulary is not None and vocabulary.diagnoses:
        diagnosis = choose_diagnosis(known_diagnoses(sentences, vocabulary.diagnoses))
    if diagnosis is None:
        diagnosis = choose_diagnosis(diagnosis_candidates(sentences)) or benign_statement(sentences)
    positive, examined, node_words = _node_counts(sentences)
    pt, pn = _stages_of(sentences)
    if positive is not None:
        node_status: str | None = "positive" if positive > 0 else "negative"
    elif node_words is not None:
        node_status = node_words
    elif pn is not None and pn != "pnx":
        node_status = "negative" if pn == "pn0" else "positive"
    else:
        node_status = None
    return ReportFindings(
        diagnosis=diagnosis,
        grade=_grade_of(sentences),
        margin=_margin_of(sentences),
        lymph_nodes_positive=positive,
        lymph_nodes_examined=examined,
        lymph_node_status=node_status,
        lymphovascular_invasion=_invasion_of(sentences, _LVI_WORDS),
        perineural_invasion=_invasion_of(sentences, _PNI_WORDS),
        pt_stage=pt,
        pn_stage=pn,
        tumour_size_mm=_size_of(sentences),
    )
