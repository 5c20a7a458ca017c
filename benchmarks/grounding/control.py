"""The class-balanced shuffled-pairs control: reports dealt to other slides so the slide tells nothing.

Within the train and val splits every class's slides receive every class's reports in (near) equal numbers
(the slide demo's dealing, :func:`scripts.demo.slide_dataset._balanced_report_order`); the test split keeps its
true pairs, so a model trained on the control is scored against the slides' real findings and must land at
chance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["CONTROL_SPLITS", "benchmark_diagnosis", "dealing_model_seed", "dealing_seed", "demo_diagnosis",
           "shuffled_annotation"]

#: Splits whose reports the control permutes.
CONTROL_SPLITS: tuple[str, ...] = ("train", "val")


def dealing_seed(seed: int, dealing: int) -> int:
    """The seed of the control's ``dealing``-th dealing (0: ``seed`` itself, so the first dealing is the
    benchmark's ``annotation_shuffled.json``; later ones: seeds no benchmark uses for its first)."""
    if dealing < 0:
        raise ValueError(f"dealing must be >= 0, got {dealing}")
    return seed if dealing == 0 else seed + 100_003 * dealing


def dealing_model_seed(seed: int, dealing: int) -> int | None:
    """The bundle ``seed`` the control's ``dealing``-th training runs with: None (the config's own) for the first
    dealing, a seed of its own for every later one.

    The dealings must be independent replicates. With one shared seed every dealing starts from the same weights
    and draws the same batches, so its predictions on the (fixed) test slides share whatever that start happens
    to say about them: measured on the needle benchmark, a test slide's diagnosis was right in 0-6 of 7
    shared-seed dealings, far more spread than independent draws give, and the mean over dealings did not
    narrow towards chance as more were added.
    """
    return None if dealing == 0 else dealing_seed(seed, dealing) % (2**31 - 1)


def benchmark_diagnosis(item: dict[str, Any]) -> str:
    """A generated benchmark item's class: its bag's true diagnosis."""
    return item["findings"]["diagnosis"]


def demo_diagnosis(item: dict[str, Any]) -> str:
    """A demo item's class: its diagnosis."""
    return item["diagnosis"]


def shuffled_annotation(annotation: dict[str, Any], seed: int,
                        class_of: Callable[[dict[str, Any]], str] = benchmark_diagnosis) -> dict[str, Any]:
    """A copy of ``annotation`` whose train/val reports are dealt class-balanced among the slides.

    Each item keeps its slide's own fields (``findings``: the truth of the bag) and gains ``report_from`` (the
    slide its new report was written for) and ``report_class`` (that report's class).

    Args:
        annotation: HistGen annotation.
        seed: the control's seed (the same seed gives the same dealing).
        class_of: an item's class (default: ``item["findings"]["diagnosis"]`` of a generated benchmark; the
            demos use ``item["diagnosis"]``).
    """
    from scripts.demo.slide_dataset import _balanced_report_order

    out = dict(annotation)
    out["shuffled_pairs"] = ", ".join(CONTROL_SPLITS)  # a string: the bundle's reader takes list values for splits
    for split_index, split in enumerate(CONTROL_SPLITS):
        rows = [dict(item) for item in annotation[split]]
        rng = np.random.default_rng([seed, split_index, 0xC0])
        order = _balanced_report_order([class_of(row) for row in rows], rng)
        for row, source in zip(rows, order):
            row["report"] = annotation[split][source]["report"]
            row["report_from"] = annotation[split][source]["id"]
            row["report_class"] = class_of(annotation[split][source])
        out[split] = rows
    return out
