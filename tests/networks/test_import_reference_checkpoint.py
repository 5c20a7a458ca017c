"""The released-checkpoint path: convert a reference checkpoint, then run the bundle's inference on it."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from scripts.import_reference_checkpoint import import_reference_checkpoint, main
from scripts.text import Vocabulary
from tests.support.bundle_runs import path_of, run_bundle
from tests.support.shared_fixtures import require_histgen_small


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    folder = require_histgen_small()
    config = json.loads((folder / "config.json").read_text())
    tmp = tmp_path_factory.mktemp("released")
    # a vocabulary of the checkpoint's size: 149 words + <unk> (ids 1..150)
    vocab = Vocabulary([f"w{i:03d}" for i in range(config["vocab_size"] - 1)] + ["<unk>"])
    vocab_file = vocab.save(tmp / "vocab_in.json")
    out = tmp / "models"
    assert main(["--checkpoint", str(folder / "checkpoint.pth"), "--config", str(folder / "config.json"),
                 "--vocab_file", str(vocab_file), "--output_dir", str(out)]) == 0
    return folder, out, vocab


def test_converted_model_files(converted):
    _, out, vocab = converted
    config = json.loads((out / "model_config.json").read_text())
    assert config["compat"] == "histgen-v1"
    assert Vocabulary.load(out / "vocab.json") == vocab
    state = torch.load(out / "model.pt", weights_only=True)
    assert not any(k.endswith(".pe") or "visual_extractor" in k for k in state)


def test_bundle_inference_on_the_converted_checkpoint_gives_the_reference_reports(converted, tmp_path):
    folder, out, vocab = converted
    cases = torch.load(folder / "cases.pt", weights_only=True)
    files = []
    for i, case in enumerate(cases):
        path = tmp_path / "features" / f"case{i}.pt"
        path.parent.mkdir(exist_ok=True)
        torch.save(case["features"], path)
        files.append(path)
    run_bundle("inference", "inference.json", dataset_dir=path_of(tmp_path / "features"), model_dir=path_of(out),
               output_dir=path_of(tmp_path), batch_size=1, beam_size=3)
    with open(tmp_path / "reports" / "reports.csv", encoding="utf-8-sig", newline="") as handle:
        tokens = {row["id"]: row["report_tokens"] for row in csv.DictReader(handle)}  # the form the metrics use
    for i, case in enumerate(cases):
        expected = vocab.decode(case["beam_ids"].tolist())
        assert tokens[f"case{i}"] == expected
        assert f"Tokens (the form the metrics score): {expected}" in (tmp_path / "reports" / f"case{i}.txt").read_text()


def test_vocabulary_that_does_not_fit_the_checkpoint_is_refused(tmp_path):
    folder = require_histgen_small()
    annotation = tmp_path / "annotation.json"
    annotation.write_text(json.dumps({"train": [{"id": "a", "report": "tumour present in the margin."}],
                                      "val": [], "test": []}))
    with pytest.raises(ValueError, match=r"predicts 151 ids but the vocabulary .* has 7 words"):
        import_reference_checkpoint(folder / "checkpoint.pth", folder / "config.json", annotation, tmp_path / "m",
                                    threshold=1)
