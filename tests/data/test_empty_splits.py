"""An empty train or validation split is a named error before training starts (not a run without a model)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from scripts.data import ReportBagDataset, require_slides_in
from scripts.data.errors import AnnotationError, BagDataError
from scripts.demo.feature_bags import make_demo_dataset
from scripts.text import Vocabulary
from tests.support.bundle_runs import REPO_ROOT, bundle_env, path_of


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo"), n_train=4, n_val=2, n_test=2, feature_dim=8,
                             n_patches=(5, 10))


def _without(demo, split: str, folder) -> str:
    annotation = json.loads(demo.annotation_file.read_text())
    annotation[split] = []
    path = folder / f"no_{split}.json"
    path.write_text(json.dumps(annotation))
    return path


@pytest.mark.parametrize("split", ["train", "val"])
def test_an_empty_split_names_the_split_and_the_file(demo, split, tmp_path):
    path = _without(demo, split, tmp_path)
    with pytest.raises(AnnotationError, match=rf"{path}: split '{split}' is empty; training needs it"):
        require_slides_in(path, ["train", "val"])


def test_a_split_whose_every_slide_is_skipped_is_an_error(demo, tmp_path):
    with pytest.raises(BagDataError, match=r"split 'val' has no usable slides \(2 skipped as unusable\)"):
        ReportBagDataset(demo.annotation_file, tmp_path, "val", Vocabulary(["<unk>", "a"]), on_error="skip")


def test_training_with_an_empty_validation_split_stops_before_it_starts(demo, tmp_path):
    path = _without(demo, "val", tmp_path)
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", "configs/train.json",
           "--dataset_dir", path_of(demo.dataset_dir), "--annotation_file", path_of(path),
           "--output_dir", path_of(tmp_path / "out")]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=bundle_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    last = [line for line in proc.stderr.splitlines() if line.strip()][-2]
    assert last == f"ERROR: AnnotationError: {path}: split 'val' is empty; training needs it (the slides that " \
                   f"choose the best model)"
    assert not (tmp_path / "out" / "checkpoints").exists()
