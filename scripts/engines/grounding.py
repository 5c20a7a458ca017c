"""Training inputs of grounded report generation: finding labels read from the report text, word dropout."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from scripts.flags import as_flag

from .report_batches import _move

logger = logging.getLogger("histgen.grounding")

__all__ = ["ReportFindingLabeler", "TeacherForcingBatches", "finding_labeler"]


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


def finding_labeler(
    vocabulary: Any, annotation_file: str | os.PathLike[str], enabled: Any = True, min_count: int = 3
) -> ReportFindingLabeler:
    """The finding heads' labeler for a training annotation (no heads when ``enabled`` is false).

    A finding gets a head when the training reports state it with at least two classes of at least
    ``min_count`` reports each (read by :func:`scripts.metrics.extract_findings` with ``vocabulary``).
    The grade head's classes are grade tiers (:func:`scripts.metrics.grade_tier`): "Fuhrman grade 2",
    "ISUP grade 2" and "grade 2" are one class, since which system a report names is the writer's choice,
    not something the slide shows.

    Args:
        vocabulary: the :class:`scripts.metrics.FindingsVocabulary` of the training reports.
        annotation_file: HistGen annotation JSON; its ``train`` reports are read.
        enabled: ``finding_heads`` (bool or a command-line string such as ``"false"``).
        min_count: fewest training reports per kept class.
    """
    from scripts.data import load_annotation
    from scripts.metrics import extract_findings, grade_tier, grade_tiers

    def read(text: str) -> dict[str, Any]:
        found = extract_findings(text, vocabulary).categorical()
        found["grade"] = grade_tier(found["grade"])
        return found

    if not as_flag(enabled, "finding_heads"):
        logger.info("finding heads off (finding_heads=false): the model learns from the report NLL alone")
        return ReportFindingLabeler([], {}, read)
    reports = [item["report"] for item in load_annotation(annotation_file, required_splits=("train",))["train"]]
    candidates = dict(vocabulary.classes())
    candidates["grade"] = grade_tiers(candidates["grade"])
    return ReportFindingLabeler.from_reports(reports, read, candidates, min_count=min_count)


class TeacherForcingBatches:
    """``prepare_batch`` for training: ``network(features, report_ids, mask=mask)`` with finding labels.

    Targets are ``(report_ids, report_mask)``, plus ``labels [B, F]`` when the labeler has findings; the
    labels also go to the network as ``finding_labels`` (the finding tokens carry the report's findings
    while training, see :class:`scripts.networks.finding_heads.SlideFindingHeads`).
    With ``word_dropout > 0`` each input word (not the targets) is replaced by ``<unk>`` with that
    probability, so the decoder cannot predict the next word from the prefix alone.

    Args:
        labeler: reads the finding labels from each raw report of the batch (``batch["reports"]``).
        word_dropout: probability of hiding an input word.
        unk_id: the vocabulary's ``<unk>`` id (needed when ``word_dropout > 0``).
    """

    def __init__(
        self, labeler: ReportFindingLabeler | None = None, word_dropout: float = 0.0, unk_id: int | None = None
    ) -> None:
        if not 0.0 <= float(word_dropout) < 1.0:
            raise ValueError(f"word_dropout must be in [0, 1), got {word_dropout}")
        if word_dropout and unk_id is None:
            raise ValueError("word_dropout needs the vocabulary's unk_id")
        self.labeler = labeler
        self.word_dropout = float(word_dropout)
        self.unk_id = unk_id

    def __call__(
        self,
        batchdata: dict[str, Any],
        device: torch.device | str | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[Any, ...]:
        if batchdata.get("report_ids") is None:
            raise ValueError(f"training batch without reports (slides {batchdata.get('ids')})")
        b = _move(batchdata, device, non_blocking)
        ids = b["report_ids"]
        targets: tuple[torch.Tensor, ...] = (ids, b["report_mask"])
        kwargs = {"mask": b["mask"]}
        if self.labeler is not None and self.labeler.names:
            labels = self.labeler.labels(b["reports"]).to(ids.device)
            targets = (*targets, labels)
            kwargs["finding_labels"] = labels
        inputs = ids
        if self.word_dropout > 0:
            hide = (torch.rand(ids.shape, device=ids.device) < self.word_dropout) & (ids > 0)
            hide[:, 0] = False
            inputs = ids.masked_fill(hide, int(self.unk_id))
        return b["features"], targets, (inputs,), kwargs
