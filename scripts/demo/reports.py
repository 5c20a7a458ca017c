"""Report text of the embedded demo: short HistGen-style reports tied to what a slide holds.

A demo report has three sentences::

    Diagnosis: Invasive adenocarcinoma. Tumour occupies less than a third of the sampled tissue.
    Sections were submitted in their entirety for histological examination.

- the *diagnosis* sentence is fixed by the slide's class (:data:`DIAGNOSIS_PHRASES`);
- the *extent* sentence is fixed by the lesion's share of the patches (:func:`share_band`);
- the *remark* is drawn at random from :data:`REMARKS`: clinically plausible, independent of the slide,
  so no model can predict it (it bounds the text metrics of a perfect model below 1).

After HistGen cleaning (lower case, punctuation removed, ``scripts.text.clean_report``) the diagnosis and
band phrases appear verbatim; they hold only lower-case letters and spaces, and no phrase of one class
occurs inside the report of another, so "which diagnosis phrase does the text contain" recovers the class.

All of this is synthetic: the reports describe no patient.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from .tissue_classes import DIAGNOSES, DIAGNOSIS_CLASSES

__all__ = [
    "DEMO_KEY_PHRASES",
    "DIAGNOSIS_PHRASES",
    "REMARKS",
    "SHARE_BANDS",
    "diagnoses_in_text",
    "make_report",
    "share_band",
]

#: Diagnosis line as written in the raw report (capitals and punctuation vanish in cleaning).
_DIAGNOSIS_LINES: Mapping[str, str] = MappingProxyType(
    {
        "adenocarcinoma": "Invasive adenocarcinoma",
        "squamous cell carcinoma": "Invasive squamous cell carcinoma",
        "lymphoma": "Malignant lymphoma",
        "normal": "Benign tissue, negative for malignancy",
    }
)

#: Class -> the phrase as it appears in the cleaned report (lower-case letters and single spaces only).
DIAGNOSIS_PHRASES: Mapping[str, str] = MappingProxyType(
    {name: re.sub(r"[^a-z ]", "", line.lower()) for name, line in _DIAGNOSIS_LINES.items()}
)

#: (upper bound of the lesion share, band phrase); a share s gets the first band with s < bound.
SHARE_BANDS: tuple[tuple[float, str], ...] = (
    (1.0 / 3.0, "less than a third"),
    (2.0 / 3.0, "between a third and two thirds"),
    (float("inf"), "more than two thirds"),
)

#: Label-independent remarks (specimen handling, procedure); one is drawn per report.
REMARKS: tuple[str, ...] = (
    "The specimen was received in formalin and labelled with the patient name.",
    "Sections were submitted in their entirety for histological examination.",
    "Surgical margins were evaluated and are reported separately.",
    "Immunohistochemical stains were reviewed with appropriate positive and negative controls.",
    "The slides were reviewed in consultation with a second pathologist.",
    "Additional deeper levels were examined.",
    "Clinical history was not provided with the specimen.",
    "The specimen consists of a core needle biopsy.",
)

#: Key phrases for ``key_phrase_accuracy``: group -> phrases, at most one of each group per report.
DEMO_KEY_PHRASES: Mapping[str, list[str]] = MappingProxyType(
    {
        "diagnosis": [DIAGNOSIS_PHRASES[name] for name in DIAGNOSIS_CLASSES],
        "tumour_share": [phrase for _, phrase in SHARE_BANDS],
    }
)

if set(_DIAGNOSIS_LINES) != set(DIAGNOSIS_CLASSES):  # tissue_classes.py and this table must agree
    raise ImportError(
        f"scripts.demo.reports: report phrases cover {sorted(_DIAGNOSIS_LINES)}, "
        f"but tissue_classes.DIAGNOSIS_CLASSES is {list(DIAGNOSIS_CLASSES)}"
    )


def share_band(tumour_share: float) -> str:
    """Band phrase for a lesion share in [0, 1], e.g. ``0.25 -> "less than a third"``."""
    if not 0.0 <= tumour_share <= 1.0:
        raise ValueError(f"tumour_share must be in [0, 1], got {tumour_share}")
    return next(phrase for bound, phrase in SHARE_BANDS if tumour_share < bound)


def make_report(diagnosis: str, tumour_share: float, rng: np.random.Generator) -> str:
    """Write one raw demo report.

    Args:
        diagnosis: one of ``tissue_classes.DIAGNOSIS_CLASSES``.
        tumour_share: share of the sampled tissue taken by the lesion, in [0, 1].
        rng: draws the free-text remark (one ``rng.integers`` call).

    Returns:
        The raw report, e.g. ``"Diagnosis: Malignant lymphoma. Tumour occupies less than a third of the
        sampled tissue. Additional deeper levels were examined."``.
    """
    if diagnosis not in _DIAGNOSIS_LINES:
        raise ValueError(f"unknown demo diagnosis {diagnosis!r}; expected one of {list(DIAGNOSIS_CLASSES)}")
    subject = "Tumour" if DIAGNOSES[diagnosis].malignant else "Benign tissue"
    remark = REMARKS[int(rng.integers(len(REMARKS)))]
    return (
        f"Diagnosis: {_DIAGNOSIS_LINES[diagnosis]}. "
        f"{subject} occupies {share_band(tumour_share)} of the sampled tissue. "
        f"{remark}"
    )


def diagnoses_in_text(text: str) -> list[str]:
    """Classes whose diagnosis phrase occurs in a (cleaned, lower-case) report, in class order."""
    return [name for name in DIAGNOSIS_CLASSES if DIAGNOSIS_PHRASES[name] in text]
