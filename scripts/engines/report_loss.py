"""Masked token negative log-likelihood for teacher-forced report generation."""

from __future__ import annotations

import torch
from torch import nn


class ReportNLLLoss(nn.Module):
    """Mean NLL of the reference tokens, as the reference ``LanguageModelCriterion``.

    ``forward(logprobs [B, T-1, V+1], (report_ids [B, T], report_mask [B, T]))``: position ``t`` of
    ``logprobs`` predicts ``report_ids[:, t + 1]``; positions with ``report_mask == 0`` do not count.
    """

    def forward(self, logprobs: torch.Tensor, targets: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        report_ids, report_mask = targets
        steps = logprobs.shape[1]
        target = report_ids[:, 1 : steps + 1]
        mask = report_mask[:, 1 : steps + 1].to(logprobs.dtype)
        nll = -logprobs.gather(2, target.unsqueeze(-1)).squeeze(-1)
        return (nll * mask).sum() / mask.sum().clamp_min(1.0)
