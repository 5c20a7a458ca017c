"""The parameters of one synthetic grounding benchmark (one frozen dataclass; the registry names them)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .findings import DIAGNOSIS_ORDER

__all__ = ["GENERATOR_VERSION", "REPORT_STYLES", "BenchmarkParams"]

#: Bump when the generator's output changes for the same parameters, so cached datasets are rebuilt.
GENERATOR_VERSION = 3

#: Report layouts :mod:`benchmarks.grounding.report_writer` knows.
REPORT_STYLES: tuple[str, ...] = ("numbered", "synoptic", "free")


@dataclass(frozen=True)
class BenchmarkParams:
    """Everything that decides a benchmark's files (the same parameters give the same bytes).

    Sizes:
        n_train, n_val, n_test: slides per split.
        n_patches: (low, high) patches per bag N; drawn log-uniformly, so wide ranges are not dominated by
            the large bags.
        feature_dim: D of the ``[N, D]`` feature tensors.

    Diagnoses:
        n_diagnoses: k, the k names of :data:`~benchmarks.grounding.findings.DIAGNOSIS_ORDER` from
            ``first_diagnosis`` on (cyclically), so benchmarks can use different organs.
        first_diagnosis: index of the first of them.
        imbalance: ratio of the most to the least frequent diagnosis (1 = balanced; classes in between
            decay geometrically).
        prototypes_per_class: tumour-patch prototypes per diagnosis (mixed per slide by Dirichlet weights).
        class_separation: length of each diagnosis's own direction relative to the shared tumour direction;
            small values make the diagnoses' patches alike.

    Slide content (shares are of all patches of a bag):
        tumour_share: (low, high) share of tumour patches (2-5 % is a needle in a haystack).
        grade_high_share: per grade 1, 2, 3, the (low, high) share of high-grade patches among the tumour's.
        grade_strength: length of the high-grade direction added to a high-grade patch.
        margin_share: (low, high) share of margin patches ("tumour at ink" when the margin is positive,
            "ink on benign tissue" when negative).
        lvi_share: (low, high) share of vessel patches (tumour emboli when LVI is present, empty vessels when
            absent); at least 2 patches.
        p_margin_positive, p_lvi, p_nodes_positive: prevalence of a positive margin, of LVI and of positive
            lymph nodes (the last is independent of the slide).
        grade_probs: prevalence of grades 1, 2, 3.

    Noise and shifts:
        noise_std: per-dimension Gaussian noise of each patch (prototypes have RMS 1 per dimension).
        slide_shift_std: per-dimension std of a slide-wide offset (site/scanner-like).
        slide_scale_std: std of the log of a slide-wide per-dimension scale (stain-like).

    Reports:
        report_styles: layouts drawn per report (``numbered``, ``synoptic``, ``free``).
        p_comment: chance of each of up to two sentences the slide cannot tell (comments, tumour size).

    seed: one seed for the feature space, the slides, the reports and the shuffled control.
    """

    n_train: int = 160
    n_val: int = 20
    n_test: int = 40
    n_patches: tuple[int, int] = (100, 1200)
    feature_dim: int = 64
    n_diagnoses: int = 6
    first_diagnosis: int = 0
    imbalance: float = 1.0
    prototypes_per_class: int = 3
    class_separation: float = 0.6
    tumour_share: tuple[float, float] = (0.1, 0.7)
    grade_high_share: tuple[tuple[float, float], ...] = ((0.0, 0.15), (0.35, 0.55), (0.75, 0.95))
    grade_strength: float = 0.8
    margin_share: tuple[float, float] = (0.02, 0.06)
    lvi_share: tuple[float, float] = (0.005, 0.02)
    p_margin_positive: float = 0.35
    p_lvi: float = 0.35
    p_nodes_positive: float = 0.4
    grade_probs: tuple[float, float, float] = (0.25, 0.45, 0.30)
    noise_std: float = 1.0
    slide_shift_std: float = 0.2
    slide_scale_std: float = 0.0
    report_styles: tuple[str, ...] = REPORT_STYLES
    p_comment: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if min(self.n_train, self.n_val, self.n_test) < 1:
            problems.append(f"every split needs >= 1 slide, got {self.n_train}/{self.n_val}/{self.n_test}")
        low, high = self.n_patches
        if not 20 <= low <= high:
            problems.append(f"n_patches must be (low, high) with 20 <= low <= high, got {self.n_patches}")
        if not 2 <= self.n_diagnoses <= len(DIAGNOSIS_ORDER):
            problems.append(f"n_diagnoses must be 2..{len(DIAGNOSIS_ORDER)}, got {self.n_diagnoses}")
        if not 0 <= self.first_diagnosis < len(DIAGNOSIS_ORDER):
            problems.append(f"first_diagnosis must be 0..{len(DIAGNOSIS_ORDER) - 1}, got {self.first_diagnosis}")
        if self.feature_dim < 8:
            problems.append(f"feature_dim must be >= 8, got {self.feature_dim}")
        if self.imbalance < 1:
            problems.append(f"imbalance must be >= 1, got {self.imbalance}")
        for name in ("tumour_share", "margin_share", "lvi_share"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi < 1:
                problems.append(f"{name} must be (low, high) with 0 < low <= high < 1, got {(lo, hi)}")
        if self.tumour_share[1] + self.margin_share[1] + self.lvi_share[1] >= 0.95:
            problems.append("tumour_share + margin_share + lvi_share must leave room for background patches")
        if len(self.grade_high_share) != 3 or len(self.grade_probs) != 3:
            problems.append("grade_high_share and grade_probs need one entry per grade 1, 2, 3")
        if unknown := set(self.report_styles) - set(REPORT_STYLES):
            problems.append(f"unknown report_styles {sorted(unknown)}; expected some of {REPORT_STYLES}")
        if not self.report_styles:
            problems.append("report_styles must not be empty")
        if problems:
            raise ValueError("BenchmarkParams: " + "; ".join(problems))

    @property
    def diagnoses(self) -> tuple[str, ...]:
        """The benchmark's diagnosis names, in class order."""
        names = DIAGNOSIS_ORDER[self.first_diagnosis:] + DIAGNOSIS_ORDER[: self.first_diagnosis]
        return names[: self.n_diagnoses]

    @property
    def n_slides(self) -> int:
        return self.n_train + self.n_val + self.n_test

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters plus ``generator_version`` (tuples become lists)."""
        return {"generator_version": GENERATOR_VERSION, **json.loads(json.dumps(dataclasses.asdict(self)))}

    def key(self) -> str:
        """A short hash of :meth:`to_dict`: the cache key of the benchmark's files."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]

    def replace(self, **changes: Any) -> BenchmarkParams:
        """A copy with ``changes`` (e.g. smaller splits for a quick run)."""
        return dataclasses.replace(self, **changes)
