"""SYNTHETIC label tables for the transfer bundles, built on the report bundle's demo slides.

The slides come from :mod:`scripts.demo.sources`: by default the report bundle's slide demo (synthetic
pyramidal slides of four diagnoses, ``builtin-small`` features), reused from ``report_demo_dir`` when it was built
with the same parameters, else built in ``out_dir``; ``source: feature_bags`` takes the generated feature bags
instead. Their annotation items carry ``diagnosis`` and ``tumour_share`` (the lesion's share of the tissue inside
the extracted patches). From them (every split pooled: the transfer bundles make their own folds):

- cases: a share ``pair_fraction`` of the slides is paired, two slides of the same diagnosis per case; the
  other slides are cases of their own;
- subtyping (``subtyping.csv``): ``slide_id,label,case_id`` with label = the diagnosis;
- survival (``survival.csv``): ``slide_id,case_id,time,event`` (+ ``diagnosis``, ``tumour_share`` for reading).
  A case's event time is exponential with hazard ``BASE_HAZARD[diagnosis] * exp(SHARE_EFFECT * (share - 0.45))``
  (per month; ``share`` = the mean tumour share of its slides, which matters for the malignant classes only);
  censoring times are uniform on ``[0, c]`` with ``c`` set so that ``censor_fraction`` of the cases are
  censored. Times are in months, rounded to 0.1.

The tables are written to ``out_dir``. Everything is seeded and written atomically; the same arguments give the
same files. Not patient data.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from scripts.atomic_io import atomic_write_csv

from .sources import DemoSlides, load_demo_slides, split_builder_options

__all__ = ["BASE_HAZARD", "SHARE_EFFECT", "DemoTable", "make_subtyping_demo", "make_survival_demo"]


#: Monthly hazard of each demo diagnosis (a malignant lesion's share of the tissue scales it, see SHARE_EFFECT).
BASE_HAZARD: dict[str, float] = {"normal": 0.002, "adenocarcinoma": 0.012, "squamous cell carcinoma": 0.05,
                                 "lymphoma": 0.25}
#: Log-hazard per unit of tumour share (malignant diagnoses).
SHARE_EFFECT = 4.0
_NEUTRAL_SHARE = 0.45
#: Folder (beside ``out_dir``) of the generated feature bags with ``source: feature_bags``.
BAGS_FOLDER = "demo_bags"


@dataclasses.dataclass(frozen=True)
class DemoTable:
    """A demo label table on disk.

    Attributes:
        csv_file: the label CSV.
        dataset_dir: the feature files.
        num_slides, num_cases: sizes.
        censored_fraction: share of censored cases (survival), else None.
        description: where the slides come from (for the log).
    """

    csv_file: Path
    dataset_dir: Path
    num_slides: int
    num_cases: int
    censored_fraction: float | None = None
    description: str = ""


def _demo_slides(out_dir: Path, options: dict[str, Any] | None, own_keys: set[str],
                 report_demo_dir: str | os.PathLike[str] | None) -> tuple[DemoSlides, dict[str, Any]]:
    """The demo slides that ``options`` name, and the table's own options (``own_keys``) among them."""
    source, arguments, own = split_builder_options(options)
    unknown = set(own) - own_keys
    if unknown:
        raise ValueError(f"unknown demo option(s) {sorted(unknown)} for source {source!r}: expected "
                         f"{sorted(own_keys)} or arguments of the {source} demo builder")
    own_dir = out_dir if source == "slides" else out_dir.parent / BAGS_FOLDER
    return load_demo_slides(source, arguments, own_dir, report_demo_dir), own


def _assign_cases(slides: list[dict[str, Any]], pair_fraction: float, rng: np.random.Generator) -> list[str]:
    """Case id per slide: pairs of same-diagnosis slides for ``pair_fraction`` of the slides, singles otherwise."""
    if not 0.0 <= pair_fraction <= 1.0:
        raise ValueError(f"pair_fraction must be in [0, 1], got {pair_fraction}")
    groups: list[list[int]] = []
    for diagnosis in sorted({s["diagnosis"] for s in slides}):
        members = [i for i, s in enumerate(slides) if s["diagnosis"] == diagnosis]
        members = [members[j] for j in rng.permutation(len(members))]
        n_pairs = int(round(pair_fraction * len(members) / 2))
        groups += [members[2 * j : 2 * j + 2] for j in range(n_pairs)]
        groups += [[i] for i in members[2 * n_pairs :]]
    case_of = [""] * len(slides)
    for number, g in enumerate(rng.permutation(len(groups))):
        for i in groups[g]:
            case_of[i] = f"DEMO-CASE-{number:04d}"
    return case_of


def make_subtyping_demo(out_dir: str | os.PathLike[str], options: dict[str, Any] | None = None,
                        report_demo_dir: str | os.PathLike[str] | None = None) -> DemoTable:
    """Write (or refresh) ``<out_dir>/subtyping.csv`` over the report bundle's demo slides.

    Args:
        out_dir: folder of the table (and of the slide demo when it is built here).
        options: ``source`` (``"slides"``, default, or ``"feature_bags"``), the demo builder's arguments
            (``n_train``, ``slide_size``... or ``n_patches``, ``feature_dim``...), ``pair_fraction`` (default 0.3),
            ``table_seed`` (default 0).
        report_demo_dir: the report bundle's slide demo, reused when it has the same parameters.
    """
    out_dir = Path(out_dir)
    demo, own = _demo_slides(out_dir, options, {"pair_fraction", "table_seed"}, report_demo_dir)
    slides = demo.items
    rng = np.random.default_rng(np.random.SeedSequence([int(own.get("table_seed", 0)), 1]))
    cases = _assign_cases(slides, float(own.get("pair_fraction", 0.3)), rng)
    rows = [{"slide_id": s["id"], "label": s["diagnosis"], "case_id": c} for s, c in zip(slides, cases)]
    csv_file = atomic_write_csv(out_dir / "subtyping.csv", rows, ["slide_id", "label", "case_id"])
    return DemoTable(csv_file, demo.dataset_dir, len(rows), len(set(cases)), description=demo.description)


def _case_hazard(diagnosis: str, share: float) -> float:
    effect = 0.0 if diagnosis == "normal" else SHARE_EFFECT * (share - _NEUTRAL_SHARE)
    return BASE_HAZARD[diagnosis] * float(np.exp(effect))


def _censoring_scale(times: np.ndarray, uniforms: np.ndarray, fraction: float) -> float:
    """``c`` such that ``uniforms * c < times`` holds for about ``fraction`` of the cases (bisection)."""
    low, high = 1e-6, float(times.max() / max(uniforms.min(), 1e-9)) + 1.0
    for _ in range(100):
        middle = 0.5 * (low + high)
        if np.mean(uniforms * middle < times) > fraction:
            low = middle
        else:
            high = middle
    return high


def make_survival_demo(out_dir: str | os.PathLike[str], options: dict[str, Any] | None = None,
                       report_demo_dir: str | os.PathLike[str] | None = None) -> DemoTable:
    """Write (or refresh) ``<out_dir>/survival.csv`` over the report bundle's demo slides.

    Args:
        out_dir: folder of the table (and of the slide demo when it is built here).
        options: ``source`` and the builder's arguments (as :func:`make_subtyping_demo`), ``pair_fraction`` (0.3),
            ``censor_fraction`` (0.3), ``table_seed`` (0).
        report_demo_dir: the report bundle's slide demo, reused when it has the same parameters.
    """
    out_dir = Path(out_dir)
    demo, own = _demo_slides(out_dir, options, {"pair_fraction", "censor_fraction", "table_seed"}, report_demo_dir)
    slides = demo.items
    censor_fraction = float(own.get("censor_fraction", 0.3))
    if not 0.0 <= censor_fraction < 1.0:
        raise ValueError(f"censor_fraction must be in [0, 1), got {censor_fraction}")
    seed = int(own.get("table_seed", 0))
    cases = _assign_cases(slides, float(own.get("pair_fraction", 0.3)),
                          np.random.default_rng(np.random.SeedSequence([seed, 1])))
    case_ids = sorted(set(cases))
    members = {c: [i for i, ci in enumerate(cases) if ci == c] for c in case_ids}
    hazards = np.array([_case_hazard(slides[members[c][0]]["diagnosis"],
                                     float(np.mean([slides[i]["tumour_share"] for i in members[c]])))
                        for c in case_ids])
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    event_times = rng.exponential(1.0 / hazards)
    uniforms = rng.uniform(0.0, 1.0, size=len(case_ids))
    scale = _censoring_scale(event_times, uniforms, censor_fraction) if censor_fraction > 0 else np.inf
    censor_times = uniforms * scale
    observed = event_times <= censor_times
    times = np.maximum(np.round(np.where(observed, event_times, censor_times), 1), 0.1)
    outcome = {c: (float(t), int(e)) for c, t, e in zip(case_ids, times, observed)}
    rows = [{"slide_id": s["id"], "case_id": c, "time": f"{outcome[c][0]:.1f}", "event": outcome[c][1],
             "diagnosis": s["diagnosis"], "tumour_share": f"{float(s['tumour_share']):.3f}"}
            for s, c in zip(slides, cases)]
    csv_file = atomic_write_csv(out_dir / "survival.csv", rows,
                              ["slide_id", "case_id", "time", "event", "diagnosis", "tumour_share"])
    return DemoTable(csv_file, demo.dataset_dir, len(rows), len(case_ids), float(1.0 - observed.mean()),
                     demo.description)
