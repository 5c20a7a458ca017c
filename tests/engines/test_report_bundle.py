"""The report bundle's workflows, run as a user runs them, on a small demo dataset."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import time

import mlflow
import pytest
import torch

from scripts.demo.feature_bags import make_demo_dataset
from tests.support.bundle_runs import REPO_ROOT, bundle_command, bundle_env, path_of, run_bundle

TRAIN_OVERRIDES = {"batch_size": 4, "val_batch_size": 8, "max_seq_length": 40, "beam_size": 2}


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    demo = make_demo_dataset(tmp_path_factory.mktemp("demo"), n_train=16, n_val=8, n_test=8, feature_dim=32,
                             n_patches=(20, 60))
    return demo


@pytest.fixture(scope="module")
def trained_run(small_demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    proc = run_bundle(
        "training", "train.json", dataset_dir=path_of(small_demo.dataset_dir),
        annotation_file=path_of(small_demo.annotation_file), output_dir=path_of(out), max_epochs=2,
        tracking="mlflow", selection_warmup=0.5, **TRAIN_OVERRIDES,
    )
    return out, proc


def test_training_writes_best_model_checkpoint_and_summary(trained_run):
    out, proc = trained_run
    for name in ("model.pt", "vocab.json", "model_config.json"):
        assert (out / "models" / name).is_file(), name
    best = json.loads((out / "checkpoints" / "best.json").read_text())
    # selection_warmup 0.5 of 2 epochs: epoch 1 is validated but never kept
    assert best["metric"] == "clinical_bleu" and best["epoch"] == 2
    assert "model selection on clinical_bleu starts at epoch 2" in proc.stdout
    expected = {"BLEU_1", "BLEU_4", "ROUGE_L", "CIDEr", "clinical_bleu", "finding_mean_accuracy"}
    assert set(best["val_metrics"]) >= expected
    last = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
    assert last["trainer"]["epoch"] == 2
    assert "epoch 2/2 | loss" in proc.stdout
    assert not list(out.rglob("*.tmp")), "temporary files left behind"


def test_mlflow_run_holds_params_metrics_config_and_best_model(trained_run):
    out, _ = trained_run
    client = mlflow.MlflowClient(f"sqlite:///{out / 'eval' / 'mlruns.db'}")
    experiment = client.get_experiment_by_name("histgen-report")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params["train.max_epochs"] == "2"
    assert run.data.params["train.selection_start_epoch"] == "2"
    assert run.data.params["network.d_model"] == "64"
    for key in ("train_loss", "BLEU_4", "ROUGE_L", "best_val_clinical_bleu"):
        assert key in run.data.metrics, key
    assert len(client.get_metric_history(run.info.run_id, "BLEU_4")) == 2  # one value per epoch
    top = [a.path for a in client.list_artifacts(run.info.run_id)]
    assert any(p.startswith("config_") and p.endswith(".json") for p in top), top
    best = {a.path for a in client.list_artifacts(run.info.run_id, "best_model")}
    assert best >= {"best_model/model.pt", "best_model/vocab.json", "best_model/model_config.json"}


def test_evaluate_writes_metrics_and_reports_table(trained_run, small_demo, tmp_path):
    out, _ = trained_run
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    # the shared trained run is read, never written: evaluation goes to this test's own folder
    run_bundle("evaluating", "evaluate.json", dataset_dir=path_of(small_demo.dataset_dir),
               annotation_file=path_of(small_demo.annotation_file), output_dir=path_of(out), beam_size=2,
               eval_dir=path_of(tmp_path / "eval"))
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    out = tmp_path
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["num_reports"] == 8
    assert set(metrics["metrics"]) >= {"BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "ROUGE_L", "CIDEr"}
    with open(out / "eval" / "reports.csv", encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [list(r) for r in rows[:1]] == [["id", "generated", "generated_tokens", "reference", "reference_tokens",
                                            "notice"]]
    test_items = {item["id"]: item for item in json.loads(small_demo.annotation_file.read_text())["test"]}
    assert {r["id"] for r in rows} == set(test_items)
    # the reference is the annotation's own text; its tokens (what BLEU scores) beside it
    assert all(r["reference"] == test_items[r["id"]]["report"] and r["reference_tokens"] for r in rows)


def test_inference_writes_one_report_per_feature_file(trained_run, small_demo, tmp_path):
    out, _ = trained_run
    files = sorted(small_demo.dataset_dir.glob("*test*"))[:3]
    listing = "[" + ",".join(f"'{path_of(f)}'" for f in files) + "]"
    run_bundle("inference", "inference.json", feature_files=listing, output_dir=path_of(out),
               reports_dir=path_of(tmp_path / "reports"), beam_size=2)
    texts = {p.stem: p.read_text() for p in (tmp_path / "reports").glob("*.txt")}
    assert set(texts) == {f.stem for f in files}
    assert all(t.strip() for t in texts.values())


def test_training_resumes_after_a_kill(small_demo, tmp_path):
    out = tmp_path / "run"
    overrides = {"dataset_dir": path_of(small_demo.dataset_dir), "annotation_file": path_of(small_demo.annotation_file),
                 "output_dir": path_of(out), "max_epochs": 4, **TRAIN_OVERRIDES}
    cmd = bundle_command("training", ("train.json",), overrides)
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=bundle_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    last = out / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert last.exists(), "no checkpoint was written before the kill"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = torch.load(last, weights_only=False)["trainer"]["epoch"]
    assert 1 <= done < 4, f"killed too late (epoch {done})"

    resumed = run_bundle("training", "train.json", **overrides)
    log = resumed.stdout + resumed.stderr
    assert f"resumed from {last} at epoch {done}" in log
    assert f"epoch {done + 1}/4 | loss" in log and f"epoch {done}/4 | loss" not in log
    assert torch.load(last, weights_only=False)["trainer"]["epoch"] == 4
    assert (out / "models" / "model.pt").is_file()
    assert not list(out.rglob("*.tmp"))


def test_torchrun_two_processes_on_cpu(small_demo, tmp_path):
    out = tmp_path / "ddp"
    run_bundle("training", "train.json", "multi_gpu_train.json", torchrun_procs=2,
               dataset_dir=path_of(small_demo.dataset_dir), annotation_file=path_of(small_demo.annotation_file),
               output_dir=path_of(out), max_epochs=1, **TRAIN_OVERRIDES)
    best = json.loads((out / "checkpoints" / "best.json").read_text())
    assert best["epoch"] == 1 and "BLEU_4" in best["val_metrics"]
    run_bundle("evaluating", "evaluate.json", dataset_dir=path_of(small_demo.dataset_dir),
               annotation_file=path_of(small_demo.annotation_file), output_dir=path_of(out), beam_size=2)
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert metrics["num_reports"] == 8 and "BLEU_4" in metrics["metrics"]


@pytest.mark.parametrize("config,workflow", [("train.json", "train"), ("inference.json", "infer"),
                                             ("evaluate.json", "infer")])
def test_monai_property_checks_find_nothing_missing(config, workflow, trained_run, small_demo):
    from monai.bundle import ConfigWorkflow

    out, _ = trained_run
    data = {"dataset_dir": path_of(small_demo.dataset_dir), "annotation_file": path_of(small_demo.annotation_file)}
    if config == "inference.json":
        data = {"dataset_dir": path_of(small_demo.dataset_dir)}
    wf = ConfigWorkflow(config_file=str(REPO_ROOT / "configs" / config),
                        meta_file=str(REPO_ROOT / "configs" / "metadata.json"),
                        logging_file=str(REPO_ROOT / "configs" / "logging.conf"), workflow_type=workflow,
                        output_dir=path_of(out), **data)
    wf.initialize()
    assert wf.check_properties() == []


def test_metadata_follows_the_bundle_specification():
    meta = json.loads((REPO_ROOT / "configs" / "metadata.json").read_text())
    for key in ("version", "changelog", "monai_version", "pytorch_version", "numpy_version",
                "required_packages_version", "task", "description", "authors", "copyright"):
        assert key in meta, key
    assert meta["version"] in meta["changelog"]
    assert "image" in meta["network_data_format"]["inputs"]
    assert "pred" in meta["network_data_format"]["outputs"]
    assert (REPO_ROOT / "configs" / "logging.conf").is_file()
