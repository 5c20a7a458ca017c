"""Label CSVs of the transfer bundles: what is read, and every bad input named by its CSV line."""

from __future__ import annotations

import logging

import pytest
import torch

from scripts.demo import DemoProducer
from scripts.transfer import SlideTableError, read_slide_table, resolve_slide_table


def write_bags(folder, ids, dim=8, n=5):
    folder.mkdir(parents=True, exist_ok=True)
    for i, slide_id in enumerate(ids):
        torch.save(torch.randn(n + i, dim), folder / f"{slide_id}.pt")
    return folder


def write_csv(path, text):
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


@pytest.fixture
def bags(tmp_path):
    return write_bags(tmp_path / "features", [f"S{i}" for i in range(6)])


def test_subtyping_csv_is_read_with_cases_classes_and_files(tmp_path, bags):
    csv_file = write_csv(tmp_path / "labels.csv", """
slide_id,label,case_id,extra
S0,LUAD,P0,x
S1,LUSC,P0,y
S2,LUAD,P1,z
""")
    table = read_slide_table("subtyping", csv_file, bags)
    assert table.classes == ["LUAD", "LUSC"]  # inferred, sorted
    assert [(r.slide_id, r.case_id, r.label, r.line) for r in table.records] == [
        ("S0", "P0", 0, 2), ("S1", "P0", 1, 3), ("S2", "P1", 0, 4)]
    assert table.feature_dim == 8 and table.records[1].num_patches == 6
    assert table.records[2].path == bags / "S2.pt"


def test_subtyping_without_case_column_makes_one_case_per_slide(tmp_path, bags):
    csv_file = write_csv(tmp_path / "labels.csv", "slide_id,label\nS0,a\nS1,b\n")
    table = read_slide_table("subtyping", csv_file, bags)
    assert table.case_ids == ["S0", "S1"]


def test_given_classes_fix_the_class_ids_and_reject_unknown_labels(tmp_path, bags):
    csv_file = write_csv(tmp_path / "labels.csv", "slide_id,label\nS0,b\nS1,a\nS2,c\nS3,zz\n")
    with pytest.raises(SlideTableError) as err:
        read_slide_table("subtyping", csv_file, bags, classes=["b", "a"])
    message = str(err.value)
    assert "2 bad row(s)" in message
    assert "line 4 (slide 'S2'): unknown class 'c'" in message
    assert "line 5 (slide 'S3'): unknown class 'zz'" in message
    ok = write_csv(tmp_path / "ok.csv", "slide_id,label\nS0,b\nS1,a\n")
    assert [r.label for r in read_slide_table("subtyping", ok, bags, classes=["b", "a"]).records] == [0, 1]


def test_a_listed_class_without_slides_is_an_error(tmp_path, bags):
    csv_file = write_csv(tmp_path / "labels.csv", "slide_id,label\nS0,b\nS1,b\n")
    with pytest.raises(SlideTableError, match=r"class\(es\) \['a'\] have no usable slide"):
        read_slide_table("subtyping", csv_file, bags, classes=["a", "b"])


def test_missing_feature_files_raise_with_line_numbers(tmp_path, bags):
    csv_file = write_csv(tmp_path / "labels.csv", "slide_id,label\nS0,a\nGONE1,b\nS1,b\nGONE2,a\n")
    with pytest.raises(SlideTableError) as err:
        read_slide_table("subtyping", csv_file, bags)
    message = str(err.value)
    assert "2 slide(s) without a usable feature file" in message
    assert "line 3 (slide 'GONE1')" in message and "line 5 (slide 'GONE2')" in message
    assert "on_missing='skip'" in message


def test_skipping_missing_files_counts_and_names_them(tmp_path, bags, caplog):
    csv_file = write_csv(tmp_path / "labels.csv", "slide_id,label\nS0,a\nGONE1,b\nS1,b\nGONE2,a\n")
    with caplog.at_level(logging.WARNING, logger="histgen.transfer"):
        table = read_slide_table("subtyping", csv_file, bags, on_missing="skip")
    assert table.slide_ids == ["S0", "S1"]
    assert [(s["slide_id"], s["line"]) for s in table.skipped] == [("GONE1", 3), ("GONE2", 5)]
    assert "2 slide(s) SKIPPED" in caplog.text and "GONE1" in caplog.text and "GONE2" in caplog.text


def test_a_feature_file_of_another_dimension_is_unusable(tmp_path, bags):
    torch.save(torch.randn(4, 3), bags / "ODD.pt")
    csv_file = write_csv(tmp_path / "labels.csv", "slide_id,label\nS0,a\nODD,b\nS1,b\n")
    with pytest.raises(SlideTableError, match=r"line 3 \(slide 'ODD'\).*feature dimension 3, expected 8"):
        read_slide_table("subtyping", csv_file, bags)


def test_duplicates_empty_ids_and_missing_labels(tmp_path, bags):
    csv_file = write_csv(tmp_path / "labels.csv", "slide_id,label\nS0,a\nS0,b\n,a\nS1,\n")
    with pytest.raises(SlideTableError) as err:
        read_slide_table("subtyping", csv_file, bags)
    message = str(err.value)
    assert "line 3 (slide 'S0'): duplicate slide_id (first on line 2)" in message
    assert "line 4: empty slide_id" in message
    assert "line 5 (slide 'S1'): missing label" in message


def test_missing_columns_and_files(tmp_path, bags):
    with pytest.raises(SlideTableError, match=r"needs column\(s\) \['case_id', 'event'\]"):
        read_slide_table("survival", write_csv(tmp_path / "a.csv", "slide_id,time\nS0,3\n"), bags)
    with pytest.raises(SlideTableError, match="label CSV not found"):
        read_slide_table("subtyping", tmp_path / "nope.csv", bags)
    with pytest.raises(SlideTableError, match="feature folder not found"):
        read_slide_table("subtyping", write_csv(tmp_path / "b.csv", "slide_id,label\nS0,a\n"), tmp_path / "none")


def test_survival_csv_is_read(tmp_path, bags):
    csv_file = write_csv(tmp_path / "surv.csv", """
slide_id,case_id,time,event
S0,P0,12.5,1
S1,P0,12.5,1
S2,P1,30,0
S3,P2,0,1.0
""")
    table = read_slide_table("survival", csv_file, bags)
    assert [(r.case_id, r.time, r.event) for r in table.records] == [
        ("P0", 12.5, 1), ("P0", 12.5, 1), ("P1", 30.0, 0), ("P2", 0.0, 1)]
    assert table.classes == []


def test_bad_times_and_events_are_listed_by_line(tmp_path, bags):
    csv_file = write_csv(tmp_path / "surv.csv", """
slide_id,case_id,time,event
S0,P0,-3,1
S1,P1,,1
S2,P2,abc,0
S3,P3,5,2
S4,P4,5,
S5,P5,inf,yes
""")
    with pytest.raises(SlideTableError) as err:
        read_slide_table("survival", csv_file, bags)
    message = str(err.value)
    assert "6 bad row(s)" in message
    assert "line 2 (slide 'S0'): time '-3' is negative" in message
    assert "line 3 (slide 'S1'): missing time" in message
    assert "line 4 (slide 'S2'): time 'abc' is not a number" in message
    assert "line 5 (slide 'S3'): event '2' must be 1 (observed) or 0 (censored)" in message
    assert "line 6 (slide 'S4'): event missing must be 1" in message
    assert "line 7 (slide 'S5'): time 'inf' is not finite; event 'yes' must be 1" in message


def test_slides_of_one_case_must_share_its_outcome(tmp_path, bags):
    csv_file = write_csv(tmp_path / "surv.csv", "slide_id,case_id,time,event\nS0,P0,10,1\nS1,P0,11,1\n")
    with pytest.raises(SlideTableError, match=r"line 3 \(slide 'S1'\): case 'P0' has time 11.0, event 1 here but "
                                              r"time 10.0, event 1 on line 2"):
        read_slide_table("survival", csv_file, bags)


def test_all_censored_survival_data_is_an_error(tmp_path, bags):
    csv_file = write_csv(tmp_path / "surv.csv", "slide_id,case_id,time,event\nS0,P0,10,0\nS1,P1,11,0\n")
    with pytest.raises(SlideTableError, match="all 2 usable slides are censored"):
        read_slide_table("survival", csv_file, bags)


def test_csv_and_dataset_dir_come_together(tmp_path):
    with pytest.raises(ValueError, match="give both csv_file"):
        resolve_slide_table("subtyping", tmp_path / "x.csv", None, tmp_path)


def test_demo_tables_have_paired_cases_and_censoring(tmp_path):
    options = {"source": "feature_bags", "n_train": 24, "n_val": 8, "n_test": 8, "n_patches": [20, 40]}
    table = resolve_slide_table("survival", None, None, tmp_path, demo=DemoProducer(options, "survival"))
    assert table.synthetic and len(table) == 40 and table.feature_dim == 64
    assert table.records[0].path.parent == tmp_path / "demo_bags" / "features"  # not where slide demos go
    per_case = {}
    for record in table.records:
        per_case.setdefault(record.case_id, []).append(record)
    assert any(len(v) == 2 for v in per_case.values()) and max(len(v) for v in per_case.values()) == 2
    for records in per_case.values():  # a case's slides share diagnosis and outcome
        assert len({(r.time, r.event) for r in records}) == 1
    censored = 1 - sum(r.event for r in table.records) / len(table)
    assert 0.15 < censored < 0.45
    subtyping = resolve_slide_table("subtyping", None, None, tmp_path, demo=DemoProducer(options, "subtyping"))
    assert subtyping.classes == ["adenocarcinoma", "lymphoma", "normal", "squamous cell carcinoma"]
    assert subtyping.case_ids == table.case_ids  # same bags, same cases
