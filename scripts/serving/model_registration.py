"""Register the best model of a finished training run in the MLflow model registry.

``configs/train.json`` attaches :class:`RegisterReportModel`; it does nothing unless
``register_model`` names a registered model::

    python -m monai.bundle run training --config_file configs/train.json --tracking mlflow \\
        --register_model histgen-report

When training completes, the best model (``models/``) is logged as an ``mlflow.pyfunc`` model into
the training's MLflow run and registered as a new version of ``histgen-report``, with tags for the
bundle version, the data and the best validation scores. Without ``--tracking mlflow`` a run is
created in ``tracking_uri`` for it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events

from scripts.engines.mlflow_extras import find_mlflow_handler

logger = logging.getLogger("histgen.registry")

__all__ = ["RegisterReportModel", "register_report_model", "version_tags"]


def version_tags(
    best_state_file: str | os.PathLike[str] | None, tags: dict[str, Any] | None = None
) -> dict[str, str]:
    """Tags of a model version: the given ``tags`` plus ``best_epoch``, ``val.<metric>`` from ``best.json``."""
    out = {str(k): str(v) for k, v in (tags or {}).items() if v is not None}
    if best_state_file is not None and Path(best_state_file).is_file():
        best = json.loads(Path(best_state_file).read_text(encoding="utf-8"))
        out["best_epoch"] = str(best.get("epoch"))
        out["selection_metric"] = str(best.get("metric"))
        for key, value in (best.get("val_metrics") or {}).items():
            out[f"val.{key}"] = f"{float(value):.6g}"
    return out


def register_report_model(
    name: str,
    model_dir: str | os.PathLike[str],
    tracking_uri: str | None = None,
    run_id: str | None = None,
    experiment_name: str = "histgen-report",
    tags: dict[str, str] | None = None,
) -> Any:
    """Log ``model_dir`` as a pyfunc model into ``run_id`` (or a new run) and register it as a version of ``name``.

    Args:
        name: registered model name (created on first use).
        model_dir: ``model.pt``, ``vocab.json``, ``model_config.json``.
        tracking_uri: MLflow tracking URI (the registry is the same store unless ``MLFLOW_REGISTRY_URI`` is set).
        run_id: run to log into; None starts one in ``experiment_name``.
        experiment_name: used when ``run_id`` is None.
        tags: set on the model version.

    Returns:
        The ``ModelVersion``.
    """
    import mlflow

    from .pyfunc_model import log_report_model

    model_dir = Path(model_dir)
    for needed in ("model.pt", "vocab.json", "model_config.json"):
        if not (model_dir / needed).is_file():
            raise FileNotFoundError(f"{model_dir / needed}: cannot register model {name!r} without it")
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    if run_id is None:
        mlflow.set_experiment(experiment_name)
    client = mlflow.MlflowClient()
    # resuming MONAI's run: ending it here marks it FINISHED, which MONAI's handler also does right after
    with mlflow.start_run(run_id=run_id):
        info = log_report_model(model_dir, name="report_model", registered_model_name=name)
        mlflow.set_tag("registered_model", f"{name}/{info.registered_model_version}")
    version = client.get_model_version(name, str(info.registered_model_version))
    for key, value in (tags or {}).items():
        client.set_model_version_tag(name, version.version, key, value)
    logger.info("registered %s version %s (run %s)", name, version.version, version.run_id)
    return client.get_model_version(name, version.version)


class RegisterReportModel:
    """Ignite handler: at ``COMPLETED``, register the best model under ``name`` (no-op if ``name`` is empty).

    Args:
        name: registered model name (``register_model`` in ``train.json``); None or "" does nothing.
        model_dir: the best model's folder.
        best_state_file: ``checkpoints/best.json`` (its validation scores become tags).
        tracking_uri: used when the run has no MONAI MLflow handler (no ``--tracking mlflow``).
        experiment_name: experiment of the run created in that case.
        tags: extra version tags (bundle version, data facts...).
    """

    def __init__(
        self,
        name: str | None,
        model_dir: str | os.PathLike[str],
        best_state_file: str | os.PathLike[str] | None = None,
        tracking_uri: str | None = None,
        experiment_name: str = "histgen-report",
        tags: dict[str, Any] | None = None,
    ) -> None:
        self.name = name or None
        self.model_dir = Path(model_dir)
        self.best_state_file = best_state_file
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.tags = tags or {}
        self.version: Any = None

    def attach(self, engine: Engine) -> None:
        if self.name:
            engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if not (self.model_dir / "model.pt").is_file():
            logger.warning("no best model in %s: nothing registered as %r", self.model_dir, self.name)
            return
        handler = find_mlflow_handler(engine)
        run_id, tracking_uri = None, self.tracking_uri
        if handler is not None and handler.cur_run is not None:
            run_id, tracking_uri = handler.cur_run.info.run_id, handler.client.tracking_uri
        tags = version_tags(self.best_state_file, self.tags)
        self.version = register_report_model(
            self.name, self.model_dir, tracking_uri, run_id, self.experiment_name, tags
        )
