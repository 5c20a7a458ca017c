"""MLflow runs of a cross-validation: one run per fold, nested under one summary run.

``python -m monai.bundle run ... --tracking mlflow`` attaches MONAI's ``MLFlowHandler`` to the engines; it
makes one run and would mix the folds' epochs in it. :class:`FoldTracking` renames the handlers' run per fold
(``<run_name>-fold<k>``), logs each fold's test scores, parameters and files into it, and at the end makes the
summary run ``<run_name>-cv`` (mean and std of each score, ``eval/metrics.json``, the pooled figures) that
holds the fold runs as children. Without ``--tracking`` it does nothing.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ignite.engine import Engine

from scripts.engines import find_mlflow_handler
from scripts.engines.mlflow_extras import flatten_params

__all__ = ["FoldTracking"]

logger = logging.getLogger("histgen.mlflow")


class FoldTracking:
    """Per-fold MLflow runs (see the module docstring).

    Args:
        engines: the engines MONAI's ``MLFlowHandler`` may be attached to (trainer, val and test evaluators).
        params: nested dict of hyper-parameters and data facts, logged into every run (flattened with dots).
        disabled: do nothing (ranks > 0).
        executed_config_dir: where ``--tracking`` saved the executed ``config_<time>.json``; the newest is
            logged into the summary run (MONAI logs it itself only when ``output_dir`` is an expression).
    """

    def __init__(self, engines: Sequence[Engine | None], params: dict[str, Any] | None = None,
                 disabled: bool = False, executed_config_dir: str | os.PathLike[str] | None = None) -> None:
        self.engines = [e for e in engines if e is not None]
        self.params = params or {}
        self.disabled = disabled
        self.executed_config_dir = Path(executed_config_dir) if executed_config_dir else None
        self.base_name: str | None = None
        self.fold_runs: dict[int, str] = {}

    def _handlers(self) -> list[Any]:
        if self.disabled:
            return []
        found = [find_mlflow_handler(e) for e in self.engines]
        return [h for h in found if h is not None]

    def start_fold(self, fold: int) -> None:
        """Point every handler at a fresh run named ``<run_name>-fold<k>`` (created at the engine's start)."""
        handlers = self._handlers()
        if not handlers:
            return
        if self.base_name is None:
            self.base_name = handlers[0].run_name or f"run_{time.strftime('%Y%m%d_%H%M%S')}"
        for handler in handlers:
            handler.cur_run = None
            handler.run_name = f"{self.base_name}-fold{fold}"

    def _client(self) -> tuple[Any, str] | None:
        handlers = self._handlers()
        if not handlers:
            return None
        handler = handlers[0]
        if handler.experiment is None:
            handler._set_experiment()
        return handler.client, handler.experiment.experiment_id

    def _find_run(self, client: Any, experiment_id: str, name: str) -> str | None:
        runs = client.search_runs([experiment_id], filter_string=f"attributes.run_name = '{name}'",
                                  order_by=["attributes.start_time DESC"], max_results=1)
        return runs[0].info.run_id if runs else None

    def _log(self, client: Any, run_id: str, metrics: dict[str, float], files: Sequence[Path],
             artifact_path: str | None = None) -> None:
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        entries = [Metric(k, float(v), now, 0) for k, v in metrics.items() if math.isfinite(float(v))]
        flat: dict[str, str] = {}
        flatten_params("", self.params, flat)
        existing = client.get_run(run_id).data.params
        params = [Param(k, v) for k, v in flat.items() if k not in existing]
        for start in range(0, max(len(entries), len(params)), 90):
            client.log_batch(run_id, metrics=entries[start : start + 90], params=params[start : start + 90])
        for path in files:
            if path.is_file():
                client.log_artifact(run_id, str(path), artifact_path=artifact_path)

    def end_fold(self, fold: int, result: dict[str, Any] | None, files: Sequence[str | os.PathLike[str]] = ()) -> None:
        """Log the fold's test scores (``test_<name>``), the parameters and ``files`` into its run."""
        found = self._client()
        if found is None or self.base_name is None:
            return
        client, experiment_id = found
        run_id = self._find_run(client, experiment_id, f"{self.base_name}-fold{fold}")
        if run_id is None:
            logger.warning("no MLflow run found for fold %d", fold)
            return
        self.fold_runs[fold] = run_id
        metrics = {}
        if result:
            metrics = {f"test_{k}": v for k, v in result["metrics"].items() if isinstance(v, (int, float))}
            selection = result.get("selection", {})
            if isinstance(selection.get("epoch"), int):
                client.set_tag(run_id, "best_epoch", str(selection["epoch"]))
        self._log(client, run_id, metrics, [Path(f) for f in files], artifact_path="fold")
        client.set_tag(run_id, "fold", str(fold))

    def finish(self, summary: dict[str, Any] | None, files: Sequence[str | os.PathLike[str]] = ()) -> None:
        """Make the summary run ``<run_name>-cv`` (``cv_mean_<name>``, ``cv_std_<name>``, files) over the fold runs."""
        found = self._client()
        if found is None or self.base_name is None or summary is None:
            return
        client, experiment_id = found
        run = client.create_run(experiment_id, run_name=f"{self.base_name}-cv")
        run_id = run.info.run_id
        metrics: dict[str, float] = {}
        for name, stats in summary["metrics"].items():
            metrics[f"cv_mean_{name}"] = stats["mean"]
            metrics[f"cv_std_{name}"] = stats["std"]
        paths = [Path(f) for f in files]
        if self.executed_config_dir is not None:
            configs = sorted(self.executed_config_dir.glob("config_*.json"), key=lambda p: p.stat().st_mtime)
            paths += configs[-1:]
        self._log(client, run_id, metrics, paths)
        client.set_tag(run_id, "folds", ",".join(str(k) for k in summary["folds"]))
        for fold_run in self.fold_runs.values():
            client.set_tag(fold_run, "mlflow.parentRunId", run_id)
        client.set_terminated(run_id)
        logger.info("logged the cross-validation summary to MLflow run %s (%s-cv)", run_id, self.base_name)
