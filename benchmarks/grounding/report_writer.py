"""Pathology-report text for a slide's findings, written as surgical pathology reports are written.

Three layouts (``params.report_styles``), each with paraphrases, synonyms and, in free text, any sentence
order:

- ``numbered``: ``"1. Left breast, lumpectomy: DIAGNOSIS: invasive lobular carcinoma. 2. Nottingham grade 2
  of 3. 3. ..."``
- ``synoptic``: ``"Histologic type: ...\\nHistologic grade: ...\\nMargins: ...\\nLymphovascular invasion:
  ...\\nRegional lymph nodes: ..."``
- ``free``: ``"Sections of the left breast show invasive lobular carcinoma, moderately differentiated. ..."``

Grades are written in the diagnosis's system (Nottingham x of 3, WHO/ISUP or Fuhrman x of 4, Roman numerals,
differentiation words). Wordings avoid a digit right before ". " (HistGen's cleaning,
``scripts.text.clean_report``, deletes "2. " as a list marker) except where real reports do it too.
Lymph nodes and comments are sentences the slide cannot tell.
"""

from __future__ import annotations

import numpy as np

from .bags import SlideTruth
from .findings import DIAGNOSES

__all__ = ["COMMENTS", "write_report"]

_ROMAN = {"1": "I", "2": "II", "3": "III"}
_DIFFERENTIATION = {"1": "well differentiated", "2": "moderately differentiated", "3": "poorly differentiated"}
_NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                 "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
                 "twenty", "twenty-one", "twenty-two", "twenty-three", "twenty-four", "twenty-five")
_SIDES = ("left", "right")
_MARGIN_NAMES = ("anterior", "posterior", "superior", "inferior", "medial", "lateral", "deep")

#: Sentences no slide can tell (specimen handling, pending studies, history); up to two per report.
COMMENTS: tuple[str, ...] = (
    "COMMENT: Hormone receptor studies are pending and will be reported in an addendum.",
    "The specimen was received fresh and subsequently fixed in formalin.",
    "Clinical history: mass found on screening imaging.",
    "Intraoperative consultation was not requested.",
    "Case reviewed at the departmental consensus conference.",
    "Representative sections were submitted for histology.",
    "Ancillary studies may be requested on block A3 if clinically indicated.",
)


def _pick(options: tuple[str, ...] | list[str], rng: np.random.Generator) -> str:
    return options[int(rng.integers(len(options)))]


def _diagnosis_name(truth: SlideTruth, rng: np.random.Generator) -> str:
    info = DIAGNOSES[truth.diagnosis]
    return _pick((info.name, info.name, *info.synonyms), rng)


def _grade_phrase(truth: SlideTruth, rng: np.random.Generator) -> str:
    """The grade as a noun phrase, in the diagnosis's grading system."""
    g = truth.grade
    grading = DIAGNOSES[truth.diagnosis].grading
    if grading == "nottingham":
        options = (f"Nottingham grade {g} of 3", f"Nottingham histologic grade {_ROMAN[g]}",
                   f"histologic grade {g} of 3 (Nottingham)", f"modified Bloom-Richardson grade {_ROMAN[g]}")
    elif grading == "isup":
        options = (f"WHO/ISUP grade {g} of 4", f"ISUP nucleolar grade {_ROMAN[g]}", f"Fuhrman nuclear grade {g} of 4",
                   f"WHO/ISUP nucleolar grade {g} of 4")
    else:
        options = (_DIFFERENTIATION[g], f"{_DIFFERENTIATION[g]} (grade {_ROMAN[g]})", f"grade {g} of 3, "
                   f"{_DIFFERENTIATION[g]}")
    return _pick(options, rng)


def _margin_sentence(truth: SlideTruth, rng: np.random.Generator, synoptic: bool) -> str:
    side = _pick(_MARGIN_NAMES, rng)
    distance = int(rng.integers(2, 15))
    if truth.margin == "positive":
        if synoptic:
            return _pick((f"Margins: involved by carcinoma ({side} margin)", "Margins: positive",
                          f"Surgical margins: tumour present at the inked {side} margin"), rng)
        return _pick((f"Carcinoma extends to the inked {side} margin", f"The {side} resection margin is involved "
                      "by carcinoma", "Tumour is present at the inked surgical margin",
                      f"Margins are positive for carcinoma ({side})"), rng)
    if synoptic:
        return _pick((f"Margins: negative for carcinoma; closest margin {distance} mm ({side})",
                      "Margins: uninvolved", f"Surgical margins: free of tumour, closest {side} at {distance} mm"),
                     rng)
    return _pick(("All surgical margins are free of tumour", "Resection margins are uninvolved by carcinoma",
                  f"Margins are negative; the closest is the {side} margin at {distance} mm",
                  f"The carcinoma is clear of all margins (closest {distance} mm)"), rng)


def _lvi_sentence(truth: SlideTruth, rng: np.random.Generator, synoptic: bool) -> str:
    if truth.lymphovascular_invasion == "present":
        if synoptic:
            return _pick(("Lymphovascular invasion: present", "Lymphovascular invasion: identified",
                          "LVI: present"), rng)
        return _pick(("Lymphovascular invasion is identified", "Foci of lymphovascular invasion are present",
                      "Angiolymphatic invasion is seen"), rng)
    if synoptic:
        return _pick(("Lymphovascular invasion: not identified", "Lymphovascular invasion: absent", "LVI: absent"),
                     rng)
    return _pick(("No lymphovascular invasion is identified", "Lymphovascular invasion is not seen",
                  "There is no angiolymphatic invasion"), rng)


def _nodes_sentence(truth: SlideTruth, rng: np.random.Generator, synoptic: bool) -> str:
    k, n = truth.nodes_positive, truth.nodes_examined
    if synoptic:
        return _pick((f"Regional lymph nodes: {k} of {n} involved", f"Lymph nodes: {k} positive of {n} examined",
                      f"Lymph nodes with metastasis: {k} of {n} examined"), rng)
    if k:
        return _pick((f"Metastatic carcinoma in {k} of {n} lymph nodes ({k}/{n})",
                      f"{_NUMBER_WORDS[k].capitalize()} of {n} lymph nodes contain metastatic carcinoma",
                      f"Lymph nodes: {k} of {n} positive for metastatic carcinoma"), rng)
    return _pick((f"{_NUMBER_WORDS[n].capitalize()} lymph nodes, negative for metastatic carcinoma (0/{n})",
                  f"No metastatic carcinoma in {n} lymph nodes examined", f"Lymph nodes: 0 of {n} involved"), rng)


def _organ(truth: SlideTruth, rng: np.random.Generator) -> str:
    organ = DIAGNOSES[truth.diagnosis].organ
    return f"{_pick(_SIDES, rng)} {organ}" if organ in ("breast", "kidney", "lung") else organ


def _specimen(truth: SlideTruth, rng: np.random.Generator) -> str:
    return f"{_organ(truth, rng)}, {_pick(DIAGNOSES[truth.diagnosis].specimen, rng)}"


def _comments(truth: SlideTruth, rng: np.random.Generator, p_comment: float) -> list[str]:
    out = []
    if rng.random() < p_comment:
        out.append(_pick(COMMENTS, rng))
    if rng.random() < p_comment / 2:
        out.append(f"Tumour size {truth.tumour_size_mm} mm in greatest dimension.")
    return out


def _sentence(text: str) -> str:
    return text if text.endswith(".") else text + "."


def _numbered(truth: SlideTruth, rng: np.random.Generator, p_comment: float) -> str:
    specimen = _specimen(truth, rng)
    diagnosis = _diagnosis_name(truth, rng)
    grade = _grade_phrase(truth, rng)
    lines = [
        f"{specimen[0].upper()}{specimen[1:]}: DIAGNOSIS: {diagnosis}.",
        _sentence(grade[0].upper() + grade[1:]),
        _sentence(_margin_sentence(truth, rng, synoptic=False)),
        _sentence(_lvi_sentence(truth, rng, synoptic=False)),
        _sentence(_nodes_sentence(truth, rng, synoptic=False)),
    ]
    numbered = [f"{i}. {line}" for i, line in enumerate(lines, start=1)]
    return "\n".join(numbered + _comments(truth, rng, p_comment))


def _synoptic(truth: SlideTruth, rng: np.random.Generator, p_comment: float) -> str:
    lines = [
        f"Procedure: {_specimen(truth, rng)}.",
        f"Histologic type: {_diagnosis_name(truth, rng)}.",
        f"Histologic grade: {_grade_phrase(truth, rng)}.",
        _sentence(_margin_sentence(truth, rng, synoptic=True)),
        _sentence(_lvi_sentence(truth, rng, synoptic=True)),
        _sentence(_nodes_sentence(truth, rng, synoptic=True)),
    ]
    return "\n".join(lines + _comments(truth, rng, p_comment))


def _free(truth: SlideTruth, rng: np.random.Generator, p_comment: float) -> str:
    diagnosis = _diagnosis_name(truth, rng)
    grade = _grade_phrase(truth, rng)
    opening = _pick((
        f"Sections of the {_organ(truth, rng)} show {diagnosis}, {grade}.",
        f"The {_pick(DIAGNOSES[truth.diagnosis].specimen, rng)} specimen contains {diagnosis} ({grade}).",
        f"Final diagnosis: {diagnosis}, {grade}.",
    ), rng)
    rest = [_sentence(s) for s in (_margin_sentence(truth, rng, False), _lvi_sentence(truth, rng, False),
                                   _nodes_sentence(truth, rng, False))]
    rest += _comments(truth, rng, p_comment)
    order = rng.permutation(len(rest))
    return " ".join([opening, *(rest[i] for i in order)])


_WRITERS = {"numbered": _numbered, "synoptic": _synoptic, "free": _free}


def write_report(truth: SlideTruth, rng: np.random.Generator, styles: tuple[str, ...], p_comment: float) -> str:
    """One raw report stating ``truth``'s findings, in a layout drawn from ``styles``.

    Args:
        truth: the slide's findings.
        rng: draws layout, wording, order and comments.
        styles: layouts to draw from (see the module docstring).
        p_comment: chance of a comment sentence (and half that of a tumour-size sentence).

    Returns:
        The report as a pathologist would type it (capitals, punctuation, newlines).
    """
    style = _pick(tuple(styles), rng)
    if style not in _WRITERS:
        raise ValueError(f"unknown report style {style!r}; expected one of {sorted(_WRITERS)}")
    return _WRITERS[style](truth, rng, p_comment)
