"""The survival bundle's workflows, run as a user runs them (``python -m monai.bundle run``) on a tiny slide demo."""

from __future__ import annotations

import json
import time

import pytest
import torch

from tests.support.bundle_runs import REPO_ROOT, path_of
from tests.support.transfer_demo import TINY_DEMO, default_report_demo, tiny_report_demo
from tests.support.transfer_runs import config_files
from tests.transfer.test_subtyping_bundle import read_rows, run_transfer, save_test_report_model

FAST = {"num_folds": 2, "max_epochs": 2, "batch_size": 4, "val_batch_size": 8, "n_bins": 2}


@pytest.fixture(scope="module")
def report_model(tmp_path_factory):
    return save_test_report_model(tmp_path_factory.mktemp("report") / "models", seed=1)


@pytest.fixture(scope="module")
def report_demo(tmp_path_factory):
    return tiny_report_demo(tmp_path_factory)


@pytest.fixture(scope="module")
def trained(report_model, report_demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("survival")
    proc = run_transfer("survival", "training", "train.json", output_dir=path_of(out), demo=TINY_DEMO,
                        report_demo_dir=path_of(report_demo), pretrained_encoder=path_of(report_model), **FAST)
    return out, proc


def test_the_demo_outcomes_follow_the_report_demo_s_diagnoses(trained, report_demo):
    out, proc = trained
    assert f"the report bundle's slide demo in {path_of(report_demo)}, reused" in proc.stdout + proc.stderr
    assert not (out / "demo_data" / "slides").exists()
    annotation = json.loads((report_demo / "annotation.json").read_text())
    truth = {item["id"]: item for split in ("train", "val", "test") for item in annotation[split]}
    rows = read_rows(out / "demo_data" / "survival.csv")
    assert {r["slide_id"] for r in rows} == set(truth)
    for row in rows:
        assert row["diagnosis"] == truth[row["slide_id"]]["diagnosis"]
        assert float(row["tumour_share"]) == pytest.approx(truth[row["slide_id"]]["tumour_share"], abs=1e-3)
    assert 0 < sum(r["event"] == "0" for r in rows) < len(rows)  # some censored, some observed


def test_training_writes_fold_results_and_the_kaplan_meier_summary(trained):
    out, _ = trained
    for k in (0, 1):
        fold = json.loads((out / "eval" / f"fold_{k}" / "metrics.json").read_text())
        assert 0.0 <= fold["metrics"]["c_index"] <= 1.0 and 0.0 <= fold["metrics"]["logrank_p"] <= 1.0
        assert fold["risk_groups"]["n_low"] + fold["risk_groups"]["n_high"] == fold["num_cases"]
        assert (out / "eval" / f"fold_{k}" / "kaplan_meier.png").read_bytes()[:4] == b"\x89PNG"
        rows = read_rows(out / "eval" / f"fold_{k}" / "predictions.csv")
        assert {r["risk_group"] for r in rows} <= {"low", "high"}
        assert all(len(r["survival"].split()) == 2 for r in rows)  # S(t) per time bin
    summary = json.loads((out / "eval" / "metrics.json").read_text())
    assert summary["task"] == "survival" and summary["folds"] == [0, 1]
    assert len(summary["metrics"]["c_index"]["values"]) == 2
    assert summary["pooled"]["num_slides"] == 40
    assert (out / "eval" / "kaplan_meier.png").is_file()
    assert not list(out.rglob("*.tmp"))


def test_folds_are_by_case_stratified_by_event_with_bins_from_training_times(trained):
    out, _ = trained
    rows = {r["slide_id"]: r for r in read_rows(out / "demo_data" / "survival.csv")}
    for k in (0, 1):
        split = json.loads((out / "splits" / f"fold_{k}.json").read_text())
        assert split["stratified_by"] == "event"
        cases = {p: {rows[s]["case_id"] for s in split[p]} for p in ("train", "val", "test")}
        assert not (cases["train"] & cases["test"]) and not (cases["val"] & cases["test"])
        assert any(rows[s]["event"] == "1" for s in split["test"])
        info = json.loads((out / "models" / f"fold_{k}" / "model_info.json").read_text())
        uncensored = sorted(float(rows[s]["time"]) for s in split["train"] if rows[s]["event"] == "1")
        median = torch.tensor(uncensored, dtype=torch.float64).quantile(0.5).item()
        assert info["bin_edges"][0] == 0.0 and info["bin_edges"][1] == pytest.approx(median)
        assert info["selected_by"] == "val c_index" and info["n_bins"] == 2


def test_the_encoder_started_from_the_report_model_and_was_fine_tuned(trained, report_model):
    out, proc = trained
    assert f"REPORT-PRETRAINED weights from {path_of(report_model)}" in proc.stdout + proc.stderr
    report = torch.load(report_model, weights_only=True)
    state = torch.load(out / "models" / "fold_0" / "model.pt", weights_only=True)
    changes = []
    for key, value in state.items():
        if key.startswith("encoder."):
            changes.append(float((value - report[key[len("encoder."):]]).abs().max()))
    assert max(changes) < 0.05, "the encoder is far from the report weights: were they loaded?"
    assert max(changes) > 0.0, "the encoder did not train although freeze_encoder is false"


def test_evaluate_reproduces_the_training_scores(trained, report_demo, tmp_path):
    out, _ = trained
    before = json.loads((out / "eval" / "metrics.json").read_text())
    # the shared trained run is only read: this evaluation writes into the test's own folder
    run_transfer("survival", "evaluating", "evaluate.json", output_dir=path_of(out), demo=TINY_DEMO,
                 report_demo_dir=path_of(report_demo), eval_dir=path_of(tmp_path / "eval"))
    assert json.loads((out / "eval" / "metrics.json").read_text()) == before
    after = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert after["metrics"]["c_index"]["values"] == pytest.approx(before["metrics"]["c_index"]["values"])
    assert after["metrics"]["loss"]["values"] == pytest.approx(before["metrics"]["loss"]["values"])


def test_inference_writes_risks_of_every_fold_model(trained, report_demo, tmp_path):
    out, _ = trained
    run_transfer("survival", "inference", "inference.json", output_dir=path_of(out),
                 dataset_dir=path_of(report_demo / "features"), predictions_dir=path_of(tmp_path))
    rows = read_rows(tmp_path / "predictions.csv")
    assert len(rows) == 40
    for row in rows[:5]:
        folds = [float(row["risk_fold_0"]), float(row["risk_fold_1"])]
        assert float(row["risk"]) == pytest.approx(sum(folds) / 2, rel=1e-4)
        assert all(-2.0 <= r <= 0.0 for r in folds)  # -sum of 2 survival probabilities


def test_bad_survival_rows_stop_training_with_the_lines_named(report_demo, tmp_path):
    features = report_demo / "features"
    ids = sorted(p.stem for p in features.glob("*.h5"))
    csv_file = tmp_path / "survival.csv"
    csv_file.write_text("slide_id,case_id,time,event\n"
                        f"{ids[0]},P0,12,1\n{ids[1]},P1,-4,1\n{ids[2]},P2,,0\n{ids[3]},P3,7,2\n")
    proc = run_transfer("survival", "training", "train.json", expect_failure=True, output_dir=path_of(tmp_path),
                        csv_file=path_of(csv_file), dataset_dir=path_of(features))
    log = proc.stdout + proc.stderr
    assert "3 bad row(s)" in log
    assert "line 3 (slide" in log and "time '-4' is negative" in log
    assert "line 4 (slide" in log and "missing time" in log
    assert "line 5 (slide" in log and "event '2' must be 1 (observed) or 0 (censored)" in log


@pytest.mark.parametrize("config,workflow", [("train.json", "train"), ("evaluate.json", "infer"),
                                             ("inference.json", "infer")])
def test_monai_property_checks_find_nothing_missing(config, workflow, trained, report_demo):
    from monai.bundle import ConfigWorkflow

    out, _ = trained
    folder = REPO_ROOT / "bundle" / "survival" / "configs"
    extra = {"dataset_dir": path_of(report_demo / "features")} if config == "inference.json" else {}
    files = [str(REPO_ROOT / f) for f in config_files("survival", config)]
    wf = ConfigWorkflow(config_file=files, meta_file=str(folder / "metadata.json"),
                        logging_file=str(folder / "logging.conf"), workflow_type=workflow, output_dir=path_of(out),
                        demo=eval(TINY_DEMO), report_demo_dir=path_of(report_demo), pretrained_encoder="none",
                        num_folds=2, n_bins=2, **extra)
    wf.initialize()
    assert wf.check_properties() == []


def test_bundle_layout_and_metadata():
    root = REPO_ROOT / "bundle" / "survival"
    for name in ("metadata.json", "train.json", "evaluate.json", "inference.json", "logging.conf"):
        assert (root / "configs" / name).is_file(), name
    assert (root / "docs" / "README.md").is_file() and (root / "models" / ".gitkeep").is_file()
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    assert meta["version"] in meta["changelog"] and "pred" in meta["network_data_format"]["outputs"]


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(report_demo, tmp_path):
    run_transfer("survival", "training", "train.json", "multi_gpu_train.json", torchrun_procs=2,
                 output_dir=path_of(tmp_path), demo=TINY_DEMO, report_demo_dir=path_of(report_demo),
                 pretrained_encoder="none",
                 **{**FAST, "max_epochs": 1})
    summary = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert summary["folds"] == [0, 1] and 0.0 <= summary["metrics"]["c_index"]["mean"] <= 1.0


@pytest.mark.slow
def test_default_demo_reaches_the_documented_c_index(tmp_path_factory, tmp_path):
    demo = default_report_demo(tmp_path_factory)  # the report bundle's default slide demo, as a user's would be
    start = time.perf_counter()
    proc = run_transfer("survival", "training", "train.json", output_dir=path_of(tmp_path),
                        report_demo_dir=path_of(demo), pretrained_encoder="none")
    seconds = time.perf_counter() - start
    summary = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    print(f"default survival demo: {seconds:.0f} s, c-index {summary['metrics']['c_index']['mean']:.3f}")
    assert summary["folds"] == [0, 1, 2, 3, 4]
    assert summary["metrics"]["c_index"]["mean"] >= 0.70, proc.stdout[-3000:]
    assert summary["pooled"]["metrics"]["logrank_p"] < 0.05
