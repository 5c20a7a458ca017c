"""The subtyping and survival fold ensembles as ``mlflow.pyfunc`` models: feature bags in, predictions out.

Input: the report model's (:mod:`scripts.serving.bag_rows`): a DataFrame with ``slide_id`` (optional) and
``feature_file`` (refused unless ``HISTGEN_FEATURE_ROOT`` is set) or ``features`` per row, or a list of
``[N, D]`` arrays. Param (optional): ``batch_size``
(default 8, as ``inference.json``). Output: a DataFrame, one row per slide, with the columns of
:mod:`scripts.serving.transfer_predictor`:

- subtyping: ``slide_id``, ``predicted``, ``prob_<class>``...;
- survival: ``slide_id``, ``risk``, ``risk_fold_<k>``..., ``survival_times``, ``survival``;
- any task: :meth:`scripts.transfer.TransferTask.serving_columns`;
- then ``notice``: the research-use notice (SYNTHETIC-DATA first for models of the demo).

The logged model holds only the fold models (``fold_<k>/model.pt``, ``model_info.json``) and carries
``scripts/`` as code (``code_paths``), so ``mlflow.pyfunc.load_model("models:/<name>/<version>")`` works in
a process that has never seen this repository.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, ParamSchema, ParamSpec, Schema

from scripts.transfer.fold_models import INFO_FILE, MODEL_FILE, fold_model_dir, list_fold_models, load_fold_info
from scripts.transfer.output_notice import NOTICE_COLUMN
from scripts.transfer.tasks import task_from_info

from .bag_rows import bags_from_frame
from .feature_paths import feature_root_from_env, guarded_feature_reader, one_line_error
from .pyfunc_model import REPORT_PIP_REQUIREMENTS, bags_frame, scripts_dir
from .transfer_predictor import DEFAULT_TRANSFER_BATCH_SIZE

__all__ = ["TRANSFER_PIP_REQUIREMENTS", "HistGenTransferModel", "log_transfer_model", "transfer_model_signature"]

MODEL_DIR_ARTIFACT = "model_dir"

#: The report model's requirements plus what ``scripts.transfer`` imports.
TRANSFER_PIP_REQUIREMENTS = [*REPORT_PIP_REQUIREMENTS, "scikit-learn>=1.4", "matplotlib>=3.8", "pycocoevalcap==1.2"]


def transfer_model_signature(info: dict[str, Any], folds: list[int]) -> ModelSignature:
    """Input ``slide_id``, ``feature_file``, ``features``; the task's output columns; param ``batch_size``.

    Args:
        info: a fold's ``model_info.json`` (``task``, ``classes``).
        folds: the fold models shipped (e.g. survival has a ``risk_fold_<k>`` column each).
    """
    inputs = Schema([
        ColSpec("string", "slide_id", required=False),
        ColSpec("string", "feature_file", required=False),
        ColSpec(Array(Array("double")), "features", required=False),
    ])
    columns = [ColSpec(Array("double") if kind == "double[]" else kind, name)
               for name, kind in task_from_info(info).serving_columns(folds)]
    columns.append(ColSpec("string", NOTICE_COLUMN))
    params = ParamSchema([ParamSpec("batch_size", "long", DEFAULT_TRANSFER_BATCH_SIZE)])
    return ModelSignature(inputs=inputs, outputs=Schema(columns), params=params)


# MLflow warns at class creation that predict() has no type hints; the signature is explicit instead
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*type hints.*", category=UserWarning)

    class HistGenTransferModel(mlflow.pyfunc.PythonModel):
        """``mlflow.pyfunc`` wrapper of :class:`scripts.serving.transfer_predictor.FoldEnsemblePredictor`.

        The artifact ``model_dir`` holds ``fold_<k>/model.pt`` and ``fold_<k>/model_info.json``.
        """

        def load_context(self, context: Any) -> None:
            from .transfer_predictor import FoldEnsemblePredictor

            device = os.environ.get("HISTGEN_DEVICE") or None
            self.predictor = FoldEnsemblePredictor(context.artifacts[MODEL_DIR_ARTIFACT], device=device)
            self.feature_root = feature_root_from_env()  # None: feature_file inputs are refused

        def predict(self, context, model_input, params=None):  # noqa: ANN001 - MLflow reads type hints as a schema
            """``model_input``: a DataFrame (see the module docstring) or a list of ``[N, D]`` arrays -> DataFrame."""
            try:
                frame = model_input if isinstance(model_input, pd.DataFrame) else bags_frame(list(model_input))
                batch_size = int((params or {}).get("batch_size", DEFAULT_TRANSFER_BATCH_SIZE))
                read = guarded_feature_reader(self.predictor.read_bag, getattr(self, "feature_root", None))
                bags, ids = bags_from_frame(frame, read, self.predictor.feature_dim)
                rows = self.predictor.predict_bags(bags, ids, batch_size=batch_size)
            except Exception as err:  # one line to the client; the traceback stays in the server log
                raise one_line_error(err) from None
            return pd.DataFrame(rows, columns=self.predictor.columns)


def stage_fold_models(model_dir: str | os.PathLike[str], target: str | os.PathLike[str]) -> list[int]:
    """Copy only ``fold_<k>/model.pt`` and ``model_info.json`` of every saved fold into ``target``; returns the folds.

    Raises:
        FileNotFoundError: no fold model in ``model_dir``.
    """
    folds = list_fold_models(model_dir)
    if not folds:
        raise FileNotFoundError(f"{model_dir}: no fold_<k>/{MODEL_FILE} with {INFO_FILE} to log")
    for fold in folds:
        source, dest = fold_model_dir(model_dir, fold), fold_model_dir(target, fold)
        dest.mkdir(parents=True, exist_ok=True)
        for name in (MODEL_FILE, INFO_FILE):
            shutil.copyfile(source / name, dest / name)
    return folds


def log_transfer_model(
    model_dir: str | os.PathLike[str],
    name: str = "transfer_model",
    registered_model_name: str | None = None,
    **kwargs: Any,
) -> Any:
    """``mlflow.pyfunc.log_model`` of the fold models in ``model_dir`` into the active MLflow run.

    Returns MLflow's ``ModelInfo`` (``registered_model_version`` is set when registered).
    """
    with tempfile.TemporaryDirectory(prefix="histgen-transfer-") as staging:
        folds = stage_fold_models(model_dir, staging)
        signature = transfer_model_signature(load_fold_info(staging, folds[0]), folds)
        with warnings.catch_warnings():
            # the signature is explicit; an input example would make MLflow load and run the model at log time
            warnings.filterwarnings("ignore", message=".*(type hints|input example|input_example).*",
                                    category=UserWarning)
            return mlflow.pyfunc.log_model(
                name=name,
                python_model=HistGenTransferModel(),
                artifacts={MODEL_DIR_ARTIFACT: str(Path(staging).resolve())},
                code_paths=[str(scripts_dir())],
                signature=signature,
                pip_requirements=TRANSFER_PIP_REQUIREMENTS,
                registered_model_name=registered_model_name,
                **kwargs,
            )
