"""Cross-validation splits by case: made, written, reused, checked; folds that cannot be trained or scored."""

from __future__ import annotations

import json
import logging
from collections import Counter

import pytest
import torch

from scripts.transfer import (
    CrossValidationData,
    SplitError,
    load_or_make_folds,
    make_folds,
    make_targets,
    read_folds,
    read_slide_table,
    require_folds,
)


def make_table(tmp_path, rows, task="subtyping", on_missing="raise"):
    folder = tmp_path / "features"
    folder.mkdir(parents=True, exist_ok=True)
    header = "slide_id,label,case_id" if task == "subtyping" else "slide_id,case_id,time,event"
    for row in rows:
        path = folder / f"{row[0]}.pt"
        if not path.exists():
            torch.save(torch.randn(4, 6), path)
    csv_file = tmp_path / f"{task}.csv"
    csv_file.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n", encoding="utf-8")
    return read_slide_table(task, csv_file, folder, on_missing=on_missing)


def subtyping_rows(num_cases=30, classes=("a", "b", "c")):
    """Cases of 1 or 2 slides; every third case has two slides."""
    rows = []
    for case in range(num_cases):
        label = classes[case % len(classes)]
        for j in range(2 if case % 3 == 0 else 1):
            rows.append((f"C{case}-S{j}", label, f"C{case}"))
    return rows


def test_folds_keep_cases_together_and_test_every_slide_once(tmp_path):
    table = make_table(tmp_path, subtyping_rows())
    folds = make_folds(table, num_folds=5, seed=3, val_fraction=0.2)
    case_of = dict(zip(table.slide_ids, table.case_ids))
    tested = Counter(s for f in folds for s in f.test)
    assert set(tested) == set(table.slide_ids) and set(tested.values()) == {1}
    for fold in folds:
        parts = {p: {case_of[s] for s in fold.part(p)} for p in ("train", "val", "test")}
        assert not parts["train"] & parts["val"] and not parts["train"] & parts["test"]
        assert not parts["val"] & parts["test"]
        assert len(fold.train) + len(fold.val) + len(fold.test) == len(table)
        labels = Counter(table.by_id()[s].label for s in fold.test)
        assert len(labels) == 3  # stratified: every class in every test part
        assert 0 < len(fold.val) < len(fold.train)


def test_folds_are_reproducible_and_depend_on_the_seed(tmp_path):
    table = make_table(tmp_path, subtyping_rows())
    assert make_folds(table, 4, seed=1) == make_folds(table, 4, seed=1)
    assert make_folds(table, 4, seed=1) != make_folds(table, 4, seed=2)


def test_too_few_cases_for_the_folds(tmp_path):
    table = make_table(tmp_path, subtyping_rows(num_cases=4))
    with pytest.raises(SplitError, match="4 cases cannot make 5 folds"):
        make_folds(table, num_folds=5)


def test_splits_are_written_and_reused(tmp_path, caplog):
    table = make_table(tmp_path, subtyping_rows())
    split_dir = tmp_path / "splits"
    folds = load_or_make_folds(table, split_dir, num_folds=3, seed=0)
    payload = json.loads((split_dir / "fold_1.json").read_text())
    assert payload["fold"] == 1 and payload["num_folds"] == 3 and payload["stratified_by"] == "label"
    assert set(payload) >= {"train", "val", "test", "counts"}
    assert payload["test"] == list(folds[1].test)
    # a rerun with another seed reuses the files
    with caplog.at_level(logging.INFO, logger="histgen.transfer"):
        again = load_or_make_folds(table, split_dir, num_folds=3, seed=99)
    assert again == folds and "reusing the 3-fold splits" in caplog.text
    assert require_folds(table, split_dir) == folds


def test_reused_splits_must_fit_the_csv(tmp_path):
    rows = subtyping_rows()
    table = make_table(tmp_path, rows)
    split_dir = tmp_path / "splits"
    load_or_make_folds(table, split_dir, num_folds=3)
    with pytest.raises(SplitError, match="holds .* but num_folds=4 needs"):
        read_folds(split_dir, table, 4)
    grown = make_table(tmp_path, [*rows, ("NEW-S0", "a", "NEW")])
    with pytest.raises(SplitError, match=r"1 slide\(s\) of the CSV are in no part .*line \d+ \(slide 'NEW-S0'\)"):
        read_folds(split_dir, grown, 3)
    shrunk = make_table(tmp_path / "other", rows[1:])
    with pytest.raises(SplitError, match="lists 1 slide.* not in"):
        read_folds(split_dir, shrunk, 3)
    # a case moved across parts
    payload = json.loads((split_dir / "fold_0.json").read_text())
    moved = payload["train"].pop()
    payload["test"].append(moved)
    partner = [s for s in payload["train"] if table.by_id()[s].case_id == table.by_id()[moved].case_id]
    (split_dir / "fold_0.json").write_text(json.dumps(payload))
    if partner:
        with pytest.raises(SplitError, match="has slides in both"):
            read_folds(split_dir, table, 3)
    else:
        with pytest.raises(SplitError, match="in the test part of folds"):
            read_folds(split_dir, table, 3)


def test_slides_skipped_from_the_csv_leave_the_saved_splits_with_a_count(tmp_path, caplog):
    rows = subtyping_rows()
    table = make_table(tmp_path, rows)
    split_dir = tmp_path / "splits"
    load_or_make_folds(table, split_dir, num_folds=3)
    (tmp_path / "features" / f"{rows[0][0]}.pt").unlink()
    skipped = read_slide_table("subtyping", tmp_path / "subtyping.csv", tmp_path / "features", on_missing="skip")
    assert len(skipped.skipped) == 1
    with caplog.at_level(logging.WARNING, logger="histgen.transfer"):
        folds = read_folds(split_dir, skipped, 3)
    assert all(rows[0][0] not in f.train + f.val + f.test for f in folds)
    assert "1 slide(s) dropped from the split" in caplog.text


def test_evaluation_needs_saved_splits(tmp_path):
    table = make_table(tmp_path, subtyping_rows())
    with pytest.raises(SplitError, match="run the training workflow first"):
        require_folds(table, tmp_path / "nowhere")


def survival_rows(num_cases=20, events=lambda case: case % 2):
    return [(f"C{case}", f"C{case}", 5 + case, events(case)) for case in range(num_cases)]


def test_an_all_censored_test_fold_is_named(tmp_path):
    # events only in 2 cases: with 4 folds, some val/test part holds no event
    table = make_table(tmp_path, survival_rows(events=lambda case: int(case in (0, 1))), task="survival")
    folds = make_folds(table, num_folds=4, seed=0)
    with pytest.raises(SplitError, match=r"fold \d (val|test|train).*censored \(event=0; CSV lines? \d+"):
        CrossValidationData(table, folds, make_targets(table, n_bins=1))


def test_an_all_censored_training_part_is_named(tmp_path):
    table = make_table(tmp_path, survival_rows(num_cases=12, events=lambda case: int(case == 0)), task="survival")
    folds = make_folds(table, num_folds=2, seed=0)
    with pytest.raises(SplitError, match=r"fold \d (train: all \d+ training slides are censored|val|test)"):
        CrossValidationData(table, folds, make_targets(table, n_bins=1))


def test_too_few_events_for_the_bins(tmp_path):
    table = make_table(tmp_path, survival_rows(num_cases=12), task="survival")
    folds = make_folds(table, num_folds=2, seed=0)
    with pytest.raises(SplitError, match=r"fold 0 train: \d uncensored time\(s\) are too few for n_bins=8"):
        CrossValidationData(table, folds, make_targets(table, n_bins=8))


def test_a_class_missing_from_a_training_part_is_named(tmp_path):
    rows = [r for r in subtyping_rows(num_cases=30) if r[1] != "c"] + [("ONLY-c", "c", "ONLY")]
    table = make_table(tmp_path, rows)
    folds = make_folds(table, num_folds=3, seed=0)
    with pytest.raises(SplitError, match=r"fold \d train: no training slide of class id\(s\) \[2\]"):
        CrossValidationData(table, folds, make_targets(table))


def test_cross_validation_data_switches_folds_and_refits_targets(tmp_path):
    table = make_table(tmp_path, survival_rows(num_cases=40), task="survival")
    folds = make_folds(table, num_folds=4, seed=0)
    data = CrossValidationData(table, folds, make_targets(table, n_bins=2), fold=None)
    assert data.fold_ids == [0, 1, 2, 3] and data.fold == 0
    edges = []
    for k in data.fold_ids:
        data.set_fold(k)
        assert [r.slide_id for r in data.records("test")] == list(folds[k].test)
        edges.append(data.targets.bin_edges)
        train_times = sorted(r.time for r in data.records("train") if r.event)
        assert data.targets.bin_edges[1] == pytest.approx(float(torch.tensor(train_times).quantile(0.5)))
    assert len({tuple(e) for e in edges}) > 1  # bins come from each fold's own training part
    only = CrossValidationData(table, folds, make_targets(table, n_bins=2), fold=2)
    assert only.fold_ids == [2]
    with pytest.raises(SplitError, match="fold must be in 0..3"):
        CrossValidationData(table, folds, make_targets(table, n_bins=2), fold=4)
