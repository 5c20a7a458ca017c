"""The training datasets' feature cache: later epochs read bags from memory, within the ``cache_mb`` budget."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from scripts.data import ReportBagDataset
from scripts.data.errors import BagDataError
from scripts.data.feature_files import read_feature_file, write_feature_file_h5
from scripts.text import Vocabulary

DIM = 16
SIZES = {"a": 40, "b": 60, "c": 50}  # 40 * 16 * 4 B = 2,560 B of features for "a"


@pytest.fixture()
def bags(tmp_path):
    rng = np.random.default_rng(3)
    for slide_id, n in SIZES.items():
        write_feature_file_h5(tmp_path / f"{slide_id}.h5", rng.standard_normal((n, DIM), dtype=np.float32),
                              coords=np.arange(2 * n).reshape(n, 2), attrs={"encoder": "test", "mpp": 0.5})
    report = "invasive ductal carcinoma ."
    annotation = {"train": [{"id": i, "report": report} for i in SIZES], "val": [], "test": []}
    (tmp_path / "annotation.json").write_text(json.dumps(annotation))
    return tmp_path


def _dataset(folder, cache_mb):
    vocab = Vocabulary.build(["invasive ductal carcinoma ."], threshold=1)
    return ReportBagDataset(folder / "annotation.json", folder, "train", vocab, cache_mb=cache_mb)


def test_cached_bags_are_served_from_memory_once_read(bags):
    dataset = _dataset(bags, cache_mb=1)
    first = [dataset[i]["features"].clone() for i in range(len(dataset))]
    for slide_id in SIZES:  # the files are gone: a second epoch can only come from memory
        (bags / f"{slide_id}.h5").unlink()
    second = [dataset[i] for i in range(len(dataset))]
    for before, item in zip(first, second):
        assert torch.equal(before, item["features"])
        assert item["coords"] is not None and item["coords"].shape == (before.shape[0], 2)


def test_bags_past_the_budget_are_read_from_disk_each_time(bags):
    one_bag_mb = (40 * DIM * 4 + 40 * 2 * 8) / 2**20  # "a" with its coords fits, then nothing else
    dataset = _dataset(bags, cache_mb=one_bag_mb)
    for i in range(len(dataset)):
        dataset[i]
    assert dataset._cached_bytes <= dataset.cache_bytes
    (bags / "a.h5").unlink()
    (bags / "b.h5").unlink()
    assert dataset[0]["features"].shape == (40, DIM)  # kept
    with pytest.raises(BagDataError, match="b"):
        dataset[1]  # not kept: read again, and its file is gone


def test_no_cache_reads_every_time(bags):
    dataset = _dataset(bags, cache_mb=0)
    dataset[0]
    (bags / "a.h5").unlink()
    with pytest.raises(BagDataError, match="not found"):
        dataset[0]


def test_negative_budget_is_refused(bags):
    with pytest.raises(ValueError, match="cache_mb"):
        _dataset(bags, cache_mb=-1)


def test_read_attrs_false_leaves_the_provenance_unread(bags):
    assert read_feature_file(bags / "a.h5").attrs["encoder"] == "test"
    bag = read_feature_file(bags / "a.h5", read_attrs=False)
    assert bag.attrs == {} and bag.feats.shape == (40, DIM)
