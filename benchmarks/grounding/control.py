"""The class-balanced shuffled-pairs control: reports dealt to other slides so the slide tells nothing.

Within the train and val splits every class's slides receive every class's reports in (near) equal numbers
(the slide demo's dealing, :func:`scripts.demo.slide_dataset._balanced_report_order`) when the classes are of
equal size, and in proportion to each report class's share when they are not (:func:`independent_report_order`):
either way a slide's class tells nothing about its report's. The test split keeps its true pairs, so a model
trained on the control is scored against the slides' real findings and must land at chance.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["CONTROL_SPLITS", "benchmark_diagnosis", "dealing_model_seed", "dealing_seed", "demo_diagnosis",
           "independent_report_order", "shuffled_annotation"]

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


def _proportional_table(sizes: list[int]) -> np.ndarray:
    """``[slide class, report class]`` counts with row and column sums ``sizes`` and each cell within one of
    ``size_s * size_r / n`` where the rounding allows: the table of a slide class that tells nothing about the
    class of the report it gets."""
    n = sum(sizes)
    target = np.outer(sizes, sizes) / n
    table = np.floor(target).astype(int)
    rows = np.array(sizes) - table.sum(axis=1)
    cols = np.array(sizes) - table.sum(axis=0)
    for flat in np.argsort(-(target - table), axis=None, kind="stable"):  # largest remainders first
        s, r = divmod(int(flat), len(sizes))
        if rows[s] > 0 and cols[r] > 0:
            table[s, r] += 1
            rows[s] -= 1
            cols[r] -= 1
    while rows.sum() > 0:  # what the remainders could not place (rare): any cell whose row and column still lack
        s, r = int(np.flatnonzero(rows)[0]), int(np.flatnonzero(cols)[0])
        table[s, r] += 1
        rows[s] -= 1
        cols[r] -= 1
    return table


def independent_report_order(classes: list[str], rng: np.random.Generator) -> list[int]:
    """For each slide, the index of the slide whose report it gets, so that the slide's class tells nothing about
    its report's class: each slide class receives each report class in proportion to that class's share of the
    split (:func:`_proportional_table`).

    The slide demo's round-robin dealing (every slide class gets every report class in equal numbers) is this for
    classes of equal size; for unequal ones it runs out of the small classes' reports and fills the classes dealt
    last with the largest class's (measured on the imbalanced benchmark: its hepatocellular slides never got a
    hepatocellular report and its mucinous slides got 40 adenocarcinoma reports of 41), which a model learns and
    which put that control below chance.
    """
    names = sorted(set(classes))
    slides_of = {c: [i for i, d in enumerate(classes) if d == c] for c in names}
    table = _proportional_table([len(slides_of[c]) for c in names])
    pools = {c: list(slides_of[c]) for c in names}
    for pool in pools.values():
        rng.shuffle(pool)
    order = [-1] * len(classes)
    for s, slide_class in enumerate(names):
        wanted = [names[r] for r in range(len(names)) for _ in range(int(table[s, r]))]
        rng.shuffle(wanted)
        for slide, report_class in zip(slides_of[slide_class], wanted):
            order[slide] = pools[report_class].pop()
    return order


def benchmark_diagnosis(item: dict[str, Any]) -> str:
    """A generated benchmark item's class: its bag's true diagnosis."""
    return item["findings"]["diagnosis"]


def demo_diagnosis(item: dict[str, Any]) -> str:
    """A demo item's class: its diagnosis."""
    return item["diagnosis"]


def shuffled_annotation(annotation: dict[str, Any], seed: int,
                        class_of: Callable[[dict[str, Any]], str] = benchmark_diagnosis) -> dict[str, Any]:
    """A copy of ``annotation`` whose train/val reports are dealt class-balanced among the slides.

    Classes of equal size: the slide demo's round-robin dealing (every class's slides get every class's reports in
    equal numbers); unequal sizes: :func:`independent_report_order` (in proportion to each report class's share).

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
        classes = [class_of(row) for row in rows]
        equal = len(set(Counter(classes).values())) <= 1
        order = (_balanced_report_order if equal else independent_report_order)(classes, rng)
        for row, source in zip(rows, order):
            row["report"] = annotation[split][source]["report"]
            row["report_from"] = annotation[split][source]["id"]
            row["report_class"] = class_of(annotation[split][source])
        out[split] = rows
    return out
