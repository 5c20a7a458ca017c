"""Ignite handlers of the transfer workflows: select each fold's model on val, write each fold's test results."""

from __future__ import annotations

import copy
import logging
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from torch import nn

from scripts.atomic_io import atomic_write_csv, atomic_write_json
from scripts.engines.model_files import unwrap
from scripts.engines.report_outputs import EpochRowCollector
from scripts.ids import fold_dir_name

from .fold_data import CrossValidationData
from .fold_models import save_fold_model
from .output_notice import transfer_notice, with_notice
from .task_outputs import SubtypingOutputs, SurvivalOutputs

__all__ = ["FoldBestModel", "FoldTestWriter", "selection_score", "selection_score_function"]

logger = logging.getLogger("histgen.transfer")

#: Weight of the validation loss in the selection score: it only breaks ties of the selection metric.
TIE_BREAK = 1e-4


def selection_score(metrics: Mapping[str, Any], metric: str) -> float:
    """Higher is better: ``metrics[metric] - 1e-4 * loss`` (ties broken by lower loss), or ``-loss`` for
    ``metric="loss"``; ``-inf`` when undefined (NaN)."""
    loss = float(metrics.get("loss", 0.0))
    if metric == "loss":
        score = -loss
    else:
        if metric not in metrics:
            raise KeyError(f"validation metric {metric!r} not computed; available: {sorted(metrics)}")
        score = float(metrics[metric]) - (TIE_BREAK * loss if math.isfinite(loss) else 0.0)
    return score if math.isfinite(score) else -math.inf


def selection_score_function(metric: str) -> Callable[[Engine], float]:
    """A score function for early stopping: :func:`selection_score` of the engine's metrics."""

    def score(engine: Engine) -> float:
        return selection_score(engine.state.metrics, metric)

    return score


class FoldBestModel:
    """Keep the current fold's best model on the val part, in memory and as ``<model_dir>/fold_<k>/model.pt``.

    Attach to the val evaluator. :meth:`start_fold` forgets the previous fold's best. Every rank keeps the
    best weights in memory (so every rank can test them); only ranks with ``saver_disabled=False`` write.

    Args:
        data: the cross-validation state (current fold, targets).
        network: the trained module.
        model_dir: where ``fold_<k>/`` folders go.
        metric: validation metric to maximise (``"loss"`` to minimise the loss).
        info: extra fields for ``model_info.json`` (e.g. the pretrained encoder's path).
        saver_disabled: do not write files (ranks > 0).
    """

    def __init__(self, data: CrossValidationData, network: nn.Module, model_dir: str | os.PathLike[str],
                 metric: str = "auc", info: dict[str, Any] | None = None, saver_disabled: bool = False) -> None:
        self.data = data
        self.network = network
        self.model_dir = Path(model_dir)
        self.metric = metric
        self.info = dict(info or {})
        self.saver_disabled = saver_disabled
        self.start_fold()

    def start_fold(self) -> None:
        self.best_score = -math.inf
        self.best_epoch: int | None = None
        self.best_metrics: dict[str, float] = {}
        self.best_state: dict[str, torch.Tensor] | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        metrics = {k: float(v) for k, v in engine.state.metrics.items() if isinstance(v, (int, float))}
        score = selection_score(metrics, self.metric)
        if self.best_state is not None and not score > self.best_score:
            return
        self.best_score, self.best_epoch, self.best_metrics = score, int(engine.state.epoch), metrics
        self.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in unwrap(self.network).state_dict().items()})
        if self.saver_disabled:
            return
        fold = self.data.fold
        targets = self.data.targets.describe()
        info = {"task": self.data.task, "selected_by": f"val {self.metric}", "epoch": self.best_epoch,
                "val_metrics": metrics, "classes": self.data.table.classes, **targets, **self.info}
        path = save_fold_model(self.model_dir, int(fold), self.best_state, self.network, info)  # type: ignore[arg-type]
        logger.info("fold %s: new best val %s %.4f at epoch %d: saved %s", fold, self.metric,
                    metrics.get(self.metric, float("nan")), self.best_epoch, path)

    def load_best(self) -> None:
        """Put the fold's best weights back into the network (the last ones if no epoch was validated)."""
        if self.best_state is None:
            logger.warning("fold %s: no validated epoch, testing the last weights", self.data.fold)
            return
        unwrap(self.network).load_state_dict(self.best_state)


class FoldTestWriter(EpochRowCollector):
    """Collect the test evaluator's predictions; write ``<eval_dir>/fold_<k>/`` when it completes.

    Files: ``metrics.json`` (scores, fold counts, selection info), ``predictions.csv`` (its last column the
    research-use ``notice``, SYNTHETIC-DATA first on the demo: :mod:`.output_notice`), and the task's figure
    (``confusion_matrix.png`` or ``kaplan_meier.png``). Attach to the test evaluator.

    Args:
        data: the cross-validation state.
        outputs: :class:`SubtypingOutputs` or :class:`SurvivalOutputs`.
        eval_dir: the ``eval`` folder.
        info: extra fields for ``metrics.json``.
        writer_disabled: neither score nor write (ranks > 0).
    """

    def __init__(self, data: CrossValidationData, outputs: SubtypingOutputs | SurvivalOutputs,
                 eval_dir: str | os.PathLike[str], info: dict[str, Any] | None = None,
                 writer_disabled: bool = False) -> None:
        super().__init__()
        self.data = data
        self.outputs = outputs
        self.eval_dir = Path(eval_dir)
        self.info = dict(info or {})
        self.writer_disabled = writer_disabled
        self.selection: dict[str, Any] = {}
        self.last_result: dict[str, Any] | None = None

    def rows_from(self, output: Any) -> list[dict[str, Any]]:
        return self.outputs.rows(output["pred"], output["label"])

    def fold_dir(self) -> Path:
        return self.eval_dir / fold_dir_name(self.data.fold)

    def __call__(self, engine: Engine) -> None:
        if self.writer_disabled:
            return
        fold = self.data.fold
        folder = self.fold_dir()
        report = self.outputs.report(self.rows, folder, title=f"fold {fold} test")
        scalars = {k: float(v) for k, v in engine.state.metrics.items() if isinstance(v, (int, float))}
        report["metrics"] = {**scalars, **report["metrics"]}
        result = {"task": self.data.task, "fold": fold, "part": "test", **report, "data": self.data.describe(),
                  **({"selection": self.selection} if self.selection else {}), **self.info}
        self.last_result = result
        atomic_write_csv(folder / "predictions.csv", *with_notice(self.rows, self.outputs.columns,
                                                                 transfer_notice([self.info])))
        atomic_write_json(folder / "metrics.json", result)
        shown = ", ".join(f"{k} {v:.4f}" for k, v in report["metrics"].items() if isinstance(v, float))
        logger.info("fold %s test (%d slides): %s -> %s", fold, len(self.rows), shown, folder / "metrics.json")
