"""Losses of the transfer bundles: class-weighted cross-entropy and the discrete-time survival likelihood.

The survival model predicts a hazard per time bin, ``h_j = sigmoid(logit_j)`` = P(event in bin j | alive at its
start). With ``S_j = prod_{i<=j} (1 - h_i)`` (survival through bin j) and ``S_{-1} = 1``, a slide in bin ``y``
contributes

- observed event: ``-log S_{y-1} - log h_y``  (alive through bins < y, event in bin y);
- censored:       ``-log S_y``                (alive through bin y).

The loss is ``(1 - alpha) * (censored + uncensored terms) + alpha * uncensored terms`` (the weighting of
Zadeh and Schmid 2020, used by Patch-GCN and MCAT), averaged over the batch. Everything is computed in log
space (``log h = logsigmoid(logit)``, ``log(1 - h) = logsigmoid(-logit)``), so no clamping is needed.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ClassWeightedCrossEntropy", "DiscreteTimeSurvivalLoss", "discrete_time_nll", "survival_outputs"]


def survival_outputs(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hazards ``[B, K]``, survival ``S_j`` ``[B, K]`` and risk ``[B]``.

    ``risk = -sum_j S_j``: higher means shorter expected survival.
    """
    hazards = torch.sigmoid(logits)
    survival = torch.exp(torch.cumsum(F.logsigmoid(-logits), dim=1))
    return hazards, survival, -survival.sum(dim=1)


def discrete_time_nll(logits: torch.Tensor, bins: torch.Tensor, events: torch.Tensor, alpha: float = 0.15,
                      reduction: str = "mean") -> torch.Tensor:
    """Negative log-likelihood of the discrete-time hazard model (see the module docstring).

    Args:
        logits: ``[B, K]`` hazard logits.
        bins: ``[B]`` long, the time bin of each slide.
        events: ``[B]`` 1 = event observed, 0 = censored.
        alpha: weight of the uncensored terms' extra share, in [0, 1].
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[B]``).
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must be [B, K], got {tuple(logits.shape)}")
    bins = bins.long().view(-1, 1)
    if bool((bins < 0).any()) or bool((bins >= logits.shape[1]).any()):
        raise ValueError(f"bins must lie in [0, {logits.shape[1]})")
    observed = events.to(logits.dtype).view(-1)
    log_hazard = F.logsigmoid(logits)
    log_survival = torch.cumsum(F.logsigmoid(-logits), dim=1)  # log S_j
    log_survival = torch.cat([log_survival.new_zeros(logits.shape[0], 1), log_survival], dim=1)  # [B, K+1], S_{-1}=1
    alive_before = log_survival.gather(1, bins).view(-1)  # log S_{y-1}
    alive_after = log_survival.gather(1, bins + 1).view(-1)  # log S_y
    uncensored = -observed * (alive_before + log_hazard.gather(1, bins).view(-1))
    censored = -(1.0 - observed) * alive_after
    loss = (1.0 - alpha) * (censored + uncensored) + alpha * uncensored
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


class DiscreteTimeSurvivalLoss(nn.Module):
    """``forward(logits [B, K], targets {"bin": [B], "event": [B], ...})`` -> :func:`discrete_time_nll`.

    Args:
        alpha: see :func:`discrete_time_nll`.
    """

    def __init__(self, alpha: float = 0.15) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.alpha = alpha

    def forward(self, logits: torch.Tensor, targets: dict[str, torch.Tensor], reduction: str = "mean"
                ) -> torch.Tensor:
        return discrete_time_nll(logits, targets["bin"], targets["event"], self.alpha, reduction)


class ClassWeightedCrossEntropy(nn.Module):
    """Cross-entropy weighted by the current fold's class weights.

    ``forward(logits [B, C], targets {"label": [B], ...} or labels [B])``.

    Args:
        class_weights: anything with a ``class_weights`` tensor ``[C]`` read at each call (the fold's
            :class:`scripts.transfer.ClassTargets`, refitted per fold), or None for an unweighted loss.
    """

    def __init__(self, class_weights: Any | None = None) -> None:
        super().__init__()
        self.source = class_weights

    def forward(self, logits: torch.Tensor, targets: dict[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
        labels = targets["label"] if isinstance(targets, dict) else targets
        weight = None
        if self.source is not None:
            weight = self.source.class_weights.to(device=logits.device, dtype=logits.dtype)
        return F.cross_entropy(logits, labels.long(), weight=weight)
