"""Run every fold of a cross-validation with one set of MONAI engines.

For each selected fold: make it current (:meth:`CrossValidationData.set_fold` refits class weights or time bins
on its training part), put the network, optimiser and scheduler back to their initial state, reseed
(``seed + fold``, so a fold run alone gives the same result as in a full run), train with validation every
epoch (early stopping and model selection see only the val part), load the best val model, score it on the
test part (``<eval_dir>/fold_<k>/``). Then summarise every fold on disk (``<eval_dir>/metrics.json``).

``evaluate()`` does the last two steps with the saved fold models (``<model_dir>/fold_<k>/model.pt``).
"""

from __future__ import annotations

import copy
import logging
import os
import time
from pathlib import Path
from typing import Any

import monai
import torch
from ignite.engine import Engine, Events
from torch import nn

from scripts.engines.model_files import unwrap

from .distributed import is_rank0
from .fold_data import CrossValidationData
from .fold_handlers import FoldBestModel, FoldTestWriter
from .fold_models import fold_model_dir, list_fold_models, load_fold_weights
from .fold_summary import summarize_folds
from .mlflow_folds import FoldTracking

__all__ = ["CrossValidation"]

logger = logging.getLogger("histgen.transfer")


def restart_engine(engine: Engine) -> None:
    """Make a MONAI engine start from epoch 0 over its data loader's current length (a new fold's part)."""
    engine.state.iteration = 0
    engine.state.epoch = 0
    engine.state.epoch_length = len(engine.data_loader)  # type: ignore[attr-defined]
    if hasattr(engine.state, "best_metric"):
        engine.state.best_metric = -1
        engine.state.best_metric_epoch = -1


class CrossValidation:
    """The fold loop (see the module docstring).

    Args:
        data: the cross-validation state.
        network: the model (possibly DDP-wrapped).
        eval_dir: where ``fold_<k>/`` results and ``metrics.json`` go.
        test_evaluator: scores the current fold's test part; its handlers include ``test_writer``.
        test_writer: the :class:`FoldTestWriter` attached to ``test_evaluator``.
        trainer: MONAI ``SupervisedTrainer`` over the train part (training only).
        val_evaluator: the validator the trainer runs (training only).
        best_model: the :class:`FoldBestModel` attached to ``val_evaluator`` (training only).
        optimizer, lr_scheduler: put back to their initial state at each fold (training only).
        early_stop: MONAI ``EarlyStopHandler`` attached to ``val_evaluator``, re-armed per fold.
        model_dir: folder of ``fold_<k>/model.pt`` (evaluation reads from it).
        seed: fold k runs with seed ``seed + k``.
        tracking: :class:`FoldTracking` for ``--tracking mlflow``; None for a new one over the engines.
        params: hyper-parameters logged into every MLflow run (``--tracking mlflow``).
        info: extra fields for the summary.
        summary_disabled: do not write the summary (default: on ranks > 0).
        output_dir: the run folder (where ``--tracking`` saves the executed config).
    """

    def __init__(
        self,
        data: CrossValidationData,
        network: nn.Module,
        eval_dir: str | os.PathLike[str],
        test_evaluator: Engine,
        test_writer: FoldTestWriter,
        trainer: Engine | None = None,
        val_evaluator: Engine | None = None,
        best_model: FoldBestModel | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        lr_scheduler: Any | None = None,
        early_stop: Any | None = None,
        model_dir: str | os.PathLike[str] | None = None,
        seed: int = 0,
        tracking: FoldTracking | None = None,
        params: dict[str, Any] | None = None,
        info: dict[str, Any] | None = None,
        summary_disabled: bool | None = None,
        output_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.data = data
        self.network = network
        self.eval_dir = Path(eval_dir)
        self.test_evaluator = test_evaluator
        self.test_writer = test_writer
        self.trainer = trainer
        self.val_evaluator = val_evaluator
        self.best_model = best_model
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.early_stop = early_stop
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.seed = int(seed)
        self.summary_disabled = (not is_rank0()) if summary_disabled is None else summary_disabled
        self.tracking = tracking or FoldTracking([trainer, val_evaluator, test_evaluator], params=params,
                                                 disabled=self.summary_disabled, executed_config_dir=output_dir)
        self.info = dict(info or {})
        self._epoch_hook_attached = False

    # ------------------------------------------------------------------ state
    def _snapshot(self) -> dict[str, Any]:
        state = {"network": copy.deepcopy(unwrap(self.network).state_dict())}
        if self.optimizer is not None:
            state["optimizer"] = copy.deepcopy(self.optimizer.state_dict())
        if self.lr_scheduler is not None:
            state["lr_scheduler"] = copy.deepcopy(self.lr_scheduler.state_dict())
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        unwrap(self.network).load_state_dict(state["network"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        if self.lr_scheduler is not None:
            self.lr_scheduler.load_state_dict(copy.deepcopy(state["lr_scheduler"]))

    def _start_fold(self, fold: int) -> None:
        monai.utils.set_determinism(seed=self.seed + fold)
        self.data.set_fold(fold)
        info = self.data.describe()
        counts = ", ".join(f"{p} {info[p]['slides']} slides/{info[p]['cases']} cases" for p in ("train", "val", "test"))
        logger.info("=== fold %d of %d: %s", fold, self.data.num_folds, counts)
        self.tracking.start_fold(fold)

    def _test(self, fold: int) -> dict[str, Any] | None:
        restart_engine(self.test_evaluator)
        self.test_evaluator.run()
        result = self.test_writer.last_result
        files = []
        if not self.summary_disabled:
            folder = self.test_writer.fold_dir()
            files = [folder / "metrics.json", folder / "predictions.csv", folder / self.test_writer.outputs.figure_name]
            if self.model_dir is not None:
                files.append(fold_model_dir(self.model_dir, fold) / "model_info.json")
        self.tracking.end_fold(fold, result, files)
        return result

    def _summarize(self) -> dict[str, Any] | None:
        if self.summary_disabled:
            return None
        summary = summarize_folds(self.eval_dir, self.data.num_folds, self.test_writer.outputs, self.info)
        figure = self.eval_dir / self.test_writer.outputs.figure_name
        self.tracking.finish(summary, [self.eval_dir / "metrics.json", figure])
        return summary

    # ------------------------------------------------------------------ workflows
    def train(self) -> dict[str, Any] | None:
        """Train and test every selected fold, then summarise; returns the summary (None on ranks > 0)."""
        if self.trainer is None or self.best_model is None:
            raise ValueError("training needs a trainer and a FoldBestModel handler")
        self._attach_epoch_hook()
        initial = self._snapshot()
        for fold in self.data.fold_ids:
            start = time.perf_counter()
            self._start_fold(fold)
            self._restore(initial)
            self.best_model.start_fold()
            if self.early_stop is not None:
                self.early_stop.set_trainer(self.trainer)
            restart_engine(self.trainer)
            if self.val_evaluator is not None:
                restart_engine(self.val_evaluator)
            self.trainer.run()
            self.best_model.load_best()
            self.test_writer.selection = {"metric": self.best_model.metric, "epoch": self.best_model.best_epoch,
                                          "epochs_run": int(self.trainer.state.epoch),
                                          "val_metrics": self.best_model.best_metrics}
            self._test(fold)
            logger.info("fold %d done in %.1f s (best val epoch %s of %d)", fold, time.perf_counter() - start,
                        self.best_model.best_epoch, self.trainer.state.epoch)
        return self._summarize()

    def evaluate(self) -> dict[str, Any] | None:
        """Score each selected fold's saved model on its test part, then summarise."""
        if self.model_dir is None:
            raise ValueError("evaluation needs model_dir")
        available = list_fold_models(self.model_dir)
        folds = [k for k in self.data.fold_ids if k in available]
        missing = [k for k in self.data.fold_ids if k not in available]
        if not folds:
            raise FileNotFoundError(f"{self.model_dir}: no fold model for fold(s) {self.data.fold_ids}; train first")
        if missing:
            logger.warning("no saved model for fold(s) %s in %s: not evaluated", missing, self.model_dir)
        for fold in folds:
            self._start_fold(fold)
            info = load_fold_weights(self.network, self.model_dir, fold)
            self._check_fold_targets(fold, info)
            self.test_writer.selection = {"metric": info.get("selected_by"), "epoch": info.get("epoch"),
                                          "val_metrics": info.get("val_metrics", {})}
            self._test(fold)
        return self._summarize()

    def _check_fold_targets(self, fold: int, info: dict[str, Any]) -> None:
        """The saved model's classes / time bins must be the ones this CSV and split give."""
        now = self.data.targets.describe()
        if "bin_edges" in now and info.get("bin_edges") not in (None, now["bin_edges"]):
            raise ValueError(f"fold {fold}: the saved model's time bins {info['bin_edges']} differ from this CSV's "
                             f"training part {now['bin_edges']}: was it trained on another CSV or split?")
        if info.get("classes") not in (None, self.data.table.classes):
            raise ValueError(f"fold {fold}: the saved model's classes {info['classes']} differ from this CSV's "
                             f"{self.data.table.classes}: set `classes` to the training classes")

    def _attach_epoch_hook(self) -> None:
        dataset = getattr(getattr(self.trainer, "data_loader", None), "dataset", None)
        if self._epoch_hook_attached or not hasattr(dataset, "set_epoch"):
            return
        self.trainer.add_event_handler(Events.EPOCH_STARTED,  # type: ignore[union-attr]
                                       lambda engine: dataset.set_epoch(engine.state.epoch))
        self._epoch_hook_attached = True
