"""The slide demo: synthetic WSIs -> builtin-small features -> reports that describe each slide."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from scripts.demo import DemoProducer
from scripts.demo.reports import DEMO_KEY_PHRASES, diagnoses_in_text, share_band
from scripts.demo.slide_dataset import TEXTURE_CACHE_ENV, make_slide_demo_dataset, texture_bank_dir
from scripts.demo.tissue_classes import COMPONENT_IDS, DIAGNOSIS_CLASSES
from scripts.engines import feature_extraction_of, resolve_report_data
from scripts.text import clean_report

#: A tiny demo: 8 slides of 1024 x 1024 px (about 20 patches of 128 px each).
TINY = {"n_train": 4, "n_val": 2, "n_test": 2, "slide_size": 1024, "seed": 3}


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "demo_data"
    return make_slide_demo_dataset(out, **TINY)


def _annotation(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _file_states(folder: Path) -> dict[str, tuple[int, int]]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in files}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _share_by_cell_centres(label_map: np.ndarray, scale: float, coords: np.ndarray, side: int, diagnosis: str) -> float:
    """Lesion share of the tissue whose label cells have their centre inside a patch (an independent estimate)."""
    h, w = label_map.shape
    centres_y = (np.arange(h) + 0.5) * scale
    centres_x = (np.arange(w) + 0.5) * scale
    inside = np.zeros((h, w), bool)
    for x, y in coords:
        rows = (centres_y >= y) & (centres_y < y + side)
        cols = (centres_x >= x) & (centres_x < x + side)
        inside |= rows[:, None] & cols[None, :]
    labels = label_map[inside]
    tissue = labels != COMPONENT_IDS["background"]
    lesion = (labels == COMPONENT_IDS[diagnosis]) | (labels == COMPONENT_IDS["necrosis"])
    return lesion.sum() / tissue.sum()


def test_every_report_describes_its_slide(tiny_demo):
    annotation = _annotation(tiny_demo.annotation_file)
    assert annotation["synthetic"] is True and annotation["shuffled_pairs"] is False
    assert {s: len(annotation[s]) for s in ("train", "val", "test")} == {"train": 4, "val": 2, "test": 2}
    assert tiny_demo.class_balance["train"] == {name: 1 for name in DIAGNOSIS_CLASSES}
    items = [item for split in ("train", "val", "test") for item in annotation[split]]
    ids = {item["id"] for item in items}
    assert ids == {p.stem for p in tiny_demo.slides_dir.glob("*.svs")}
    assert ids == {p.stem for p in tiny_demo.dataset_dir.glob("*.h5")}
    for item in items:
        truth = np.load(tiny_demo.out_dir / "truth" / f"{item['id']}.npz")
        params = json.loads(str(truth["params"]))
        assert params["diagnosis"] == item["diagnosis"] == item["slide_diagnosis"]
        assert (truth["label_map"] == COMPONENT_IDS[item["diagnosis"]]).any()
        with h5py.File(tiny_demo.dataset_dir / f"{item['id']}.h5", "r") as handle:
            coords, n, attrs = handle["coords"][()], handle["feats"].shape[0], dict(handle.attrs)
        assert n == item["num_patches"] >= 5
        assert attrs["encoder_name"] == "builtin-small" and attrs["patch_size"] == 128 and attrs["feature_dim"] == 128
        assert Path(attrs["slide_path"]) == (tiny_demo.slides_dir / f"{item['id']}.svs").resolve()
        # the share in the report is measured on the ground truth under the extracted patches
        independent = _share_by_cell_centres(truth["label_map"], float(truth["label_scale"]), coords,
                                             int(attrs["patch_size_level0"]), item["diagnosis"])
        assert abs(independent - item["tumour_share"]) < 0.05, (item["id"], independent, item["tumour_share"])
        cleaned = clean_report(item["report"])
        assert diagnoses_in_text(cleaned) == [item["diagnosis"]], item["report"]
        assert [b for b in DEMO_KEY_PHRASES["tumour_share"] if b in cleaned] == [share_band(item["tumour_share"])]


def test_shuffled_annotation_permutes_reports_within_each_split(tiny_demo):
    true = _annotation(tiny_demo.out_dir / "annotation.json")
    shuffled = _annotation(tiny_demo.out_dir / "annotation_shuffled.json")
    assert shuffled["shuffled_pairs"] is True
    moved = 0
    for split in ("train", "val", "test"):
        assert [i["id"] for i in shuffled[split]] == [i["id"] for i in true[split]]
        assert sorted(i["report"] for i in shuffled[split]) == sorted(i["report"] for i in true[split])
        for a, b in zip(true[split], shuffled[split]):
            assert b["slide_diagnosis"] == a["diagnosis"]  # the slide keeps its own truth
            assert diagnoses_in_text(clean_report(b["report"])) == [b["diagnosis"]]
            moved += a["report"] != b["report"]
    assert moved >= 4


def test_second_call_reuses_every_file(tiny_demo):
    before = _file_states(tiny_demo.out_dir)
    again = make_slide_demo_dataset(tiny_demo.out_dir, **TINY, shuffle_pairs=True)
    assert again.generated is False
    assert again.annotation_file.name == "annotation_shuffled.json"
    assert _file_states(tiny_demo.out_dir) == before


def test_a_lost_slide_is_rebuilt_identically_and_alone(tiny_demo, tmp_path):
    out = tmp_path / "demo_data"
    shutil.copytree(tiny_demo.out_dir, out)
    lost = "SYNTH-train-0002"
    slide_hash, annotation_hash = _sha(out / "slides" / f"{lost}.svs"), _sha(out / "annotation.json")
    with h5py.File(out / "features" / f"{lost}.h5", "r") as handle:
        feats = handle["feats"][()]
    (out / "slides" / f"{lost}.svs").unlink()
    (out / "features" / f"{lost}.h5").unlink()
    before = _file_states(out / "slides")

    rebuilt = make_slide_demo_dataset(out, **TINY)

    assert rebuilt.generated is True
    assert _sha(out / "slides" / f"{lost}.svs") == slide_hash  # same parameters, same bytes
    assert _sha(out / "annotation.json") == annotation_hash
    with h5py.File(out / "features" / f"{lost}.h5", "r") as handle:
        np.testing.assert_array_equal(handle["feats"][()], feats)
    after = _file_states(out / "slides")
    assert {k for k in after if after[k] != before.get(k)} == {f"{lost}.svs"}
    assert not list(out.rglob("*.tmp"))


def test_a_shared_texture_bank_gives_the_same_slides_and_stays_for_the_next_build(tiny_demo, tmp_path, monkeypatch):
    """With ``HISTGEN_TEXTURE_CACHE`` (the test session sets it) the bank is kept between builds, under a digest
    of the rendering code; without it each build renders its own bank in ``textures/`` and removes it."""
    from tests.conftest import TEXTURE_CACHE_ENV as SESSION_ENV

    assert SESSION_ENV == TEXTURE_CACHE_ENV  # the name the test session sets is the one the builder reads
    one = {**TINY, "n_train": 1, "n_val": 1, "n_test": 1}
    monkeypatch.delenv(TEXTURE_CACHE_ENV, raising=False)
    assert texture_bank_dir(tmp_path / "own") == tmp_path / "own" / "textures"
    alone = make_slide_demo_dataset(tmp_path / "own", **one)
    assert not (tmp_path / "own" / "textures").exists()
    monkeypatch.setenv(TEXTURE_CACHE_ENV, str(tmp_path / "bank"))
    bank = texture_bank_dir(tmp_path / "shared")
    assert bank.parent == tmp_path / "bank" and bank.name.startswith("bank-")
    shared = make_slide_demo_dataset(tmp_path / "shared", **one)
    kept = sorted(p.name for p in bank.glob("*.npy"))
    assert kept and not (tmp_path / "shared" / "textures").exists()
    for slide in sorted((alone.out_dir / "slides").glob("*.svs")):
        assert _sha(slide) == _sha(shared.out_dir / "slides" / slide.name)  # same bytes either way
    again = make_slide_demo_dataset(tmp_path / "again", **one)
    assert sorted(p.name for p in bank.glob("*.npy")) == kept and not list(bank.glob("*.tmp"))
    for slide in sorted((alone.out_dir / "slides").glob("*.svs")):
        assert _sha(slide) == _sha(again.out_dir / "slides" / slide.name)


def test_new_extraction_settings_reextract_without_rewriting_slides(tiny_demo, tmp_path):
    out = tmp_path / "demo_data"
    shutil.copytree(tiny_demo.out_dir, out)
    slides_before = _file_states(out / "slides")
    changed = make_slide_demo_dataset(out, **{**TINY, "patch_size": 96})
    assert changed.generated is True and changed.params["extraction"]["patch_size"] == 96
    assert _file_states(out / "slides") == slides_before
    for path in (out / "features").glob("*.h5"):
        with h5py.File(path, "r") as handle:
            assert handle.attrs["patch_size"] == 96
    manifest = json.loads((out / "demo_manifest.json").read_text())
    assert manifest["params"]["extraction"]["patch_size"] == 96


def test_resolve_report_data_builds_the_chosen_demo(tiny_demo, tmp_path):
    run = tiny_demo.out_dir.parent
    data = resolve_report_data(None, None, run, DemoProducer({"source": "slides", **TINY}))
    assert data.synthetic and data.feature_dim == 128 and data.dataset_dir == tiny_demo.dataset_dir
    record = feature_extraction_of(data)
    assert record["encoder_name"] == "builtin-small" and record["patch_size"] == 128
    assert record["checked_files"] == 4 and record["differing"] == {} and record["feature_dim"] == 128
    assert record["tissue_params"]["mask_mpp"] == 8.0

    bags = resolve_report_data(None, None, tmp_path, DemoProducer({"source": "feature_bags", "n_train": 8, "n_val": 4,
                                                                   "n_test": 4, "feature_dim": 16,
                                                                   "n_patches": [10, 20]}))
    assert bags.dataset_dir.parent == tmp_path / "demo_bags" and bags.feature_dim == 16
    assert feature_extraction_of(bags) is None  # generated bags do not come from the extractor
    with pytest.raises(ValueError, match="demo source must be one of"):
        DemoProducer({"source": "tiles"})
    with pytest.raises(ValueError, match="give dataset_dir"):
        resolve_report_data(None, None, tmp_path, None)


def test_control_deals_every_diagnosis_the_same_number_of_each_report_class():
    from collections import Counter

    import numpy as np

    from scripts.demo.slide_dataset import _balanced_report_order

    diagnoses = [d for d in ("adeno", "lymphoma", "normal", "squamous") for _ in range(40)]
    order = _balanced_report_order(diagnoses, np.random.default_rng(7))
    assert sorted(order) == list(range(160))  # a permutation: every report used once
    pairs = Counter((diagnoses[i], diagnoses[j]) for i, j in enumerate(order))
    assert set(pairs.values()) == {10} and len(pairs) == 16  # no (slide class, report class) excess to learn
    one_each = _balanced_report_order(["a", "b", "c"], np.random.default_rng(0))
    assert sorted(one_each) == [0, 1, 2] and all(i != j for i, j in enumerate(one_each))
