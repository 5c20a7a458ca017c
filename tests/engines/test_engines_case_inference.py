"""Slide inference by case (``--case_csv``): slides extracted, each case's slides one bag, one row per case.

Real slides (crops of the CMU H&E slide written as pyramids), the real extractor and builtin-small encoder,
the real dataset; the network's part is covered by tests/data/test_data_cases.py and, end to end through
``monai.bundle run``, by the slow case test of tests/engines/test_slide_inference.py.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from scripts.data import FeatureBagDataset, collate_bags
from scripts.encoders import build_encoder
from scripts.engines import SlideInference
from scripts.engines.slide_cases import read_case_csv
from tests.wsi.test_wsi_slide_files import cmu_rgb, write_pyramid_tiff


@pytest.fixture(scope="module")
def case_csv(tmp_path_factory) -> Path:
    """Three slides of CASE-7, and CASE-8 with one slide and one missing file."""
    root = tmp_path_factory.mktemp("case_slides")
    rgb = cmu_rgb()
    corners = [(y, x) for y in range(0, rgb.shape[0] - 511, 256) for x in range(0, rgb.shape[1] - 511, 256)]
    darkest = sorted(corners, key=lambda c: float(rgb[c[0]:c[0] + 512, c[1]:c[1] + 512].mean()))[:4]
    for name, (y, x) in zip(("c7-a", "c7-b", "c7-c", "c8-a"), darkest):
        write_pyramid_tiff(root / f"{name}.svs", np.ascontiguousarray(rgb[y:y + 512, x:x + 512]), mpp=0.5, levels=2)
    table = root / "cases.csv"
    table.write_text("case_id,path\nCASE-7,c7-a.svs\nCASE-8,c8-a.svs;gone.svs\nCASE-7,c7-b.svs\nCASE-7,c7-c.svs\n")
    return table


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    record = {"encoder_name": "builtin-small", "encoder_checksum": build_encoder("builtin-small").checksum,
              "target_mpp": 0.5, "patch_size": 128, "step": 128, "tissue_fraction": 0.25}
    (folder / "feature_extraction.json").write_text(json.dumps(record))
    return folder


def test_case_csv_lists_cases_in_order_with_their_slides(case_csv, tmp_path):
    cases = read_case_csv(case_csv)
    assert list(cases) == ["CASE-7", "CASE-8"]
    assert [s for s, _ in cases["CASE-7"]] == ["c7-a", "c7-b", "c7-c"]
    assert [s for s, _ in cases["CASE-8"]] == ["c8-a", "gone"]
    assert cases["CASE-7"][0][1] == str(case_csv.parent / "c7-a.svs")
    bad = tmp_path / "bad.csv"
    bad.write_text("case,path\nA,x.svs\n")
    with pytest.raises(ValueError, match="needs the columns case_id and path"):
        read_case_csv(bad)
    bad.write_text("case_id,path\nA,x.svs\nB,x.svs\n")
    with pytest.raises(ValueError, match=r"bad.csv:3: slide id 'x' is listed twice"):
        read_case_csv(bad)


def test_each_case_is_one_bag_and_one_row(case_csv, model_dir, tmp_path):
    slides = SlideInference(model_dir, tmp_path / "features", tmp_path / "reports", case_csv=case_csv,
                            num_workers=0, progress=False)
    assert slides.active
    entries = slides.feature_paths()
    assert [(case, [p.name for p in files]) for case, files in entries] == [
        ("CASE-7", ["c7-a.h5", "c7-b.h5", "c7-c.h5"])]  # CASE-8 has a slide that could not be extracted
    data = FeatureBagDataset(entries, region_size=8)
    item = data[0]
    rows = {row.slide_id: row for row in slides.extract()}
    sizes = [rows[s].n_patches for s in ("c7-a", "c7-b", "c7-c")]
    assert item["id"] == "CASE-7" and item["features"].shape[0] == sum(sizes) and min(sizes) > 0
    assert collate_bags([item])["case_slides"] == [["c7-a", "c7-b", "c7-c"]]

    table = slides.write_table({"CASE-7": "Adenocarcinoma."})
    with open(table, newline="", encoding="utf-8-sig") as handle:
        written = {row["id"]: row for row in csv.DictReader(handle)}
    assert list(written) == ["CASE-7", "CASE-8"]
    assert written["CASE-7"]["status"] == "done" and written["CASE-7"]["report"] == "Adenocarcinoma."
    assert int(written["CASE-7"]["n_patches"]) == sum(sizes)
    paths = [str(case_csv.parent / f"{s}.svs") for s in ("c7-a", "c7-b", "c7-c")]
    assert written["CASE-7"]["slide"].split(";") == paths
    assert written["CASE-8"]["status"] == "failed" and written["CASE-8"]["error"].startswith("gone: ")


def test_case_csv_is_not_mixed_with_slides(case_csv, model_dir, tmp_path):
    with pytest.raises(ValueError, match="case_csv or slides"):
        SlideInference(model_dir, tmp_path, tmp_path, slides_dir=tmp_path, case_csv=case_csv)
