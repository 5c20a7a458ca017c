"""The worked example of docs/adding_a_task.md: the binary grade task, trained and used through the real bundle."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from scripts.data.feature_files import write_feature_file_h5
from scripts.engines.model_provenance import RESEARCH_NOTICE
from scripts.serving.transfer_predictor import FoldEnsemblePredictor
from scripts.transfer import GradeTask, SlideTableError, read_slide_table, task_from_info
from tests.support.transfer_runs import read_rows, run_transfer_workflow

TINY = {"num_folds": 2, "max_epochs": 2, "batch_size": 4, "val_batch_size": 8, "pretrained_encoder": "none",
        "histgen": "{'d_vf': 16, 'd_model': 16, 'd_ff': 32, 'num_heads': 2, 'dropout': 0.1, 'drop_prob_lm': 0.3, "
                   "'topk': 4, 'cmm_size': 8, 'cmm_dim': 16, 'region_size': 4, 'prototype_num': 4, 'input_norm': True}"}


def write_grade_table(folder, n_slides=12, dim=8, seed=0, grades=None):
    """``<folder>/features/g-<i>.h5`` (high grade: shifted mean) and ``<folder>/grades.csv`` (one slide per case)."""
    rng = np.random.default_rng(seed)
    (folder / "features").mkdir(parents=True, exist_ok=True)
    grades = grades or ["low" if i % 2 else "high" for i in range(n_slides)]
    for i, grade in enumerate(grades):
        bag = rng.normal(0.0, 1.0, (int(rng.integers(6, 12)), dim)).astype(np.float32) + (grade == "high")
        write_feature_file_h5(folder / "features" / f"g-{i:02d}.h5", bag)
    with open(folder / "grades.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["slide_id", "grade"])
        writer.writerows([f"g-{i:02d}", grade] for i, grade in enumerate(grades))
    return {"csv_file": (folder / "grades.csv").resolve(), "dataset_dir": (folder / "features").resolve()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("grade")
    data = write_grade_table(folder)
    run_transfer_workflow("grade", "training", "train.json", output_dir=folder / "run", **data, **TINY)
    return folder, data


def test_a_bad_grade_is_refused_with_its_line(tmp_path):
    data = write_grade_table(tmp_path, n_slides=4, grades=["low", "high", "medium", "low"])
    with pytest.raises(SlideTableError, match=r"line 4 \(slide 'g-02'\): unknown class 'medium'"):
        read_slide_table("grade", data["csv_file"], data["dataset_dir"])
    table = read_slide_table(GradeTask(classes=["low", "medium", "high"]), data["csv_file"], data["dataset_dir"])
    assert [r.label for r in table.records] == [0, 2, 1, 0] and table.task.name == "grade"


def test_training_writes_grade_folds_selected_on_balanced_accuracy(trained):
    folder, _ = trained
    summary = json.loads((folder / "run" / "eval" / "metrics.json").read_text())
    assert summary["task"] == "grade" and summary["folds"] == [0, 1]
    assert 0.0 <= summary["metrics"]["balanced_accuracy"]["mean"] <= 1.0
    info = json.loads((folder / "run" / "models" / "fold_0" / "model_info.json").read_text())
    assert info["task"] == "grade" and info["classes"] == ["low", "high"]
    assert info["selected_by"] == "val balanced_accuracy"
    assert isinstance(task_from_info(info), GradeTask)
    rows = read_rows(folder / "run" / "eval" / "fold_0" / "predictions.csv")
    assert list(rows[0]) == ["slide_id", "case_id", "label", "predicted", "prob_low", "prob_high", "notice"]
    assert {r["notice"] for r in rows} == {RESEARCH_NOTICE}  # the user's own data: no SYNTHETIC-DATA line
    assert {r["label"] for r in rows} <= {"low", "high"}


def test_inference_and_the_served_predictor_give_the_same_grades(trained):
    folder, data = trained
    files = sorted(data["dataset_dir"].glob("*.h5"))[:3]
    run_transfer_workflow("grade", "inference", "inference.json", output_dir=folder / "run",
                          feature_files="[" + ",".join(f"'{p}'" for p in files) + "]",
                          predictions_dir=folder / "predictions")
    rows = read_rows(folder / "predictions" / "predictions.csv")
    served = FoldEnsemblePredictor(folder / "run" / "models", device="cpu").predict_files(files)
    assert [list(r) for r in rows] == [["slide_id", "predicted", "prob_low", "prob_high", "notice"]] * 3
    assert {r["notice"] for r in rows} == {RESEARCH_NOTICE}
    for row, want in zip(rows, served):
        assert row["slide_id"] == want["slide_id"] and row["predicted"] == want["predicted"]
        assert float(row["prob_low"]) + float(row["prob_high"]) == pytest.approx(1.0, abs=1e-5)
        assert float(row["prob_high"]) == pytest.approx(want["prob_high"], abs=1e-6)
