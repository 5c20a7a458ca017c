"""An Ignite metric base that collects (generated, reference[, id]) report texts over an epoch."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ignite.distributed as idist
import torch
from ignite.metrics import Metric

__all__ = ["ReportPairMetric"]


class ReportPairMetric(Metric):
    """Collects report pairs; subclasses give ``compute()`` over :meth:`_gathered`.

    ``update(output)`` takes ``(hypotheses, references)`` or ``(hypotheses, references, ids)``: lists of
    decoded texts for a batch (and their slide ids), or a mapping with keys ``"hypotheses"``,
    ``"references"`` (and ``"ids"``).

    Distributed runs: every rank's texts are gathered (``idist.all_gather`` of Python objects) before
    scoring, so every rank computes the same corpus scores. When ids are given, a pair seen twice (a
    ``DistributedSampler`` pads the last batch with repeats) is counted once.
    """

    required_output_keys = ("hypotheses", "references")

    def __init__(self, output_transform: Callable[[Any], Any] = lambda x: x,
                 device: str | torch.device = "cpu") -> None:
        self._hypotheses: list[str] = []
        self._references: list[str] = []
        self._ids: list[str] | None = []
        super().__init__(output_transform=output_transform, device=device, skip_unrolling=True)

    def reset(self) -> None:
        self._hypotheses = []
        self._references = []
        self._ids = []

    def update(self, output: Sequence[Any] | Mapping[str, Any]) -> None:
        name = type(self).__name__
        if isinstance(output, Mapping):
            hypotheses, references, ids = output["hypotheses"], output["references"], output.get("ids")
        elif len(output) in (2, 3):
            hypotheses, references = output[0], output[1]
            ids = output[2] if len(output) == 3 else None
        else:
            raise ValueError(f"{name}.update expects (hypotheses, references[, ids]), got {len(output)} items")
        if isinstance(hypotheses, str) or isinstance(references, str):
            raise TypeError(f"{name}.update expects lists of texts, not a single string")
        if len(hypotheses) != len(references):
            raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references in one update")
        if ids is not None and len(ids) != len(hypotheses):
            raise ValueError(f"{len(ids)} ids but {len(hypotheses)} hypotheses in one update")
        self._hypotheses.extend(str(h) for h in hypotheses)
        self._references.extend(str(r) for r in references)
        if ids is None or self._ids is None:
            self._ids = None  # ids must be given for every batch to be used
        else:
            self._ids.extend(str(i) for i in ids)

    def _gathered(self) -> tuple[list[str], list[str]]:
        rows: list[tuple[str | None, str, str]] = list(
            zip(
                self._ids if self._ids is not None else [None] * len(self._hypotheses),
                self._hypotheses,
                self._references,
            )
        )
        if idist.get_world_size() > 1:
            per_rank = idist.all_gather(rows)
            rows = [row for rank_rows in per_rank for row in rank_rows]
        if all(row[0] is not None for row in rows):
            unique: dict[str | None, tuple[str | None, str, str]] = {}
            for row in rows:
                unique.setdefault(row[0], row)
            rows = list(unique.values())
        return [row[1] for row in rows], [row[2] for row in rows]

    def _texts(self) -> tuple[list[str], list[str]]:
        hypotheses, references = self._gathered()
        if not hypotheses:
            raise RuntimeError(f"{type(self).__name__} must have at least one report before it can be computed")
        return hypotheses, references
