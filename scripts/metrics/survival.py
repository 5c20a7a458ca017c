"""Survival scores from maintained libraries: concordance index (scikit-survival), Kaplan-Meier curves and the
log-rank test (lifelines).

A risk score is "higher = shorter survival". Slides of one patient share the patient's outcome, so scores are
computed per case: a case's risk is the mean of its slides' risks (:func:`case_level`).

Example:
    >>> concordance_index([2.0, 5.0, 9.0], [1, 1, 0], [3.0, 2.0, 1.0])
    1.0
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced

from scripts.atomic_io import atomic_path

__all__ = [
    "CaseOutcomes",
    "SurvivalMetrics",
    "case_level",
    "concordance_index",
    "logrank_p_value",
    "median_risk_groups",
    "plot_kaplan_meier",
]


def concordance_index(times: Sequence[float] | np.ndarray, events: Sequence[int] | np.ndarray,
                      risks: Sequence[float] | np.ndarray) -> float:
    """Harrell's concordance index of ``risks`` (higher = earlier event), via scikit-survival.

    Args:
        times: ``[n]`` follow-up times.
        events: ``[n]`` 1 = event observed, 0 = censored.
        risks: ``[n]`` predicted risk scores.

    Raises:
        ValueError: no event, or no comparable pair (the index is undefined).
    """
    from sksurv.metrics import concordance_index_censored

    times_np = np.asarray(times, dtype=np.float64).reshape(-1)
    events_np = np.asarray(events).reshape(-1).astype(bool)
    risks_np = np.asarray(risks, dtype=np.float64).reshape(-1)
    if not (times_np.size == events_np.size == risks_np.size):
        raise ValueError(f"times, events and risks differ in length: {times_np.size}, {events_np.size}, "
                         f"{risks_np.size}")
    if not events_np.any():
        raise ValueError(f"concordance index undefined: all {times_np.size} samples are censored")
    try:
        return float(concordance_index_censored(events_np, times_np, risks_np)[0])
    except (ValueError, ZeroDivisionError) as err:
        raise ValueError(f"concordance index undefined on {times_np.size} samples: {err}") from err


@dataclass(frozen=True)
class CaseOutcomes:
    """Per-case outcome and mean predicted risk.

    Attributes:
        case_ids: ``[m]`` case ids, in order of first appearance.
        times, events, risks: ``[m]`` arrays; ``num_slides``: ``[m]`` slides per case.
    """

    case_ids: list[str]
    times: np.ndarray
    events: np.ndarray
    risks: np.ndarray
    num_slides: np.ndarray


def case_level(case_ids: Sequence[str], times: Sequence[float] | np.ndarray, events: Sequence[int] | np.ndarray,
               risks: Sequence[float] | np.ndarray) -> CaseOutcomes:
    """Merge slides into cases: the case's (shared) time and event, the mean of its slides' risks."""
    order: dict[str, list[int]] = {}
    for row, case in enumerate(case_ids):
        order.setdefault(str(case), []).append(row)
    times_np, events_np, risks_np = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (times, events, risks))
    rows = list(order.values())
    return CaseOutcomes(
        case_ids=list(order),
        times=np.array([times_np[r[0]] for r in rows]),
        events=np.array([int(events_np[r[0]]) for r in rows]),
        risks=np.array([risks_np[r].mean() for r in rows]),
        num_slides=np.array([len(r) for r in rows]),
    )


def median_risk_groups(risks: Sequence[float] | np.ndarray) -> np.ndarray:
    """``[n] bool``: True for the high-risk group (risk above the median), False for the low-risk group."""
    risks_np = np.asarray(risks, dtype=np.float64).reshape(-1)
    return risks_np > np.median(risks_np)


def logrank_p_value(times: Sequence[float] | np.ndarray, events: Sequence[int] | np.ndarray,
                    high_risk: Sequence[bool] | np.ndarray) -> float:
    """Log-rank test p-value between the high- and low-risk groups (lifelines); NaN if a group is empty."""
    from lifelines.statistics import logrank_test

    times_np = np.asarray(times, dtype=np.float64)
    events_np = np.asarray(events).astype(bool)
    high = np.asarray(high_risk, dtype=bool)
    if high.all() or not high.any():
        return float("nan")
    result = logrank_test(times_np[high], times_np[~high], event_observed_A=events_np[high],
                          event_observed_B=events_np[~high])
    return float(result.p_value)


def plot_kaplan_meier(times: Sequence[float] | np.ndarray, events: Sequence[int] | np.ndarray,
                      high_risk: Sequence[bool] | np.ndarray, path: str | os.PathLike[str], title: str = "",
                      time_unit: str = "") -> dict[str, float]:
    """Kaplan-Meier curves of the low- and high-risk groups with the log-rank p-value, as a PNG (atomic).

    Returns:
        ``{"logrank_p": p, "n_low": ..., "n_high": ..., "events_low": ..., "events_high": ...}``.
    """
    import matplotlib

    matplotlib.use("Agg")
    from lifelines import KaplanMeierFitter
    from matplotlib.figure import Figure

    times_np = np.asarray(times, dtype=np.float64)
    events_np = np.asarray(events).astype(bool)
    high = np.asarray(high_risk, dtype=bool)
    p_value = logrank_p_value(times_np, events_np, high)
    figure = Figure(figsize=(6.0, 4.5))
    axes = figure.add_subplot()
    for name, members, colour in (("low risk", ~high, "tab:blue"), ("high risk", high, "tab:red")):
        if not members.any():
            continue
        fitter = KaplanMeierFitter(label=f"{name} (n={int(members.sum())}, events={int(events_np[members].sum())})")
        fitter.fit(times_np[members], event_observed=events_np[members])
        fitter.plot_survival_function(ax=axes, ci_show=True, color=colour, show_censors=True,
                                      censor_styles={"ms": 5, "marker": "|"})
    axes.set_xlabel(f"time ({time_unit})" if time_unit else "time")
    axes.set_ylabel("survival probability")
    axes.set_ylim(0.0, 1.05)
    shown_p = "n/a" if np.isnan(p_value) else f"{p_value:.2g}"
    axes.set_title((title + "\n" if title else "") + f"median split of predicted risk; log-rank p = {shown_p}")
    axes.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return {"logrank_p": p_value, "n_low": int((~high).sum()), "n_high": int(high.sum()),
            "events_low": int(events_np[~high].sum()), "events_high": int(events_np[high].sum())}


class SurvivalMetrics(Metric):
    """Ignite metric collecting risks over an epoch: case-level concordance index and the mean survival loss.

    ``update((risks [B], times [B], events [B], indices [B], loss_terms [B] or None))``, where ``indices``
    point into ``case_ids``. ``compute()`` returns ``{"c_index", "loss", "num_cases", "num_events"}``;
    ``c_index`` is NaN when undefined (no event or no comparable pair).

    Args:
        case_ids: case id of every record index (slides of one case are merged); None = one case per slide.
        output_transform: engine output -> the tuple above.
    """

    def __init__(self, case_ids: Sequence[str] | None, output_transform: Callable[[Any], Any],
                 device: str | torch.device = "cpu") -> None:
        self.case_ids = list(case_ids) if case_ids is not None else None
        self._rows: list[np.ndarray] = []
        self._losses: list[np.ndarray] = []
        super().__init__(output_transform=output_transform, device=device)

    @reinit__is_reduced
    def reset(self) -> None:
        self._rows = []
        self._losses = []

    @reinit__is_reduced
    def update(self, output: tuple[torch.Tensor, ...]) -> None:
        risks, times, events, indices, loss_terms = output
        columns = [t.detach().double().cpu().reshape(-1) for t in (risks, times, events, indices)]
        self._rows.append(torch.stack(columns, dim=1).numpy())
        if loss_terms is not None:
            self._losses.append(loss_terms.detach().double().cpu().reshape(-1).numpy())

    def compute(self) -> dict[str, float]:
        if not self._rows:
            raise RuntimeError("SurvivalMetrics needs at least one batch before compute()")
        rows = np.concatenate(self._rows)
        indices = rows[:, 3].astype(np.int64)
        cases = [self.case_ids[i] for i in indices] if self.case_ids is not None else [str(i) for i in indices]
        merged = case_level(cases, rows[:, 1], rows[:, 2], rows[:, 0])
        try:
            c_index = concordance_index(merged.times, merged.events, merged.risks)
        except ValueError:
            c_index = float("nan")
        loss = float(np.concatenate(self._losses).mean()) if self._losses else float("nan")
        return {"c_index": c_index, "loss": loss, "num_cases": float(len(merged.case_ids)),
                "num_events": float(merged.events.sum())}
