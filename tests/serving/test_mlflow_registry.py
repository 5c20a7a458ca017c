"""MLflow model registry: training registers its best model; a fresh process loads and serves it by name."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from scripts.demo.feature_bags import make_demo_dataset
from scripts.engines import RESEARCH_NOTICE
from scripts.text.prose import report_prose
from tests.support.bundle_runs import bundle_env, path_of, run_bundle
from tests.support.local_servers import free_port, post_json, running_server

pytestmark = pytest.mark.slow

MODEL = "histgen-report"
TRAIN = {"batch_size": 4, "val_batch_size": 8, "max_seq_length": 30, "beam_size": 2}

# Runs from an empty folder without PYTHONPATH: the model's own code (code_paths) must be enough.
LOAD_AND_PREDICT = r"""
import importlib.util, json, sys
import mlflow, numpy as np, pandas as pd, torch
assert importlib.util.find_spec("scripts") is None, "the repository must not be importable here"
model = mlflow.pyfunc.load_model("models:/histgen-report/1")
files = sys.argv[2:]
by_file = model.predict(pd.DataFrame({"feature_file": files}))
bags = [torch.load(f).numpy() for f in files]
by_array = model.predict(pd.DataFrame({"slide_id": ["a", "b", "c"][: len(bags)],
                                       "features": [b.astype(np.float64).tolist() for b in bags]}))
greedy = model.predict(pd.DataFrame({"feature_file": files[:1]}), params={"beam_size": 1, "max_len": 5})
json.dump({"by_file": by_file.to_dict(orient="records"), "by_array": by_array.to_dict(orient="records"),
           "greedy": greedy.to_dict(orient="records"),
           "signature": model.metadata.get_input_schema().input_names()}, open(sys.argv[1], "w"))
"""


def _registry_env(db: Path) -> dict[str, str]:
    env = {k: v for k, v in bundle_env().items() if k != "PYTHONPATH"}
    uri = f"sqlite:///{db}"
    env.update(MLFLOW_TRACKING_URI=uri, MLFLOW_REGISTRY_URI=uri, MLFLOW_DISABLE_TELEMETRY="true",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    return env


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    root = tmp_path_factory.mktemp("registry")
    demo = make_demo_dataset(root / "demo", n_train=16, n_val=8, n_test=8, feature_dim=32, n_patches=(20, 60))
    out = root / "run"
    run_bundle("training", "train.json", dataset_dir=path_of(demo.dataset_dir),
               annotation_file=path_of(demo.annotation_file), output_dir=path_of(out), max_epochs=2,
               tracking="mlflow", register_model=MODEL, **TRAIN)
    files = sorted(demo.dataset_dir.glob("*test*"))[:3]
    listing = "[" + ",".join(f"'{path_of(f)}'" for f in files) + "]"
    run_bundle("inference", "inference.json", feature_files=listing, output_dir=path_of(out),
               reports_dir=path_of(root / "bundle_reports"))
    with open(root / "bundle_reports" / "reports.csv", encoding="utf-8-sig") as handle:
        expected = {row["id"]: row["report_tokens"] for row in csv.DictReader(handle)}
    return {"root": root, "out": out, "db": out / "eval" / "mlruns.db", "files": files, "expected": expected,
            "demo": demo}


def test_training_registers_a_version_with_bundle_data_and_metric_tags(registered):
    client = mlflow.MlflowClient(f"sqlite:///{registered['db']}", registry_uri=f"sqlite:///{registered['db']}")
    version = client.get_model_version(MODEL, "1")
    meta = json.loads((Path(__file__).resolve().parents[2] / "configs" / "metadata.json").read_text())
    assert version.tags["bundle_version"] == meta["version"]
    assert version.tags["data.annotation_file"] == str(registered["demo"].annotation_file.resolve())
    assert version.tags["data.synthetic_demo"] == "False"
    best = json.loads((registered["out"] / "checkpoints" / "best.json").read_text())
    assert version.tags["best_epoch"] == str(best["epoch"])
    assert float(version.tags["val.BLEU_4"]) == pytest.approx(best["val_metrics"]["BLEU_4"], abs=1e-5)
    run = client.get_run(version.run_id)
    assert run.data.tags["registered_model"] == f"{MODEL}/1"
    assert run.data.params["train.max_epochs"] == "2", "the version belongs to the training's own run"


def test_fresh_process_loads_the_registered_model_and_matches_the_bundle(registered, tmp_path):
    script = tmp_path / "load.py"
    script.write_text(LOAD_AND_PREDICT)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = tmp_path / "result.json"
    cmd = [sys.executable, str(script), str(result), *map(str, registered["files"])]
    env = {**_registry_env(registered["db"]), "HISTGEN_FEATURE_ROOT": str(registered["demo"].dataset_dir)}
    proc = subprocess.run(cmd, cwd=empty, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(result.read_text())
    assert {r["slide_id"]: r["report_tokens"] for r in got["by_file"]} == registered["expected"]
    expected = [registered["expected"][f.stem] for f in registered["files"]]
    assert [r["report_tokens"] for r in got["by_array"]] == expected
    # prose beside the tokens, and the research-use notice on every row (the demo bags here are given as a
    # dataset_dir, so the model does not count as trained on the synthetic demo)
    assert all(r["report"] == report_prose(r["report_tokens"]) for r in got["by_file"])
    assert {r["notice"] for r in got["by_file"]} == {RESEARCH_NOTICE}
    assert [r["slide_id"] for r in got["by_array"]] == ["a", "b", "c"]
    assert len(got["greedy"][0]["report_tokens"].split()) <= 5
    assert set(got["signature"]) == {"slide_id", "feature_file", "features"}


def test_mlflow_models_serve_answers_invocations_with_a_report(registered, tmp_path):
    port = free_port()
    cmd = [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}/1",
           "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    env = {**_registry_env(registered["db"]), "HISTGEN_FEATURE_ROOT": str(registered["demo"].dataset_dir)}
    with running_server(cmd, f"http://127.0.0.1:{port}/ping", tmp_path / "serve.log", tmp_path, env):
        first = registered["files"][0]
        status, body = post_json(f"http://127.0.0.1:{port}/invocations",
                                 {"dataframe_records": [{"feature_file": str(first)}],
                                  "params": {"beam_size": TRAIN["beam_size"]}})  # the bundle ran at the model's beam
        assert status == 200, body
        tokens = registered["expected"][first.stem]
        assert body["predictions"] == [{"slide_id": first.stem, "report": report_prose(tokens), "report_tokens": tokens,
                                        "notice": RESEARCH_NOTICE}]
        status, body = post_json(f"http://127.0.0.1:{port}/invocations",
                                 {"dataframe_records": [{"features": [[0.5, 0.25]]}]})
        assert status == 400 and "feature dimension 2, the model expects 32" in json.dumps(body)
        assert "stack_trace" not in body and "Traceback" not in json.dumps(body), body
        outside = registered["out"] / "models" / "model.pt"  # a server file outside HISTGEN_FEATURE_ROOT
        relative = os.path.relpath(outside, registered["demo"].dataset_dir)  # ../../run/models/model.pt
        for path in (str(outside), relative, "/no/such/file.h5"):
            status, body = post_json(f"http://127.0.0.1:{port}/invocations",
                                     {"dataframe_records": [{"feature_file": path}]})
            assert status == 400 and "not a feature file under the server's feature root" in body["message"], body
            assert "stack_trace" not in body and str(Path(sys.executable).parent) not in json.dumps(body)
