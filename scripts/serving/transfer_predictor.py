"""Feature bags in, the fold ensemble's predictions out: what a sibling bundle's ``inference.json`` writes.

``bundle/subtyping`` and ``bundle/survival`` predict with every fold model (``<model_dir>/fold_<k>/``) and
average. :class:`FoldEnsemblePredictor` does the same steps (read and check each feature file, pad the bags
into batches of ``batch_size`` in the given order, run each fold's weights, average as
:class:`scripts.transfer.EnsemblePredictionWriter` does), so the same files give the same numbers as
``python -m monai.bundle run inference``. One row per slide:

- subtyping: ``slide_id``, ``predicted`` (class name), ``prob_<class>`` (mean of the fold models' softmax);
- survival: ``slide_id``, ``risk`` (mean over the fold models of ``-sum_j S_j``; higher = shorter expected
  survival), ``risk_fold_<k>``, and the ensemble's survival curve: ``survival_times`` (every fold model's
  time-bin boundaries, in the unit of the training CSV) and ``survival`` (the fold models' mean probability
  of surviving past each of those times). Each fold model has its own time bins, so the curves are averaged
  as step functions at the union of the boundaries.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scripts.data import collate_bags, read_feature_file
from scripts.transfer.fold_models import list_fold_models, load_fold_weights, network_from_fold_models
from scripts.transfer.losses import survival_outputs
from scripts.transfer.mil_networks import network_spec

from .bag_rows import bag_tensor

__all__ = ["DEFAULT_TRANSFER_BATCH_SIZE", "FoldEnsemblePredictor", "ensemble_survival_curve"]

#: ``batch_size`` of the sibling bundles' ``inference.json``.
DEFAULT_TRANSFER_BATCH_SIZE = 8
TASKS = ("subtyping", "survival")


def ensemble_survival_curve(curves: Sequence[tuple[Sequence[float], Sequence[float]]]
                            ) -> tuple[list[float], list[float]]:
    """Mean survival curve of fold models with different time bins.

    Args:
        curves: per fold model, its bin edges ``[0, t_1, ..., t_{K-1}, inf]`` and its ``S_j`` ``[K]``
            (probability of surviving past the end of bin j).

    Returns:
        ``times``: the sorted finite inner edges of every model; ``survival``: at each time, the mean over the
        models of their step function (1 before their first edge, ``S_j`` from the end of bin j on).
    """
    times = sorted({float(edge) for edges, _ in curves for edge in list(edges)[1:-1]})
    survival = []
    for t in times:
        values = []
        for edges, surv in curves:
            ended = int(np.searchsorted(np.asarray(list(edges)[1:-1], dtype=np.float64), t, side="right"))
            values.append(1.0 if ended == 0 else float(surv[ended - 1]))
        survival.append(float(np.mean(values)))
    return times, survival


class FoldEnsemblePredictor:
    """A sibling bundle's trained fold models, ready to predict on feature bags.

    Args:
        model_dir: folder of ``fold_<k>/model.pt`` and ``fold_<k>/model_info.json``.
        device: torch device; CUDA when available by default.
        batch_size: bags run together, as ``inference.json``'s ``batch_size``.
        folds: fold models to use (None: every saved one, as ``inference.json``'s ``fold: null``).

    Raises:
        FileNotFoundError: no fold model, or a requested fold has none.
        ValueError: the models are of an unknown task.
    """

    def __init__(self, model_dir: str | os.PathLike[str], device: str | torch.device | None = None,
                 batch_size: int = DEFAULT_TRANSFER_BATCH_SIZE, folds: Sequence[int] | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.device = torch.device(device) if device is not None else torch.device(
            "cuda:0" if torch.cuda.is_available() else "cpu")
        self.batch_size = batch_size
        available = list_fold_models(self.model_dir)
        if not available:
            raise FileNotFoundError(f"{self.model_dir}: no fold_<k>/model.pt with model_info.json; train the "
                                    "bundle first")
        chosen = available if folds is None else [int(k) for k in folds]
        missing = [k for k in chosen if k not in available]
        if missing:
            raise FileNotFoundError(f"{self.model_dir}: no model for fold(s) {missing} (saved: {available})")
        self.network = network_from_fold_models(self.model_dir)
        self.infos: dict[int, dict[str, Any]] = {}
        self.states: dict[int, dict[str, torch.Tensor]] = {}
        for fold in chosen:
            self.infos[fold] = load_fold_weights(self.network, self.model_dir, fold)
            self.states[fold] = {name: value.detach().clone() for name, value in self.network.state_dict().items()}
        self.network.to(self.device).eval()
        self.task = str(self.infos[chosen[0]].get("task"))
        if self.task not in TASKS:
            raise ValueError(f"{self.model_dir}: model_info.json task {self.task!r}, expected one of {TASKS}")
        self.classes: list[str] = [str(c) for c in self.infos[chosen[0]].get("classes") or []]

    @property
    def folds(self) -> list[int]:
        return sorted(self.states)

    @property
    def feature_dim(self) -> int:
        return int(network_spec(self.network)["in_dim"])

    @property
    def columns(self) -> list[str]:
        """The output columns, in order."""
        if self.task == "subtyping":
            return ["slide_id", "predicted", *(f"prob_{c}" for c in self.classes)]
        return ["slide_id", "risk", *(f"risk_fold_{k}" for k in self.folds), "survival_times", "survival"]

    def read_bag(self, path: str | os.PathLike[str], slide_id: str | None = None) -> torch.Tensor:
        """``[N, D]`` features of one ``.h5``/``.pt`` file, checked against the models' ``in_dim``."""
        path = Path(path)
        return read_feature_file(path, slide_id=slide_id or path.stem, feature_dim=self.feature_dim).feats

    @torch.no_grad()
    def fold_logits(self, bags: Sequence[torch.Tensor], batch_size: int | None = None) -> dict[int, np.ndarray]:
        """Each fold model's outputs ``[B, C or K]`` (class logits or hazard logits) for checked ``[N_i, D]`` bags."""
        size = max(1, self.batch_size if batch_size is None else int(batch_size))
        out: dict[int, np.ndarray] = {}
        for fold, state in self.states.items():
            self.network.load_state_dict(state)
            parts = []
            for start in range(0, len(bags), size):
                items = [{"id": str(start + i), "features": feats, "coords": None}
                         for i, feats in enumerate(bags[start : start + size])]
                batch = collate_bags(items)
                logits = self.network(batch["features"].to(self.device), mask=batch["mask"].to(self.device))
                parts.append(logits.detach().float().cpu())
            out[fold] = torch.cat(parts).numpy() if parts else np.zeros((0, 0), dtype=np.float32)
        return out

    def predict_bags(self, bags: Sequence[Any], slide_ids: Sequence[str] | None = None,
                     batch_size: int | None = None) -> list[dict[str, Any]]:
        """One row per bag (see the module docstring), in order.

        Args:
            bags: ``[N_i, D]`` arrays or tensors.
            slide_ids: one id per bag (default ``bag-0``, ``bag-1``...).
            batch_size: override the predictor's.
        """
        ids = list(slide_ids) if slide_ids is not None else [f"bag-{i}" for i in range(len(bags))]
        if len(ids) != len(bags):
            raise ValueError(f"{len(ids)} slide ids for {len(bags)} feature bags")
        tensors = [bag_tensor(bag, sid, self.feature_dim) for bag, sid in zip(bags, ids)]
        logits = self.fold_logits(tensors, batch_size)
        folds = sorted(logits)
        rows: list[dict[str, Any]] = []
        for i, slide_id in enumerate(ids):
            per_fold = {k: torch.from_numpy(logits[k][i]) for k in folds}
            if self.task == "subtyping":
                # the same float32 steps as EnsemblePredictionWriter
                probs = np.mean([torch.softmax(per_fold[k], 0).numpy() for k in folds], axis=0)
                rows.append({"slide_id": slide_id, "predicted": self.classes[int(probs.argmax())],
                             **{f"prob_{c}": float(p) for c, p in zip(self.classes, probs)}})
                continue
            curves, risks = [], {}
            for k in folds:
                _, survival, risk = survival_outputs(per_fold[k][None])
                risks[k] = float(risk)
                curves.append((self.infos[k]["bin_edges"], survival[0].tolist()))
            times, survival_curve = ensemble_survival_curve(curves)
            rows.append({"slide_id": slide_id, "risk": float(np.mean(list(risks.values()))),
                         **{f"risk_fold_{k}": r for k, r in risks.items()},
                         "survival_times": times, "survival": survival_curve})
        return rows

    def predict_files(self, paths: Sequence[str | os.PathLike[str]], slide_ids: Sequence[str] | None = None,
                      batch_size: int | None = None) -> list[dict[str, Any]]:
        """Rows for feature files (``.h5``/``.pt``), in order; ids default to the file names."""
        ids = list(slide_ids) if slide_ids is not None else [Path(p).stem for p in paths]
        bags = [self.read_bag(p, sid) for p, sid in zip(paths, ids)]
        return self.predict_bags(bags, ids, batch_size)
