"""The main job: the default demo run (synthetic slides -> features -> reports) learns the diagnosis; the
shuffled-pairs control cannot."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from tests.support.bundle_runs import path_of, run_bundle
from tests.support.transfer_demo import seed_with_checkout_demo

pytestmark = pytest.mark.slow


def train_and_evaluate(out, **overrides) -> tuple[dict, float]:
    start = time.perf_counter()
    run_bundle("training", "train.json", output_dir=path_of(out), **overrides)
    seconds = time.perf_counter() - start
    # evaluation always uses the true (unshuffled) demo pairs of the test split
    run_bundle("evaluating", "evaluate.json", output_dir=path_of(out))
    return json.loads((out / "eval" / "metrics.json").read_text())["metrics"], seconds


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The README's main job in a fresh folder: builds the slide demo (or reuses the checkout's), trains, evaluates.

    Where the main job already ran in the checkout (``.ci/run`` runs it before the tests), its ``demo_data`` is
    linked in (:func:`tests.support.transfer_demo.seed_with_checkout_demo`): the builder reuses it only if it is
    current, else rebuilds it. Training and evaluation always run here.
    """
    out = tmp_path_factory.mktemp("demo")
    seed_with_checkout_demo(out / "demo_data")
    metrics, seconds = train_and_evaluate(out)
    return out, metrics, seconds


def test_default_demo_run_learns_the_diagnosis(default_run):
    out, metrics, seconds = default_run
    manifest = json.loads((out / "demo_data" / "demo_manifest.json").read_text())
    # wall time is reported, not asserted (shared machines are noisy); see docs/slide_pipeline.md
    print(f"demo training {seconds:.0f} s (slide demo build {manifest.get('seconds')}), test metrics {metrics}")
    assert len(list((out / "demo_data" / "slides").glob("*.svs"))) == 240  # the default starts from slides
    config = json.loads((out / "models" / "model_config.json").read_text())
    assert config["input_norm"] is True
    assert config["finding_classes"].get("diagnosis") == 4  # a finding head per diagnosis class of the demo
    assert metrics["diagnosis_accuracy"] >= 0.9
    assert metrics["BLEU_4"] > 0.3


def test_model_trained_on_shuffled_pairs_stays_near_chance(default_run, tmp_path):
    demo_dir, _, _ = default_run
    out = tmp_path / "shuffled"
    # the same slides and features (hard links keep their size and mtime, so the builder reuses them)
    shutil.copytree(demo_dir / "demo_data", out / "demo_data", copy_function=os.link)
    metrics, _ = train_and_evaluate(out, **{"demo#shuffle_pairs": "true"})
    print(f"shuffled control test metrics {metrics}")
    # 4 balanced diagnosis classes, reports dealt evenly over them: chance is 0.25
    assert metrics["diagnosis_accuracy"] <= 0.45
