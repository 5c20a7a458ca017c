"""The embedded demo dataset: synthetic feature bags whose reports follow from what the bags hold."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from scripts.data.annotation import load_annotation
from scripts.data.feature_files import read_feature_file
from scripts.demo.feature_bags import (
    FEATURE_COMPONENTS,
    MANIFEST_NAME,
    make_demo_dataset,
    make_prototypes,
    sample_bag,
)
from scripts.demo.reports import (
    DEMO_KEY_PHRASES,
    DIAGNOSIS_PHRASES,
    REMARKS,
    diagnoses_in_text,
    make_report,
    share_band,
)
from scripts.demo.tissue_classes import DIAGNOSIS_CLASSES
from scripts.text import clean_report

REPO_ROOT = Path(__file__).resolve().parents[2]
SMALL = dict(n_train=12, n_val=4, n_test=8, feature_dim=16)


def simple_clean(text: str) -> str:
    """Lower case, punctuation dropped, single spaces (a stand-in for any reasonable cleaning)."""
    return " ".join(re.sub(r"[^a-z ]", " ", text.lower()).split())


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def annotation_items(demo) -> dict[str, list[dict]]:
    data = json.loads(demo.annotation_file.read_text(encoding="utf-8"))
    return {split: data[split] for split in ("train", "val", "test")}


def mean_pooled(demo, items: list[dict]) -> np.ndarray:
    bags = [torch.load(demo.dataset_dir / f"{it['id']}.pt", weights_only=True) for it in items]
    return np.stack([bag.mean(0).numpy() for bag in bags])


@pytest.fixture(scope="module")
def default_demo(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def shuffled_demo(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo_shuffled"), shuffle_pairs=True)


# ---------------------------------------------------------------------------- reports
def test_diagnosis_phrases_survive_cleaning_and_are_unambiguous():
    assert set(DIAGNOSIS_PHRASES) == set(DIAGNOSIS_CLASSES)
    phrases = list(DIAGNOSIS_PHRASES.values()) + DEMO_KEY_PHRASES["tumour_share"]
    for phrase in phrases:
        assert re.fullmatch(r"[a-z]+( [a-z]+)*", phrase), phrase
    for a in DEMO_KEY_PHRASES["diagnosis"]:
        others = [b for b in DEMO_KEY_PHRASES["diagnosis"] if b != a]
        assert not any(a in b for b in others), f"{a!r} occurs inside another diagnosis phrase"
    for remark in REMARKS:  # the free text must carry no label
        assert not any(p in simple_clean(remark) for p in phrases), remark


def test_make_report_is_determined_by_diagnosis_and_share():
    rng = np.random.default_rng(0)
    remarks = Counter()
    for diagnosis in DIAGNOSIS_CLASSES:
        for share in (0.1, 0.4, 0.75):
            report = make_report(diagnosis, share, rng)
            for cleaned in (simple_clean(report), clean_report(report)):  # ours, and HistGen's cleaning
                assert diagnoses_in_text(cleaned) == [diagnosis]
                assert [b for b in DEMO_KEY_PHRASES["tumour_share"] if b in cleaned] == [share_band(share)]
            remarks[report.split(". ")[-1]] += 1
    assert len(remarks) > 1  # the free-text remark varies
    assert share_band(0.1) == "less than a third"
    assert share_band(0.5) == "between a third and two thirds"
    assert share_band(0.7) == "more than two thirds"
    with pytest.raises(ValueError, match="unknown demo diagnosis 'melanoma'"):
        make_report("melanoma", 0.5, rng)
    with pytest.raises(ValueError, match="tumour_share must be in"):
        share_band(1.5)


# ---------------------------------------------------------------------------- bags
@pytest.mark.parametrize("feature_dim", [1, 3, 64])
def test_bag_shapes_and_content(feature_dim):
    prototypes = make_prototypes(feature_dim, seed=0)
    assert prototypes.shape == (len(FEATURE_COMPONENTS), feature_dim)
    rng = np.random.default_rng(1)
    for diagnosis in DIAGNOSIS_CLASSES:
        bag = sample_bag(diagnosis, prototypes, rng, n_patches=(60, 400), tumour_share_range=(0.1, 0.8))
        n = bag.feats.shape[0]
        assert 60 <= n <= 400
        assert bag.feats.shape == (n, feature_dim) and bag.feats.dtype == np.float32
        assert np.isfinite(bag.feats).all()
        lesion = FEATURE_COMPONENTS.index(diagnosis)
        assert set(np.unique(bag.components)) <= set(range(4)) | {lesion}  # no other diagnosis' tissue
        assert bag.tumour_share == pytest.approx((bag.components == lesion).mean())
        assert 0.1 - 1 / n <= bag.tumour_share <= 0.8 + 1 / n
        # coords: distinct cells of a 512-pixel grid, in scan order (rows, then columns)
        assert bag.coords.shape == (n, 2) and bag.coords.dtype == np.int64
        assert (bag.coords % 512 == 0).all()
        assert len({tuple(c) for c in bag.coords}) == n
        keys = bag.coords[:, 1] * 10**9 + bag.coords[:, 0]
        assert (np.diff(keys) > 0).all()


def test_lesion_patches_are_in_random_order():
    bag = sample_bag("lymphoma", make_prototypes(8), np.random.default_rng(3), n_patches=(300, 300))
    lesion = np.flatnonzero(bag.components == FEATURE_COMPONENTS.index("lymphoma"))
    assert lesion.max() - lesion.min() > 0.8 * len(bag.components)  # spread over the whole bag, not a block


# ---------------------------------------------------------------------------- dataset on disk
def test_default_dataset_layout(default_demo):
    demo = default_demo
    assert demo.counts == {"train": 160, "val": 32, "test": 48}
    for split, n in demo.counts.items():
        assert sum(demo.class_balance[split].values()) == n
        assert set(demo.class_balance[split].values()) == {n // 4}  # balanced classes
    data = json.loads(demo.annotation_file.read_text(encoding="utf-8"))
    assert data["synthetic"] is True and "not real patients" in data["_comment"]
    # the project's HistGen loader sees exactly the three splits (extra top-level keys are not lists)
    splits = load_annotation(demo.annotation_file)
    assert set(splits) == {"train", "val", "test"}
    ids = [item["id"] for items in splits.values() for item in items]
    assert len(ids) == len(set(ids)) == 240
    for split, items in splits.items():
        for item in items:
            assert item["split"] == split
            feats = torch.load(demo.dataset_dir / f"{item['id']}.pt", weights_only=True)
            assert feats.dtype == torch.float32 and feats.shape == (item["num_patches"], 64)
            assert 60 <= feats.shape[0] <= 400
    assert not list(demo.out_dir.rglob("*.tmp"))


def test_every_report_names_its_bags_class_once(default_demo):
    for items in annotation_items(default_demo).values():
        for item in items:
            assert item["diagnosis"] == item["bag_diagnosis"]
            for cleaned in (simple_clean(item["report"]), clean_report(item["report"])):
                assert diagnoses_in_text(cleaned) == [item["bag_diagnosis"]], item["report"]
                assert share_band(item["bag_tumour_share"]) in cleaned


def test_same_seed_same_bytes_and_reuse(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="scripts.demo.feature_bags"):
        first = make_demo_dataset(tmp_path / "a", **SMALL)
    assert first.generated
    assert "building SYNTHETIC demo dataset (not real patients) in" in caplog.text
    second = make_demo_dataset(tmp_path / "b", **SMALL)
    assert folder_bytes(tmp_path / "a") == folder_bytes(tmp_path / "b")
    other_seed = make_demo_dataset(tmp_path / "c", **{**SMALL, "seed": 1})
    assert folder_bytes(tmp_path / "c") != folder_bytes(tmp_path / "a")
    assert other_seed.generated and second.generated

    # same parameters again: nothing is rewritten
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "a").rglob("*")}
    again = make_demo_dataset(tmp_path / "a", **SMALL)
    assert not again.generated and again.counts == first.counts and again.annotation_file == first.annotation_file
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "a").rglob("*")} == mtimes

    # a missing file or changed parameters rebuild; files of the old demo that are no longer used go
    (first.dataset_dir / "SYNTH-train-0003.pt").unlink()
    assert make_demo_dataset(tmp_path / "a", **SMALL).generated
    assert folder_bytes(tmp_path / "a") == folder_bytes(tmp_path / "b")
    smaller = make_demo_dataset(tmp_path / "a", **{**SMALL, "n_train": 4})
    assert smaller.generated and smaller.counts["train"] == 4
    assert sorted(p.name for p in smaller.dataset_dir.glob("SYNTH-train-*")) == [
        f"SYNTH-train-{i:04d}.pt" for i in range(4)
    ]
    manifest = json.loads((tmp_path / "a" / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest["params"]["n_train"] == 4


def test_h5_format(tmp_path):
    demo = make_demo_dataset(tmp_path / "a", file_format="h5", **SMALL)
    make_demo_dataset(tmp_path / "b", file_format="h5", **SMALL)
    assert folder_bytes(tmp_path / "a") == folder_bytes(tmp_path / "b")  # no timestamps in the h5 files
    for item in annotation_items(demo)["val"]:
        path = demo.dataset_dir / f"{item['id']}.h5"
        bag = read_feature_file(path, slide_id=item["id"], feature_dim=16)  # the project's own reader
        assert bag.coords is not None and bag.coords.shape == (bag.num_patches, 2)
        assert bag.num_patches == item["num_patches"]
        with h5py.File(path, "r") as handle:
            assert handle.attrs["synthetic"] and handle.attrs["slide_id"] == item["id"]
    assert not (demo.dataset_dir / "SYNTH-val-0000.pt").exists()


# ---------------------------------------------------------------------------- signal and control
def test_shuffled_pairs_keep_bags_and_reports_but_break_the_pairing(default_demo, shuffled_demo):
    # the same bags, byte for byte
    for name in ("SYNTH-train-0000.pt", "SYNTH-test-0047.pt"):
        assert (default_demo.dataset_dir / name).read_bytes() == (shuffled_demo.dataset_dir / name).read_bytes()
    plain, shuffled = annotation_items(default_demo), annotation_items(shuffled_demo)
    agree = []
    for split in plain:
        assert Counter(it["report"] for it in plain[split]) == Counter(it["report"] for it in shuffled[split])
        for item in shuffled[split]:
            assert diagnoses_in_text(simple_clean(item["report"])) == [item["diagnosis"]]
            agree.append(item["diagnosis"] == item["bag_diagnosis"])
    # chance agreement is 1/4 with balanced classes (240 pairs: std about 0.03)
    assert 0.15 < np.mean(agree) < 0.35, np.mean(agree)


def test_mean_pooled_bags_predict_the_reported_diagnosis(default_demo, shuffled_demo):
    """The signal is in the bags (a linear probe on mean-pooled features), and the control removes it."""
    scores = {}
    for name, demo in (("paired", default_demo), ("shuffled", shuffled_demo)):
        items = annotation_items(demo)
        train_x = mean_pooled(demo, items["train"] + items["val"])
        train_y = [it["diagnosis"] for it in items["train"] + items["val"]]
        probe = LogisticRegression(max_iter=2000).fit(train_x, train_y)
        scores[name] = probe.score(mean_pooled(demo, items["test"]), [it["diagnosis"] for it in items["test"]])
    assert scores["paired"] >= 0.95, scores
    assert scores["shuffled"] <= 0.45, scores  # chance is 0.25 (48 test bags: std about 0.06)


# ---------------------------------------------------------------------------- CLI
def test_cli(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    cmd = [sys.executable, "-m", "scripts.demo.feature_bags", "--out_dir", str(tmp_path / "demo"), "--shuffle_pairs"]
    cmd += ["--n_train", "8", "--n_val", "4", "--n_test", "4", "--feature_dim", "8"]
    result = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "building SYNTHETIC demo dataset (not real patients)" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"train": 8, "val": 4, "test": 4} and summary["shuffle_pairs"] is True
    assert len(list(Path(summary["dataset_dir"]).glob("*.pt"))) == 16
