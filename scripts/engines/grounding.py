"""Training pieces of grounded report generation: finding labels from report text, the auxiliary loss."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .report_batches import _move

logger = logging.getLogger("histgen.grounding")

__all__ = ["FindingLabelBatches", "GroundedReportLoss", "ReportFindingLabeler", "report_nll"]


def report_nll(logprobs: torch.Tensor, report_ids: torch.Tensor, report_mask: torch.Tensor) -> torch.Tensor:
    """Mean NLL of the reference tokens: ``logprobs [B, T-1, V+1]`` predict ``report_ids[:, 1:]``."""
    steps = logprobs.shape[1]
    target = report_ids[:, 1 : steps + 1]
    mask = report_mask[:, 1 : steps + 1].to(logprobs.dtype)
    nll = -logprobs.gather(2, target.unsqueeze(-1)).squeeze(-1)
    return (nll * mask).sum() / mask.sum().clamp_min(1.0)


class ReportFindingLabeler:
    """Class index of each finding a report states (``-1`` where it states none), for the finding heads.

    Args:
        names: findings, in head order.
        classes: class names per finding.
        read: ``text -> {finding: class name or None}``.
    """

    def __init__(
        self, names: Sequence[str], classes: dict[str, Sequence[str]], read: Callable[[str], dict[str, Any]]
    ) -> None:
        self.names = list(names)
        self.classes = {name: list(classes[name]) for name in self.names}
        self._index = {name: {c: i for i, c in enumerate(self.classes[name])} for name in self.names}
        self._read = read
        self._cache: dict[str, list[int]] = {}

    @property
    def num_classes(self) -> dict[str, int]:
        """``{finding: number of classes}`` in head order (the network's ``finding_classes``)."""
        return {name: len(self.classes[name]) for name in self.names}

    def __call__(self, text: str) -> list[int]:
        if text not in self._cache:
            found = self._read(text)
            self._cache[text] = [self._index[n].get(found.get(n), -1) if found.get(n) else -1 for n in self.names]
        return self._cache[text]

    def labels(self, texts: Iterable[str]) -> torch.Tensor:
        """``[B, F] long`` labels of a batch of reports."""
        return torch.tensor([self(t) for t in texts], dtype=torch.long).reshape(-1, len(self.names))

    @classmethod
    def from_reports(
        cls,
        reports: Iterable[str],
        read: Callable[[str], dict[str, Any]],
        candidates: dict[str, Sequence[str]],
        min_count: int = 3,
    ) -> ReportFindingLabeler:
        """Keep the findings that the training reports state with >= 2 classes of >= ``min_count`` reports each."""
        counts: dict[str, Counter] = {name: Counter() for name in candidates}
        for text in reports:
            found = read(text)
            for name in candidates:
                if found.get(name) in candidates[name]:
                    counts[name][found[name]] += 1
        names, classes = [], {}
        for name, allowed in candidates.items():
            kept = [c for c in allowed if counts[name][c] >= min_count]
            if len(kept) >= 2:
                names.append(name)
                classes[name] = kept
        logger.info(
            "finding heads: %s", ", ".join(f"{n} ({len(classes[n])} classes)" for n in names) or "none (no finding "
            "is stated with >= 2 classes in the training reports)"
        )
        return cls(names, classes, read)


class FindingLabelBatches:
    """``prepare_batch`` for training with finding heads: targets are ``(report_ids, report_mask, labels)``.

    Args:
        labeler: reads the finding labels from each raw report of the batch (``batch["reports"]``).
    """

    def __init__(self, labeler: ReportFindingLabeler | None) -> None:
        self.labeler = labeler

    def __call__(
        self, batchdata: dict[str, Any], device: torch.device | str | None = None, non_blocking: bool = False, **kwargs: Any
    ) -> tuple[Any, ...]:
        if batchdata.get("report_ids") is None:
            raise ValueError(f"training batch without reports (slides {batchdata.get('ids')})")
        b = _move(batchdata, device, non_blocking)
        targets: tuple[torch.Tensor, ...] = (b["report_ids"], b["report_mask"])
        if self.labeler is not None and self.labeler.names:
            targets = (*targets, self.labeler.labels(b["reports"]).to(b["report_ids"].device))
        return b["features"], targets, (b["report_ids"],), {"mask": b["mask"]}


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
