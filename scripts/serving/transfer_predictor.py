"""Feature bags in, the fold ensemble's predictions out: what a sibling bundle's ``inference.json`` writes.

``bundle/subtyping`` and ``bundle/survival`` predict with every fold model (``<model_dir>/fold_<k>/``) and
average. :class:`FoldEnsemblePredictor` does the same steps (read and check each feature file, pad the bags
into batches of ``batch_size`` in the given order, run each fold's weights, average as
:class:`scripts.transfer.EnsemblePredictionWriter` does), so the same files give the same numbers as
``python -m monai.bundle run inference``. One row per slide, with the columns of the task's
:meth:`~scripts.transfer.TransferTask.ensemble_row`:

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
from scripts.transfer.mil_networks import network_spec
from scripts.transfer.output_notice import NOTICE_COLUMN, transfer_notice
from scripts.transfer.task_survival import ensemble_survival_curve
from scripts.transfer.tasks import TransferTask, task_from_info

from .bag_rows import bag_tensor

__all__ = ["DEFAULT_TRANSFER_BATCH_SIZE", "FoldEnsemblePredictor", "ensemble_survival_curve"]

#: ``batch_size`` of the sibling bundles' ``inference.json``.
DEFAULT_TRANSFER_BATCH_SIZE = 8


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
        self.task_def: TransferTask = task_from_info(self.infos[chosen[0]], self.model_dir)
        self.task = self.task_def.name
        self.classes: list[str] = [str(c) for c in self.infos[chosen[0]].get("classes") or []]

    @property
    def folds(self) -> list[int]:
        return sorted(self.states)

    @property
    def feature_dim(self) -> int:
        return int(network_spec(self.network)["in_dim"])

    @property
    def columns(self) -> list[str]:
        """The output columns, in order: the task's serving columns, then ``notice``."""
        return [*(name for name, _ in self.task_def.serving_columns(self.folds)), NOTICE_COLUMN]

    @property
    def notice(self) -> str:
        """The research-use notice of every row (SYNTHETIC-DATA first for models of the demo)."""
        return transfer_notice(self.infos.values())

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
        infos = {k: self.infos[k] for k in folds}
        # the same steps as EnsemblePredictionWriter, so the numbers match the inference workflow's
        notice = self.notice
        return [{**self.task_def.ensemble_row(slide_id, {k: torch.from_numpy(logits[k][i]) for k in folds}, infos),
                 NOTICE_COLUMN: notice} for i, slide_id in enumerate(ids)]

    def predict_files(self, paths: Sequence[str | os.PathLike[str]], slide_ids: Sequence[str] | None = None,
                      batch_size: int | None = None) -> list[dict[str, Any]]:
        """Rows for feature files (``.h5``/``.pt``), in order; ids default to the file names."""
        ids = list(slide_ids) if slide_ids is not None else [Path(p).stem for p in paths]
        bags = [self.read_bag(p, sid) for p, sid in zip(paths, ids)]
        return self.predict_bags(bags, ids, batch_size)
