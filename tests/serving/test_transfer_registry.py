"""MLflow registry for the sibling bundles: training registers the fold ensemble; a fresh process loads it by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from scripts.engines.model_provenance import RESEARCH_NOTICE
from scripts.serving import bags_from_frame, ensemble_survival_curve
from tests.support.bundle_runs import REPO_ROOT, bundle_env
from tests.support.local_servers import free_port, post_json, running_server
from tests.support.transfer_runs import CLASSES, FAST, file_list, make_labelled_bags, read_rows, run_transfer_workflow

MODELS = {"subtyping": "histgen-subtyping", "survival": "histgen-survival"}

# Runs from an empty folder without PYTHONPATH: the model's own code (code_paths) must be enough.
LOAD_AND_PREDICT = r"""
import importlib.util, json, sys
from pathlib import Path
import h5py, mlflow, numpy as np, pandas as pd
assert importlib.util.find_spec("scripts") is None, "the repository must not be importable here"
name, out, files = sys.argv[1], sys.argv[2], sys.argv[3:]
model = mlflow.pyfunc.load_model(f"models:/{name}/1")
by_file = model.predict(pd.DataFrame({"feature_file": files}))
bags = [h5py.File(f, "r")["feats"][()] for f in files[:2]]
arrays = [b.astype(np.float64).tolist() for b in bags]
by_array = model.predict(pd.DataFrame({"slide_id": ["a", "b"], "features": arrays}))
shipped = Path(model.unwrap_python_model().predictor.model_dir)
one_by_one = model.predict(pd.DataFrame({"feature_file": files[:3]}), params={"batch_size": 1})
json.dump({"by_file": by_file.to_dict(orient="records"), "by_array": by_array.to_dict(orient="records"),
           "one_by_one": one_by_one.to_dict(orient="records"), "columns": list(by_file.columns),
           "shipped": sorted(p.relative_to(shipped).as_posix() for p in shipped.rglob("*") if p.is_file()),
           "inputs": model.metadata.get_input_schema().input_names(),
           "outputs": model.metadata.get_output_schema().input_names()}, open(out, "w"))
"""


def _sqlite(db: Path) -> str:
    return f"sqlite:///{db}"


def _registry_env(db: Path) -> dict[str, str]:
    env = {k: v for k, v in bundle_env().items() if k != "PYTHONPATH"}
    env.update(MLFLOW_TRACKING_URI=_sqlite(db), MLFLOW_REGISTRY_URI=_sqlite(db), OMP_NUM_THREADS="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    return env


@pytest.fixture(scope="module", params=sorted(MODELS))
def registered(request, tmp_path_factory):
    """Train briefly with ``register_model`` (subtyping with ``--tracking mlflow``, survival without), then infer."""
    bundle = request.param
    root = tmp_path_factory.mktemp(f"registry_{bundle}")
    data = make_labelled_bags(root / "data", bundle)
    out = root / "run"
    tracking = {"tracking": "mlflow"} if bundle == "subtyping" else {}
    run_transfer_workflow(bundle, "training", "train.json", output_dir=out, register_model=MODELS[bundle],
                          **data, **FAST, **tracking)
    files = sorted(data["dataset_dir"].glob("*.h5"))[:5]
    run_transfer_workflow(bundle, "inference", "inference.json", output_dir=out, feature_files=file_list(files),
                          predictions_dir=root / "bundle_predictions")
    expected = {row["slide_id"]: row for row in read_rows(root / "bundle_predictions" / "predictions.csv")}
    return {"bundle": bundle, "name": MODELS[bundle], "root": root, "out": out, "data": data, "files": files,
            "expected": expected, "db": out / "eval" / "mlruns.db"}


@pytest.mark.slow
def test_training_registers_the_fold_ensemble_with_bundle_data_and_cv_tags(registered):
    db, bundle, name = registered["db"], registered["bundle"], registered["name"]
    client = mlflow.MlflowClient(_sqlite(db), registry_uri=_sqlite(db))
    version = client.get_model_version(name, "1")
    meta = json.loads((REPO_ROOT / "bundle" / bundle / "configs" / "metadata.json").read_text())
    tags = version.tags
    assert tags["bundle_version"] == meta["version"]
    assert tags["task"] == bundle and tags["model"] == "histgen"
    assert tags["data.csv_file"] == str(registered["data"]["csv_file"])
    assert tags["data.synthetic_demo"] == "False"
    assert tags["fold_models"] == "0,1" and tags["cv.folds"] == "0,1"
    summary = json.loads((registered["out"] / "eval" / "metrics.json").read_text())
    metric = "auc" if bundle == "subtyping" else "c_index"
    assert float(tags[f"cv.{metric}.mean"]) == pytest.approx(summary["metrics"][metric]["mean"], rel=1e-5)
    assert float(tags[f"cv.{metric}.std"]) == pytest.approx(summary["metrics"][metric]["std"], rel=1e-5, abs=1e-9)
    run = client.get_run(version.run_id)
    assert run.data.tags["registered_model"] == f"{name}/1"
    if bundle == "subtyping":  # --tracking mlflow: the version belongs to the cross-validation's summary run
        assert run.info.run_name.endswith("-cv") and "cv_mean_auc" in run.data.metrics
    else:
        assert tags["data.time_unit"] == "months"
        assert run.info.run_name == f"register-{name}"
        assert client.get_experiment(run.info.experiment_id).name == "histgen-survival"


def _load_and_predict(registered, tmp_path) -> dict:
    script = tmp_path / "load.py"
    script.write_text(LOAD_AND_PREDICT)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = tmp_path / "result.json"
    cmd = [sys.executable, str(script), registered["name"], str(result), *map(str, registered["files"])]
    env = {**_registry_env(registered["db"]), "HISTGEN_FEATURE_ROOT": str(registered["data"]["dataset_dir"])}
    proc = subprocess.run(cmd, cwd=empty, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(result.read_text())


@pytest.mark.slow
def test_fresh_process_loads_the_registered_model_and_matches_the_bundle(registered, tmp_path):
    got = _load_and_predict(registered, tmp_path)
    expected = registered["expected"]
    ids = [f.stem for f in registered["files"]]
    assert [r["slide_id"] for r in got["by_file"]] == ids == list(expected)
    assert set(got["inputs"]) == {"slide_id", "feature_file", "features"}
    assert got["outputs"] == got["columns"]
    assert got["shipped"] == [f"fold_{k}/{f}" for k in (0, 1) for f in ("model.pt", "model_info.json")]
    # models of the user's own table (not the demo): the research-use notice only, on every served row
    assert {row["notice"] for row in got["by_file"]} == {RESEARCH_NOTICE}
    if registered["bundle"] == "subtyping":
        assert got["columns"] == ["slide_id", "predicted", *(f"prob_{c}" for c in CLASSES), "notice"]
        numbers = [f"prob_{c}" for c in CLASSES]
        for row in got["by_file"]:
            assert row["predicted"] == expected[row["slide_id"]]["predicted"]
    else:
        assert got["columns"] == ["slide_id", "risk", "risk_fold_0", "risk_fold_1", "survival_times", "survival",
                                  "notice"]
        numbers = ["risk", "risk_fold_0", "risk_fold_1"]
        edges = [json.loads((registered["out"] / "models" / f"fold_{k}" / "model_info.json").read_text())["bin_edges"]
                 for k in (0, 1)]
        for row in got["by_file"]:
            assert row["survival_times"] == sorted({e for fold in edges for e in fold[1:-1]})
            curve = np.asarray(row["survival"])
            assert len(curve) == len(row["survival_times"]) and np.all((curve > 0) & (curve <= 1))
            assert np.all(np.diff(curve) <= 1e-12), "a survival curve never rises"
    for row in got["by_file"]:
        for column in numbers:  # the bundle writes 6 significant digits; another process may round the last one
            assert row[column] == pytest.approx(float(expected[row["slide_id"]][column]), rel=1e-5, abs=1e-6), column
    assert [r["slide_id"] for r in got["by_array"]] == ["a", "b"]
    for by_array, by_file in zip(got["by_array"], got["by_file"]):
        for column in numbers:
            assert by_array[column] == pytest.approx(by_file[column], rel=1e-5), column
    for alone, batched in zip(got["one_by_one"], got["by_file"]):
        for column in numbers:
            assert alone[column] == pytest.approx(batched[column], rel=1e-4, abs=1e-6), column


@pytest.mark.slow
@pytest.mark.parametrize("registered", ["subtyping"], indirect=True)  # one served model is enough
def test_mlflow_models_serve_answers_invocations_with_a_subtype(registered, tmp_path):
    port = free_port()
    cmd = [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", f"models:/{registered['name']}/1",
           "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    env = {**_registry_env(registered["db"]), "HISTGEN_FEATURE_ROOT": str(registered["data"]["dataset_dir"])}
    with running_server(cmd, f"http://127.0.0.1:{port}/ping", tmp_path / "serve.log", tmp_path, env):
        first = registered["files"][0]
        status, body = post_json(f"http://127.0.0.1:{port}/invocations",
                                 {"dataframe_records": [{"feature_file": str(first)}]})
        assert status == 200, body
        (prediction,) = body["predictions"]
        expected = registered["expected"][first.stem]
        assert prediction["slide_id"] == first.stem and prediction["predicted"] == expected["predicted"]
        for c in CLASSES:
            # the served process and the bundle run may sum in another order: equal to float precision
            assert prediction[f"prob_{c}"] == pytest.approx(float(expected[f"prob_{c}"]), rel=1e-5, abs=1e-6)
        status, body = post_json(f"http://127.0.0.1:{port}/invocations",
                                 {"dataframe_records": [{"features": [[0.5, 0.25]]}]})
        assert status == 400 and "feature dimension 2, the model expects 32" in json.dumps(body)
        assert "stack_trace" not in body and "Traceback" not in json.dumps(body), body
        outside = str(registered["out"] / "eval" / "mlruns.db")
        status, body = post_json(f"http://127.0.0.1:{port}/invocations",
                                 {"dataframe_records": [{"feature_file": outside}]})
        assert status == 400 and "not a feature file under the server's feature root" in body["message"], body


# ---------------------------------------------------------------- without training


def test_ensemble_survival_curve_averages_step_functions_with_different_bins():
    fold_a = ([0.0, 10.0, 20.0, float("inf")], [0.9, 0.5, 0.1])
    fold_b = ([0.0, 15.0, float("inf")], [0.8, 0.2])
    times, survival = ensemble_survival_curve([fold_a, fold_b])
    assert times == [10.0, 15.0, 20.0]
    # t=10: a has passed its first bin (0.9), b none (1.0); t=15: a 0.9, b 0.8; t=20: a 0.5, b 0.8
    assert survival == pytest.approx([0.95, 0.85, 0.65])
    assert ensemble_survival_curve([([0.0, float("inf")], [0.3])]) == ([], [])


def test_input_rows_need_exactly_one_bag_each_and_the_model_dimension():
    def read_file(path: str, slide_id: str) -> torch.Tensor:
        return torch.full((3, 4), float(len(slide_id)))

    bags, ids = bags_from_frame(pd.DataFrame({"feature_file": ["/x/s1.h5", None], "features": [None, [[1.0] * 4]]}),
                                read_file, feature_dim=4)
    assert ids == ["s1", "bag-1"] and [tuple(b.shape) for b in bags] == [(3, 4), (1, 4)]
    with pytest.raises(ValueError, match="row 0: give exactly one of 'feature_file' and 'features'"):
        bags_from_frame(pd.DataFrame({"slide_id": ["a"], "feature_file": [""]}), read_file)
    with pytest.raises(ValueError, match=r"row 0 \(a\): feature dimension 2, the model expects 4"):
        bags_from_frame(pd.DataFrame({"slide_id": ["a"], "features": [[[0.5, 0.25]]]}), read_file, feature_dim=4)
    with pytest.raises(ValueError, match="NaN or Inf"):
        bags_from_frame(pd.DataFrame({"features": [[[0.5, float("nan")]]]}), read_file)
