"""Clinical findings in the bundle's workflows, run as a user runs them (``python -m monai.bundle run ...``).

Training builds the findings vocabulary from the train reports, selects on ``clinical_bleu`` and saves the
vocabulary beside the model; ``evaluating`` writes the finding metrics to ``eval/metrics.json`` and the
per-slide comparison to ``eval/findings.csv``; ``inference`` writes ``<id>.findings.json`` and finding
columns in ``reports.csv``.
"""

from __future__ import annotations

import csv
import json

import pytest

from scripts.demo.feature_bags import make_demo_dataset
from scripts.engines.report_outputs import FINDING_COLUMNS, FINDINGS_TABLE_COLUMNS
from scripts.metrics import CATEGORICAL_FINDINGS, FindingsVocabulary, extract_findings
from scripts.text import Vocabulary
from tests.support.bundle_runs import path_of, run_bundle

TRAIN_OVERRIDES = {"batch_size": 4, "val_batch_size": 8, "max_seq_length": 40, "beam_size": 2}
# every phrase recurs in the 16 training reports, so its words pass the vocabulary threshold (3) and the
# decoded references keep them
MARGINS = ["Margins: negative.", "Margins: positive.", "The deep margin is close."]
INVASION = ["No lymphovascular invasion.", "Lymphovascular invasion is present."]
GRADES = ["Grade 1 of 3.", "Grade 3 of 3."]


def _read_csv(path):
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def findings_demo(tmp_path_factory):
    """The small feature-bag demo with reports that also state grade, margin and LVI (in turn)."""
    demo = make_demo_dataset(tmp_path_factory.mktemp("demo"), n_train=16, n_val=8, n_test=8, feature_dim=32,
                             n_patches=(20, 60))
    annotation = json.loads(demo.annotation_file.read_text(encoding="utf-8"))
    for split in ("train", "val", "test"):
        for i, item in enumerate(annotation[split]):
            first, rest = item["report"].split(". ", 1)
            item["report"] = " ".join([first + ".", GRADES[(i // 2) % 2], MARGINS[i % 3], INVASION[i % 2], rest])
    path = demo.annotation_file.parent / "annotation_findings.json"
    path.write_text(json.dumps(annotation), encoding="utf-8")
    return demo, path, annotation


@pytest.fixture(scope="module")
def trained(findings_demo, tmp_path_factory):
    demo, annotation_file, _ = findings_demo
    out = tmp_path_factory.mktemp("run")
    run_bundle("training", "train.json", dataset_dir=path_of(demo.dataset_dir),
               annotation_file=path_of(annotation_file), output_dir=path_of(out), max_epochs=2,
               val_metric="clinical_bleu", **TRAIN_OVERRIDES)
    return out


@pytest.mark.slow
def test_training_selects_on_clinical_bleu_and_saves_the_findings_vocabulary(findings_demo, trained):
    _, annotation_file, _ = findings_demo
    saved = FindingsVocabulary.load(trained / "models" / "findings_vocabulary.json")
    assert saved == FindingsVocabulary.from_annotation(annotation_file)
    assert set(saved.diagnoses) == {"invasive adenocarcinoma", "invasive squamous cell carcinoma",
                                    "malignant lymphoma", "benign"}
    assert saved.grades == ("grade 1", "grade 3")
    best = json.loads((trained / "checkpoints" / "best.json").read_text())
    val = best["val_metrics"]
    assert best["metric"] == "clinical_bleu"
    assert best["score"] == pytest.approx((val["finding_mean_accuracy"] + val["BLEU_4"]) / 2)
    for name in CATEGORICAL_FINDINGS:
        assert f"finding_{name}_accuracy" in val and f"finding_{name}_f1" in val
    assert val["finding_margin_eligible"] == 8  # every validation reference states its margin
    assert not list(trained.rglob("*.tmp"))


@pytest.mark.slow
def test_evaluation_writes_finding_metrics_and_the_findings_table(findings_demo, trained):
    demo, annotation_file, annotation = findings_demo
    run_bundle("evaluating", "evaluate.json", dataset_dir=path_of(demo.dataset_dir),
               annotation_file=path_of(annotation_file), output_dir=path_of(trained), beam_size=2)
    metrics = json.loads((trained / "eval" / "metrics.json").read_text())["metrics"]
    assert {"BLEU_4", "ROUGE_L", "finding_mean_accuracy", "finding_macro_f1", "clinical_bleu", "reg_key"} <= set(
        metrics)
    for name in CATEGORICAL_FINDINGS:
        assert f"finding_{name}_accuracy" in metrics
    assert "reg_score" not in metrics and "reg_emb" not in metrics  # no text encoder given

    rows = _read_csv(trained / "eval" / "findings.csv")
    assert list(rows[0]) == FINDINGS_TABLE_COLUMNS
    reports = {r["id"]: r for r in _read_csv(trained / "eval" / "reports.csv")}
    assert {r["id"] for r in rows} == {item["id"] for item in annotation["test"]} == set(reports)
    vocab = FindingsVocabulary.load(trained / "models" / "findings_vocabulary.json")
    raw = {item["id"]: item["report"] for item in annotation["test"]}
    correct = 0
    for row in rows:
        generated = extract_findings(reports[row["id"]]["generated_tokens"], vocab).categorical()
        reference = extract_findings(raw[row["id"]], vocab).categorical()
        for name in ("diagnosis", "grade", "margin", "lymphovascular_invasion"):
            # the decoded reference gives the findings of the raw annotation report
            assert row[f"{name}_reference"] == reference[name], (row["id"], name)
            assert row[f"{name}_generated"] == (generated[name] or "")
            assert row[f"{name}_correct"] == ("yes" if generated[name] == reference[name] else "no")
        assert row["perineural_invasion_correct"] == ""  # no reference states it
        correct += row["margin_correct"] == "yes"
    assert metrics["finding_margin_accuracy"] == pytest.approx(correct / len(rows))


@pytest.mark.slow
def test_inference_writes_findings_json_and_columns(findings_demo, trained, tmp_path):
    demo, _, _ = findings_demo
    files = sorted(demo.dataset_dir.glob("*test*"))[:3]
    listing = "[" + ",".join(f"'{path_of(f)}'" for f in files) + "]"
    run_bundle("inference", "inference.json", feature_files=listing, output_dir=path_of(trained),
               reports_dir=path_of(tmp_path / "reports"), beam_size=2)
    rows = {r["id"]: r for r in _read_csv(tmp_path / "reports" / "reports.csv")}
    assert set(rows) == {f.stem for f in files}
    vocab = FindingsVocabulary.load(trained / "models" / "findings_vocabulary.json")
    assert Vocabulary.load(trained / "models" / "vocab.json")  # the model files are all there
    for slide_id, row in rows.items():
        assert list(row) == ["id", "report", "report_tokens", "notice", *FINDING_COLUMNS]
        text = row["report_tokens"]  # the findings are read from the tokens the model wrote
        saved = json.loads((tmp_path / "reports" / f"{slide_id}.findings.json").read_text(encoding="utf-8"))
        expected = extract_findings(text, vocab).to_dict()
        assert saved == {"id": slide_id, "findings": expected}
        assert {k: row[k] for k in FINDING_COLUMNS} == {k: "" if v is None else str(v) for k, v in expected.items()}
    assert not list((tmp_path / "reports").rglob("*.tmp"))


def test_writers_on_an_engine(tmp_path):
    """The writers themselves, on a real Ignite engine whose outputs hold real report texts (fast)."""
    from ignite.engine import Engine

    from scripts.engines import EvaluationWriter, ReportWriter

    batches = [
        {"slide_ids": ["s1", "s2"],
         "hypotheses": ["invasive ductal carcinoma grade 2 of 3 . margins negative . no lymphovascular invasion .",
                        "invasive lobular carcinoma . margins negative ."],
         "references": ["Invasive ductal carcinoma, grade 2 of 3. Margins: negative. LVI: present.",
                        "Invasive ductal carcinoma. Margins: involved by carcinoma. Lymph nodes: 0/12."]},
        {"slide_ids": ["s3"], "hypotheses": ["benign tissue ."], "references": ["Benign tissue."]},
    ]
    vocab = FindingsVocabulary(diagnoses=("invasive ductal carcinoma", "invasive lobular carcinoma"))
    engine = Engine(lambda engine, batch: batch)
    EvaluationWriter(tmp_path / "eval", {"split": "test"}, findings_vocabulary=vocab).attach(engine)
    ReportWriter(tmp_path / "reports", findings_vocabulary=vocab).attach(engine)
    engine.run(batches, max_epochs=1)

    rows = {r["id"]: r for r in _read_csv(tmp_path / "eval" / "findings.csv")}
    assert list(rows) == ["s1", "s2", "s3"]
    s1, s2, s3 = rows["s1"], rows["s2"], rows["s3"]
    assert (s1["diagnosis_reference"], s1["diagnosis_generated"], s1["diagnosis_correct"]) == (
        "invasive ductal carcinoma", "invasive ductal carcinoma", "yes")
    assert (s1["grade_correct"], s1["margin_correct"]) == ("yes", "yes")
    assert (s1["lymphovascular_invasion_reference"], s1["lymphovascular_invasion_generated"],
            s1["lymphovascular_invasion_correct"], s1["all_correct"]) == ("present", "absent", "no", "no")
    assert (s2["diagnosis_generated"], s2["diagnosis_correct"], s2["margin_reference"], s2["margin_correct"]) == (
        "invasive lobular carcinoma", "no", "positive", "no")
    assert (s2["lymph_node_status_reference"], s2["lymph_node_status_generated"], s2["lymph_node_status_correct"]) == (
        "negative", "", "no")
    assert s2["grade_correct"] == ""  # the reference states no grade
    assert (s3["diagnosis_reference"], s3["all_correct"]) == ("benign", "yes")

    table = {r["id"]: r for r in _read_csv(tmp_path / "reports" / "reports.csv")}
    assert (table["s1"]["diagnosis"], table["s1"]["grade"], table["s1"]["lymphovascular_invasion"]) == (
        "invasive ductal carcinoma", "grade 2", "absent")
    saved = json.loads((tmp_path / "reports" / "s2.findings.json").read_text(encoding="utf-8"))
    assert saved["findings"]["diagnosis"] == "invasive lobular carcinoma" and saved["findings"]["margin"] == "negative"
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["num_reports"] == 3


def _phrase_rules_saved(model_dir) -> dict[str, list[int]]:
    from scripts.safe_load import load_plain

    state = load_plain(model_dir / "models" / "model.pt", what="report model")
    return {key.rsplit(".", 1)[-1]: value.tolist() for key, value in state.items()
            if key.rsplit(".", 1)[-1] in ("phrase_word", "phrase_finding")}


@pytest.mark.slow
def test_finding_phrase_decoding_is_on_by_default_and_one_key_turns_it_off(findings_demo, trained, tmp_path):
    demo, annotation_file, _ = findings_demo
    saved = _phrase_rules_saved(trained)
    assert saved["phrase_word"], "the default training saved no phrase rules with the model"
    vocab = Vocabulary.load(trained / "models" / "vocab.json")
    words = {vocab.decode([0, w]).strip() for w in saved["phrase_word"]}
    assert {"present", "positive", "negative"} & words  # LVI / margin values commit their sentences

    out = tmp_path / "off"
    proc = run_bundle("training", "train.json", dataset_dir=path_of(demo.dataset_dir),
                      annotation_file=path_of(annotation_file), output_dir=path_of(out), max_epochs=1,
                      finding_phrase_decoding="false", **TRAIN_OVERRIDES)
    assert "finding-consistent decoding:" not in proc.stdout + proc.stderr
    assert _phrase_rules_saved(out) == {"phrase_word": [], "phrase_finding": []}
