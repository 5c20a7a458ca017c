"""The subtyping bundle's workflows, run as a user runs them (``python -m monai.bundle run``) on a tiny slide demo."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time

import h5py
import mlflow
import pytest
import torch

from scripts.engines import save_report_model
from scripts.engines.model_provenance import RESEARCH_NOTICE, SYNTHETIC_WARNING
from scripts.networks import HistGen, HistGenConfig
from scripts.text import Vocabulary
from tests.support.bundle_runs import REPO_ROOT, bundle_env, path_of
from tests.support.transfer_demo import TINY_DEMO, default_report_demo, tiny_report_demo
from tests.support.transfer_runs import config_file_arg, config_files

FAST = {"num_folds": 2, "max_epochs": 2, "batch_size": 4, "val_batch_size": 8}
REPORT_SIZES = {"d_vf": 32, "d_model": 32, "d_ff": 64, "num_heads": 4, "topk": 8, "cmm_size": 16, "cmm_dim": 32,
                "region_size": 8, "prototype_num": 4}


def transfer_command(bundle: str, run_id: str, configs: tuple[str, ...], overrides: dict[str, object],
                     torchrun_procs: int | None = None) -> list[str]:
    """``python -m monai.bundle run <run_id> --config_file "[bundle/<bundle>/configs/<config>, <shared base>]" ...``."""
    config_file = config_file_arg(config_files(bundle, *configs))
    head = [sys.executable, "-m", "monai.bundle"]
    if torchrun_procs:
        head = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={torchrun_procs}",
                "--rdzv-backend=c10d", "--rdzv-endpoint=localhost:0", "-m", "monai.bundle"]
    cmd = [*head, "run", run_id, "--config_file", config_file]
    for key, value in overrides.items():
        cmd += [f"--{key}", str(value)]
    return cmd


def run_transfer(bundle: str, run_id: str, *configs: str, expect_failure: bool = False, timeout: float = 900,
                 torchrun_procs: int | None = None, **overrides: object) -> subprocess.CompletedProcess[str]:
    """Run a workflow from the repository root (one thread per process: steady on a busy 2-core machine)."""
    cmd = transfer_command(bundle, run_id, configs, overrides, torchrun_procs)
    env = {**bundle_env(), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if (proc.returncode != 0) != expect_failure:
        tail = (proc.stdout + proc.stderr)[-6000:]
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}")
    return proc


def save_test_report_model(folder, seed=0):
    """A small report model on the slide demo's 128-d features, written as the report bundle writes it, with
    fitted (not identity) input statistics."""
    torch.manual_seed(seed)
    model = HistGen(HistGenConfig(in_dim=128, vocab_size=6, num_layers=1, input_norm=True, **REPORT_SIZES))
    model.fit_input_norm([torch.rand(50, 128) * torch.linspace(0.01, 2.0, 128)])
    return save_report_model(folder, model, Vocabulary(["tumour", "normal", "cells", "seen", "here", "<unk>"]))


def read_rows(path):
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def report_model(tmp_path_factory):
    return save_test_report_model(tmp_path_factory.mktemp("report") / "models")


@pytest.fixture(scope="module")
def report_demo(tmp_path_factory):
    return tiny_report_demo(tmp_path_factory)


@pytest.fixture(scope="module")
def trained(report_model, report_demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("subtyping")
    proc = run_transfer("subtyping", "training", "train.json", output_dir=path_of(out), demo=TINY_DEMO,
                        report_demo_dir=path_of(report_demo), pretrained_encoder=path_of(report_model),
                        freeze_encoder=True, tracking="mlflow", **FAST)
    return out, proc


def test_the_demo_reuses_the_report_bundle_s_demo_slides(trained, report_demo):
    out, proc = trained
    log = proc.stdout + proc.stderr
    assert f"the report bundle's slide demo in {path_of(report_demo)}, reused" in log
    assert "SYNTHETIC subtyping demo" in log
    assert not (out / "demo_data" / "slides").exists() and not (out / "demo_data" / "features").exists()
    rows = read_rows(out / "demo_data" / "subtyping.csv")
    annotation = json.loads((report_demo / "annotation.json").read_text())
    truth = {item["id"]: item["diagnosis"] for split in ("train", "val", "test") for item in annotation[split]}
    assert {r["slide_id"]: r["label"] for r in rows} == truth  # labels are the slides' synthetic diagnoses
    assert all((report_demo / "features" / f"{r['slide_id']}.h5").is_file() for r in rows)


def test_training_writes_splits_fold_models_and_cross_validated_scores(trained):
    out, proc = trained
    for k in (0, 1):
        assert (out / "splits" / f"fold_{k}.json").is_file()
        assert (out / "models" / f"fold_{k}" / "model.pt").is_file()
        for name in ("metrics.json", "predictions.csv", "confusion_matrix.png"):
            assert (out / "eval" / f"fold_{k}" / name).is_file(), name
    summary = json.loads((out / "eval" / "metrics.json").read_text())
    assert summary["task"] == "subtyping" and summary["folds"] == [0, 1] and summary["missing_folds"] == []
    for name in ("accuracy", "balanced_accuracy", "auc", "f1_macro"):
        stats = summary["metrics"][name]
        assert len(stats["values"]) == 2 and 0.0 <= stats["mean"] <= 1.0 and stats["std"] >= 0.0
        assert stats["mean"] == pytest.approx(sum(stats["values"]) / 2)
    matrix = summary["pooled"]["confusion_matrix"]["rows_true_columns_predicted"]
    assert sum(map(sum, matrix)) == 40 == summary["pooled"]["num_slides"]  # every slide tested once
    assert (out / "eval" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    fold = json.loads((out / "eval" / "fold_0" / "metrics.json").read_text())
    assert fold["selection"]["metric"] == "auc" and fold["selection"]["epoch"] in (1, 2)
    assert "fold 1 done" in proc.stderr + proc.stdout
    assert "input_norm: keeping the report model's feature statistics" in proc.stderr + proc.stdout
    assert not list(out.rglob("*.tmp")), "temporary files left behind"


def test_folds_split_by_case_and_select_on_val_only(trained):
    out, _ = trained
    rows = read_rows(out / "demo_data" / "subtyping.csv")
    case_of = {r["slide_id"]: r["case_id"] for r in rows}
    assert any(list(case_of.values()).count(c) == 2 for c in case_of.values())  # the demo has 2-slide cases
    tested = []
    for k in (0, 1):
        split = json.loads((out / "splits" / f"fold_{k}.json").read_text())
        cases = {p: {case_of[s] for s in split[p]} for p in ("train", "val", "test")}
        assert not (cases["train"] & cases["val"]) and not (cases["train"] & cases["test"])
        assert not (cases["val"] & cases["test"])
        tested += split["test"]
        predicted = {r["slide_id"] for r in read_rows(out / "eval" / f"fold_{k}" / "predictions.csv")}
        assert predicted == set(split["test"])
        info = json.loads((out / "models" / f"fold_{k}" / "model_info.json").read_text())
        assert info["selected_by"] == "val auc" and info["fold"] == k
    assert sorted(tested) == sorted(case_of)


def test_the_frozen_encoder_holds_the_report_model_weights(trained, report_model):
    out, proc = trained
    assert f"REPORT-PRETRAINED weights from {path_of(report_model)}" in proc.stdout + proc.stderr
    report = torch.load(report_model, weights_only=True)
    for k in (0, 1):
        state = torch.load(out / "models" / f"fold_{k}" / "model.pt", weights_only=True)
        encoder = {key[len("encoder."):]: v for key, v in state.items() if key.startswith("encoder.")}
        assert set(encoder) == {key for key in report if not key.startswith("decoder.")}
        for key, value in encoder.items():
            assert torch.equal(value, report[key]), key
        assert not torch.equal(encoder["input_std"], torch.ones(128))  # the report's statistics, not refitted
        head = json.loads((out / "models" / f"fold_{k}" / "model_info.json").read_text())
        assert head["pretrained_encoder"] == path_of(report_model) and head["freeze_encoder"] is True
        assert head["network"]["histgen"]["d_model"] == 32  # sizes from the report's model_config.json


def test_mlflow_has_one_run_per_fold_under_a_summary_run(trained):
    out, _ = trained
    client = mlflow.MlflowClient(f"sqlite:///{out / 'eval' / 'mlruns.db'}")
    experiment = client.get_experiment_by_name("histgen-subtyping")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    (summary_name,) = [n for n in runs if n.endswith("-cv")]
    base = summary_name[: -len("-cv")]
    summary = runs[summary_name]
    assert summary.data.metrics["cv_mean_auc"] == pytest.approx(
        json.loads((out / "eval" / "metrics.json").read_text())["metrics"]["auc"]["mean"])
    for k in (0, 1):
        fold_run = runs[f"{base}-fold{k}"]
        assert fold_run.data.tags["mlflow.parentRunId"] == summary.info.run_id
        assert {"train_loss", "auc", "test_auc", "test_balanced_accuracy"} <= set(fold_run.data.metrics)
        assert fold_run.data.params["train.max_epochs"] == "2"
        assert len(client.get_metric_history(fold_run.info.run_id, "auc")) >= 1
    artifacts = {a.path for a in client.list_artifacts(summary.info.run_id)}
    assert {"metrics.json", "confusion_matrix.png"} <= artifacts
    assert any(p.startswith("config_") for p in artifacts)


def test_evaluate_rescores_the_saved_fold_models_on_their_test_folds(trained, report_demo, tmp_path):
    out, _ = trained
    before = json.loads((out / "eval" / "metrics.json").read_text())
    # the shared trained run is only read: this evaluation writes into the test's own folder
    run_transfer("subtyping", "evaluating", "evaluate.json", output_dir=path_of(out), demo=TINY_DEMO,
                 report_demo_dir=path_of(report_demo), eval_dir=path_of(tmp_path / "eval"))
    assert json.loads((out / "eval" / "metrics.json").read_text()) == before
    after = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert after["folds"] == [0, 1]
    for name, stats in before["metrics"].items():
        assert after["metrics"][name]["values"] == pytest.approx(stats["values"]), name


def test_inference_averages_the_fold_models(trained, report_demo, tmp_path):
    out, _ = trained
    files = sorted((report_demo / "features").glob("*.h5"))[:5]
    listing = "[" + ",".join(f"'{path_of(f)}'" for f in files) + "]"
    run_transfer("subtyping", "inference", "inference.json", output_dir=path_of(out), feature_files=listing,
                 predictions_dir=path_of(tmp_path))
    rows = read_rows(tmp_path / "predictions.csv")
    assert [r["slide_id"] for r in rows] == [f.stem for f in files]
    classes = ["adenocarcinoma", "lymphoma", "normal", "squamous cell carcinoma"]
    for row in rows:
        probs = [float(row[f"prob_{c}"]) for c in classes]
        assert sum(probs) == pytest.approx(1.0, abs=1e-4)
        assert row["predicted"] == classes[probs.index(max(probs))]
        # trained on the SYNTHETIC demo: every prediction says so, then the research-use notice
        assert row["notice"].startswith(SYNTHETIC_WARNING) and row["notice"].endswith(RESEARCH_NOTICE)
    test_rows = read_rows(out / "eval" / "fold_0" / "predictions.csv")
    assert list(test_rows[0])[-1] == "notice" and {r["notice"] for r in test_rows} == {rows[0]["notice"]}


def test_abmil_baseline_runs_one_fold_on_standardised_features(report_demo, tmp_path):
    run_transfer("subtyping", "training", "train.json", output_dir=path_of(tmp_path), demo=TINY_DEMO, model="abmil",
                 report_demo_dir=path_of(report_demo), fold=1, pretrained_encoder="none", **{**FAST, "max_epochs": 1})
    info = json.loads((tmp_path / "models" / "fold_1" / "model_info.json").read_text())
    assert info["network"]["model"] == "abmil" and info["pretrained_encoder"] is None
    assert info["network"]["abmil"]["input_norm"] is True
    state = torch.load(tmp_path / "models" / "fold_1" / "model.pt", weights_only=True)
    split = json.loads((tmp_path / "splits" / "fold_1.json").read_text())
    patches = torch.cat([torch.from_numpy(h5py.File(report_demo / "features" / f"{s}.h5", "r")["feats"][()])
                         for s in split["train"]])  # fitted on the fold's training part only
    std = patches.double().std(0, correction=0).float()
    std = torch.where(std < 1e-6, torch.ones_like(std), std)  # constant dimensions are left unscaled
    assert torch.allclose(state["input_mean"], patches.double().mean(0).float(), atol=1e-4)
    assert torch.allclose(state["input_std"], std, rtol=1e-3, atol=1e-5)
    assert not (tmp_path / "models" / "fold_0").exists()
    summary = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert summary["folds"] == [1] and summary["missing_folds"] == [0] and summary["model"] == "abmil"


def test_bad_labels_stop_training_with_the_rows_named(report_demo, tmp_path):
    features = report_demo / "features"
    csv_file = tmp_path / "labels.csv"
    ids = sorted(p.stem for p in features.glob("*.h5"))
    csv_file.write_text("slide_id,label\n" + f"{ids[0]},LUAD\n{ids[1]},LUSC\nNO-SUCH-SLIDE,LUAD\n{ids[2]},XYZ\n")
    proc = run_transfer("subtyping", "training", "train.json", expect_failure=True, output_dir=path_of(tmp_path),
                        csv_file=path_of(csv_file), dataset_dir=path_of(features), classes="['LUAD','LUSC']")
    log = proc.stdout + proc.stderr
    assert "SlideTableError" in log and "line 5 (slide" in log and "unknown class 'XYZ'" in log
    assert not (tmp_path / "splits").exists()  # nothing was written


@pytest.mark.parametrize("config,workflow", [("train.json", "train"), ("evaluate.json", "infer"),
                                             ("inference.json", "infer")])
def test_monai_property_checks_find_nothing_missing(config, workflow, trained, report_demo):
    from monai.bundle import ConfigWorkflow

    out, _ = trained
    folder = REPO_ROOT / "bundle" / "subtyping" / "configs"
    extra = {"dataset_dir": path_of(report_demo / "features")} if config == "inference.json" else {}
    files = [str(REPO_ROOT / f) for f in config_files("subtyping", config)]
    wf = ConfigWorkflow(config_file=files, meta_file=str(folder / "metadata.json"),
                        logging_file=str(folder / "logging.conf"), workflow_type=workflow, output_dir=path_of(out),
                        demo=eval(TINY_DEMO), report_demo_dir=path_of(report_demo), pretrained_encoder="none",
                        num_folds=2, **extra)
    wf.initialize()
    assert wf.check_properties() == []


def test_bundle_layout_and_metadata():
    root = REPO_ROOT / "bundle" / "subtyping"
    for name in ("metadata.json", "train.json", "evaluate.json", "inference.json", "logging.conf"):
        assert (root / "configs" / name).is_file(), name
    assert config_files("subtyping", "multi_gpu_train.json") == [
        "scripts/transfer/configs/transfer_multi_gpu_train.json"]
    assert (root / "docs" / "README.md").is_file() and (root / "models" / ".gitkeep").is_file()
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    assert meta["version"] in meta["changelog"]
    assert {"image"} == set(meta["network_data_format"]["inputs"]) and "pred" in meta["network_data_format"]["outputs"]


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(report_demo, tmp_path):
    run_transfer("subtyping", "training", "train.json", "multi_gpu_train.json", torchrun_procs=2,
                 output_dir=path_of(tmp_path), demo=TINY_DEMO, report_demo_dir=path_of(report_demo),
                 pretrained_encoder="none", **{**FAST, "max_epochs": 1})
    summary = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert summary["folds"] == [0, 1] and 0.0 <= summary["metrics"]["auc"]["mean"] <= 1.0


@pytest.mark.slow
def test_torchrun_from_a_report_model_with_the_heads_view(report_demo, tmp_path):
    # what the report bundle's defaults write: finding heads and slide_norm "heads" with a low-rank view; the
    # transfer encoder leaves the view behind, else DistributedDataParallel meets parameters without gradients
    torch.manual_seed(0)
    report = HistGen(HistGenConfig(in_dim=128, vocab_size=6, num_layers=1, input_norm=True, slide_norm="heads",
                                   finding_view_rank=4, finding_classes={"diagnosis": 2}, **REPORT_SIZES))
    path = save_report_model(tmp_path / "report", report, Vocabulary(["tumour", "normal", "cells", "seen", "here",
                                                                      "<unk>"]))
    out = tmp_path / "run"
    run_transfer("subtyping", "training", "train.json", "multi_gpu_train.json", torchrun_procs=2,
                 output_dir=path_of(out), demo=TINY_DEMO, report_demo_dir=path_of(report_demo),
                 pretrained_encoder=path_of(path), **{**FAST, "max_epochs": 2})
    summary = json.loads((out / "eval" / "metrics.json").read_text())
    assert summary["folds"] == [0, 1] and 0.0 <= summary["metrics"]["auc"]["mean"] <= 1.0


@pytest.mark.slow
def test_one_fold_alone_gives_the_same_result_as_in_the_full_run(report_demo, tmp_path):
    options = {"demo": TINY_DEMO, "report_demo_dir": path_of(report_demo), "pretrained_encoder": "none", **FAST}
    run_transfer("subtyping", "training", "train.json", output_dir=path_of(tmp_path / "all"), **options)
    run_transfer("subtyping", "training", "train.json", output_dir=path_of(tmp_path / "one"), fold=1, **options)
    full = json.loads((tmp_path / "all" / "eval" / "fold_1" / "metrics.json").read_text())["metrics"]
    alone = json.loads((tmp_path / "one" / "eval" / "fold_1" / "metrics.json").read_text())["metrics"]
    assert alone == pytest.approx(full)


@pytest.mark.slow
def test_default_demo_reaches_the_documented_auc(tmp_path_factory, tmp_path):
    demo = default_report_demo(tmp_path_factory)  # the report bundle's default slide demo, as a user's would be
    start = time.perf_counter()
    proc = run_transfer("subtyping", "training", "train.json", output_dir=path_of(tmp_path),
                        report_demo_dir=path_of(demo), pretrained_encoder="none")
    seconds = time.perf_counter() - start
    summary = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    print(f"default subtyping demo: {seconds:.0f} s, AUC {summary['metrics']['auc']['mean']:.3f}")
    assert summary["folds"] == [0, 1, 2, 3, 4]
    assert summary["metrics"]["auc"]["mean"] >= 0.95, proc.stdout[-3000:]
    assert "SYNTHETIC subtyping demo" in proc.stdout + proc.stderr
