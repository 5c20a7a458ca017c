"""Losses of teacher-forced report generation: masked token NLL, plus the finding heads' cross-entropy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def report_nll(logprobs: torch.Tensor, report_ids: torch.Tensor, report_mask: torch.Tensor) -> torch.Tensor:
    """Mean NLL of the reference tokens: ``logprobs [B, T-1, V+1]`` predict ``report_ids[:, 1:]``."""
    steps = logprobs.shape[1]
    target = report_ids[:, 1 : steps + 1]
    mask = report_mask[:, 1 : steps + 1].to(logprobs.dtype)
    nll = -logprobs.gather(2, target.unsqueeze(-1)).squeeze(-1)
    return (nll * mask).sum() / mask.sum().clamp_min(1.0)


class ReportNLLLoss(nn.Module):
    """Mean NLL of the reference tokens, as the reference ``LanguageModelCriterion``.

    ``forward(logprobs [B, T-1, V+1], (report_ids [B, T], report_mask [B, T]))``: position ``t`` of
    ``logprobs`` predicts ``report_ids[:, t + 1]``; positions with ``report_mask == 0`` do not count.
    """

    def forward(self, logprobs: torch.Tensor | tuple, targets: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """``logprobs`` or the network's ``ReportScores`` (its finding logits are ignored here)."""
        if isinstance(logprobs, tuple):
            logprobs = logprobs[0]
        return report_nll(logprobs, targets[0], targets[1])


class GroundedReportLoss(nn.Module):
    """Report NLL plus ``finding_weight`` x the mean cross-entropy of the finding heads.

    ``forward(output, targets)``: ``output`` is the network's logprobs ``[B, T-1, V+1]`` or its
    ``(logprobs, finding_logits [B, C_total])``; ``targets`` is ``(report_ids, report_mask)`` or
    ``(report_ids, report_mask, labels [B, F])`` with ``-1`` for a finding the report does not state.

    Args:
        num_classes: classes per finding head, in head order (the network's ``finding_classes`` values).
        finding_weight: weight of the auxiliary loss.
    """

    def __init__(self, num_classes: Sequence[int] = (), finding_weight: float = 1.0) -> None:
        super().__init__()
        self.num_classes = [int(c) for c in num_classes]
        self.finding_weight = float(finding_weight)

    def forward(self, output: Any, targets: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if isinstance(output, tuple):
            logprobs, finding_logits = output[0], output[1]
        else:
            logprobs, finding_logits = output, None
        loss = report_nll(logprobs, targets[0], targets[1])
        if finding_logits is None or len(targets) < 3 or not self.num_classes or self.finding_weight == 0:
            return loss
        labels = targets[2]
        terms = []
        start = 0
        for f, c in enumerate(self.num_classes):
            head, start = finding_logits[:, start : start + c], start + c
            if bool((labels[:, f] >= 0).any()):
                terms.append(F.cross_entropy(head, labels[:, f], ignore_index=-1))
        if terms:
            loss = loss + self.finding_weight * torch.stack(terms).mean()
        return loss
