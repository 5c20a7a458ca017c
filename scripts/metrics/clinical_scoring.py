"""Clinical scores of an epoch of reports: findings accuracy/F1, ``clinical_bleu`` and the REG 2025 score.

:func:`clinical_scores` adds, to the caption scores already computed for the same pairs:

- the per-finding scores of :func:`scripts.metrics.findings_scores` (``finding_<name>_accuracy`` ...);
- ``clinical_bleu`` = mean(``finding_mean_accuracy``, ``BLEU_4``), one number for model selection that
  needs both the right findings and the right wording (NaN when either part is NaN or missing);
- ``reg_key``: mean over pairs of the Jaccard overlap of the two reports' clinical keyword sets
  (:func:`scripts.metrics.clinical_keywords`);
- with a text encoder only: ``reg_emb``, the mean over pairs of the rescaled cosine similarity of the two
  reports' embeddings (:func:`scripts.metrics.text_embedding.reg_rescale`), and ``reg_score`` =
  0.15 (``ROUGE_L`` + ``BLEU_4``) + 0.4 ``reg_key`` + 0.3 ``reg_emb``, the REG 2025 challenge's ranking
  formula. Without an encoder both are left out of the results (and a message says so once per process):
  never replaced by another similarity under the same name.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

from .findings_rules import extract_findings
from .findings_scores import clinical_keywords, keyword_jaccard, scores_from_findings
from .findings_vocabulary import FindingsVocabulary
from .text_embedding import TextEncoder, cosine_similarities, reg_rescale

__all__ = ["REG_WEIGHTS", "clinical_scores", "reg_score"]

logger = logging.getLogger(__name__)

#: Weights of the REG 2025 ranking formula.
REG_WEIGHTS = {"ROUGE_L": 0.15, "BLEU_4": 0.15, "reg_key": 0.4, "reg_emb": 0.3}
_told: set[str] = set()


def reg_score(scores: Mapping[str, float]) -> float:
    """0.15 (ROUGE_L + BLEU_4) + 0.4 KEY + 0.3 EMB from a dict holding those four keys."""
    return sum(weight * float(scores[key]) for key, weight in REG_WEIGHTS.items())


def clinical_scores(
    hypotheses: Sequence[str],
    references: Sequence[str],
    caption: Mapping[str, float],
    vocabulary: FindingsVocabulary | None,
    encoder: TextEncoder | None = None,
) -> dict[str, float]:
    """The clinical scores of the pairs (see the module docstring); ``caption`` holds their BLEU_4/ROUGE_L."""
    generated = [extract_findings(t, vocabulary) for t in hypotheses]
    reference = [extract_findings(t, vocabulary) for t in references]
    result = scores_from_findings(generated, reference)
    bleu = caption.get("BLEU_4", math.nan)
    result["clinical_bleu"] = (result["finding_mean_accuracy"] + bleu) / 2
    result["reg_key"] = sum(
        keyword_jaccard(clinical_keywords(g), clinical_keywords(r)) for g, r in zip(generated, reference)
    ) / len(generated)
    if encoder is None:
        if "no_encoder" not in _told:
            _told.add("no_encoder")
            logger.info("reg_emb and reg_score are left out: no text_encoder was given (a local checkpoint "
                        "folder, see docs/clinical_metrics.md)")
        return result
    similarities = cosine_similarities(encoder, hypotheses, references)
    result["reg_emb"] = sum(reg_rescale(s) for s in similarities) / len(similarities)
    if "ROUGE_L" in caption and "BLEU_4" in caption:
        result["reg_score"] = reg_score({**caption, **result})
    elif "reg_score" not in _told:
        _told.add("reg_score")
        logger.warning("reg_score is left out: it needs BLEU_4 and ROUGE_L among the caption metrics")
    return result
