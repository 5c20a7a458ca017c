"""The class-balanced shuffled-pairs control: reports dealt to other slides so the slide tells nothing.

Within the train and val splits every diagnosis's slides receive every diagnosis's reports in (near) equal
numbers (the slide demo's dealing, :func:`scripts.demo.slide_dataset._balanced_report_order`); the test split
keeps its true pairs, so a model trained on the control is scored against the slides' real findings and
must land at chance.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["CONTROL_SPLITS", "shuffled_annotation"]

#: Splits whose reports the control permutes.
CONTROL_SPLITS: tuple[str, ...] = ("train", "val")


def shuffled_annotation(annotation: dict[str, Any], seed: int) -> dict[str, Any]:
    """A copy of ``annotation`` whose train/val reports are dealt class-balanced among the slides.

    Each moved item keeps its slide's ``findings`` (the truth of the bag) and gains ``report_findings``
    (the findings its new report states) and ``report_from`` (the slide the report was written for).

    Args:
        annotation: HistGen annotation with ``findings`` per item.
        seed: the control's seed (the same seed gives the same dealing).
    """
    from scripts.demo.slide_dataset import _balanced_report_order

    out = dict(annotation)
    out["shuffled_pairs"] = ", ".join(CONTROL_SPLITS)  # a string: list-valued keys are splits to the reader
    for split_index, split in enumerate(CONTROL_SPLITS):
        rows = [dict(item) for item in annotation[split]]
        rng = np.random.default_rng([seed, split_index, 0xC0])
        order = _balanced_report_order([row["findings"]["diagnosis"] for row in rows], rng)
        for row, source in zip(rows, order):
            row["report"] = annotation[split][source]["report"]
            row["report_findings"] = dict(annotation[split][source]["findings"])
            row["report_from"] = annotation[split][source]["id"]
        out[split] = rows
    return out
