"""Register a finished cross-validation's fold models in the MLflow model registry (subtyping, survival).

``bundle/<name>/configs/train.json`` runs :meth:`RegisterTransferModel.register` after the fold loop; it does
nothing unless ``register_model`` names a registered model::

    python -m monai.bundle run training --tracking mlflow --register_model histgen-subtyping \\
        --config_file "['bundle/subtyping/configs/train.json','scripts/transfer/configs/transfer_train.json']"

Every fold model in ``models/`` (what ``inference.json`` averages) is logged as one ``mlflow.pyfunc`` model
(:mod:`scripts.serving.transfer_pyfunc`) and registered as a new version of ``histgen-subtyping``, with tags for
the bundle version, the data and the cross-validated test scores (``cv.<metric>.mean``/``.std`` from
``eval/metrics.json``). With ``--tracking mlflow`` the model goes into the cross-validation's summary run
(``<run_name>-cv``); without it a run is created in ``tracking_uri`` for it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from scripts.engines.mlflow_extras import find_mlflow_handler

logger = logging.getLogger("histgen.registry")

__all__ = ["RegisterTransferModel", "cv_metric_tags", "register_transfer_model"]


def cv_metric_tags(metrics_file: str | os.PathLike[str]) -> dict[str, str]:
    """``task``, ``cv.folds`` and ``cv.<metric>.mean`` / ``.std`` of a cross-validation summary (``metrics.json``).

    Returns an empty dict when the file does not exist.
    """
    path = Path(metrics_file)
    if not path.is_file():
        return {}
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    tags = {"task": str(summary.get("task")), "cv.folds": ",".join(str(k) for k in summary.get("folds", [])),
            "cv.num_folds": str(summary.get("num_folds"))}
    for name, stats in (summary.get("metrics") or {}).items():
        for key in ("mean", "std"):
            if isinstance(stats.get(key), (int, float)):
                tags[f"cv.{name}.{key}"] = f"{float(stats[key]):.6g}"
    return tags


def register_transfer_model(
    name: str,
    model_dir: str | os.PathLike[str],
    tracking_uri: str | None = None,
    run_id: str | None = None,
    experiment_name: str = "histgen-transfer",
    tags: dict[str, str] | None = None,
) -> Any:
    """Log the fold models of ``model_dir`` into ``run_id`` (or a new run) and register them as a version of ``name``.

    Args:
        name: registered model name (created on first use).
        model_dir: ``fold_<k>/model.pt`` and ``fold_<k>/model_info.json``.
        tracking_uri: MLflow tracking URI (the registry is the same store unless ``MLFLOW_REGISTRY_URI`` is set).
        run_id: run to log into; None starts one named ``register-<name>`` in ``experiment_name``.
        experiment_name: used when ``run_id`` is None.
        tags: set on the model version.

    Returns:
        The ``ModelVersion``.
    """
    import mlflow

    from .transfer_pyfunc import log_transfer_model

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    if run_id is None:
        mlflow.set_experiment(experiment_name)
    client = mlflow.MlflowClient()
    # a resumed summary run is FINISHED again when this block ends
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else f"register-{name}"):
        info = log_transfer_model(model_dir, name="transfer_model", registered_model_name=name)
        mlflow.set_tag("registered_model", f"{name}/{info.registered_model_version}")
    version = str(info.registered_model_version)
    for key, value in (tags or {}).items():
        client.set_model_version_tag(name, version, key, value)
    found = client.get_model_version(name, version)
    logger.info("registered %s version %s (run %s)", name, found.version, found.run_id)
    return found


class RegisterTransferModel:
    """After the fold loop, register the fold models under ``name`` (no-op if ``name`` is empty or ``disabled``).

    Args:
        name: registered model name (``register_model`` in ``train.json``); None or "" does nothing.
        model_dir: the fold models' folder.
        eval_dir: holds the cross-validation summary ``metrics.json`` (its scores become tags).
        tracking: the cross-validation's :class:`scripts.transfer.FoldTracking`; with ``--tracking mlflow`` the
            model is logged into its summary run.
        tracking_uri: used when there is no such run (no ``--tracking mlflow``).
        experiment_name: experiment of the run created in that case.
        tags: extra version tags (bundle version, data facts...).
        disabled: do nothing (ranks > 0 of a ``torchrun``).
    """

    def __init__(
        self,
        name: str | None,
        model_dir: str | os.PathLike[str],
        eval_dir: str | os.PathLike[str],
        tracking: Any | None = None,
        tracking_uri: str | None = None,
        experiment_name: str = "histgen-transfer",
        tags: dict[str, Any] | None = None,
        disabled: bool = False,
    ) -> None:
        self.name = name or None
        self.model_dir = Path(model_dir)
        self.eval_dir = Path(eval_dir)
        self.tracking = tracking
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.tags = tags or {}
        self.disabled = bool(disabled)
        self.version: Any = None

    def _summary_run(self) -> tuple[str | None, str | None]:
        """``(run_id, tracking_uri)`` of the cross-validation's summary run, or ``(None, None)``."""
        if self.tracking is None or not getattr(self.tracking, "fold_runs", None):
            return None, None
        for engine in getattr(self.tracking, "engines", []):
            handler = find_mlflow_handler(engine)
            if handler is None:
                continue
            fold_run = next(iter(self.tracking.fold_runs.values()))
            parent = handler.client.get_run(fold_run).data.tags.get("mlflow.parentRunId")
            return (parent, handler.client.tracking_uri) if parent else (None, None)
        return None, None

    def register(self) -> Any:
        """Register the fold models now; returns the ``ModelVersion`` (None when there is nothing to do)."""
        if not self.name or self.disabled:
            return None
        from scripts.transfer.fold_models import list_fold_models

        folds = list_fold_models(self.model_dir)
        if not folds:
            logger.warning("no fold model in %s: nothing registered as %r", self.model_dir, self.name)
            return None
        run_id, tracking_uri = self._summary_run()
        tags = {str(k): str(v) for k, v in self.tags.items() if v is not None}
        tags.update(cv_metric_tags(self.eval_dir / "metrics.json"))
        tags["fold_models"] = ",".join(str(k) for k in folds)
        self.version = register_transfer_model(self.name, self.model_dir, tracking_uri or self.tracking_uri, run_id,
                                               self.experiment_name, tags)
        return self.version
