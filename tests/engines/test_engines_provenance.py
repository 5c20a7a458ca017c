"""Provenance travels with the model, every output carries its notice, and features are checked against it.

Fast in-process tests of the pieces, and one feature-inference workflow (``python -m monai.bundle run inference``)
on a tiny model said to be trained on synthetic data, with feature files of the wrong patch size.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from ignite.engine import Engine

from scripts.data import write_feature_file_h5
from scripts.engines import (
    PROVENANCE_FILE,
    RESEARCH_NOTICE,
    SYNTHETIC_WARNING,
    FeatureMismatchError,
    ModelNotFoundError,
    check_feature_files,
    load_provenance,
    provenance_summary,
    require_model_dir,
    save_report_model,
    training_provenance,
)
from scripts.engines.report_data import ReportData
from scripts.engines.report_outputs import (
    EVALUATION_TABLE_COLUMNS,
    REPORT_TABLE_COLUMNS,
    EvaluationWriter,
    ReportWriter,
)
from scripts.networks import HistGen, HistGenConfig
from scripts.text import Vocabulary
from tests.support.bundle_runs import REPO_ROOT, bundle_command, bundle_env, path_of

TINY = dict(in_dim=16, d_vf=16, d_model=32, d_ff=32, num_heads=4, num_layers=2, topk=4, cmm_size=8, cmm_dim=32,
            region_size=4, prototype_num=3, vocab_size=12, dropout=0.0, drop_prob_lm=0.0, max_seq_length=6,
            beam_size=1)
WORDS = ["diagnosis", "carcinoma", "tumour", "free", "margins", ".", "of", "the", "grade", "two", "lymphoma"]
EXTRACTION = {"encoder_name": "builtin-small", "encoder_checksum": "ab" * 32, "patch_size": 128, "target_mpp": 0.5}


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def _synthetic_record(tmp_path: Path) -> dict:
    annotation = tmp_path / "demo" / "annotation.json"
    annotation.parent.mkdir(parents=True, exist_ok=True)
    annotation.write_text(json.dumps({"train": [{"id": "a"}] * 5, "val": [{"id": "b"}] * 2, "test": [{"id": "c"}]}))
    data = ReportData(tmp_path / "demo" / "features", annotation, 16, True)
    return training_provenance(data, EXTRACTION)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny model (random weights) whose provenance says: synthetic data, 128-px builtin-small features."""
    root = tmp_path_factory.mktemp("provenance")
    folder = root / "models"
    save_report_model(folder, HistGen(HistGenConfig(**TINY)), Vocabulary(["<unk>", *WORDS]), extraction=EXTRACTION,
                      provenance=_synthetic_record(root))
    return folder


def _features(folder: Path, patch_size: int = 128, attrs: bool = True, n: int = 2) -> Path:
    rng = np.random.default_rng(patch_size)
    for i in range(n):
        write_feature_file_h5(folder / f"slide-{i}.h5", rng.normal(size=(9, 16)).astype(np.float32),
                              np.arange(18).reshape(9, 2),
                              attrs={**EXTRACTION, "patch_size": patch_size} if attrs else None)
    return folder


# ---------------------------------------------------------------------------- fast: the record and the notices
def test_the_model_records_what_it_was_trained_on_and_shows_it_in_one_line(model_dir):
    record = load_provenance(model_dir)
    assert record["synthetic"] is True and record["slides"] == {"train": 5, "val": 2, "test": 1}
    assert record["extraction"] == EXTRACTION and record["trained_at"].endswith("Z") and record["code_version"]
    line = provenance_summary(record)
    assert "\n" not in line and "SYNTHETIC" in line and "8 slides" in line and "builtin-small at 128 px" in line
    assert "provenance unknown" in provenance_summary(None)


def test_a_model_saved_without_provenance_does_not_keep_a_stale_record(tmp_path):
    save_report_model(tmp_path, HistGen(HistGenConfig(**TINY)), Vocabulary(["<unk>", *WORDS]),
                      provenance=_synthetic_record(tmp_path))
    assert (tmp_path / PROVENANCE_FILE).is_file()
    save_report_model(tmp_path, HistGen(HistGenConfig(**TINY)), Vocabulary(["<unk>", *WORDS]))
    assert load_provenance(tmp_path) is None


def test_report_files_and_table_carry_prose_tokens_and_the_synthetic_warning(model_dir, tmp_path, caplog):
    writer = ReportWriter(tmp_path, provenance=load_provenance(model_dir))
    writer.rows = [{"id": "s1", "generated": "diagnosis carcinoma . margins free ."}]
    with caplog.at_level("WARNING", logger="histgen.outputs"):
        writer(Engine(lambda e, b: None))
    lines = (tmp_path / "s1.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith(SYNTHETIC_WARNING)
    assert lines[1] == "Diagnosis: carcinoma. Margins: free."
    assert "Tokens (the form the metrics score): diagnosis carcinoma . margins free ." in lines
    assert RESEARCH_NOTICE in lines and any(line.startswith("Provenance: model trained on") for line in lines)
    (row,) = _read_csv(tmp_path / "reports.csv")
    assert list(row)[:4] == REPORT_TABLE_COLUMNS
    assert row["report"] == lines[1] and row["report_tokens"] == "diagnosis carcinoma . margins free ."
    assert row["notice"].startswith(SYNTHETIC_WARNING) and RESEARCH_NOTICE in row["notice"]
    assert row["diagnosis"] == "carcinoma"  # the findings are read from the tokens
    assert SYNTHETIC_WARNING in caplog.text


def test_evaluation_table_holds_the_users_own_reference_beside_the_scored_tokens(tmp_path):
    writer = EvaluationWriter(tmp_path, write_findings=False)
    writer.rows = [{"id": "s1", "generated": "diagnosis carcinoma .", "reference": "diagnosis <unk> carcinoma .",
                    "raw_reference": "DIAGNOSIS: Poorly-differentiated carcinoma."}]
    engine = Engine(lambda e, b: None)
    writer(engine)
    (row,) = _read_csv(tmp_path / "reports.csv")
    assert list(row) == EVALUATION_TABLE_COLUMNS
    assert row == {"id": "s1", "generated": "Diagnosis: carcinoma.", "generated_tokens": "diagnosis carcinoma .",
                   "reference": "DIAGNOSIS: Poorly-differentiated carcinoma.",
                   "reference_tokens": "diagnosis <unk> carcinoma .", "notice": RESEARCH_NOTICE}


# ---------------------------------------------------------------------------- fast: features against the model
def test_feature_files_of_another_patch_size_are_refused_naming_both_values(model_dir, tmp_path, caplog):
    good, bad = _features(tmp_path / "good"), _features(tmp_path / "bad", patch_size=256)
    check_feature_files(sorted(good.glob("*.h5")), model_dir)  # the model's own settings: no word
    with pytest.raises(FeatureMismatchError) as err:
        check_feature_files(sorted(bad.glob("*.h5")), model_dir)
    message = str(err.value)
    assert "patch_size 256 in" in message and "but 128 in the model's feature_extraction.json" in message
    assert "slide-0.h5 and 1 more file(s)" in message and "allow_feature_mismatch" in message
    with caplog.at_level("WARNING", logger="histgen.features"):
        check_feature_files(sorted(bad.glob("*.h5")), model_dir, allow_mismatch=True)
    assert "Going on because allow_feature_mismatch is true" in caplog.text


def test_feature_files_without_settings_get_one_warning(model_dir, tmp_path, caplog):
    import torch

    folder = _features(tmp_path / "bare", attrs=False)
    torch.save(torch.zeros(3, 16), folder / "slide-9.pt")
    with caplog.at_level("WARNING", logger="histgen.features"):
        check_feature_files(sorted(folder.iterdir()), model_dir)
    (record,) = [r for r in caplog.records if r.name == "histgen.features"]
    assert "3 feature file(s) carry no extraction settings" in record.getMessage()


def test_a_folder_without_a_model_is_named_with_the_model_dir_override(tmp_path, model_dir):
    with pytest.raises(ModelNotFoundError, match=r"no trained model here \(missing model.pt, model_config.json\).*"
                                                 r"--model_dir models"):
        require_model_dir(tmp_path / "runs" / "demo" / "models")
    assert require_model_dir(model_dir) == model_dir


# ---------------------------------------------------------------------------- the workflow, as a user runs it
@pytest.mark.slow  # two workflow subprocesses: 86 s on a loaded 2-core machine
def test_feature_inference_refuses_mismatched_features_unless_told_and_marks_every_output(model_dir, tmp_path):
    bad = _features(tmp_path / "features", patch_size=256)
    args = {"model_dir": path_of(model_dir), "dataset_dir": path_of(bad), "output_dir": path_of(tmp_path / "run")}
    refused = subprocess.run(bundle_command("inference", ("inference.json",), args), cwd=REPO_ROOT, env=bundle_env(),
                             capture_output=True, text=True, timeout=600)
    log = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "patch_size 256 in" in log and "but 128 in the model's" in log, log[-3000:]
    assert not (tmp_path / "run" / "reports" / "reports.csv").exists()

    allowed = subprocess.run(bundle_command("inference", ("inference.json",), {**args, "allow_feature_mismatch": True}),
                             cwd=REPO_ROOT, env=bundle_env(), capture_output=True, text=True, timeout=600)
    log = allowed.stdout + allowed.stderr
    assert allowed.returncode == 0, log[-3000:]
    assert "model trained on HistGen demo (synthetic slides) (SYNTHETIC data); 8 slides" in log  # at load
    assert "Going on because allow_feature_mismatch is true" in log
    assert log.count(SYNTHETIC_WARNING) >= 2  # at load and after writing
    rows = _read_csv(tmp_path / "run" / "reports" / "reports.csv")
    assert [r["id"] for r in rows] == ["slide-0", "slide-1"]
    for row in rows:
        assert row["notice"].startswith(SYNTHETIC_WARNING)
        text = (tmp_path / "run" / "reports" / f"{row['id']}.txt").read_text(encoding="utf-8")
        assert text.startswith(SYNTHETIC_WARNING) and RESEARCH_NOTICE in text
        assert f"Tokens (the form the metrics score): {row['report_tokens']}" in text
