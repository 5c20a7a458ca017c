"""Readable reports: the prose form of a tokenised report (``scripts.text.prose.report_prose``)."""

from __future__ import annotations

import numpy as np
import pytest

from scripts.demo.reports import DIAGNOSIS_CLASSES, make_report
from scripts.text.prose import UNKNOWN_WORD, report_prose
from scripts.text.report_cleaning import clean_report


@pytest.mark.parametrize(("tokens", "prose"), [
    ("diagnosis malignant lymphoma . tumour occupies about half of the sampled tissue .",
     "Diagnosis: malignant lymphoma. Tumour occupies about half of the sampled tissue."),
    ("diagnosis is uncertain .", "Diagnosis is uncertain."),  # a word, not a heading
    ("final diagnosis carcinoma . 6 . margins free . 7 . ki-67 <unk> .",
     f"Final diagnosis: carcinoma. 6. Margins: free. 7. Ki-67 {UNKNOWN_WORD}."),
    ("tumour ( 2 cm ) , clear margins", "Tumour (2 cm), clear margins."),
    (" .", ""),
    ("", ""),
])
def test_prose_is_sentence_case_with_punctuation_attached_and_numbered_items_kept(tokens, prose):
    assert report_prose(tokens) == prose


def test_prose_keeps_every_word_of_the_demo_reports():
    """The metrics' tokens come back from the prose: only case and punctuation change."""
    rng = np.random.default_rng(3)
    for diagnosis in DIAGNOSIS_CLASSES:
        for share in (0.1, 0.5, 0.9):
            tokens = clean_report(make_report(diagnosis, share, rng))
            prose = report_prose(tokens)
            assert prose[0].isupper() and prose.endswith(".") and " ." not in prose, prose
            assert clean_report(prose) == tokens
