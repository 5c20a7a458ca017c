"""Serving the bundles: MLflow pyfunc models and registry, TorchScript export, one inference path per task.

- :mod:`.report_predictor`: feature bags -> reports (what ``configs/inference.json`` does), used by
  the MLflow model, the MONAI Label app and the MONAI Deploy app;
- :mod:`.region_features`: a slide region -> a feature bag (for viewers and MONAI Deploy);
- :mod:`.pyfunc_model`: the ``mlflow.pyfunc`` model, its signature and logging;
- :mod:`.model_registration`: the training handler that registers the best model (``register_model``);
- the sibling bundles' fold ensembles: :mod:`.transfer_predictor` (feature bags -> what their
  ``inference.json`` writes), :mod:`.transfer_pyfunc` (the ``mlflow.pyfunc`` model),
  :mod:`.transfer_registration` (``register_model`` in ``bundle/<name>/configs/train.json``);
  :mod:`.bag_rows` reads the pyfunc input rows;
- :mod:`.torchscript_export`: ``models/model.ts`` (``torch.jit.script`` of the HistGen model itself), runnable
  with torch alone (``python -m scripts.serving.torchscript_export``).

Modules are loaded on first use: MLflow only when the MLflow pieces are used, and the command-line
modules stay runnable with ``python -m``.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "RegisterReportModel": "model_registration",
    "register_report_model": "model_registration",
    "version_tags": "model_registration",
    "ReportPredictor": "report_predictor",
    "SlideReport": "report_predictor",
    "RegionBag": "region_features",
    "region_feature_bag": "region_features",
    "build_scriptable_network": "torchscript_export",
    "export_torchscript": "torchscript_export",
    "load_exported_network": "torchscript_export",
    "HistGenReportModel": "pyfunc_model",
    "bags_frame": "pyfunc_model",
    "log_report_model": "pyfunc_model",
    "report_model_signature": "pyfunc_model",
    "bag_tensor": "bag_rows",
    "bags_from_frame": "bag_rows",
    "FEATURE_ROOT_ENV": "feature_paths",
    "FeatureFileNotAllowedError": "feature_paths",
    "resolve_feature_file": "feature_paths",
    "FoldEnsemblePredictor": "transfer_predictor",
    "ensemble_survival_curve": "transfer_predictor",
    "HistGenTransferModel": "transfer_pyfunc",
    "log_transfer_model": "transfer_pyfunc",
    "transfer_model_signature": "transfer_pyfunc",
    "RegisterTransferModel": "transfer_registration",
    "cv_metric_tags": "transfer_registration",
    "register_transfer_model": "transfer_registration",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
