"""The transfer bundles' demo starts from the report bundle's demo slides: reused when they match, else built."""

from __future__ import annotations

import json
import logging

import pytest

from scripts.demo import DemoProducer
from scripts.demo.label_tables import make_subtyping_demo, make_survival_demo
from scripts.demo.sources import matching_slide_demo
from scripts.transfer import resolve_slide_table
from tests.support.transfer_demo import TINY_SLIDES, tiny_report_demo


@pytest.fixture(scope="module")
def report_demo(tmp_path_factory):
    return tiny_report_demo(tmp_path_factory)


def _report_files(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_the_default_demo_labels_the_report_demo_slides_with_their_diagnoses(report_demo, tmp_path, caplog):
    before = _report_files(report_demo)
    with caplog.at_level(logging.WARNING, logger="histgen.transfer"):
        table = resolve_slide_table("subtyping", None, None, tmp_path,
                                    demo=DemoProducer(dict(TINY_SLIDES), "subtyping", report_demo))
    assert f"the report bundle's slide demo in {report_demo}, reused" in caplog.text
    annotation = json.loads((report_demo / "annotation.json").read_text())
    truth = {item["id"]: item["diagnosis"] for split in ("train", "val", "test") for item in annotation[split]}
    assert table.synthetic and len(table) == 40 and table.feature_dim == 128
    assert {r.slide_id: table.classes[r.label] for r in table.records} == truth
    assert all(r.path.parent == report_demo / "features" for r in table.records)
    assert sorted(p.name for p in (tmp_path / "demo_data").iterdir()) == ["subtyping.csv"]  # no slides of its own
    assert _report_files(report_demo) == before  # the report demo is read, never written
    survival = resolve_slide_table("survival", None, None, tmp_path,
                                   demo=DemoProducer(dict(TINY_SLIDES), "survival", report_demo))
    assert survival.case_ids == table.case_ids  # same slides, same cases


def test_a_report_demo_is_reused_only_with_the_same_parameters(report_demo, tmp_path, caplog):
    assert matching_slide_demo(report_demo, dict(TINY_SLIDES)) == report_demo
    assert matching_slide_demo(report_demo, {**TINY_SLIDES, "workers": 1, "progress": True}) == report_demo
    assert matching_slide_demo(report_demo, {**TINY_SLIDES, "slide_size": 1024.0}) == report_demo
    with caplog.at_level(logging.INFO, logger="histgen.transfer"):
        assert matching_slide_demo(report_demo, {**TINY_SLIDES, "patch_size": 96}) is None
        assert matching_slide_demo(report_demo, {"n_train": 24}) is None  # the rest defaults: other slides
    assert "patch_size=128 (wanted 96)" in caplog.text and "the bundle builds its own" in caplog.text
    assert matching_slide_demo(tmp_path / "nothing", dict(TINY_SLIDES)) is None
    for off in (None, "none", "", "null"):
        assert matching_slide_demo(off, dict(TINY_SLIDES)) is None


def test_without_a_matching_report_demo_the_bundle_builds_its_own_slides(report_demo, tmp_path):
    before = _report_files(report_demo)
    options = {"n_train": 4, "n_val": 0, "n_test": 0, "slide_size": 1024, "seed": 5, "table_seed": 2}
    table = make_survival_demo(tmp_path / "demo_data", options, report_demo_dir=report_demo)
    assert table.dataset_dir == tmp_path / "demo_data" / "features" and table.num_slides == 4
    assert len(list((tmp_path / "demo_data" / "slides").glob("*.svs"))) == 4
    assert "built in" in table.description
    assert _report_files(report_demo) == before  # other parameters: the report demo is left alone
    again = make_survival_demo(tmp_path / "demo_data", options, report_demo_dir=None)
    assert "reused in" in again.description and again.csv_file.read_text() == table.csv_file.read_text()


def test_bad_demo_options_are_named_before_anything_is_built(tmp_path):
    with pytest.raises(ValueError, match=r"unknown demo option\(s\) \['n_patches'\] for source 'slides'"):
        make_subtyping_demo(tmp_path, {"n_patches": [20, 40]})
    with pytest.raises(ValueError, match=r"unknown demo option\(s\) \['censor_fraction'\]"):
        make_subtyping_demo(tmp_path, {"censor_fraction": 0.2})
    with pytest.raises(ValueError, match="demo source must be one of"):
        make_subtyping_demo(tmp_path, {"source": "wsi"})
    assert not list(tmp_path.iterdir())
