"""The grounding benchmark runner (benchmarks.bench_grounding): scoring, the ABMIL bound, the table, and
one real ``--quick`` run through the bundle's training and evaluating workflows."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.grounding import FINDINGS, BenchmarkParams, make_benchmark_dataset, read_labels
from benchmarks.grounding.abmil_bound import train_abmil
from benchmarks.grounding.bundle_runs import RECORD_NAME, finished_run
from benchmarks.grounding.control import dealing_model_seed
from benchmarks.grounding.scoring import read_reports_csv, score_reports, synthetic_truth
from benchmarks.grounding.suite import SuiteSettings, variant_name
from benchmarks.grounding.table import COLUMNS, TableRow, markdown_table

REPO = Path(__file__).resolve().parents[2]
PARAMS = BenchmarkParams(n_diagnoses=3, n_train=45, n_val=9, n_test=24, n_patches=(40, 120), feature_dim=16,
                         tumour_share=(0.3, 0.6), seed=9)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_benchmark_dataset(PARAMS, tmp_path_factory.mktemp("bench"))


def _references(data) -> dict[str, str]:
    annotation = json.loads(data.annotation_file.read_text())
    return {item["id"]: item["report"] for item in annotation["test"]}


def test_reference_reports_score_perfectly(data):
    truth = synthetic_truth(PARAMS, data.labels_file, use_extractor=False)
    scores = score_reports(_references(data), truth)
    assert scores.accuracy == {f: 1.0 for f in FINDINGS}
    assert scores.diagnoses_written == 3 and scores.num_reports == 24
    assert set(scores.unread.values()) == {0}


def test_one_report_for_every_slide_scores_its_share(data):
    truth = synthetic_truth(PARAMS, data.labels_file, use_extractor=False)
    references = _references(data)
    first = next(iter(references))
    scores = score_reports(dict.fromkeys(references, references[first]), truth)
    for finding in FINDINGS:
        share = sum(truth.values[i][finding] == truth.values[first][finding] for i in references) / len(references)
        assert scores.accuracy[finding] == pytest.approx(share)
    assert scores.diagnoses_written == 1
    assert truth.chance()["diagnosis"] == max(Counter(truth.values[i]["diagnosis"] for i in references).values()) / 24


def test_slide_blind_expectation_of_a_report_mix(data):
    truth = synthetic_truth(PARAMS, data.labels_file, use_extractor=False)
    references = _references(data)
    ids = list(references)
    counts = Counter(truth.values[i]["diagnosis"] for i in ids)
    # the references state each slide's own value: the same mix, written blind, expects sum of squared shares
    blind = score_reports(references, truth).blind["diagnosis"]
    assert blind == pytest.approx(sum((c / len(ids)) ** 2 for c in counts.values()))
    # one report for every slide is a constant writer: blind expectation = its accuracy = that value's share
    constant = score_reports(dict.fromkeys(ids, references[ids[0]]), truth)
    assert constant.blind == pytest.approx(constant.accuracy)
    # a rotation of the references keeps the mix but breaks the pairing: accuracy moves, the expectation does not
    rotated = score_reports({i: references[ids[(k + 1) % len(ids)]] for k, i in enumerate(ids)}, truth)
    assert rotated.blind["diagnosis"] == pytest.approx(blind) and rotated.accuracy["diagnosis"] < 1.0
    # reports that state nothing expect nothing
    assert score_reports(dict.fromkeys(ids, "<unk> ."), truth).blind["diagnosis"] == 0.0


def test_garbage_and_missing_reports(data):
    truth = synthetic_truth(PARAMS, data.labels_file, data.annotation_file)
    references = _references(data)
    scores = score_reports(dict.fromkeys(references, "<unk> . . of ."), truth)
    assert scores.accuracy == {f: 0.0 for f in FINDINGS} and scores.diagnoses_written == 0
    with pytest.raises(ValueError, match="no generated report"):
        score_reports(dict(list(references.items())[1:]), truth)


def test_the_findings_extractor_reads_the_references_through_the_adapter(data):
    truth = synthetic_truth(PARAMS, data.labels_file, data.annotation_file)
    assert truth.reader.name.startswith("scripts.metrics.extract_findings")
    scores = score_reports(_references(data), truth)
    assert {f: scores.accuracy[f] for f in ("grade", "margin", "lymphovascular_invasion")} == dict.fromkeys(
        ("grade", "margin", "lymphovascular_invasion"), 1.0)
    # "renal cell carcinoma, clear cell type" is read as plain "renal cell carcinoma" by today's extractor
    assert scores.accuracy["diagnosis"] >= 0.6 and scores.diagnoses_written >= 2


def test_reports_csv_with_byte_order_mark(tmp_path):
    path = tmp_path / "reports.csv"
    path.write_text("\ufeffid,generated,reference\nA,some text .,ref .\n", encoding="utf-8")
    assert read_reports_csv(path) == {"A": "some text ."}


def test_abmil_bound_finds_the_diagnosis_and_not_shuffled_labels(data):
    labels = read_labels(data.labels_file)
    splits = {s: [i for i, row in labels.items() if row["split"] == s] for s in ("train", "val", "test")}
    bags = {s: [torch.load(data.dataset_dir / f"{i}.pt", weights_only=True) for i in ids] for s, ids in splits.items()}

    def score(finding, classes, shuffle=False):
        values = {s: [labels[i][finding] for i in ids] for s, ids in splits.items()}
        if shuffle:
            values["train"] = list(np.random.default_rng(0).permutation(values["train"]))
        return train_abmil(bags, values, classes, epochs=5, learning_rate=2e-3, seed=0)

    diagnosis = score("diagnosis", PARAMS.diagnoses)
    assert diagnosis.balanced_accuracy >= 0.8 and 1 <= diagnosis.best_epoch <= 5
    assert score("diagnosis", PARAMS.diagnoses, shuffle=True).balanced_accuracy < 0.6


def test_markdown_table_has_every_column_and_dashes():
    rows = [TableRow("b", "model", accuracy={"diagnosis": 0.5}, bleu_4=0.25, diagnoses_written=2, diagnoses_total=4,
                     best_epoch=3, epochs_run=9, wall_seconds=12.3, seed=1, bags="1/2/3", patches="5-9", feature_dim=8),
            TableRow("b", "ABMIL", accuracy={"diagnosis": 0.9}, balanced_accuracy={"diagnosis": 0.8})]
    lines = markdown_table(rows).splitlines()
    assert lines[0] == "| " + " | ".join(COLUMNS) + " |"
    assert all(line.count("|") == len(COLUMNS) + 1 for line in lines)
    assert "| b | model | 0.50 | – | – | – | – | 0.250 | – | 2 of 4 | 3/9 | 12 | 1 | 1/2/3 | 5-9 | 8 |" in lines
    assert "| b | ABMIL | 0.90 / 0.80 |" in lines[3]


def test_fewer_than_one_control_dealing_is_refused_before_anything_runs(tmp_path):
    from benchmarks.bench_grounding import main

    with pytest.raises(ValueError, match="control_dealings must be >= 1"):
        SuiteSettings(output_dir=tmp_path, control_dealings=0)
    with pytest.raises(SystemExit, match="--control-dealings: control_dealings must be >= 1, got 0"):
        main(["--quick", "--output_dir", str(tmp_path / "out"), "--control-dealings", "0"])
    assert not (tmp_path / "out").exists()


def test_a_finished_run_is_reused_only_with_the_seed_it_was_trained_with(tmp_path):
    from benchmarks.grounding.bundle_runs import config_digest, effective_seed, training_digest

    run_dir, data, annotation = tmp_path / "run", tmp_path / "features", tmp_path / "annotation.json"
    (run_dir / "eval").mkdir(parents=True)
    (run_dir / "eval" / "reports.csv").write_text("id,generated,reference\n", encoding="utf-8")
    record = {"train_seconds": 1.0, "eval_seconds": 1.0, "metrics": {}, "best_epoch": 1, "epochs_run": 2,
              "config_digest": config_digest("configs/train.json"), "data": [str(data), str(annotation)]}
    (run_dir / RECORD_NAME).write_text(json.dumps(record), encoding="utf-8")  # written before seeds were recorded
    assert finished_run(run_dir, data, annotation).seed is None
    assert finished_run(run_dir, data, annotation, seed=7) is None
    (run_dir / RECORD_NAME).write_text(json.dumps({**record, "seed": 7}), encoding="utf-8")
    assert finished_run(run_dir, data, annotation) is None
    assert finished_run(run_dir, data, annotation, seed=7).seed == 7
    assert finished_run(run_dir, tmp_path / "other", annotation, seed=7) is None
    # trained on other annotation bytes (a changed control dealing): not reused; the same bytes: reused
    train_annotation = tmp_path / "control.json"
    train_annotation.write_text('{"train": []}', encoding="utf-8")
    args = ["--dataset_dir", str(data), "--annotation_file", str(train_annotation)]
    assert finished_run(run_dir, data, annotation, seed=7, data_args=args) is None  # no digest recorded
    (run_dir / RECORD_NAME).write_text(json.dumps({**record, "seed": 7, "training_digest": training_digest(args)}),
                                       encoding="utf-8")
    assert finished_run(run_dir, data, annotation, seed=7, data_args=args).training_digest == training_digest(args)
    train_annotation.write_text('{"train": [1]}', encoding="utf-8")
    assert finished_run(run_dir, data, annotation, seed=7, data_args=args) is None
    assert training_digest(["--demo#source", "feature_bags"]) is None
    # the user's own --seed wins over a dealing's: none is passed or recorded then
    assert effective_seed(7, ["--max_epochs", "2"]) == 7 and effective_seed(7, ["--seed", "1"]) is None


def test_variant_names():
    assert variant_name(()) == "defaults"
    assert variant_name(("--val_metric", "BLEU_4")) != variant_name(("--val_metric", "ROUGE_L"))


@pytest.mark.slow
def test_quick_suite_runs_the_bundle_and_writes_the_table(tmp_path):
    result = subprocess.run([sys.executable, "-m", "benchmarks.bench_grounding", "--quick", "--output_dir",
                             str(tmp_path), "--control-dealings", "2"], cwd=REPO, capture_output=True, text=True,
                            timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    table = (tmp_path / "grounding_table.md").read_text()
    assert table.splitlines()[0] == "| " + " | ".join(COLUMNS) + " |"
    assert table in result.stdout
    payload = json.loads((tmp_path / "grounding_table.json").read_text())
    rows = {row["run"]: row for row in payload["rows"]}
    assert set(rows) == {"references", "model", "control", "control, dealing 2", "control, mean of 2 dealings",
                         "control, slide-blind expectation (mean of 2)", "ABMIL", "chance"}
    assert payload["extra_args"] == ["--max_epochs", "2"]
    first = json.loads(next((tmp_path / "data").glob("quick-*/annotation_shuffled.json")).read_text())
    second = json.loads((tmp_path / "runs" / "quick" / variant_name(("--max_epochs", "2"))
                         / "control_annotation_2.json").read_text())
    assert second["test"] == first["test"]
    assert [i["report"] for i in second["train"]] != [i["report"] for i in first["train"]]
    mean = rows["control, mean of 2 dealings"]
    for finding in FINDINGS:
        both = (rows["control"]["accuracy"][finding], rows["control, dealing 2"]["accuracy"][finding])
        assert mean["accuracy"][finding] == pytest.approx(sum(both) / 2)
    assert mean["bleu_4"] == pytest.approx((rows["control"]["bleu_4"] + rows["control, dealing 2"]["bleu_4"]) / 2)
    blind = rows["control, slide-blind expectation (mean of 2)"]
    assert set(blind["accuracy"]) == set(FINDINGS) and all(0.0 <= v <= 1.0 for v in blind["accuracy"].values())
    assert blind["bleu_4"] is None and blind["best_epoch"] is None
    for name in ("model", "control", "control, dealing 2"):
        row = rows[name]
        assert set(row["accuracy"]) == set(FINDINGS)
        assert all(0.0 <= v <= 1.0 for v in row["accuracy"].values())
        assert 0.0 <= row["bleu_4"] <= 1.0 and 0.0 < row["rouge_l"] <= 1.0
        assert row["epochs_run"] == 2 and 0 <= row["diagnoses_written"] <= 3 and row["wall_seconds"] > 0
        folder = {"control, dealing 2": "control-2"}.get(name, name)
        run_dir = tmp_path / "runs" / "quick" / variant_name(("--max_epochs", "2")) / folder
        assert (run_dir / "eval" / "reports.csv").is_file()
        # a further dealing trains with a seed of its own (an independent replicate), the others with the config's
        seed = dealing_model_seed(3, 1) if folder == "control-2" else None
        assert json.loads((run_dir / RECORD_NAME).read_text())["seed"] == seed
        assert ("--seed " + str(seed) in (run_dir / "bundle.log").read_text()) == (seed is not None)
    assert all(0.0 <= v <= 1.0 for v in rows["ABMIL"]["balanced_accuracy"].values())
    assert rows["chance"]["accuracy"]["diagnosis"] == pytest.approx(1 / 3)
    assert payload["readers"]["quick"].startswith("scripts.metrics.extract_findings")
    assert rows["references"]["accuracy"]["margin"] == rows["references"]["accuracy"]["grade"] == 1.0
    assert payload["rows"][0]["bags"] == "24/6/9" and payload["rows"][0]["seed"] == 3

    model_log = tmp_path / "runs" / "quick" / variant_name(("--max_epochs", "2")) / "model" / "bundle.log"
    written = model_log.stat().st_mtime_ns
    again = subprocess.run([sys.executable, "-m", "benchmarks.bench_grounding", "--quick", "--output_dir",
                            str(tmp_path), "--reuse-runs", "--findings-reader", "phrases", "--control-dealings", "2"],
                           cwd=REPO,
                           capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("reusing the finished run") == 3 and model_log.stat().st_mtime_ns == written
    reused = {row["run"]: row for row in json.loads((tmp_path / "grounding_table.json").read_text())["rows"]}
    assert reused["model"]["bleu_4"] == rows["model"]["bleu_4"]
    assert reused["model"]["wall_seconds"] == rows["model"]["wall_seconds"]
    assert reused["references"]["accuracy"] == dict.fromkeys(FINDINGS, 1.0)  # the benchmark's own phrases


def test_extractor_values_map_onto_the_benchmark_values():
    from benchmarks.grounding.finding_readers import benchmark_values

    diagnoses = PARAMS.diagnoses
    found = {"diagnosis": "infiltrating ductal carcinoma", "grade": "grade 2", "margin": "close",
             "lymphovascular_invasion": "present", "lymph_node_status": "negative"}
    assert benchmark_values(found, diagnoses) == {
        "diagnosis": "invasive ductal carcinoma", "grade": "2", "margin": "negative",
        "lymphovascular_invasion": "present", "lymph_nodes": "negative"}
    other = benchmark_values({"diagnosis": "renal cell carcinoma", "grade": "poorly differentiated"}, diagnoses)
    assert other["diagnosis"] is None and other["grade"] == "3" and other["margin"] is None
    assert benchmark_values({"grade": "isup 1"}, diagnoses)["grade"] == "1"
    assert benchmark_values({"grade": "gleason 7"}, diagnoses)["grade"] is None
