"""``slide_norm`` through the real workflows: training saves, reloads and evaluates with each view."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks.grounding import QUICK_BENCHMARK, make_benchmark_dataset
from scripts.data import read_feature_file
from scripts.demo.feature_bags import make_demo_dataset
from scripts.engines import load_report_model
from tests.support.bundle_runs import path_of, run_bundle


@pytest.mark.slow
def test_training_with_slide_norm_saves_a_model_blind_to_a_slide_wide_shift(tmp_path):
    demo = make_demo_dataset(tmp_path / "demo", n_train=6, n_val=3, n_test=3, feature_dim=16, n_patches=(8, 16))
    out = tmp_path / "run"
    data = {"dataset_dir": path_of(demo.dataset_dir), "annotation_file": path_of(demo.annotation_file)}
    run_bundle("training", "train.json", **data, output_dir=path_of(out), max_epochs=1, batch_size=3,
               val_batch_size=3, max_seq_length=20, beam_size=1, **{"network_def#config#slide_norm": "slide"})
    run_bundle("evaluating", "evaluate.json", **data, output_dir=path_of(out), beam_size=1)
    config = json.loads((out / "models" / "model_config.json").read_text(encoding="utf-8"))
    assert config["slide_norm"] == "slide"
    assert json.loads((out / "eval" / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    model, _ = load_report_model(out / "models")
    assert model.config.slide_norm == "slide" and model.projection.in_features == 16
    slide = sorted(demo.dataset_dir.iterdir())[0]
    features = read_feature_file(slide).feats[None]
    shifted = features * torch.linspace(0.5, 2.0, 16) + torch.linspace(-3.0, 3.0, 16)  # another site's scanner
    torch.testing.assert_close(model.predict_findings(shifted), model.predict_findings(features), atol=1e-4,
                               rtol=1e-4)
    assert torch.equal(model.generate(shifted, beam_size=1), model.generate(features, beam_size=1))


@pytest.mark.slow
def test_default_training_trains_the_heads_view_and_evaluates(tmp_path):
    # the grounding suite's quick benchmark: reports that state findings, so the model has finding heads;
    # slide_norm "heads" is configs/train.json's default
    demo = make_benchmark_dataset(QUICK_BENCHMARK.params, tmp_path / "bench")
    out = tmp_path / "run"
    data = {"dataset_dir": path_of(demo.dataset_dir), "annotation_file": path_of(demo.annotation_file)}
    run_bundle("training", "train.json", **data, output_dir=path_of(out), max_epochs=2, batch_size=3,
               val_batch_size=3, max_seq_length=20, beam_size=1)
    run_bundle("evaluating", "evaluate.json", **data, output_dir=path_of(out), beam_size=1)
    assert json.loads((out / "eval" / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    model, _ = load_report_model(out / "models")
    assert model.config.slide_norm == "heads" and model.projection.in_features == QUICK_BENCHMARK.params.feature_dim
    assert model.findings is not None
    assert model.config.finding_view_rank == 32  # configs/train.json's rank: two maps, the second from zero
    assert float(model.finding_view[-1].weight.detach().abs().sum()) > 0  # trained away from its zero start
    features = read_feature_file(sorted(demo.dataset_dir.iterdir())[0]).feats[None]
    model.eval()
    encoding = model.encode(features)
    assert not torch.allclose(encoding.finding_tokens, encoding.patch_tokens)
