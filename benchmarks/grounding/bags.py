"""One synthetic slide: its true findings and its bag of patch features.

How a bag is drawn (see :mod:`benchmarks.grounding.feature_space` for the families):

1. ``N`` patches, log-uniform in ``params.n_patches``;
2. tumour patches: share uniform in ``params.tumour_share`` (at least 3 patches), spread over the diagnosis's
   prototypes by Dirichlet weights; a share of them, set by the grade (``params.grade_high_share``), is
   high grade (prototype + the high-grade offset);
3. margin patches (share ``params.margin_share``): tumour-at-ink if the margin is positive, else ink on
   benign tissue; vessel patches (share ``params.lvi_share``, at least 2): tumour emboli with LVI, else
   empty vessels;
4. the rest: background families in Dirichlet proportions;
5. every patch gets Gaussian noise, then the whole slide a per-dimension scale and offset (stain/site);
6. patches are shuffled.

The lymph-node status and counts are drawn but leave no trace in the bag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .feature_space import BACKGROUND_FAMILIES, FeatureSpace
from .findings import FINDING_VALUES
from .params import BenchmarkParams

__all__ = ["SlideTruth", "sample_bag", "sample_truth"]


@dataclass(frozen=True)
class SlideTruth:
    """The true findings of one slide (values as in ``labels.csv``).

    Attributes:
        diagnosis: a diagnosis name.
        grade: ``"1"``, ``"2"`` or ``"3"``.
        margin: ``"positive"`` / ``"negative"``.
        lymphovascular_invasion: ``"present"`` / ``"absent"``.
        lymph_nodes: ``"positive"`` / ``"negative"``.
        nodes_positive, nodes_examined: the counts the report states (``nodes_positive > 0`` iff positive).
        tumour_size_mm: the tumour size the report may state (not on the slide either).
    """

    diagnosis: str
    grade: str
    margin: str
    lymphovascular_invasion: str
    lymph_nodes: str
    nodes_positive: int
    nodes_examined: int
    tumour_size_mm: int

    def findings(self) -> dict[str, str]:
        """``{finding: value}`` of the five findings."""
        return {
            "diagnosis": self.diagnosis,
            "grade": self.grade,
            "margin": self.margin,
            "lymphovascular_invasion": self.lymphovascular_invasion,
            "lymph_nodes": self.lymph_nodes,
        }


def sample_truth(params: BenchmarkParams, diagnosis: str, rng: np.random.Generator) -> SlideTruth:
    """Draw the findings of a slide of ``diagnosis`` (grade, margin, LVI, nodes by the prevalences)."""
    grade = FINDING_VALUES["grade"][int(rng.choice(3, p=np.asarray(params.grade_probs) / sum(params.grade_probs)))]
    margin = "positive" if rng.random() < params.p_margin_positive else "negative"
    lvi = "present" if rng.random() < params.p_lvi else "absent"
    examined = int(rng.integers(3, 26))
    positive_nodes = int(rng.integers(1, min(examined, 8) + 1)) if rng.random() < params.p_nodes_positive else 0
    return SlideTruth(
        diagnosis=diagnosis,
        grade=grade,
        margin=margin,
        lymphovascular_invasion=lvi,
        lymph_nodes="positive" if positive_nodes else "negative",
        nodes_positive=positive_nodes,
        nodes_examined=examined,
        tumour_size_mm=int(rng.integers(4, 60)),
    )


def _count(share_range: tuple[float, float], n: int, minimum: int, rng: np.random.Generator) -> int:
    return max(minimum, round(float(rng.uniform(*share_range)) * n))


def sample_bag(
    params: BenchmarkParams, space: FeatureSpace, truth: SlideTruth, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """Draw the bag of one slide.

    Returns:
        ``features [N, D]`` float32 and the realised tumour share (tumour patches / N).
    """
    low, high = params.n_patches
    n = int(round(math.exp(rng.uniform(math.log(low), math.log(high + 1) - 1e-9))))
    n = min(max(n, low), high)
    class_index = params.diagnoses.index(truth.diagnosis)
    n_tumour = _count(params.tumour_share, n, 3, rng)
    n_margin = _count(params.margin_share, n, 1, rng)
    n_vessel = _count(params.lvi_share, n, 2, rng)
    n_background = n - n_tumour - n_margin - n_vessel
    if n_background < 1:
        raise ValueError(f"a bag of {n} patches has no room for background; raise n_patches[0] ({low})")

    per_class = params.prototypes_per_class
    which = rng.choice(per_class, size=n_tumour, p=rng.dirichlet(np.full(per_class, 2.0)))
    tumour = space.tumour[class_index][which]
    lo, hi = params.grade_high_share[int(truth.grade) - 1]
    n_high = round(float(rng.uniform(lo, hi)) * n_tumour)
    tumour[rng.permutation(n_tumour)[:n_high]] += space.high_grade

    margin_vector = space.tumour_at_ink if truth.margin == "positive" else space.ink_on_benign
    vessel_vector = space.tumour_emboli if truth.lymphovascular_invasion == "present" else space.benign_vessel
    counts = rng.multinomial(n_background, rng.dirichlet(np.ones(len(BACKGROUND_FAMILIES))))
    background = np.repeat(space.background, counts, axis=0)
    centres = np.concatenate(
        [tumour, np.repeat(margin_vector[None], n_margin, 0), np.repeat(vessel_vector[None], n_vessel, 0), background]
    )
    dim = space.feature_dim
    patches = centres + params.noise_std * rng.standard_normal((n, dim))
    scale = np.exp(params.slide_scale_std * rng.standard_normal(dim))
    offset = params.slide_shift_std * rng.standard_normal(dim)
    patches = patches * scale + offset
    return patches[rng.permutation(n)].astype(np.float32), n_tumour / n
