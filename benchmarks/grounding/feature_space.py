"""The prototype vectors a benchmark's patches are drawn around.

Patch families (each a vector of RMS about 1 per dimension before ``scale``):

- background: glass/background, two stroma prototypes, immune cells, fat, necrosis (shared by every slide);
- tumour: per diagnosis ``prototypes_per_class`` prototypes = a direction shared by all tumours
  + ``class_separation`` x the diagnosis's own direction + a smaller per-prototype direction;
- ``high_grade``: a direction (pleomorphism, mitoses) added with ``grade_strength`` to high-grade tumour
  patches of every diagnosis;
- margin: ``tumour_at_ink`` (ink + tumour) for positive margins, ``ink_on_benign`` (ink + stroma) otherwise;
- vessels: ``tumour_emboli`` (vessel + tumour) for lymphovascular invasion, ``benign_vessel`` otherwise.

So a margin or LVI call needs the *conjunction* of two directions in one patch, as on real slides, and the
tumour-like families share the tumour direction, so counting "tumour-ish" patches does not tell them apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .params import BenchmarkParams

__all__ = ["BACKGROUND_FAMILIES", "FeatureSpace", "make_feature_space"]

#: Non-tumour families present in every slide, in Dirichlet-random proportions.
BACKGROUND_FAMILIES: tuple[str, ...] = ("background", "stroma_a", "stroma_b", "immune", "fat", "necrosis")

_PART_WEIGHT = 0.5  # the weight of the second direction in a conjunction family (ink + tumour ...)
_PROTOTYPE_SPREAD = 0.35  # per-prototype direction relative to the tumour direction


@dataclass(frozen=True)
class FeatureSpace:
    """Prototype vectors of one benchmark (all ``float64``, RMS about 1 per dimension).

    Attributes:
        background: ``[B, D]``, one row per :data:`BACKGROUND_FAMILIES`.
        tumour: ``[k, P, D]``: P prototypes of each of the k diagnoses.
        high_grade: ``[D]`` offset of high-grade tumour patches (already times ``grade_strength``).
        tumour_at_ink, ink_on_benign, tumour_emboli, benign_vessel: ``[D]`` each.
    """

    background: np.ndarray
    tumour: np.ndarray
    high_grade: np.ndarray
    tumour_at_ink: np.ndarray
    ink_on_benign: np.ndarray
    tumour_emboli: np.ndarray
    benign_vessel: np.ndarray

    @property
    def feature_dim(self) -> int:
        return int(self.background.shape[1])


def _directions(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """``[n, dim]`` unit vectors: orthonormal when ``dim >= n``, else independent random directions."""
    raw = rng.standard_normal((dim, n))
    if dim >= n:
        return np.linalg.qr(raw)[0].T
    return (raw / np.linalg.norm(raw, axis=0, keepdims=True)).T


def _unit_rms(vector: np.ndarray) -> np.ndarray:
    """``vector`` scaled to RMS 1 per dimension (norm sqrt(D))."""
    return vector * (math.sqrt(vector.shape[-1]) / np.linalg.norm(vector, axis=-1, keepdims=True))


def make_feature_space(params: BenchmarkParams) -> FeatureSpace:
    """The seeded prototypes of ``params`` (same seed and sizes -> same vectors on every platform)."""
    k, per_class, dim = params.n_diagnoses, params.prototypes_per_class, params.feature_dim
    names = [*BACKGROUND_FAMILIES, "tissue", "tumour", "high_grade", "ink", "vessel", "endothelium"]
    names += [f"class_{c}" for c in range(k)] + [f"proto_{c}_{p}" for c in range(k) for p in range(per_class)]
    rng = np.random.default_rng(np.random.SeedSequence([params.seed, 0x6E0D]))
    direction = dict(zip(names, _directions(len(names), dim, rng)))

    tissue = direction["tissue"]  # every tissue (not glass) shares it, as real encoder features do
    background = np.stack(
        [_unit_rms(direction[name] + (0.0 if name == "background" else _PART_WEIGHT) * tissue)
         for name in BACKGROUND_FAMILIES]
    )
    tumour = np.empty((k, per_class, dim))
    for c in range(k):
        for p in range(per_class):
            vector = (direction["tumour"] + params.class_separation * direction[f"class_{c}"]
                      + _PROTOTYPE_SPREAD * direction[f"proto_{c}_{p}"] + _PART_WEIGHT * tissue)
            tumour[c, p] = _unit_rms(vector)
    stroma = direction["stroma_a"]
    return FeatureSpace(
        background=background,
        tumour=tumour,
        high_grade=params.grade_strength * math.sqrt(dim) * direction["high_grade"],
        tumour_at_ink=_unit_rms(direction["ink"] + _PART_WEIGHT * direction["tumour"] + _PART_WEIGHT * tissue),
        ink_on_benign=_unit_rms(direction["ink"] + _PART_WEIGHT * stroma + _PART_WEIGHT * tissue),
        tumour_emboli=_unit_rms(direction["vessel"] + _PART_WEIGHT * direction["tumour"] + _PART_WEIGHT * tissue),
        benign_vessel=_unit_rms(direction["vessel"] + _PART_WEIGHT * direction["endothelium"]
                                + _PART_WEIGHT * tissue),
    )
