"""Synthetic grounding benchmarks for the report bundle: feature bags whose reports state findings that the
bags do (diagnosis, grade, margin, lymphovascular invasion) or do not (lymph nodes, comments) determine.

Modules, one job each: :mod:`.findings` (what reports state), :mod:`.params` (one benchmark's parameters),
:mod:`.feature_space` (prototypes), :mod:`.bags` (one slide), :mod:`.report_writer` (report text),
:mod:`.control` (shuffled pairs), :mod:`.dataset` (files on disk), :mod:`.registry` (the named suite).
Everything here is SYNTHETIC: no patient data.
"""

from .bags import SlideTruth, sample_bag, sample_truth
from .dataset import BenchmarkDataset, make_benchmark_dataset, read_labels
from .feature_space import FeatureSpace, make_feature_space
from .findings import DIAGNOSES, DIAGNOSIS_ORDER, FINDINGS, SLIDE_FINDINGS, finding_values
from .params import BenchmarkParams
from .registry import BENCHMARKS, DEFAULT_SUITE, QUICK_BENCHMARK, BenchmarkEntry, get_benchmark
from .report_writer import write_report

__all__ = [
    "BENCHMARKS",
    "DEFAULT_SUITE",
    "DIAGNOSES",
    "DIAGNOSIS_ORDER",
    "FINDINGS",
    "QUICK_BENCHMARK",
    "SLIDE_FINDINGS",
    "BenchmarkDataset",
    "BenchmarkEntry",
    "BenchmarkParams",
    "FeatureSpace",
    "SlideTruth",
    "finding_values",
    "get_benchmark",
    "make_benchmark_dataset",
    "make_feature_space",
    "read_labels",
    "sample_bag",
    "sample_truth",
    "write_report",
]
