"""The report model as an ``mlflow.pyfunc`` model: feature bags in a DataFrame in, report texts out.

Input: a pandas DataFrame, one row per slide, with ``slide_id`` and either ``feature_file`` or ``features``
(the columns of :mod:`scripts.serving.bag_rows`, shared with the subtyping and survival models; see
:func:`report_model_signature`). ``feature_file`` rows are refused unless the serving process has
``HISTGEN_FEATURE_ROOT`` set, and then must name files under that folder (:mod:`scripts.serving.feature_paths`).
Params (optional): ``beam_size`` (-1 = the model's ``beam_size``), ``max_len`` (-1 = the model's
``max_seq_length``), ``batch_size`` (default 4): as ``configs/inference.json``, the decoding defaults are the
model's own (``model_config.json``); an override that differs is logged.
Output: a DataFrame with ``slide_id``, ``report`` (sentence-case prose), ``report_tokens`` (the model's tokens,
what the metrics score) and ``notice`` (the research-use notice; it starts with ``SYNTHETIC-DATA MODEL — NOT
FOR DIAGNOSIS`` for a model trained on synthetic data, whose load also logs that warning).

A list of ``[N, D]`` arrays can be given as ``bags_frame(arrays)``.

The logged model carries ``scripts/`` as code (``code_paths``), so
``mlflow.pyfunc.load_model("models:/<name>/<version>")`` works in a process that has never seen
this repository.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, ParamSchema, ParamSpec, Schema

from .bag_rows import bags_from_frame
from .feature_paths import feature_root_from_env, guarded_feature_reader, one_line_error
from .report_predictor import DEFAULT_BATCH_SIZE

#: A ``beam_size`` or ``max_len`` param of -1 means the model's own (``model_config.json``).
MODEL_DEFAULT = -1

__all__ = ["HistGenReportModel", "bags_frame", "log_report_model", "report_model_signature", "REPORT_PIP_REQUIREMENTS"]

MODEL_DIR_ARTIFACT = "model_dir"

#: Requirements recorded with the model (pip's inference would load the model in a subprocess).
REPORT_PIP_REQUIREMENTS = [
    "torch>=2.8,<2.15",
    "monai>=1.5,<1.7",
    "pytorch-ignite>=0.5.2,<0.6",
    "mlflow>=3.0,<3.18",
    "numpy>=1.26",
    "pandas",
    "h5py>=3.10",
    "nltk>=3.9",
]


def report_model_signature() -> ModelSignature:
    """Input columns ``slide_id``, ``feature_file``, ``features``; output ``slide_id``, ``report``,
    ``report_tokens``, ``notice``; three params."""
    inputs = Schema(
        [
            ColSpec("string", "slide_id", required=False),
            ColSpec("string", "feature_file", required=False),
            ColSpec(Array(Array("double")), "features", required=False),
        ]
    )
    outputs = Schema([ColSpec("string", "slide_id"), ColSpec("string", "report"), ColSpec("string", "report_tokens"),
                      ColSpec("string", "notice")])
    params = ParamSchema(
        [
            ParamSpec("beam_size", "long", MODEL_DEFAULT),
            ParamSpec("max_len", "long", MODEL_DEFAULT),
            ParamSpec("batch_size", "long", DEFAULT_BATCH_SIZE),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def bags_frame(bags: Sequence[Any], slide_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """A model input from in-memory bags (each ``[N, D]``)."""
    rows: dict[str, list[Any]] = {"features": [np.asarray(b, dtype=np.float64).tolist() for b in bags]}
    if slide_ids is not None:
        rows["slide_id"] = list(slide_ids)
    return pd.DataFrame(rows)


# MLflow warns at class creation that predict() has no type hints; the signature is explicit instead
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*type hints.*", category=UserWarning)

    class HistGenReportModel(mlflow.pyfunc.PythonModel):
        """``mlflow.pyfunc`` wrapper of :class:`scripts.serving.report_predictor.ReportPredictor`.

        The artifact ``model_dir`` holds ``model.pt``, ``vocab.json`` and ``model_config.json``.
        """

        def load_context(self, context: Any) -> None:
            from .report_predictor import ReportPredictor

            device = os.environ.get("HISTGEN_DEVICE") or None
            self.predictor = ReportPredictor(context.artifacts[MODEL_DIR_ARTIFACT], device=device)
            self.feature_root = feature_root_from_env()  # None: feature_file inputs are refused

        def predict(self, context, model_input, params=None):  # noqa: ANN001 - MLflow reads type hints as a schema
            """``model_input``: a DataFrame (see the module docstring) or a list of ``[N, D]`` arrays -> DataFrame."""
            try:
                frame = model_input if isinstance(model_input, pd.DataFrame) else bags_frame(list(model_input))
                params = params or {}
                beam_size = int(params.get("beam_size", MODEL_DEFAULT))
                max_len = int(params.get("max_len", MODEL_DEFAULT))
                settings = {
                    "beam_size": None if beam_size < 1 else beam_size,
                    "max_len": None if max_len < 1 else max_len,
                    "batch_size": int(params.get("batch_size", DEFAULT_BATCH_SIZE)),
                }
                read = guarded_feature_reader(self.predictor.read_bag, getattr(self, "feature_root", None))
                bags, ids = bags_from_frame(frame, read, self.predictor.feature_dim)
                reports = self.predictor.predict_bags(bags, ids, **settings)
            except Exception as err:  # one line to the client; the traceback stays in the server log
                raise one_line_error(err) from None
            notice = self.predictor.notice
            return pd.DataFrame({"slide_id": [r.slide_id for r in reports], "report": [r.prose for r in reports],
                                 "report_tokens": [r.report for r in reports], "notice": [notice] * len(reports)})


def scripts_dir() -> Path:
    """The ``scripts`` package folder (shipped with the model as code)."""
    return Path(__file__).resolve().parents[1]


def log_report_model(
    model_dir: str | os.PathLike[str],
    name: str = "report_model",
    registered_model_name: str | None = None,
    **kwargs: Any,
) -> Any:
    """``mlflow.pyfunc.log_model`` of the model in ``model_dir`` into the active MLflow run.

    Returns MLflow's ``ModelInfo`` (``registered_model_version`` is set when registered).
    """
    with warnings.catch_warnings():
        # the signature is explicit; an input example would make MLflow load and run the model at log time
        warnings.filterwarnings("ignore", message=".*(type hints|input example|input_example).*", category=UserWarning)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=HistGenReportModel(),
            artifacts={MODEL_DIR_ARTIFACT: str(Path(model_dir).resolve())},
            code_paths=[str(scripts_dir())],
            signature=report_model_signature(),
            pip_requirements=REPORT_PIP_REQUIREMENTS,
            registered_model_name=registered_model_name,
            **kwargs,
        )
