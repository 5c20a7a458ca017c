"""Data: annotations, feature files (.h5/.pt), bag datasets, padded batches, DataLoader workers."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from monai.data import DataLoader as MonaiDataLoader
from torch.utils.data import DataLoader

from scripts.data import (
    AnnotationError,
    BagDataError,
    FeatureBagDataset,
    ReportBagDataset,
    collate_bags,
    find_feature_file,
    load_annotation,
    read_feature_file,
    read_feature_header,
    write_feature_file_h5,
)
from scripts.text import Vocabulary

DIM = 16


def _write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _feats(n: int, dim: int = DIM, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def _coords(n: int) -> torch.Tensor:
    return torch.stack([torch.arange(n) * 512, torch.arange(n) * 256], dim=1)


# ------------------------------------------------------------------ annotations
def test_load_annotation_reads_histgen_layout(tmp_path):
    path = _write_json(
        tmp_path / "ann.json",
        {
            "train": [{"id": "a", "report": "r1", "image_path": ["x"], "split": "train"}],
            "val": [{"id": "b", "report": "r2"}],
            "test": [],
        },
    )
    annotation = load_annotation(path)
    assert annotation["train"][0]["image_path"] == ["x"]
    assert [item["id"] for item in annotation["val"]] == ["b"] and annotation["test"] == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "annotation file not found"),
        ("{oops", "invalid JSON at line 1"),
        ('["train"]', "expected a JSON object"),
        ('{"train": [], "val": []}', "split 'test' is missing"),
        ('{"train": {}, "val": [], "test": []}', "split 'train' must be a list"),
        ('{"train": [{"report": "r"}], "val": [], "test": []}', r"train\[0\]: missing or empty 'id'"),
        ('{"train": [{"id": "s1"}], "val": [], "test": []}', r"train\[0\] \(id 's1'\): missing 'report'"),
        ('{"train": [], "val": [], "test": ["s1"]}', r"test\[0\]: expected an object"),
        (
            '{"train": [{"id": "s1", "report": "a"}, {"id": "s1", "report": "b"}], "val": [], "test": []}',
            "split 'train' has 1 duplicate id",
        ),
    ],
)
def test_load_annotation_errors_name_file_and_item(tmp_path, content, message):
    path = tmp_path / "ann.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(AnnotationError, match=message) as info:
        load_annotation(path)
    assert str(path) in str(info.value)


def test_duplicate_ids_can_be_kept_or_deduplicated(tmp_path, caplog):
    items = [{"id": "s1", "report": "a"}, {"id": "s2", "report": "b"}, {"id": "s1", "report": "c"}]
    path = _write_json(tmp_path / "ann.json", {"train": items, "val": [], "test": []})
    with caplog.at_level(logging.WARNING):
        kept = load_annotation(path, on_duplicate="keep")["train"]
        first = load_annotation(path, on_duplicate="first")["train"]
    assert [i["report"] for i in kept] == ["a", "b", "c"]
    assert [i["report"] for i in first] == ["a", "b"]
    assert "'s1'" in caplog.text


def test_only_required_splits_are_needed(tmp_path):
    path = _write_json(tmp_path / "ann.json", {"test": [{"id": "s1"}]})
    assert load_annotation(path, required_splits=("test",), require_report=False)["test"][0]["id"] == "s1"


# ------------------------------------------------------------------ feature files
def test_h5_round_trip_with_coords_and_attrs(tmp_path):
    feats, coords = _feats(7), _coords(7)
    path = write_feature_file_h5(
        tmp_path / "slides" / "s1.h5",
        feats,
        coords,
        {"encoder": "dinov2_vitl14", "patch_size": 512, "mpp": 0.5, "levels": [0, 1]},
    )
    assert sorted(p.name for p in path.parent.iterdir()) == ["s1.h5"]  # no temporary file left
    bag = read_feature_file(path, slide_id="s1", feature_dim=DIM)
    assert bag.feats.dtype == torch.float32 and torch.equal(bag.feats, feats)
    assert bag.coords.dtype == torch.int64 and torch.equal(bag.coords, coords)
    assert bag.attrs == {"encoder": "dinov2_vitl14", "patch_size": 512, "mpp": 0.5, "levels": [0, 1]}
    info = read_feature_header(path)
    assert (info.num_patches, info.feature_dim, info.has_coords) == (7, DIM, True)


def test_h5_keeps_float16_on_disk_and_reads_float32(tmp_path):
    feats = _feats(5).half()
    path = write_feature_file_h5(tmp_path / "s.h5", feats)
    with h5py.File(path, "r") as handle:
        assert handle["feats"].dtype == np.float16 and "coords" not in handle
    bag = read_feature_file(path)
    assert bag.feats.dtype == torch.float32 and bag.coords is None
    assert torch.equal(bag.feats, feats.float())


def test_clam_style_h5_with_features_dataset(tmp_path):
    path = tmp_path / "clam.h5"
    with h5py.File(path, "w") as handle:
        handle["features"] = _feats(4).numpy()
        handle["coords"] = _coords(4).numpy().astype(np.int32)
    bag = read_feature_file(path)
    assert bag.feats.shape == (4, DIM) and bag.coords.dtype == torch.int64


def test_pt_tensor_and_dict_files(tmp_path):
    torch.save(_feats(6).double(), tmp_path / "a.pt")  # HistGen's format: a bare [N, D] tensor
    torch.save({"feats": _feats(3), "coords": _coords(3)}, tmp_path / "b.pt")
    a = read_feature_file(tmp_path / "a.pt", feature_dim=DIM)
    assert a.feats.dtype == torch.float32 and a.coords is None and a.num_patches == 6
    b = read_feature_file(tmp_path / "b.pt")
    assert torch.equal(b.coords, _coords(3))
    assert read_feature_header(tmp_path / "a.pt").num_patches == 6


def test_find_feature_file_prefers_h5(tmp_path):
    torch.save(_feats(2), tmp_path / "s1.pt")
    assert find_feature_file(tmp_path, "s1").name == "s1.pt"
    write_feature_file_h5(tmp_path / "s1.h5", _feats(2))
    assert find_feature_file(tmp_path, "s1").name == "s1.h5"
    with pytest.raises(BagDataError, match=r"slide 's2': no feature file s2.h5 or s2.pt"):
        find_feature_file(tmp_path, "s2")


def _bad_files(folder: Path) -> dict[str, str]:
    """Write one broken feature file per problem; returns {slide id: expected message}."""
    nan = _feats(4)
    nan[2, 3] = float("nan")
    torch.save(nan, folder / "nan.pt")
    inf = _feats(4)
    inf[0, 0] = float("inf")
    write_feature_file_h5(folder / "inf.h5", inf)
    write_feature_file_h5(folder / "wrongdim.h5", _feats(4, dim=DIM + 1))
    with h5py.File(folder / "empty.h5", "w") as handle:
        handle["feats"] = np.zeros((0, DIM), dtype=np.float32)
    torch.save(torch.randn(1, 4, DIM), folder / "rank3.pt")
    (folder / "corrupt.h5").write_bytes(b"this is not an hdf5 file" * 10)
    good = write_feature_file_h5(folder / "truncated.h5", _feats(64))
    good.write_bytes(good.read_bytes()[:900])
    (folder / "corrupt.pt").write_bytes(b"PK\x03\x04 broken zip")
    with h5py.File(folder / "badcoords.h5", "w") as handle:
        handle["feats"] = _feats(4).numpy()
        handle["coords"] = np.zeros((3, 2), dtype=np.int64)
    return {
        "nan": "1 NaN and 0 Inf value.*first in patch 2",
        "inf": "0 NaN and 1 Inf value",
        "wrongdim": f"feature dimension {DIM + 1}, expected {DIM}",
        "empty": r"empty bag \(0 patches\)",
        "rank3": r"must be \[N, D\], found rank 3",
        "corrupt": "unreadable .h5 file",
        "truncated": "unreadable .h5 file",
        "corruptpt": "unreadable .pt file",
        "badcoords": r"coords must be \[4, 2\], found \[3, 2\]",
    }


def test_every_bad_file_gives_a_clear_error(tmp_path):
    expected = _bad_files(tmp_path)
    names = {"corruptpt": "corrupt.pt", "nan": "nan.pt", "rank3": "rank3.pt"}
    for slide_id, message in expected.items():
        path = tmp_path / names.get(slide_id, f"{slide_id}.h5")
        with pytest.raises(BagDataError, match=message) as info:
            read_feature_file(path, slide_id=slide_id, feature_dim=DIM)
        assert f"slide {slide_id!r}" in str(info.value) and path.name in str(info.value)
    with pytest.raises(BagDataError, match="feature file not found"):
        read_feature_file(tmp_path / "absent.h5", slide_id="absent")


def test_header_check_is_shallow(tmp_path):
    expected = _bad_files(tmp_path)
    # NaN/Inf are only found when the bag is read; shapes and corruption are found from the header
    assert read_feature_header(tmp_path / "nan.pt", feature_dim=DIM).num_patches == 4
    assert read_feature_header(tmp_path / "inf.h5", feature_dim=DIM).num_patches == 4
    for slide_id in ("wrongdim", "empty", "corrupt", "badcoords"):
        with pytest.raises(BagDataError, match=expected[slide_id]):
            read_feature_header(tmp_path / f"{slide_id}.h5", slide_id=slide_id, feature_dim=DIM)


def test_writer_rejects_bad_arrays(tmp_path):
    with pytest.raises(BagDataError, match="non-empty"):
        write_feature_file_h5(tmp_path / "x.h5", np.zeros((0, 4)))
    with pytest.raises(BagDataError, match="coords"):
        write_feature_file_h5(tmp_path / "x.h5", np.zeros((3, 4)), coords=np.zeros((2, 2)))
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ datasets and batches
REPORT_TEXT = {
    "s1": "Squamous cell carcinoma, grade 3.",
    "s2": "Adenocarcinoma of the colon. Margins free of tumor.",
    "s3": "Squamous cell carcinoma of the lung.",
    "s4": "Adenocarcinoma.",
}


@pytest.fixture()
def dataset_dir(tmp_path) -> Path:
    folder = tmp_path / "features"
    folder.mkdir()
    write_feature_file_h5(folder / "s1.h5", _feats(5, seed=1), _coords(5))
    torch.save(_feats(9, seed=2), folder / "s2.pt")
    write_feature_file_h5(folder / "s3.h5", _feats(3, seed=3), _coords(3))
    write_feature_file_h5(folder / "s4.h5", _feats(12, seed=4), _coords(12))
    return folder


@pytest.fixture()
def vocab() -> Vocabulary:
    return Vocabulary.build(REPORT_TEXT.values(), threshold=1)


def _annotation(tmp_path: Path, ids: list[str], reports: dict[str, str] | None = None) -> Path:
    reports = {**REPORT_TEXT, **(reports or {})}
    items = [{"id": i, "report": reports.get(i, "Carcinoma."), "split": "train"} for i in ids]
    return _write_json(tmp_path / "annotation.json", {"train": items, "val": [], "test": []})


def test_report_bag_dataset_items(tmp_path, dataset_dir, vocab):
    dataset = ReportBagDataset(_annotation(tmp_path, ["s1", "s2"]), dataset_dir, "train", vocab, feature_dim=DIM)
    assert len(dataset) == 2 and dataset.ids == ["s1", "s2"] and dataset.skipped == []
    item = dataset[0]
    assert item["id"] == "s1" and item["report"] == REPORT_TEXT["s1"]
    assert item["features"].shape == (5, DIM) and torch.equal(item["coords"], _coords(5))
    assert item["report_ids"].dtype == torch.long
    assert item["report_ids"].tolist() == vocab.encode(REPORT_TEXT["s1"], 100)
    assert dataset[1]["coords"] is None  # .pt files carry no coordinates


def test_collate_pads_bags_and_reports(tmp_path, dataset_dir, vocab):
    dataset = ReportBagDataset(_annotation(tmp_path, ["s1", "s2", "s3"]), dataset_dir, "train", vocab, max_seq_length=6)
    batch = collate_bags([dataset[0], dataset[2]])  # 5 and 3 patches, both with coords
    assert batch["ids"] == ["s1", "s3"] and batch["features"].shape == (2, 5, DIM)
    assert batch["mask"].tolist() == [[True] * 5, [True] * 3 + [False] * 2]
    assert batch["num_patches"].tolist() == [5, 3]
    assert torch.equal(batch["features"][1, :3], dataset[2]["features"])
    assert batch["features"][1, 3:].abs().sum() == 0
    assert batch["coords"].shape == (2, 5, 2) and (batch["coords"][1, 3:] == -1).all()
    lengths = [len(vocab.encode(REPORT_TEXT[i], 6)) for i in ("s1", "s3")]
    assert batch["report_ids"].shape == (2, max(lengths))
    assert batch["report_mask"].dtype == torch.float32
    assert batch["report_mask"].sum(dim=1).tolist() == lengths
    # s1 is cut to 6 ids and keeps no EOS, yet every kept position is masked in (as the reference)
    assert batch["report_ids"][0, -1] != 0 and batch["report_mask"][0].tolist() == [1.0] * 6
    mixed = collate_bags([dataset[0], dataset[1]])  # the .pt bag has no coords
    assert mixed["coords"] is None and mixed["features"].shape == (2, 9, DIM)


def test_collate_refuses_mixed_dimensions():
    items = [{"id": "a", "features": torch.zeros(2, 4)}, {"id": "b", "features": torch.zeros(3, 5)}]
    with pytest.raises(BagDataError, match="a: 4, b: 5"):
        collate_bags(items)


def test_raise_mode_lists_every_bad_slide(tmp_path, dataset_dir, vocab):
    _bad_files(dataset_dir)
    path = _annotation(tmp_path, ["s1", "missing", "wrongdim", "empty", "corrupt", "s2"], {"s2": "   "})
    with pytest.raises(BagDataError) as info:
        ReportBagDataset(path, dataset_dir, "train", vocab, feature_dim=DIM)
    message = str(info.value)
    assert "5 unusable slide(s)" in message
    for fragment in (
        "missing: slide 'missing': no feature file",
        "wrongdim:",
        "empty bag",
        "unreadable .h5",
        "report 's2': empty report text",
    ):
        assert fragment in message


def test_skip_mode_records_bad_slides_and_carries_on(tmp_path, dataset_dir, vocab, caplog):
    _bad_files(dataset_dir)
    ids = ["s1", "missing", "wrongdim", "nan", "empty", "corrupt", "truncated", "s2", "inf", "s3", "blank"]
    path = _annotation(tmp_path, ids, {"blank": "..."})
    with caplog.at_level(logging.WARNING):
        dataset = ReportBagDataset(path, dataset_dir, "train", vocab, feature_dim=DIM, on_error="skip")
    # cheap checks at construction: file present, header shape, report text
    assert dataset.ids == ["s1", "nan", "s2", "inf", "s3"]
    assert {s["id"] for s in dataset.skipped} == {"missing", "wrongdim", "empty", "corrupt", "truncated", "blank"}
    assert "slide 'wrongdim'" in caplog.text and "report 'blank': no words left" in caplog.text
    # NaN/Inf are found when the bag is loaded: the item becomes a skip marker that collate drops
    batch = collate_bags([dataset[i] for i in range(len(dataset))])
    assert batch["ids"] == ["s1", "s2", "s3"] and batch["features"].shape == (3, 9, DIM)
    assert [s["id"] for s in batch["skipped"]] == ["nan", "inf"]
    assert {"nan", "inf"} <= {s["id"] for s in dataset.skipped}
    dataset[1]  # met again next epoch: recorded once
    assert [s["id"] for s in dataset.skipped].count("nan") == 1
    with pytest.raises(BagDataError, match="NaN"):
        ReportBagDataset(_annotation(tmp_path, ["nan"]), dataset_dir, "train", vocab)[0]


def test_all_items_skipped_gives_an_empty_batch():
    batch = collate_bags([{"id": "x", "skipped": "broken"}, None])
    assert batch["ids"] == [] and batch["features"].shape == (0, 0, 0)
    assert [s["id"] for s in batch["skipped"]] == ["x", None]


def test_max_patches_subsample_is_seeded_and_keeps_scan_order(tmp_path, dataset_dir, vocab):
    path = _annotation(tmp_path, ["s4", "s3"])
    full = ReportBagDataset(path, dataset_dir, "train", vocab)[0]["features"]
    dataset = ReportBagDataset(path, dataset_dir, "train", vocab, max_patches=4, seed=7)
    first = dataset[0]
    assert first["features"].shape == (4, DIM) and first["coords"].shape == (4, 2)
    rows = [int((full == row).all(dim=1).nonzero()[0, 0]) for row in first["features"]]
    assert rows == sorted(rows) and len(set(rows)) == 4  # a subset in scan order
    assert torch.equal(first["coords"][:, 0], torch.tensor(rows) * 512)
    assert torch.equal(dataset[0]["features"], first["features"])  # same seed, same epoch: same draw
    again = ReportBagDataset(path, dataset_dir, "train", vocab, max_patches=4, seed=7)
    assert torch.equal(again[0]["features"], first["features"])
    draws = set()
    for epoch in range(6):
        dataset.set_epoch(epoch)
        draws.add(tuple(dataset[0]["coords"][:, 0].tolist()))
    assert len(draws) > 1  # another epoch, another subset
    assert dataset[1]["features"].shape == (3, DIM)  # small bags are kept whole


def test_inference_dataset_without_reports(tmp_path, dataset_dir):
    path = _write_json(tmp_path / "ann.json", {"test": [{"id": "s1"}, {"id": "s2"}]})
    dataset = ReportBagDataset(path, dataset_dir, "test", vocab=None)
    batch = collate_bags([dataset[0], dataset[1]])
    assert batch["report_ids"] is None and batch["report_mask"] is None and batch["reports"] == ["", ""]


def test_feature_bag_dataset_from_dir(tmp_path, dataset_dir):
    torch.save(_feats(2), dataset_dir / "s1.pt")  # the .h5 of s1 wins
    dataset = FeatureBagDataset.from_dir(dataset_dir, feature_dim=DIM)
    assert dataset.ids == ["s1", "s2", "s3", "s4"]
    assert dataset[0]["features"].shape == (5, DIM) and dataset[0]["report_ids"] is None
    _bad_files(dataset_dir)
    with pytest.raises(BagDataError, match="unusable slide"):
        FeatureBagDataset.from_dir(dataset_dir, feature_dim=DIM)
    skipping = FeatureBagDataset.from_dir(dataset_dir, feature_dim=DIM, on_error="skip")
    assert {"s1", "s4", "nan"} <= set(skipping.ids) and "wrongdim" in {s["id"] for s in skipping.skipped}


@pytest.mark.parametrize("loader_class", [DataLoader, MonaiDataLoader])
def test_dataloader_with_two_workers(tmp_path, dataset_dir, vocab, loader_class):
    _bad_files(dataset_dir)
    path = _annotation(tmp_path, ["s1", "s2", "nan", "s3", "s4", "missing"])
    dataset = ReportBagDataset(path, dataset_dir, "train", vocab, feature_dim=DIM, on_error="skip")
    loader = loader_class(dataset, batch_size=2, num_workers=2, collate_fn=collate_bags, shuffle=False)
    batches = list(loader)
    assert [b["ids"] for b in batches] == [["s1", "s2"], ["s3"], ["s4"]]
    assert [s["id"] for b in batches for s in b["skipped"]] == ["nan"]
    assert batches[0]["features"].shape == (2, 9, DIM) and batches[0]["mask"].sum().item() == 14
    assert batches[0]["report_ids"].shape[0] == 2 and batches[2]["coords"].shape == (1, 12, 2)
