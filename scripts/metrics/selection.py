"""Model-selection scores: a metric key, or a documented combination of keys (``val_metric``).

``val_metric`` in ``configs/train.json`` names any key of the validation metrics (``BLEU_4``,
``finding_mean_accuracy``, ``finding_diagnosis_accuracy``, ``reg_score`` ...). :data:`COMBINED_SCORES`
lists combinations that can be selected on even when the metric did not compute them itself: each is the
mean of its parts. A NaN score (e.g. a finding no validation reference states) counts as -inf, so it
never wins.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["COMBINED_SCORES", "selection_score"]

#: name -> the metric keys it averages.
COMBINED_SCORES: dict[str, tuple[str, ...]] = {
    "clinical_bleu": ("finding_mean_accuracy", "BLEU_4"),
}


def selection_score(metrics: Mapping[str, Any], name: str) -> float:
    """The value of ``name`` in ``metrics`` (or of its :data:`COMBINED_SCORES` recipe); NaN -> -inf.

    Raises:
        KeyError: ``name`` is neither a metric key nor a combination of available keys; the message lists
            the available keys.
    """
    if name in metrics:
        value = float(metrics[name])
    elif name in COMBINED_SCORES and all(part in metrics for part in COMBINED_SCORES[name]):
        parts = [float(metrics[part]) for part in COMBINED_SCORES[name]]
        value = sum(parts) / len(parts)
    else:
        available = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)))
        raise KeyError(f"val_metric {name!r} is not among the validation metrics {available}"
                       f" nor a combination of them ({sorted(COMBINED_SCORES)})")
    return -math.inf if math.isnan(value) else value
