"""Inference with every fold's model: per-slide predictions averaged over the folds.

``<output_dir>/predictions.csv``, with the columns and values of the task's
:meth:`~scripts.transfer.TransferTask.ensemble_row` (floats written with 6 significant digits):

- subtyping: ``slide_id, predicted, prob_<class>...`` (class probabilities averaged over the fold models);
- survival: ``slide_id, risk, risk_fold_<k>...`` (``risk = -sum_j S_j``, averaged over the fold models; each
  fold model has its own time bins, so only risks are combined);

then ``notice``: the research-use notice, SYNTHETIC-DATA first for models of the demo (:mod:`.output_notice`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from torch import nn

from scripts.atomic_io import atomic_write_csv
from scripts.engines.report_data import feature_file_list

from .cross_validation import restart_engine
from .fold_models import list_fold_models, load_fold_weights
from .output_notice import transfer_notice, with_notice
from .tasks import task_from_info

__all__ = ["EnsemblePredictionWriter", "FoldEnsemble"]

logger = logging.getLogger("histgen.transfer")


class EnsemblePredictionWriter:
    """Collect each fold model's outputs per slide (attach to the evaluator); :meth:`write` averages them."""

    def __init__(self, output_dir: str | os.PathLike[str]) -> None:
        self.output_dir = Path(output_dir)
        self.fold: int | None = None
        self.outputs: dict[int, dict[str, np.ndarray]] = {}
        self.order: list[str] = []
        self._seen: set[str] = set()

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)

    def _collect(self, engine: Engine) -> None:
        logits = engine.state.output["pred"].detach().float().cpu()
        per_fold = self.outputs.setdefault(int(self.fold), {})  # type: ignore[arg-type]
        for slide_id, row in zip(engine.state.batch["ids"], logits):
            if slide_id not in self._seen:
                self._seen.add(slide_id)
                self.order.append(slide_id)
            per_fold[slide_id] = row.numpy()

    def write(self, infos: dict[int, dict[str, Any]]) -> Path:
        """Write ``predictions.csv`` for the slides every fold model saw.

        Args:
            infos: each fold model's ``model_info.json`` (its task, classes, time bins).
        """
        folds = sorted(self.outputs)
        ids = [s for s in self.order if all(s in self.outputs[k] for k in folds)]
        task = task_from_info(next(iter(infos.values())) if infos else {}, self.output_dir)
        columns = task.ensemble_columns(folds)
        rows = []
        for slide_id in ids:
            row = task.ensemble_row(slide_id, {k: torch.from_numpy(self.outputs[k][slide_id]) for k in folds}, infos)
            rows.append({c: f"{v:.6g}" if isinstance(v, float) else v for c, v in row.items() if c in columns})
        rows, columns = with_notice(rows, columns, transfer_notice(infos.values()))
        path = atomic_write_csv(self.output_dir / "predictions.csv", rows, columns)
        logger.info("wrote predictions of %d slide(s) by %d fold model(s) to %s", len(rows), len(folds), path)
        return path


class FoldEnsemble:
    """Run ``evaluator`` once per saved fold model and write the averaged predictions.

    Args:
        evaluator: a MONAI evaluator over the slides to predict; ``writer`` is one of its handlers.
        network: the network the evaluator runs (weights are loaded per fold).
        model_dir: folder of ``fold_<k>/model.pt``.
        writer: the :class:`EnsemblePredictionWriter`.
        folds: fold models to use, None for all.
    """

    def __init__(self, evaluator: Engine, network: nn.Module, model_dir: str | os.PathLike[str],
                 writer: EnsemblePredictionWriter, folds: list[int] | None = None) -> None:
        self.evaluator = evaluator
        self.network = network
        self.model_dir = Path(model_dir)
        self.writer = writer
        self.folds = folds

    def run(self) -> Path:
        if len(self.evaluator.data_loader.dataset) == 0:  # type: ignore[arg-type]
            feature_file_list(None, None)  # raises: inference needs feature_files or dataset_dir
        available = list_fold_models(self.model_dir)
        folds = [k for k in (self.folds if self.folds is not None else available) if k in available]
        if not folds:
            raise FileNotFoundError(f"{self.model_dir}: no fold_<k>/model.pt to predict with; train first")
        infos: dict[int, dict[str, Any]] = {}
        for fold in folds:
            infos[fold] = load_fold_weights(self.network, self.model_dir, fold)
            self.writer.fold = fold
            restart_engine(self.evaluator)
            self.evaluator.run()
        return self.writer.write(infos)
