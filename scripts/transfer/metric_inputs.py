"""Output transforms that turn an evaluator's output into what the task's Ignite metric updates with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .losses import DiscreteTimeSurvivalLoss, survival_outputs

__all__ = ["survival_metric_inputs"]


def survival_metric_inputs(loss: DiscreteTimeSurvivalLoss | None = None
                           ) -> Callable[[dict[str, Any]], tuple[torch.Tensor, ...]]:
    """For :class:`scripts.metrics.SurvivalMetrics`: ``(risk, time, event, index, per-slide loss or None)``.

    Args:
        loss: the training loss, to report the validation loss (needs the fold's time bins in the label).
    """

    def transform(output: dict[str, Any]) -> tuple[torch.Tensor, ...]:
        logits, targets = output["pred"], output["label"]
        risk = survival_outputs(logits.detach().float())[2]
        terms = None
        if loss is not None and "bin" in targets:
            terms = loss(logits.detach().float(), targets, reduction="none")
        return risk, targets["time"], targets["event"], targets["index"], terms

    return transform
