"""Captioning metrics (and the clinical scores of the same reports) as an Ignite metric."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from .caption_scores import CAPTION_METRICS, CaptionScorer
from .clinical_scoring import clinical_scores
from .findings_vocabulary import FindingsVocabulary
from .key_phrases import key_phrase_accuracy
from .report_pairs import ReportPairMetric
from .text_embedding import TextEncoder

__all__ = ["CaptionMetrics", "FindingsMetric"]


def _encoder(text_encoder: str | os.PathLike[str] | TextEncoder | None) -> TextEncoder | None:
    if text_encoder is None or text_encoder == "" or isinstance(text_encoder, TextEncoder):
        return text_encoder or None
    return TextEncoder.load(text_encoder)


class CaptionMetrics(ReportPairMetric):
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr (and optional key-phrase and clinical scores) over an epoch of reports.

    ``update(output)``: see :class:`~scripts.metrics.report_pairs.ReportPairMetric`. ``compute()`` returns a
    dict; attached to an engine, Ignite puts every key into ``engine.state.metrics``
    (``engine.state.metrics["BLEU_4"]``) and the whole dict under the attach name.

    Args:
        output_transform: maps the engine output to the update input.
        metrics: caption metric families, see :class:`scripts.metrics.CaptionScorer`.
        key_phrases: optional phrase list or ``{group: [phrases]}``; adds ``<group>_accuracy`` etc.
            (see :func:`scripts.metrics.key_phrase_accuracy`).
        findings_vocabulary: a :class:`~scripts.metrics.FindingsVocabulary` (or None to skip): adds the
            clinical scores of :func:`scripts.metrics.clinical_scoring.clinical_scores`
            (``finding_<name>_accuracy``, ``finding_<name>_f1``, ``finding_mean_accuracy``,
            ``finding_macro_f1``, ``clinical_bleu``, ``reg_key``).
        text_encoder: a local text-encoder folder (:class:`~scripts.metrics.TextEncoder`) or None; with one
            (and a findings vocabulary) ``reg_emb`` and ``reg_score`` are added too.
        java: Java executable for METEOR.
        device: Ignite's device argument (texts stay on the CPU).
        start_meteor_early: start the METEOR JVM when the metric is built, so that it loads (~6 s) while the
            model is loaded and the reports are decoded; by default it starts at the first ``compute()``.

    The METEOR JVM lives until :meth:`close` or garbage collection.
    """

    def __init__(
        self,
        output_transform: Callable[[Any], Any] = lambda x: x,
        metrics: Sequence[str] = tuple(CAPTION_METRICS),
        key_phrases: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
        findings_vocabulary: FindingsVocabulary | None = None,
        text_encoder: str | os.PathLike[str] | TextEncoder | None = None,
        java: str = "java",
        device: str | torch.device = "cpu",
        start_meteor_early: bool = False,
    ) -> None:
        self._scorer = CaptionScorer(metrics, java=java)
        if start_meteor_early:
            self._scorer.start_meteor()
        self._key_phrases = key_phrases
        self._findings_vocabulary = findings_vocabulary
        self._text_encoder = _encoder(text_encoder)
        super().__init__(output_transform=output_transform, device=device)

    def compute(self) -> dict[str, float]:
        hypotheses, references = self._texts()
        result: dict[str, float] = dict(self._scorer.score(references, hypotheses)) if self._scorer.metrics else {}
        if self._key_phrases is not None:
            accuracy = key_phrase_accuracy(hypotheses, references, self._key_phrases)
            result.update({key: float(value) for key, value in accuracy.items()})
        if self._findings_vocabulary is not None:
            result.update(clinical_scores(hypotheses, references, result, self._findings_vocabulary,
                                          self._text_encoder))
        return result

    def close(self) -> None:
        """Stop the METEOR JVM."""
        self._scorer.close()


class FindingsMetric(ReportPairMetric):
    """Per-finding accuracy and macro F1 of generated vs reference reports (no caption scores).

    ``compute()`` returns ``finding_<name>_accuracy``, ``finding_<name>_f1``, ``finding_<name>_eligible``,
    ``finding_mean_accuracy``, ``finding_macro_f1`` and ``reg_key`` (:mod:`scripts.metrics.findings_scores`).

    Args:
        output_transform: maps the engine output to ``(hypotheses, references[, ids])``.
        findings_vocabulary: known diagnoses (None: rule-based phrases only).
        device: Ignite's device argument.
    """

    def __init__(
        self,
        output_transform: Callable[[Any], Any] = lambda x: x,
        findings_vocabulary: FindingsVocabulary | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self._findings_vocabulary = findings_vocabulary or FindingsVocabulary()
        super().__init__(output_transform=output_transform, device=device)

    def compute(self) -> dict[str, float]:
        hypotheses, references = self._texts()
        result = clinical_scores(hypotheses, references, {}, self._findings_vocabulary, None)
        result.pop("clinical_bleu")  # needs BLEU_4, which this metric does not compute
        return result
