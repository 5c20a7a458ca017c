"""The grounding benchmark generators (benchmarks.grounding): files in the HistGen layout, determinism,
reports that state the truth, the shuffled control, and a feasibility check that the bags carry the
diagnosis (a pooled-feature classifier well above chance, and at chance on shuffled labels)."""

from __future__ import annotations

import csv
import json
from collections import Counter

import numpy as np
import pytest
import torch

from benchmarks.grounding import (
    BENCHMARKS,
    FINDINGS,
    QUICK_BENCHMARK,
    BenchmarkParams,
    make_benchmark_dataset,
    read_labels,
)
from benchmarks.grounding.dataset import class_counts
from benchmarks.grounding.phrase_findings import read_findings
from scripts.data import load_annotation, read_feature_file
from scripts.text import report_tokens

SMALL = BenchmarkParams(n_diagnoses=4, n_train=16, n_val=4, n_test=8, n_patches=(30, 90), feature_dim=12, seed=5)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return make_benchmark_dataset(SMALL, tmp_path_factory.mktemp("small"))


def test_files_follow_the_histgen_layout(small):
    annotation = load_annotation(small.annotation_file)  # the bundle's own reader accepts both files
    assert load_annotation(small.shuffled_annotation_file).keys() == annotation.keys()
    assert {s: len(annotation[s]) for s in ("train", "val", "test")} == {"train": 16, "val": 4, "test": 8}
    ids = [item["id"] for split in ("train", "val", "test") for item in annotation[split]]
    assert len(set(ids)) == len(ids)
    for split in ("train", "val", "test"):
        for item in annotation[split]:
            assert item["split"] == split and isinstance(item["report"], str) and item["report"]
            bag = read_feature_file(small.dataset_dir / f"{item['id']}.pt", item["id"])
            assert bag.feats.dtype == torch.float32 and bag.feats.shape == (item["num_patches"], 12)
            assert 30 <= item["num_patches"] <= 90
            raw = torch.load(small.dataset_dir / f"{item['id']}.pt", weights_only=True)
            assert isinstance(raw, torch.Tensor)  # a plain tensor, HistGen's format
    labels = read_labels(small.labels_file)
    assert len(labels) == len(ids)
    first = annotation["test"][0]
    assert {f: labels[first["id"]][f] for f in FINDINGS} == first["findings"]
    with small.labels_file.open(newline="") as handle:
        assert next(csv.reader(handle)) == ["slide_id", "split", *FINDINGS]


def test_same_parameters_same_bytes_and_reuse(small, tmp_path):
    again = make_benchmark_dataset(SMALL, tmp_path / "again")
    assert again.generated
    for name in ("annotation.json", "annotation_shuffled.json", "labels.csv"):
        assert (again.out_dir / name).read_bytes() == (small.out_dir / name).read_bytes()
    some = sorted(small.dataset_dir.iterdir())[:3]
    assert all((again.dataset_dir / p.name).read_bytes() == p.read_bytes() for p in some)
    assert not make_benchmark_dataset(SMALL, tmp_path / "again").generated  # cached by parameters
    other = make_benchmark_dataset(SMALL.replace(seed=6), tmp_path / "other")
    assert other.generated
    assert (other.out_dir / "annotation.json").read_bytes() != (small.out_dir / "annotation.json").read_bytes()


def test_a_reused_folder_rewrites_a_broken_control_and_names_a_broken_annotation(small, tmp_path):
    folder = make_benchmark_dataset(SMALL, tmp_path / "bench").out_dir
    control = folder / "annotation_shuffled.json"
    good = control.read_bytes()
    control.write_bytes(b'{"train": [')  # a half-written copy
    assert not make_benchmark_dataset(SMALL, folder).generated
    assert control.read_bytes() == good  # derived data: written again, byte for byte
    (folder / "annotation.json").write_bytes(b"\xff\xfe not json")
    with pytest.raises(ValueError, match=r"annotation\.json: the benchmark's annotation cannot be read.*delete"):
        make_benchmark_dataset(SMALL, folder)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="n_diagnoses"):
        BenchmarkParams(n_diagnoses=9)
    with pytest.raises(ValueError, match="tumour_share"):
        BenchmarkParams(tumour_share=(0.5, 0.2))
    with pytest.raises(ValueError, match="report_styles"):
        BenchmarkParams(report_styles=("haiku",))


def test_class_counts_keep_imbalance_and_every_class():
    assert class_counts(40, 4, 1.0) == [10, 10, 10, 10]
    counts = class_counts(40, 3, 6.0)
    assert sum(counts) == 40 and counts[0] > 3 * counts[2] >= 3
    assert sum(class_counts(7, 8, 4.0)) == 7


@pytest.mark.parametrize("name", ["six-dx", "imbalanced"])
def test_reports_state_the_truth_in_varied_wording(name, tmp_path):
    params = BENCHMARKS[name].params.replace(n_train=60, n_val=10, n_test=10)
    data = make_benchmark_dataset(params, tmp_path)
    items = [i for s in ("train", "val", "test") for i in json.loads(data.annotation_file.read_text())[s]]
    for item in items:  # every finding, the unpredictable ones too, reads back from the reference text
        assert read_findings(item["report"], params.diagnoses) == item["findings"], item["report"]
    reports = [item["report"] for item in items]
    assert len(set(reports)) == len(reports)
    assert len({r.split("\n")[0].split(" ")[0] for r in reports}) >= len(params.report_styles)  # layouts vary
    lengths = [len(report_tokens(r)) for r in reports]
    assert 25 <= np.median(lengths) <= 55  # mostly within the bundle's default max_seq_length (60)
    combinations = {tuple(sorted(item["findings"].items())) for item in items}
    assert len(combinations) > 10


def test_shuffled_control_is_class_balanced_and_keeps_test_pairs(small):
    true = json.loads(small.annotation_file.read_text())
    control = json.loads(small.shuffled_annotation_file.read_text())
    assert control["test"] == true["test"]
    for split in ("train", "val"):
        assert [i["id"] for i in control[split]] == [i["id"] for i in true[split]]
        assert sorted(i["report"] for i in control[split]) == sorted(i["report"] for i in true[split])
    pairs = Counter((i["findings"]["diagnosis"], i["report_class"]) for i in control["train"])
    assert max(pairs.values()) - min(pairs.values()) <= 1 and len(pairs) == SMALL.n_diagnoses ** 2


def test_further_control_dealings_are_other_balanced_dealings_of_the_same_reports(small):
    from benchmarks.grounding.control import dealing_seed, shuffled_annotation

    true = json.loads(small.annotation_file.read_text())
    assert dealing_seed(SMALL.seed, 0) == SMALL.seed
    first = json.loads(small.shuffled_annotation_file.read_text())
    assert shuffled_annotation(true, dealing_seed(SMALL.seed, 0)) == first
    seeds = {dealing_seed(SMALL.seed, k) for k in range(4)}
    assert len(seeds) == 4
    dealings = [shuffled_annotation(true, dealing_seed(SMALL.seed, k)) for k in range(3)]
    assert len({tuple(i["report_from"] for i in d["train"]) for d in dealings}) == 3
    for dealt in dealings:
        assert dealt["test"] == true["test"]
        pairs = Counter((i["findings"]["diagnosis"], i["report_class"]) for i in dealt["train"])
        assert max(pairs.values()) - min(pairs.values()) <= 1 and len(pairs) == SMALL.n_diagnoses ** 2
    with pytest.raises(ValueError, match="dealing"):
        dealing_seed(SMALL.seed, -1)


def test_unequal_classes_are_dealt_so_that_a_slides_class_tells_nothing_about_its_reports():
    from benchmarks.grounding.control import independent_report_order, shuffled_annotation

    classes = ["a"] * 102 + ["b"] * 17 + ["c"] * 41
    order = independent_report_order(classes, np.random.default_rng(0))
    assert sorted(order) == list(range(len(classes)))  # every report dealt exactly once
    pairs = Counter((classes[slide], classes[source]) for slide, source in enumerate(order))
    sizes = Counter(classes)
    for (slide_class, report_class), count in pairs.items():
        assert abs(count - sizes[slide_class] * sizes[report_class] / len(classes)) <= 1
    for slide_class in sizes:  # the share of each report class is the same whatever the slide's class
        share = pairs[(slide_class, "a")] / sizes[slide_class]
        assert abs(share - 102 / 160) < 0.07
    # equal classes keep the round-robin dealing of the slide demo (the balanced benchmarks' controls unchanged)
    true = {"train": [{"id": f"s{i}", "report": f"r{i}", "findings": {"diagnosis": "xy"[i % 2]}} for i in range(8)],
            "val": [], "test": []}
    from scripts.demo.slide_dataset import _balanced_report_order

    dealt = shuffled_annotation(true, 5)
    expected = _balanced_report_order(["xy"[i % 2] for i in range(8)], np.random.default_rng([5, 0, 0xC0]))
    assert [item["report_from"] for item in dealt["train"]] == [f"s{i}" for i in expected]


def test_every_further_control_dealing_trains_with_a_seed_of_its_own():
    from benchmarks.grounding.control import dealing_model_seed

    assert dealing_model_seed(SMALL.seed, 0) is None  # the first dealing keeps the config's seed
    seeds = [dealing_model_seed(SMALL.seed, k) for k in range(1, 6)]
    assert len(set(seeds)) == 5 and all(isinstance(s, int) and 0 <= s < 2**31 - 1 for s in seeds)
    assert seeds == [dealing_model_seed(SMALL.seed, k) for k in range(1, 6)]


def test_feature_dims_and_bag_sizes_of_the_suite_are_as_documented():
    params = [e.params for e in BENCHMARKS.values() if e.params is not None]
    assert {p.feature_dim for p in params} == {64, 384, 1024}
    assert {p.n_diagnoses for p in params} >= {2, 8}
    assert min(p.tumour_share[0] for p in params) <= 0.02 and max(p.tumour_share[1] for p in params) >= 0.7
    assert max(p.n_patches[1] for p in params) == 20000 and min(p.n_patches[0] for p in params) == 100
    assert {"demo-slides", "demo-feature-bags"} <= set(BENCHMARKS)
    assert QUICK_BENCHMARK.params.n_slides < 50


def _pooled(data, labels, split):
    rows = [(sid, v) for sid, v in labels.items() if v["split"] == split]
    feats = [torch.load(data.dataset_dir / f"{sid}.pt", weights_only=True) for sid, _ in rows]
    x = np.stack([torch.cat([f.mean(0), f.amax(0)]).numpy() for f in feats])
    return x, np.asarray([v["diagnosis"] for _, v in rows])


def test_bags_carry_the_diagnosis_and_shuffled_labels_do_not(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    params = BENCHMARKS["six-dx"].params.replace(n_patches=(100, 400), n_train=120, n_test=60)
    data = make_benchmark_dataset(params, tmp_path)
    labels = read_labels(data.labels_file)
    x_train, y_train = _pooled(data, labels, "train")
    x_test, y_test = _pooled(data, labels, "test")

    def accuracy(y):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)).fit(x_train, y)
        return float((model.predict(x_test) == y_test).mean())

    chance = 1 / params.n_diagnoses
    assert accuracy(y_train) >= 0.7 > 3 * chance
    shuffled = [accuracy(np.random.default_rng(s).permutation(y_train)) for s in range(3)]
    assert np.mean(shuffled) < chance + 0.15
