"""MONAI's property check (``ConfigWorkflow(...).check_properties()``, the one model-zoo's CI runs) of the
train, evaluate and inference configs of the three bundles (issue 14, item 7).

Each bundle runs in a temporary ``bundle_root``/``output_dir`` with small data given (``dataset_dir`` and
``annotation_file`` or ``csv_file``; the other settings keep their defaults): the train check builds the
workflow's own network, which is saved as training saves it, and the evaluate and inference checks then read that
model. Every check resolves MONAI's required properties (trainer, datasets, evaluator, network_def...) in seconds
and writes no demo. Without data the train and evaluate configs fall back to the SYNTHETIC demo, which
resolving ``dataset`` writes (minutes; see docs/README.md).
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest
from monai.bundle import ConfigWorkflow

from scripts.demo.feature_bags import make_demo_dataset
from scripts.engines import save_report_model
from scripts.transfer import save_fold_model
from tests.support.bundle_runs import REPO_ROOT
from tests.support.transfer_demo import seed_with_checkout_demo

BASE = REPO_ROOT / "scripts" / "transfer" / "configs"
#: workflow type -> (config file name, run id)
WORKFLOWS = {"train": ("train.json", "training"), "eval": ("evaluate.json", "evaluating"),
             "infer": ("inference.json", "inference")}
SECONDS = 30  # generous for a loaded 2-core box: the checks take about a second each


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> dict[str, Path]:
    """24 small SYNTHETIC feature bags (D = 16) with their annotation and the siblings' label tables."""
    root = tmp_path_factory.mktemp("property_data")
    demo = make_demo_dataset(root / "bags", n_train=16, n_val=4, n_test=4, feature_dim=16, n_patches=(8, 16))
    items = [item for split in ("train", "val", "test") for item in json.loads(demo.annotation_file.read_text())[split]]
    tables = {"subtyping": [["slide_id", "label", "case_id"]], "survival": [["slide_id", "case_id", "time", "event"]]}
    for i, item in enumerate(items):
        tables["subtyping"].append([item["id"], item["diagnosis"], item["id"]])
        tables["survival"].append([item["id"], item["id"], f"{3.0 + 2.5 * i:.1f}", str(int(i % 3 != 0))])
    paths = {"dataset_dir": demo.dataset_dir, "annotation_file": demo.annotation_file}
    for task, rows in tables.items():
        paths[task] = root / f"{task}.csv"
        with paths[task].open("w", newline="") as f:
            csv.writer(f).writerows(rows)
    return paths


def _workflow(bundle: str, kind: str, root: Path, **settings: object) -> ConfigWorkflow:
    name, run_id = WORKFLOWS[kind]
    if bundle == "report":
        config: object = str(REPO_ROOT / "configs" / name)
        meta = REPO_ROOT / "configs" / "metadata.json"
    else:  # the bundle's file, then the shared base, as the README runs them
        config = [str(REPO_ROOT / "bundle" / bundle / "configs" / name), str(BASE / f"transfer_{name}")]
        meta = REPO_ROOT / "bundle" / bundle / "configs" / "metadata.json"
    return ConfigWorkflow(config_file=config, meta_file=str(meta), workflow_type=kind, run_id=run_id,
                          bundle_root=str(root), output_dir=str(root), **settings)


def _check(workflow: ConfigWorkflow) -> None:
    started = time.monotonic()
    workflow.initialize()
    assert workflow.check_properties() == []
    assert time.monotonic() - started < SECONDS


def _save_trained_format(bundle: str, train: ConfigWorkflow, model_dir: Path) -> None:
    """The train workflow's own network, written where and as training writes it."""
    network = train.network_def
    if bundle == "report":
        save_report_model(model_dir, network, train.parser.get_parsed_content("vocab"))
        return
    task = train.parser.get_parsed_content("task")
    info = {"task": task.name, **task.info(train.parser.get_parsed_content("slides"))}
    save_fold_model(model_dir, 0, network.state_dict(), network, info)


@pytest.mark.parametrize("bundle", ["report", "subtyping", "survival"])
def test_monai_property_checks_of_train_evaluate_and_inference_pass(bundle, bags, tmp_path):
    data = ({"dataset_dir": str(bags["dataset_dir"]), "annotation_file": str(bags["annotation_file"])}
            if bundle == "report" else {"dataset_dir": str(bags["dataset_dir"]), "csv_file": str(bags[bundle])})
    train = _workflow(bundle, "train", tmp_path, **data)
    _check(train)
    assert train.max_epochs == train.parser["max_epochs"]  # MONAI reads it from train#trainer#max_epochs
    assert len(train.train_dataset) > 0 and train.trainer.network is not None
    _save_trained_format(bundle, train, tmp_path / "models")

    evaluate = _workflow(bundle, "eval", tmp_path, **data)
    _check(evaluate)
    assert len(evaluate.dataset) > 0
    infer = _workflow(bundle, "infer", tmp_path)  # the inference defaults: no data, an empty dataset
    _check(infer)
    assert len(infer.dataset) == 0
    assert not (tmp_path / "demo_data").exists() and not list(tmp_path.glob("demo_bags*"))  # no demo written


@pytest.mark.slow
def test_monai_property_checks_pass_with_the_literal_defaults(tmp_path):
    """Train and evaluate with no setting but where the bundles live: the checks resolve the SYNTHETIC demo.

    The report bundle sits at ``tmp_path`` and the siblings at ``tmp_path/bundle/<name>``, as in the repository
    (only ``bundle_root``/``output_dir`` are given, so nothing is written into the checkout). The report bundle's
    train check builds the default slide demo (240 slides; about 80 s on a quiet 2-core machine); every later
    check reuses it: the evaluate check, and the siblings, whose demos are made from the report bundle's.
    When the checkout holds the demo the README's main job wrote (as in CI, which runs it before the tests), it
    is linked in first, as a user's second command finds it; the builder checks its parameters and files and
    rebuilds it if they are not the defaults.
    """
    seed_with_checkout_demo(tmp_path / "demo_data")
    train = _workflow("report", "train", tmp_path)
    train.initialize()
    assert train.check_properties() == []
    assert (tmp_path / "demo_data" / "demo_manifest.json").is_file()  # the default demo, written once
    assert len(train.train_dataset) == 160
    _save_trained_format("report", train, tmp_path / "models")
    manifest_time = (tmp_path / "demo_data" / "demo_manifest.json").stat().st_mtime
    _check(_workflow("report", "eval", tmp_path))

    for bundle in ("subtyping", "survival"):
        root = tmp_path / "bundle" / bundle
        root.mkdir(parents=True)
        sibling = _workflow(bundle, "train", root)
        _check(sibling)
        assert len(sibling.train_dataset) > 0
        _save_trained_format(bundle, sibling, root / "models")
        _check(_workflow(bundle, "eval", root))
    assert (tmp_path / "demo_data" / "demo_manifest.json").stat().st_mtime == manifest_time  # reused, not rebuilt

