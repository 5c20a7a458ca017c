"""Captioning metrics as in the HistGen paper: BLEU-1..4, METEOR, ROUGE-L (and CIDEr) via pycocoevalcap.

The texts go in as they are, with no PTB tokenisation, like the reference scorer (HistGen feeds decoded,
already-cleaned reports; compare against decoded references, not raw report text). Definitions:

- ``BLEU_1``..``BLEU_4``: pycocoevalcap ``Bleu(4)``: corpus BLEU, brevity penalty with the closest
  reference length;
- ``METEOR``: METEOR 1.5 (the jar inside pycocoevalcap, ``-l en -norm``), the jar's corpus aggregate;
- ``ROUGE_L``: pycocoevalcap ``Rouge()`` (LCS F-measure, beta 1.2), mean over pairs;
- ``CIDEr``: pycocoevalcap ``Cider()`` (CIDEr-D-style n-gram tf-idf with document frequencies from *these*
  references; a corpus of one pair therefore scores 0).

Without Java, or when the JVM fails, ``METEOR`` is left out of the result (never replaced by another
METEOR) and a warning is logged once per process (later failures are logged at debug level).

Empty texts: an empty hypothesis scores 0 for that pair in every metric (METEOR 1.5 handles it; checked).
If no reference holds a word, pycocoevalcap's CIDEr fails (empty document frequency); it is reported as 0.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from .meteor_jar import MeteorError, MeteorJar

__all__ = ["CAPTION_METRICS", "CaptionScorer", "caption_scores", "result_keys"]

logger = logging.getLogger(__name__)

#: Metric families and the result keys each gives.
CAPTION_METRICS: dict[str, tuple[str, ...]] = {
    "BLEU": ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4"),
    "METEOR": ("METEOR",),
    "ROUGE_L": ("ROUGE_L",),
    "CIDEr": ("CIDEr",),
}
_DEFAULT_METRICS = tuple(CAPTION_METRICS)
_warned: set[str] = set()


def _warn_once(topic: str, message: str) -> None:
    """Log a warning the first time per process for ``topic``; later ones at debug level."""
    if topic in _warned:
        logger.debug(message)
    else:
        _warned.add(topic)
        logger.warning(message)


def result_keys(metrics: Sequence[str] = _DEFAULT_METRICS) -> list[str]:
    """Keys :func:`caption_scores` returns for these metric families (METEOR only when Java works)."""
    return [key for name in metrics for key in CAPTION_METRICS[name]]


def _as_reference_list(reference: str | Sequence[str], index: int) -> list[str]:
    refs = [reference] if isinstance(reference, str) else list(reference)
    if not refs or not all(isinstance(r, str) for r in refs):
        raise TypeError(f"reference {index}: expected a string or a non-empty list of strings, got {reference!r}")
    return refs


class CaptionScorer:
    """Reusable scorer: the METEOR JVM is started on first use and kept until :meth:`close`.

    Args:
        metrics: families to compute, from ``"BLEU"``, ``"METEOR"``, ``"ROUGE_L"``, ``"CIDEr"``.
        java: Java executable for METEOR (a name looked up on PATH, or a path).
    """

    def __init__(self, metrics: Sequence[str] = _DEFAULT_METRICS, java: str = "java") -> None:
        unknown = [m for m in metrics if m not in CAPTION_METRICS]
        if unknown:
            raise ValueError(f"unknown caption metric(s) {unknown}; choose from {list(CAPTION_METRICS)}")
        self.metrics = tuple(metrics)
        self.java = java
        self._meteor: MeteorJar | None = None
        self._meteor_unavailable: str | None = None

    @property
    def meteor_available(self) -> bool | None:
        """False once METEOR failed; None before it was tried."""
        if self._meteor_unavailable is not None:
            return False
        return True if self._meteor is not None else None

    def start_meteor(self) -> None:
        """Start the METEOR JVM now (it loads for ~6 s) instead of at the first score, so that it loads while the
        caller does other work; nothing happens without ``"METEOR"`` in ``metrics`` or once it has started or
        failed. A failure to start is reported as at the first score."""
        if "METEOR" in self.metrics and self._meteor is None and self._meteor_unavailable is None:
            try:
                self._meteor = MeteorJar(java=self.java)
            except MeteorError as err:
                self._meteor_failed(err)

    def _meteor_failed(self, err: MeteorError) -> None:
        self._meteor_unavailable = str(err)
        self.close()
        _warn_once("METEOR", f"METEOR is skipped and left out of the results: {err}")

    def _meteor_score(self, refs: list[list[str]], hyps: list[str]) -> float | None:
        self.start_meteor()
        if self._meteor is None:
            return None
        try:
            return self._meteor.score(refs, hyps)[0]
        except MeteorError as err:
            self._meteor_failed(err)
            return None

    def score(self, references: Sequence[str | Sequence[str]], hypotheses: Sequence[str]) -> dict[str, float]:
        """Score generated texts against references.

        Args:
            references: one reference text (or a list of them) per pair.
            hypotheses: one generated text per pair.

        Returns:
            ``{"BLEU_1": ..., "BLEU_4": ..., "METEOR": ..., "ROUGE_L": ..., "CIDEr": ...}`` as floats
            (only the requested families; no ``METEOR`` key without a working Java).
        """
        if len(references) != len(hypotheses):
            raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
        if not hypotheses:
            raise ValueError("no texts to score")
        refs = [_as_reference_list(r, i) for i, r in enumerate(references)]
        for i, hyp in enumerate(hypotheses):
            if not isinstance(hyp, str):
                raise TypeError(f"hypothesis {i}: expected a string, got {type(hyp).__name__}")
        gts: dict[int, list[str]] = dict(enumerate(refs))
        res: dict[int, list[str]] = {i: [h] for i, h in enumerate(hypotheses)}

        result: dict[str, float] = {}
        if "BLEU" in self.metrics:
            bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
            result.update({key: float(v) for key, v in zip(CAPTION_METRICS["BLEU"], bleu)})
        if "METEOR" in self.metrics:
            meteor = self._meteor_score(refs, list(hypotheses))
            if meteor is not None:
                result["METEOR"] = float(meteor)
        if "ROUGE_L" in self.metrics:
            result["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
        if "CIDEr" in self.metrics:
            if any(r.split() for ref_list in refs for r in ref_list):
                result["CIDEr"] = float(Cider().compute_score(gts, res)[0])
            else:
                result["CIDEr"] = 0.0
        return result

    __call__ = score

    def close(self) -> None:
        """Stop the METEOR JVM if one is running (a later :meth:`score` starts a new one)."""
        if self._meteor is not None:
            self._meteor.close()
            self._meteor = None

    def __enter__(self) -> CaptionScorer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def caption_scores(
    references: Sequence[str | Sequence[str]],
    hypotheses: Sequence[str],
    metrics: Sequence[str] = _DEFAULT_METRICS,
    java: str = "java",
) -> dict[str, float]:
    """One-off :meth:`CaptionScorer.score` (starts and stops its own METEOR JVM, about 5 s)."""
    with CaptionScorer(metrics, java=java) as scorer:
        return scorer.score(references, hypotheses)
