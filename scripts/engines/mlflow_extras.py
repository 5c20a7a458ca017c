"""Adds to MONAI's MLflow tracking what it does not log by itself: hyper-parameters and the best model.

``python -m monai.bundle run training ... --tracking mlflow`` attaches MONAI's ``MLFlowHandler`` to
the trainer; this handler finds that run and logs into it. Without ``--tracking`` it does nothing.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events

logger = logging.getLogger("histgen.mlflow")


def find_mlflow_handler(engine: Engine) -> Any | None:
    """The MONAI ``MLFlowHandler`` attached to ``engine``, if any."""
    from monai.handlers import MLFlowHandler

    for handlers in engine._event_handlers.values():
        for func, *_ in handlers:
            owner = getattr(func, "__self__", None)
            if isinstance(owner, MLFlowHandler):
                return owner
    return None


def skip_mlflow_run(engine: Engine, reason: str) -> bool:
    """Detach MONAI's ``MLFlowHandler`` from ``engine`` before it starts a run: the run trains nothing.

    Called by :class:`scripts.engines.TrainingCheckpoint` on ``Events.STARTED`` (it is attached before the
    tracking handler) when the checkpoint already finished ``max_epochs``, so a re-run leaves no empty
    MLflow run beside the real one. Returns True when a handler was detached (and logs why).
    """
    handler = find_mlflow_handler(engine)
    if handler is None or handler.cur_run is not None:
        return False
    for handlers in engine._event_handlers.values():
        # in place: the STARTED list is being fired right now, and the tracking handler comes after the caller
        handlers[:] = [entry for entry in handlers if getattr(entry[0], "__self__", None) is not handler]
    logger.info("no MLflow run logged: %s", reason)
    return True


def flatten_params(prefix: str, value: Any, out: dict[str, str]) -> None:
    """Flatten nested params into ``out`` with dotted keys; values as text of at most 500 characters."""
    if isinstance(value, dict):
        for key, item in value.items():
            flatten_params(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = str(value)[:500]


class MLflowRunExtras:
    """Logs parameters once and the best model's files when training completes.

    Args:
        params: nested dict of hyper-parameters and data facts (flattened with dots).
        model_dir: folder of ``model.pt``, ``vocab.json``, ``model_config.json``.
        best_state_file: the JSON written by :class:`scripts.engines.BestModelSaver`.
        executed_config_dir: where ``--tracking`` saved the executed ``config_<time>.json``. MONAI
            logs it itself only when ``output_dir`` is an expression; given as a plain path on the
            command line it is not found, so the newest one is logged here if the run lacks it.
    """

    def __init__(
        self,
        params: dict[str, Any],
        model_dir: str | os.PathLike[str],
        best_state_file: str | os.PathLike[str] | None = None,
        executed_config_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.params = params
        self.model_dir = Path(model_dir)
        self.best_state_file = Path(best_state_file) if best_state_file else None
        self.executed_config_dir = Path(executed_config_dir) if executed_config_dir else None
        self._logged_params = False

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED(once=1), self.log_params)
        engine.add_event_handler(Events.COMPLETED, self.log_best_model)

    def _run(self, engine: Engine) -> tuple[Any, str] | None:
        handler = find_mlflow_handler(engine)
        if handler is None or handler.cur_run is None:
            return None
        return handler.client, handler.cur_run.info.run_id

    def log_params(self, engine: Engine) -> None:
        run = self._run(engine)
        if run is None or self._logged_params:
            return
        from mlflow.entities import Param

        client, run_id = run
        flat: dict[str, str] = {}
        flatten_params("", self.params, flat)
        existing = client.get_run(run_id).data.params
        params = [Param(k, v) for k, v in flat.items() if k not in existing]
        for start in range(0, len(params), 90):
            client.log_batch(run_id, params=params[start : start + 90])
        self._logged_params = True

    def log_best_model(self, engine: Engine) -> None:
        run = self._run(engine)
        if run is None:
            return
        client, run_id = run
        for name in ("model.pt", "vocab.json", "model_config.json", "provenance.json"):
            path = self.model_dir / name
            if path.is_file():
                client.log_artifact(run_id, str(path), artifact_path="best_model")
        if self.best_state_file is not None and self.best_state_file.is_file():
            client.log_artifact(run_id, str(self.best_state_file), artifact_path="best_model")
            best = json.loads(self.best_state_file.read_text(encoding="utf-8"))
            client.set_tag(run_id, "best_epoch", str(best.get("epoch")))
            client.log_metric(run_id, f"best_val_{best.get('metric')}", float(best.get("score")))
        self._log_executed_config(client, run_id)
        logger.info("logged the best model to MLflow run %s", run_id)

    def _log_executed_config(self, client: Any, run_id: str) -> None:
        if self.executed_config_dir is None:
            return
        configs = sorted(self.executed_config_dir.glob("config_*.json"), key=lambda p: p.stat().st_mtime)
        logged = {a.path for a in client.list_artifacts(run_id)}
        if configs and not any(name.startswith("config_") for name in logged):
            client.log_artifact(run_id, str(configs[-1]))
