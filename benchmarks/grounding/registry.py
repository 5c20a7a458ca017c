"""The named benchmarks of the grounding suite, each with its fixed seed.

Varied on purpose (none tuned to a seed or to the report model): 2-8 diagnoses from several organs,
tumour share from 2-5 % (a needle in a haystack) to 70 %, D = 64 / 384 / 1024, bags of 100 to 20,000
patches, noise and slide-wide shifts, class imbalance, report layouts. Plus the two embedded demos, run
through the same bundle command with no dataset given.

Sizes: most benchmarks have 200-220 bags of 100-1,500 patches; ``large-bags`` has 60 bags of 5,000-20,000.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .params import BenchmarkParams

__all__ = ["BENCHMARKS", "DEFAULT_SUITE", "QUICK_BENCHMARK", "BenchmarkEntry", "get_benchmark"]


@dataclass(frozen=True)
class BenchmarkEntry:
    """One row group of the table.

    Attributes:
        name: the benchmark's name (``--only NAME``).
        description: one line for the table's legend.
        params: the generator's parameters, or None for a demo.
        demo: for a demo, the bundle's ``demo`` overrides (``{"source": "feature_bags"}``); else None.
    """

    name: str
    description: str
    params: BenchmarkParams | None = None
    demo: dict[str, Any] | None = field(default=None)

    @property
    def is_demo(self) -> bool:
        return self.params is None


_ENTRIES = (
    BenchmarkEntry(
        "six-dx", "6 diagnoses (breast, kidney, lung), tumour 10-70 %, D 64, 100-1,200 patches (the issue's setting)",
        BenchmarkParams(n_diagnoses=6, tumour_share=(0.1, 0.7), n_patches=(100, 1200), feature_dim=64, seed=11),
    ),
    BenchmarkEntry(
        "renal-two", "2 diagnoses (clear cell vs papillary RCC), tumour 20-70 %, LVI 2-5 %, D 384, free-text only",
        BenchmarkParams(n_diagnoses=2, first_diagnosis=2, tumour_share=(0.2, 0.7), n_patches=(100, 800),
                        feature_dim=384, report_styles=("free",), class_separation=0.5, lvi_share=(0.02, 0.05),
                        seed=7),
    ),
    BenchmarkEntry(
        "needle", "4 diagnoses, tumour 2-5 % of 200-1,500 patches (needle in a haystack), D 384",
        BenchmarkParams(n_diagnoses=4, tumour_share=(0.02, 0.05), n_patches=(200, 1500), feature_dim=384,
                        class_separation=0.8, seed=23),
    ),
    BenchmarkEntry(
        "eight-dx-wide", "8 diagnoses, imbalance 4:1, tumour 10-50 %, D 1024, 100-600 patches",
        BenchmarkParams(n_diagnoses=8, imbalance=4.0, tumour_share=(0.1, 0.5), n_patches=(100, 600),
                        feature_dim=1024, n_train=180, n_val=24, n_test=48, seed=31),
    ),
    BenchmarkEntry(
        "site-shift", "5 diagnoses, strong slide-wide offset/scale (site, stain) and noise 1.5, D 64",
        BenchmarkParams(n_diagnoses=5, first_diagnosis=3, tumour_share=(0.15, 0.6), noise_std=1.5,
                        slide_shift_std=1.0, slide_scale_std=0.3, feature_dim=64, seed=47),
    ),
    BenchmarkEntry(
        "imbalanced", "3 diagnoses, imbalance 6:1, tumour 5-30 %, D 384, numbered and synoptic reports",
        BenchmarkParams(n_diagnoses=3, first_diagnosis=5, imbalance=6.0, tumour_share=(0.05, 0.3),
                        n_patches=(100, 1000), feature_dim=384, report_styles=("numbered", "synoptic"),
                        lvi_share=(0.01, 0.04), seed=53),
    ),
    BenchmarkEntry(
        "large-bags", "3 diagnoses, 5,000-20,000 patches per bag, tumour 5-20 %, D 64, 60 bags",
        BenchmarkParams(n_diagnoses=3, n_train=40, n_val=8, n_test=12, n_patches=(5000, 20000),
                        tumour_share=(0.05, 0.2), feature_dim=64, seed=61),
    ),
    BenchmarkEntry("demo-slides", "the README's demo: synthetic slides -> builtin-small features (configs default)",
                   demo={"source": "slides"}),
    BenchmarkEntry("demo-feature-bags", "the older feature-bag demo (demo#source feature_bags)",
                   demo={"source": "feature_bags"}),
)

#: name -> entry, in table order.
BENCHMARKS: MappingProxyType[str, BenchmarkEntry] = MappingProxyType({e.name: e for e in _ENTRIES})

#: Names run when none is given.
DEFAULT_SUITE: tuple[str, ...] = tuple(BENCHMARKS)

#: The ``--quick`` benchmark: tiny bags and splits, for tests (minutes matter there, not the numbers).
QUICK_BENCHMARK = BenchmarkEntry(
    "quick", "3 diagnoses, 39 tiny bags of 40-80 patches, D 16 (smoke test)",
    BenchmarkParams(n_diagnoses=3, n_train=24, n_val=6, n_test=9, n_patches=(40, 80), feature_dim=16,
                    tumour_share=(0.3, 0.6), margin_share=(0.05, 0.1), lvi_share=(0.03, 0.06), seed=3),
)


def get_benchmark(name: str) -> BenchmarkEntry:
    """The entry called ``name`` (``quick`` included)."""
    if name == QUICK_BENCHMARK.name:
        return QUICK_BENCHMARK
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join([*BENCHMARKS, QUICK_BENCHMARK.name])}")
    return BENCHMARKS[name]
