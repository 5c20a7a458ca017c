"""The main job: the default demo run learns the diagnosis; the shuffled-pairs control cannot."""

from __future__ import annotations

import json
import time

import pytest
from bundle_runs import path_of, run_bundle

pytestmark = pytest.mark.slow


def train_and_evaluate(out, **overrides) -> tuple[dict, float]:
    start = time.perf_counter()
    run_bundle("training", "train.json", output_dir=path_of(out), **overrides)
    seconds = time.perf_counter() - start
    # evaluation always uses the true (unshuffled) demo pairs of the test split
    run_bundle("evaluating", "evaluate.json", output_dir=path_of(out))
    return json.loads((out / "eval" / "metrics.json").read_text())["metrics"], seconds


def test_default_demo_run_learns_the_diagnosis(tmp_path):
    metrics, seconds = train_and_evaluate(tmp_path / "demo")
    # wall time is reported, not asserted (shared machines are noisy); see docs/benchmarks.md
    print(f"demo training {seconds:.0f} s, test metrics {metrics}")
    assert metrics["diagnosis_accuracy"] >= 0.9
    assert metrics["BLEU_4"] > 0.3


def test_model_trained_on_shuffled_bags_stays_near_chance(tmp_path):
    metrics, _ = train_and_evaluate(tmp_path / "shuffled", **{"demo#shuffle_pairs": "true"})
    print(f"shuffled control test metrics {metrics}")
    # 4 balanced diagnosis classes: chance is 0.25
    assert metrics["diagnosis_accuracy"] <= 0.45
