"""Multi-slide cases: an annotation entry listing three slides trains, evaluates and infers as one case.

Real feature files on disk, the real datasets and collate function, and a small real HistGen network.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from scripts.data import (
    AnnotationError,
    FeatureBagDataset,
    ReportBagDataset,
    collate_bags,
    load_annotation,
    read_feature_attrs,
    vocabulary_from_annotation,
    write_feature_file_h5,
)
from scripts.networks import HistGen, HistGenConfig
from scripts.text import ReportTextError

DIM = 8
REGION_SIZE = 4  # 3 patches per region
SIZES = {"C7-A": 4, "C7-B": 2, "C7-C": 5, "single": 6}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, Path]:
    """Feature files of a three-slide case and a one-slide item, and their annotation."""
    root = tmp_path_factory.mktemp("cases")
    gen = torch.Generator().manual_seed(0)
    for slide_id, n in SIZES.items():
        coords = torch.stack([torch.arange(n) * 256, torch.full((n,), len(slide_id) * 256)], dim=1)
        write_feature_file_h5(root / f"{slide_id}.h5", torch.randn(n, DIM, generator=gen), coords,
                              attrs={"slide_id": slide_id})
    items = [
        {"id": "CASE-7", "report": "Carcinoma grade 2 .", "split": "train",
         "image_path": ["CASE-7/C7-A.svs", "CASE-7/C7-B.svs", "CASE-7/C7-C.svs"]},
        {"id": "single", "report": "Benign tissue .", "split": "train", "image_path": ["single.svs"]},
    ]
    annotation = root / "annotation.json"
    annotation.write_text(json.dumps({"train": items, "val": items, "test": items}))
    return root, annotation


def _feats(root: Path, slide_id: str) -> torch.Tensor:
    from scripts.data import read_feature_file

    return read_feature_file(root / f"{slide_id}.h5").feats


def test_a_three_slide_entry_is_one_item_with_its_slides_concatenated(dataset):
    root, annotation = dataset
    data = ReportBagDataset(annotation, root, "train", vocab=None, region_size=REGION_SIZE)
    assert data.ids == ["CASE-7", "single"]
    case = data[0]
    assert case["case_slides"] == ["C7-A", "C7-B", "C7-C"]
    assert case["case_bounds"].tolist() == [[0, 4], [4, 6], [6, 11]]
    expected = torch.cat([_feats(root, s) for s in ("C7-A", "C7-B", "C7-C")])
    assert torch.equal(case["features"], expected)
    assert case["coords"].shape == (11, 2) and case["region_patches"] == REGION_SIZE - 1
    assert "case_bounds" not in data[1] and torch.equal(data[1]["features"], _feats(root, "single"))


def test_collate_keeps_every_region_inside_one_slide(dataset):
    root, annotation = dataset
    data = ReportBagDataset(annotation, root, "train", vocab=None, region_size=REGION_SIZE)
    batch = collate_bags([data[0], data[1]])
    per_region = REGION_SIZE - 1
    names = ("C7-A", "C7-B", "C7-C")
    # slides of 4, 2, 5 patches: filled up to 6 and 3, the last kept at 5 -> 14 positions
    assert batch["num_patches"].tolist() == [14, 6]
    assert batch["case_bounds"][0].tolist() == [[0, 4], [6, 8], [9, 14]] and batch["case_bounds"][1] is None
    assert batch["case_slides"] == [["C7-A", "C7-B", "C7-C"], None]
    assert batch["mask"][0].all() and int(batch["mask"][1].sum()) == 6  # left-aligned, as the network needs
    rows = batch["features"][0]
    for first in range(0, 14, per_region):  # every region holds patches of one slide only
        owners = {name for name in names for row in rows[first:first + per_region]
                  if (_feats(root, name) == row).all(dim=1).any()}
        assert len(owners) == 1, f"region at {first} mixes slides {owners}"
    real = torch.zeros(14, dtype=torch.bool)
    for index, (start, end) in enumerate(batch["case_bounds"][0].tolist()):
        real[start:end] = True
        assert torch.equal(rows[start:end], _feats(root, names[index]))
    assert (batch["coords"][0][~real] == -1).all() and (batch["coords"][0][real] >= 0).all()
    assert torch.equal(rows[4:6], _feats(root, "C7-A")[:2])  # the filler repeats the slide's own first patches


def test_the_case_trains_and_decodes_as_one_report(dataset):
    root, annotation = dataset
    vocab = vocabulary_from_annotation(annotation, threshold=1)
    data = ReportBagDataset(annotation, root, "train", vocab=vocab, max_seq_length=12, region_size=REGION_SIZE)
    batch = collate_bags([data[0], data[1]])
    torch.manual_seed(0)
    model = HistGen(HistGenConfig(in_dim=DIM, d_vf=16, d_model=16, d_ff=16, num_heads=2, num_layers=1, topk=2,
                                  cmm_size=4, cmm_dim=16, region_size=REGION_SIZE, prototype_num=2,
                                  vocab_size=len(vocab), max_seq_length=12, beam_size=2))
    logp = model.score(batch["features"], batch["report_ids"], mask=batch["mask"])
    targets = batch["report_ids"][:, 1:]
    loss = -(logp.gather(2, targets[..., None])[..., 0] * batch["report_mask"][:, 1:]).sum()
    loss.backward()
    assert torch.isfinite(loss) and model.decoder.logit.weight.grad.abs().sum() > 0
    model.eval()
    ids = model.generate(batch["features"], batch["mask"], beam_size=2, max_len=8)
    assert ids.shape[0] == 2  # one report for the case, one for the single slide
    # the case's report does not depend on what it is batched with
    alone = collate_bags([data[0]])
    assert torch.equal(model.generate(alone["features"], alone["mask"], beam_size=2, max_len=8)[0], ids[0])


def test_feature_inference_takes_a_case_entry(dataset):
    root, _ = dataset
    files = [root / "C7-A.h5", root / "C7-B.h5", root / "C7-C.h5"]
    data = FeatureBagDataset([("CASE-7", files), root / "single.h5"], region_size=REGION_SIZE)
    assert data.ids == ["CASE-7", "single"]
    assert data[0]["case_slides"] == ["C7-A", "C7-B", "C7-C"] and data[0]["features"].shape == (11, DIM)
    assert data[0]["report"] == "" and data[0]["report_ids"] is None


def test_a_case_with_a_missing_slide_is_named(tmp_path, dataset):
    root, _ = dataset
    items = [{"id": "CASE-9", "report": "x .", "image_path": ["C7-A.svs", "gone.svs"]}]
    annotation = tmp_path / "a.json"
    annotation.write_text(json.dumps({"train": items}))
    with pytest.raises(Exception, match=r"case 'CASE-9'.*gone"):
        ReportBagDataset(annotation, root, "train", vocab=None)
    skipping = FeatureBagDataset([("CASE-9", [root / "C7-A.h5", root / "gone.h5"])], on_error="skip")
    assert len(skipping) == 0 and "CASE-9" in skipping.skipped[0]["reason"]
    items[0]["image_path"] = ["C7-A.svs", "x/C7-A.tiff"]
    annotation.write_text(json.dumps({"train": items}))
    with pytest.raises(AnnotationError, match="more than once"):
        load_annotation(annotation, required_splits=("train",))


def test_subsampled_case_keeps_its_case_bounds(dataset):
    root, annotation = dataset
    data = ReportBagDataset(annotation, root, "train", vocab=None, max_patches=6, seed=1)
    case = data[0]
    bounds = case["case_bounds"]
    assert case["features"].shape[0] == 6 and int(bounds[-1, 1]) == 6
    full = torch.cat([_feats(root, s) for s in ("C7-A", "C7-B", "C7-C")])
    starts = [0, 4, 6]
    for index, (start, end) in enumerate(bounds.tolist()):
        slide_rows = full[starts[index]:starts[index] + list(SIZES.values())[index]]
        for row in case["features"][start:end]:  # each kept row comes from its own slide
            assert (slide_rows == row).all(dim=1).any()


def test_one_annotation_reader_serves_the_vocabulary(tmp_path):
    """The vocabulary reads the annotation through load_annotation: only its split is checked."""
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"train": [{"id": "a", "report": "Tumour ."}], "val": [{"id": "b"}]}))
    assert vocabulary_from_annotation(path, threshold=1).tokens == [".", "<unk>", "tumour"]
    path.write_text(json.dumps({"train": [{"id": "a"}]}))
    with pytest.raises(ReportTextError, match=r"train\[0\].*missing 'report'"):
        vocabulary_from_annotation(path, threshold=1)
    with pytest.raises(ReportTextError, match="not found"):
        vocabulary_from_annotation(tmp_path / "none.json", threshold=1)


def test_one_h5_reader_serves_the_extractor_view(tmp_path):
    from scripts.wsi.feature_outputs import read_h5_attrs, read_h5_feats

    path = write_feature_file_h5(tmp_path / "s.h5", torch.ones(3, 2), torch.zeros(3, 2),
                                 attrs={"tissue_params": {"median_kernel": 7}, "patch_size": 256})
    attrs = read_feature_attrs(path)
    assert attrs["tissue_params"] == {"median_kernel": 7} and (attrs["n_patches"], attrs["feature_dim"]) == (3, 2)
    assert read_h5_attrs(path)["patch_size"] == 256 and read_h5_feats(path).tolist() == [[1.0, 1.0]] * 3
    no_coords = write_feature_file_h5(tmp_path / "n.h5", torch.ones(3, 2))
    assert read_h5_attrs(no_coords) is None and read_h5_attrs(tmp_path / "missing.h5") is None
