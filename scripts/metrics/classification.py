"""Slide classification scores (scikit-learn): accuracy, balanced accuracy, macro one-vs-rest AUC, macro F1.

One place defines them for the subtyping bundle's validation, test and cross-validation summaries.

Example:
    >>> import numpy as np
    >>> probs = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    >>> classification_scores([0, 1, 1], probs)["accuracy"]  # doctest: +ELLIPSIS
    0.666...
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced

from scripts.atomic_io import atomic_path

__all__ = [
    "CLASSIFICATION_METRICS",
    "ClassificationMetrics",
    "classification_scores",
    "confusion_matrix_counts",
    "plot_confusion_matrix",
]

#: Names of the scalar scores :func:`classification_scores` returns.
CLASSIFICATION_METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "auc", "f1_macro", "loss")


def _as_arrays(labels: Sequence[int] | np.ndarray, probs: Sequence[Sequence[float]] | np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    labels_np = np.asarray(labels, dtype=np.int64).reshape(-1)
    probs_np = np.asarray(probs, dtype=np.float64)
    if probs_np.ndim != 2 or probs_np.shape[0] != labels_np.shape[0]:
        raise ValueError(f"probs must be [n, C] with n = len(labels) = {labels_np.shape[0]}, got {probs_np.shape}")
    if labels_np.size and (labels_np.min() < 0 or labels_np.max() >= probs_np.shape[1]):
        raise ValueError(f"labels must lie in [0, {probs_np.shape[1]}), got {labels_np.min()}..{labels_np.max()}")
    return labels_np, probs_np


def macro_ovr_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean over classes of the one-vs-rest ROC AUC (scikit-learn), over classes with positives and negatives.

    With every class present this equals ``roc_auc_score(..., multi_class="ovr", average="macro")`` (and the
    binary AUC for two classes); a class absent from ``labels`` is left out instead of failing. NaN when no
    class can be scored.
    """
    from sklearn.metrics import roc_auc_score

    aucs = []
    for c in range(probs.shape[1]):
        positive = labels == c
        if positive.any() and not positive.all():
            aucs.append(roc_auc_score(positive, probs[:, c]))
    return float(np.mean(aucs)) if aucs else float("nan")


def classification_scores(labels: Sequence[int] | np.ndarray, probs: Sequence[Sequence[float]] | np.ndarray
                          ) -> dict[str, float]:
    """Scores of class probabilities against true classes.

    Args:
        labels: ``[n]`` true class indices.
        probs: ``[n, C]`` class probabilities (rows sum to 1); the prediction is the arg-max.

    Returns:
        ``accuracy``, ``balanced_accuracy``, ``auc`` (macro one-vs-rest), ``f1_macro`` (over all C classes,
        0 for a class never predicted nor present) and ``loss`` (mean cross-entropy, unweighted).
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    labels_np, probs_np = _as_arrays(labels, probs)
    if labels_np.size == 0:
        raise ValueError("no predictions to score")
    predictions = probs_np.argmax(axis=1)
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true" on small folds
        warnings.simplefilter("ignore", UserWarning)
        balanced = balanced_accuracy_score(labels_np, predictions)
    picked = probs_np[np.arange(labels_np.size), labels_np]
    return {
        "accuracy": float(accuracy_score(labels_np, predictions)),
        "balanced_accuracy": float(balanced),
        "auc": macro_ovr_auc(labels_np, probs_np),
        "f1_macro": float(f1_score(labels_np, predictions, labels=list(range(probs_np.shape[1])),
                                   average="macro", zero_division=0)),
        "loss": float(-np.log(np.clip(picked, 1e-12, 1.0)).mean()),
    }


def confusion_matrix_counts(labels: Sequence[int] | np.ndarray, predictions: Sequence[int] | np.ndarray,
                            num_classes: int) -> list[list[int]]:
    """``[C][C]`` counts: row = true class, column = predicted class (scikit-learn)."""
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(np.asarray(labels), np.asarray(predictions), labels=list(range(num_classes)))
    return matrix.astype(int).tolist()


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], class_names: Sequence[str],
                          path: str | os.PathLike[str], title: str = "") -> Path:
    """Draw a confusion matrix (counts and row shares) as a PNG, written atomically (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    counts = np.asarray(matrix, dtype=float)
    shares = counts / np.clip(counts.sum(axis=1, keepdims=True), 1, None)
    size = max(4.0, 1.1 * len(class_names) + 2.0)
    figure = Figure(figsize=(size, size * 0.85))
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the true class")
    ticks = range(len(class_names))
    axes.set_xticks(ticks, labels=list(class_names), rotation=35, ha="right")
    axes.set_yticks(ticks, labels=list(class_names))
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    for i in ticks:
        for j in ticks:
            colour = "white" if shares[i, j] > 0.6 else "black"
            axes.text(j, i, f"{int(counts[i, j])}\n{shares[i, j]:.0%}", ha="center", va="center", color=colour,
                      fontsize=9)
    if title:
        axes.set_title(title)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return Path(path)


def _probs_and_labels(output: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Default output transform: ``(softmax(pred), label["label"])`` of an evaluator output dict."""
    logits, targets = output["pred"], output["label"]
    labels = targets["label"] if isinstance(targets, dict) else targets
    return torch.softmax(logits.detach().float(), dim=-1), labels


class ClassificationMetrics(Metric):
    """Ignite metric collecting class probabilities over an epoch and scoring them with scikit-learn.

    ``update((probs [B, C], labels [B]))``; ``compute()`` returns :func:`classification_scores`' dict, which
    Ignite also spreads into ``engine.state.metrics`` (``engine.state.metrics["auc"]`` ...).

    Args:
        num_classes: C.
        output_transform: engine output -> ``(probs, labels)``; default reads ``pred`` (logits) and
            ``label["label"]`` of a MONAI evaluator output.
    """

    def __init__(self, num_classes: int, output_transform: Callable[[Any], Any] = _probs_and_labels,
                 device: str | torch.device = "cpu") -> None:
        self.num_classes = int(num_classes)
        self._probs: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        super().__init__(output_transform=output_transform, device=device)

    @reinit__is_reduced
    def reset(self) -> None:
        self._probs = []
        self._labels = []

    @reinit__is_reduced
    def update(self, output: tuple[torch.Tensor, torch.Tensor]) -> None:
        probs, labels = output
        probs_np = probs.detach().float().cpu().numpy()
        if probs_np.ndim != 2 or probs_np.shape[1] != self.num_classes:
            raise ValueError(f"expected probabilities [B, {self.num_classes}], got {tuple(probs_np.shape)}")
        self._probs.append(probs_np)
        self._labels.append(labels.detach().cpu().numpy().reshape(-1))

    def compute(self) -> dict[str, float]:
        if not self._probs:
            raise RuntimeError("ClassificationMetrics needs at least one batch before compute()")
        return classification_scores(np.concatenate(self._labels), np.concatenate(self._probs))
