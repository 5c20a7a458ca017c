"""What a model learns per slide, fitted on a fold's training part: class weights, or survival time bins.

- :class:`ClassTargets`: ``{"label": class id}``; class weights ``n / (C * n_c)`` (inverse frequency) of the
  training part, for the cross-entropy.
- :class:`SurvivalTargets`: ``{"bin", "event", "time"}``; ``n_bins`` time bins cut at the quantiles of the
  training part's *uncensored* times (first bin from 0, last bin open-ended), as Patch-GCN and MCAT do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .errors import SplitError
from .slide_table import SlideRecord

__all__ = ["ClassTargets", "SurvivalTargets", "assign_time_bins", "csv_lines", "quantile_time_bins"]


def csv_lines(records: Sequence[SlideRecord], limit: int = 10) -> str:
    """``"CSV lines 4, 9, 17 ..."`` of some slides, for messages."""
    lines = sorted(r.line for r in records)
    shown = ", ".join(str(n) for n in lines[:limit])
    return f"CSV line{'s' if len(lines) > 1 else ''} {shown}{' ...' if len(lines) > limit else ''}"


def quantile_time_bins(uncensored_times: Sequence[float] | np.ndarray, n_bins: int) -> list[float]:
    """Bin edges ``[0, q_1, ..., q_{n-1}, inf]`` from quantiles of uncensored times.

    Args:
        uncensored_times: times of the slides whose event was observed.
        n_bins: number of bins, >= 1.

    Raises:
        ValueError: fewer uncensored times than bins, or tied quantiles (too few distinct times).
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    times = np.asarray(uncensored_times, dtype=np.float64).reshape(-1)
    if times.size == 0:
        raise ValueError("no uncensored time to place bins")
    if times.size < n_bins:
        raise ValueError(f"{times.size} uncensored time(s) are too few for n_bins={n_bins} quantile bins; use "
                         "fewer bins (n_bins) or more data")
    inner = np.quantile(times, np.linspace(0.0, 1.0, n_bins + 1)[1:-1]) if n_bins > 1 else np.zeros(0)
    if inner.size and (np.any(np.diff(inner) <= 0) or inner[0] <= 0):
        raise ValueError(f"{times.size} uncensored times ({np.unique(times).size} distinct) give tied quantiles: "
                         f"no {n_bins} distinct bins; use fewer bins (n_bins) or more data")
    return [0.0, *(float(v) for v in inner), float("inf")]


def assign_time_bins(times: Sequence[float] | np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """``[n]`` bin index of each time: bin j holds ``edges[j] <= t < edges[j+1]`` (the last bin is open)."""
    inner = np.asarray(edges[1:-1], dtype=np.float64)
    return np.searchsorted(inner, np.asarray(times, dtype=np.float64), side="right").astype(np.int64)


class ClassTargets:
    """Class ids and inverse-frequency class weights.

    Args:
        num_classes: C.
        weighted: with False every weight is 1.
    """

    def __init__(self, num_classes: int, weighted: bool = True) -> None:
        self.num_classes = int(num_classes)
        self.weighted = weighted
        self.class_weights = torch.ones(self.num_classes)
        self.class_counts = [0] * self.num_classes

    @property
    def num_outputs(self) -> int:
        return self.num_classes

    def fit(self, train: Sequence[SlideRecord], where: str = "training part") -> None:
        """Count the training classes; raises :class:`SplitError` if a class has no training slide."""
        counts = np.bincount([int(r.label) for r in train], minlength=self.num_classes)  # type: ignore[arg-type]
        absent = [c for c in range(self.num_classes) if counts[c] == 0]
        if absent:
            raise SplitError(f"{where}: no training slide of class id(s) {absent} ({len(train)} slides); "
                             "use fewer folds or more data")
        self.class_counts = counts.tolist()
        weights = counts.sum() / (self.num_classes * counts) if self.weighted else np.ones(self.num_classes)
        self.class_weights = torch.tensor(weights, dtype=torch.float32)

    def encode(self, record: SlideRecord) -> dict[str, Any]:
        return {"label": int(record.label)}  # type: ignore[arg-type]

    def describe(self) -> dict[str, Any]:
        return {"class_counts": self.class_counts, "class_weights": [round(float(w), 4) for w in self.class_weights]}


class SurvivalTargets:
    """Discrete time bins of the follow-up time, with the event indicator.

    Args:
        n_bins: number of time bins (the hazard model's outputs).
    """

    def __init__(self, n_bins: int = 4) -> None:
        if n_bins < 1:
            raise ValueError(f"n_bins must be >= 1, got {n_bins}")
        self.n_bins = int(n_bins)
        self.bin_edges: list[float] = []

    @property
    def num_outputs(self) -> int:
        return self.n_bins

    def fit(self, train: Sequence[SlideRecord], where: str = "training part") -> None:
        """Cut the bins at the quantiles of the training part's uncensored times."""
        uncensored = [float(r.time) for r in train if r.event]  # type: ignore[arg-type]
        if not uncensored:
            raise SplitError(f"{where}: all {len(train)} training slides are censored (event=0; {csv_lines(train)}); "
                             "no time bins can be made: use fewer folds or more data")
        try:
            self.bin_edges = quantile_time_bins(uncensored, self.n_bins)
        except ValueError as err:
            raise SplitError(f"{where}: {err}") from err

    def encode(self, record: SlideRecord) -> dict[str, Any]:
        if not self.bin_edges:
            raise RuntimeError("SurvivalTargets.fit() must run before encode()")
        return {"bin": int(assign_time_bins([record.time], self.bin_edges)[0]),  # type: ignore[list-item]
                "event": int(record.event), "time": float(record.time)}  # type: ignore[arg-type]

    def describe(self) -> dict[str, Any]:
        return {"bin_edges": self.bin_edges}
