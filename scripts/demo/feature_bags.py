"""The embedded demo dataset: SYNTHETIC patch-feature bags paired with reports tied to their content.

No patient data: every bag is drawn from a few seeded *tissue prototypes* in feature space, and every
report is written from what the bag holds (:mod:`scripts.demo.reports`). It lets the report bundle train
and evaluate end to end on a laptop in minutes, and it comes with a control: ``shuffle_pairs=True``
breaks the bag/report pairing, so a model trained on it can learn nothing from the bags.

How one bag is drawn (diagnosis ``d``, feature size ``D``):

- ``N`` patches, ``N`` uniform in ``n_patches`` (default 60..400);
- a lesion share ``s`` uniform in ``tumour_share_range`` (default 0.1..0.8): ``round(s * N)`` patches come
  from ``d``'s prototype, the rest from the non-lesion components (background, stroma, necrosis,
  lymphocytes) in Dirichlet-random proportions;
- each patch is its component's prototype plus Gaussian noise (``noise_std`` per dimension), plus one
  slide-wide offset (``slide_shift_std``, a scanner/stain batch effect);
- patch order is random; ``coords [N, 2]`` are a blob of grid cells (step 512 px, scan order, like CLAM).

Prototypes have RMS 1 per dimension; related tissues are closer (adenocarcinoma and squamous cell
carcinoma share a "carcinoma" direction, lymphoma leans towards lymphocytes).

On disk (``out_dir``)::

    annotation.json        HistGen layout {"train": [...], "val": [...], "test": [...]} + "synthetic": true
    features/<id>.pt       tensor [N, D] float32 (HistGen's format), or <id>.h5 with feats/coords
    demo_manifest.json     the parameters; a later call with the same parameters reuses the files

Example:
    >>> demo = make_demo_dataset("demo_data")  # doctest: +SKIP
    >>> demo.annotation_file, demo.dataset_dir, demo.counts  # doctest: +SKIP
    (PosixPath('demo_data/annotation.json'), PosixPath('demo_data/features'), {'train': 160, ...})

CLI: ``python -m scripts.demo.feature_bags --out_dir DIR [--shuffle_pairs]``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from scripts.atomic_io import atomic_write_bytes
from scripts.data.feature_files import write_feature_file_h5

from .reports import DEMO_KEY_PHRASES, make_report
from .tissue_classes import DIAGNOSIS_CLASSES

__all__ = [
    "ANNOTATION_NAME",
    "FEATURES_DIR_NAME",
    "FEATURE_COMPONENTS",
    "GENERATOR_VERSION",
    "MANIFEST_NAME",
    "DemoDataset",
    "SyntheticBag",
    "make_demo_dataset",
    "make_prototypes",
    "sample_bag",
]

logger = logging.getLogger(__name__)

#: Bump when the generator's output changes, so that old demo folders are rebuilt.
GENERATOR_VERSION = 2  # 2: the annotation declares its key phrases
MANIFEST_NAME = "demo_manifest.json"
ANNOTATION_NAME = "annotation.json"
FEATURES_DIR_NAME = "features"
SPLITS = ("train", "val", "test")

#: Non-lesion components present in every bag, then one lesion component per diagnosis.
BACKGROUND_COMPONENTS: tuple[str, ...] = ("background", "stroma", "necrosis", "lymphocytes")
FEATURE_COMPONENTS: tuple[str, ...] = (*BACKGROUND_COMPONENTS, *DIAGNOSIS_CLASSES)

#: component -> (other direction, weight): prototypes that lean towards another tissue.
_RELATED: dict[str, tuple[str, float]] = {
    "adenocarcinoma": ("_carcinoma", 0.5),
    "squamous cell carcinoma": ("_carcinoma", 0.5),
    "lymphoma": ("lymphocytes", 0.6),
}
_COMMON_WEIGHT = 0.5  # every non-background tissue shares one offset, as real encoder features do
_PATCH_STEP = 512  # level-0 pixels between patches (HistGen's CLAM setting)

FileFormat = Literal["pt", "h5"]


@dataclass
class SyntheticBag:
    """One synthetic slide.

    Attributes:
        feats: ``[N, D]`` float32 patch features, patches in random order.
        coords: ``[N, 2]`` int64 level-0 (x, y) of each patch, scan order.
        components: ``[N]`` int64 index into :data:`FEATURE_COMPONENTS` of each patch.
        diagnosis: the lesion class.
        tumour_share: realised share of lesion patches (``count / N``).
    """

    feats: np.ndarray
    coords: np.ndarray
    components: np.ndarray
    diagnosis: str
    tumour_share: float


@dataclass
class DemoDataset:
    """A demo dataset on disk.

    Attributes:
        out_dir: the folder holding everything.
        annotation_file: HistGen annotation JSON.
        dataset_dir: folder of ``<id>.pt`` / ``<id>.h5`` feature files.
        file_format: ``"pt"`` or ``"h5"``.
        feature_dim: D.
        counts: slides per split, e.g. ``{"train": 160, "val": 32, "test": 48}``.
        class_balance: split -> diagnosis -> number of bags of that class.
        shuffle_pairs: whether bags and reports were permuted (the control experiment).
        params: the generator parameters (as in the manifest).
        generated: True if this call wrote the files, False if it reused them.
    """

    out_dir: Path
    annotation_file: Path
    dataset_dir: Path
    file_format: str
    feature_dim: int
    counts: dict[str, int]
    class_balance: dict[str, dict[str, int]]
    shuffle_pairs: bool
    params: dict[str, Any] = field(default_factory=dict)
    generated: bool = True


# ---------------------------------------------------------------------------- feature space
def make_prototypes(feature_dim: int, seed: int = 0) -> np.ndarray:
    """Seeded prototype vectors of :data:`FEATURE_COMPONENTS`.

    Args:
        feature_dim: D (any D >= 1; orthogonal base directions when D > number of components).
        seed: prototypes of one seed are identical across calls and platforms (numpy PCG64).

    Returns:
        ``[C, D]`` float64, RMS about 1 per dimension, C = ``len(FEATURE_COMPONENTS)``.
    """
    if feature_dim < 1:
        raise ValueError(f"feature_dim must be >= 1, got {feature_dim}")
    names = (*FEATURE_COMPONENTS, "_carcinoma", "_common")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x9E3779B9]))
    raw = rng.standard_normal((feature_dim, len(names)))
    if feature_dim >= len(names):
        basis = np.linalg.qr(raw)[0].T  # [len(names), D] orthonormal rows
    else:
        basis = raw.T / np.linalg.norm(raw.T, axis=1, keepdims=True)
    direction = dict(zip(names, basis))
    prototypes = []
    for name in FEATURE_COMPONENTS:
        vector = direction[name].copy()
        if name in _RELATED:
            other, weight = _RELATED[name]
            vector = vector + weight * direction[other]
        vector /= np.linalg.norm(vector)
        if name != "background":
            vector = vector + _COMMON_WEIGHT * direction["_common"]
        prototypes.append(math.sqrt(feature_dim) * vector)
    return np.stack(prototypes)


def _grid_coords(n: int, rng: np.random.Generator) -> np.ndarray:
    """``[n, 2]`` int64 (x, y): an elliptic blob of grid cells in scan order (rows, then columns)."""
    aspect = rng.uniform(0.6, 1.6)
    width = max(1, math.ceil(math.sqrt(1.6 * n * aspect)))
    height = max(1, math.ceil(1.6 * n / width))
    ys, xs = np.mgrid[0:height, 0:width]
    dist = ((xs + 0.5) / width - 0.5) ** 2 + ((ys + 0.5) / height - 0.5) ** 2
    dist = dist + rng.uniform(0.0, 0.04, size=dist.shape)  # ragged tissue border
    chosen = np.sort(np.argsort(dist, axis=None, kind="stable")[:n])  # flat index order = scan order
    origin = rng.integers(2, 40, size=2)
    coords = np.stack([xs.ravel()[chosen] + origin[0], ys.ravel()[chosen] + origin[1]], axis=1)
    return (coords * _PATCH_STEP).astype(np.int64)


def sample_bag(
    diagnosis: str,
    prototypes: np.ndarray,
    rng: np.random.Generator,
    n_patches: tuple[int, int] = (60, 400),
    tumour_share_range: tuple[float, float] = (0.1, 0.8),
    noise_std: float = 1.0,
    slide_shift_std: float = 0.2,
) -> SyntheticBag:
    """Draw one bag of diagnosis ``diagnosis`` (see the module docstring for the recipe).

    Args:
        diagnosis: one of ``DIAGNOSIS_CLASSES``.
        prototypes: ``[C, D]`` from :func:`make_prototypes`.
        rng: the slide's generator.
        n_patches: inclusive (low, high) number of patches N.
        tumour_share_range: (low, high) of the lesion share before rounding to whole patches.
        noise_std: per-dimension std of each patch's Gaussian noise.
        slide_shift_std: per-dimension std of the slide-wide offset.

    Returns:
        A :class:`SyntheticBag`; at least one patch is lesion and at least one is not.
    """
    if diagnosis not in DIAGNOSIS_CLASSES:
        raise ValueError(f"unknown demo diagnosis {diagnosis!r}; expected one of {list(DIAGNOSIS_CLASSES)}")
    low, high = n_patches
    if not 2 <= low <= high:
        raise ValueError(f"n_patches must be (low, high) with 2 <= low <= high, got {n_patches}")
    n = int(rng.integers(low, high + 1))
    share = float(rng.uniform(*tumour_share_range))
    n_lesion = min(max(1, round(share * n)), n - 1)
    weights = rng.dirichlet(np.ones(len(BACKGROUND_COMPONENTS)))
    background_counts = rng.multinomial(n - n_lesion, weights)
    lesion_index = FEATURE_COMPONENTS.index(diagnosis)
    components = np.concatenate(
        [np.full(n_lesion, lesion_index), np.repeat(np.arange(len(BACKGROUND_COMPONENTS)), background_counts)]
    )
    components = rng.permutation(components).astype(np.int64)
    dim = prototypes.shape[1]
    shift = slide_shift_std * rng.standard_normal(dim)
    noise = noise_std * rng.standard_normal((n, dim))
    feats = (prototypes[components] + shift + noise).astype(np.float32)
    return SyntheticBag(feats, _grid_coords(n, rng), components, diagnosis, n_lesion / n)


# ---------------------------------------------------------------------------- writing
def _write_pt(path: Path, bag: SyntheticBag) -> None:
    buffer = io.BytesIO()  # saved through a buffer: the archive name, hence the bytes, do not depend on the path
    torch.save(torch.from_numpy(bag.feats), buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _write_h5(path: Path, bag: SyntheticBag, slide_id: str) -> None:
    attrs = {"slide_id": slide_id, "encoder": "synthetic-demo", "synthetic": True, "patch_size": _PATCH_STEP}
    write_feature_file_h5(path, bag.feats, bag.coords, attrs)


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=1) + "\n").encode("utf-8"))


# ---------------------------------------------------------------------------- the dataset
def _split_diagnoses(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` class names, balanced (counts differ by at most one), in random order."""
    k = len(DIAGNOSIS_CLASSES)
    first = rng.permutation(k)  # which classes get the extra slides when k does not divide n
    return [DIAGNOSIS_CLASSES[first[i % k]] for i in rng.permutation(n)]


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _reusable(out_dir: Path, manifest: dict[str, Any] | None, params: dict[str, Any]) -> bool:
    if not manifest or manifest.get("params") != params:
        return False
    dataset_dir = out_dir / FEATURES_DIR_NAME
    files = manifest.get("files", [])
    return (out_dir / ANNOTATION_NAME).is_file() and all((dataset_dir / name).is_file() for name in files)


def _dataset_from_manifest(out_dir: Path, manifest: dict[str, Any], generated: bool) -> DemoDataset:
    params = manifest["params"]
    return DemoDataset(
        out_dir=out_dir,
        annotation_file=out_dir / ANNOTATION_NAME,
        dataset_dir=out_dir / FEATURES_DIR_NAME,
        file_format=params["file_format"],
        feature_dim=params["feature_dim"],
        counts=dict(manifest["counts"]),
        class_balance={split: dict(v) for split, v in manifest["class_balance"].items()},
        shuffle_pairs=params["shuffle_pairs"],
        params=dict(params),
        generated=generated,
    )


def make_demo_dataset(
    out_dir: str | os.PathLike[str],
    n_train: int = 160,
    n_val: int = 32,
    n_test: int = 48,
    feature_dim: int = 64,
    seed: int = 0,
    shuffle_pairs: bool = False,
    file_format: FileFormat = "pt",
    noise_std: float = 1.0,
    slide_shift_std: float = 0.2,
    n_patches: Sequence[int] = (60, 400),
    tumour_share_range: Sequence[float] = (0.1, 0.8),
) -> DemoDataset:
    """Write (or reuse) the SYNTHETIC demo dataset in ``out_dir``.

    Deterministic: the same parameters give the same files byte for byte. If ``out_dir`` already holds a
    demo whose ``demo_manifest.json`` has the same parameters and all its files, nothing is written, so
    a training workflow can call this every time. With ``shuffle_pairs`` the bags are the same as
    without it, but each split's reports are permuted among its bags (the "no signal" control); the
    items' ``diagnosis``/``tumour_share`` then describe the report, ``bag_diagnosis``/``bag_tumour_share``
    the bag.

    Args:
        out_dir: folder to write into (created).
        n_train, n_val, n_test: slides per split (classes balanced within each split).
        feature_dim: D of the patch features.
        seed: one seed for prototypes, bags, reports and the shuffle.
        shuffle_pairs: permute bag/report pairs within each split.
        file_format: ``"pt"`` (tensor ``[N, D]``, HistGen's format) or ``"h5"`` (``feats``, ``coords``).
        noise_std, slide_shift_std, n_patches, tumour_share_range: see :func:`sample_bag`.

    Returns:
        A :class:`DemoDataset` describing the files.
    """
    if file_format not in ("pt", "h5"):
        raise ValueError(f"file_format must be 'pt' or 'h5', got {file_format!r}")
    counts = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
    if any(n < 0 for n in counts.values()) or sum(counts.values()) == 0:
        raise ValueError(f"split sizes must be >= 0 and not all 0, got {counts}")
    params: dict[str, Any] = {
        "generator_version": GENERATOR_VERSION,
        "n_train": counts["train"],
        "n_val": counts["val"],
        "n_test": counts["test"],
        "feature_dim": int(feature_dim),
        "seed": int(seed),
        "shuffle_pairs": bool(shuffle_pairs),
        "file_format": file_format,
        "noise_std": float(noise_std),
        "slide_shift_std": float(slide_shift_std),
        "n_patches": [int(v) for v in n_patches],
        "tumour_share_range": [float(v) for v in tumour_share_range],
    }
    out_dir = Path(out_dir)
    manifest_path = out_dir / MANIFEST_NAME
    old_manifest = _read_manifest(manifest_path)
    if _reusable(out_dir, old_manifest, params):
        logger.info("using the existing SYNTHETIC demo dataset (not real patients) in %s", out_dir)
        return _dataset_from_manifest(out_dir, old_manifest, generated=False)

    logger.info("building SYNTHETIC demo dataset (not real patients) in %s", out_dir)
    dataset_dir = out_dir / FEATURES_DIR_NAME
    dataset_dir.mkdir(parents=True, exist_ok=True)
    manifest_path.unlink(missing_ok=True)  # a half-rewritten folder must never look complete
    prototypes = make_prototypes(params["feature_dim"], params["seed"])
    annotation: dict[str, Any] = {
        "_comment": (
            "SYNTHETIC demo data made by scripts.demo.feature_bags: random feature bags and template "
            "reports, not real patients. Do not use for any clinical or scientific claim."
        ),
        "synthetic": True,
        # the clinical key phrases of the demo's reports: evaluation scores them (any dataset may declare its own)
        "key_phrases": {group: list(phrases) for group, phrases in DEMO_KEY_PHRASES.items()},
        "generator": {"module": "scripts.demo.feature_bags", **params},
    }
    class_balance: dict[str, dict[str, int]] = {}
    files: list[str] = []
    for split_index, split in enumerate(SPLITS):
        split_seed = np.random.SeedSequence([params["seed"], split_index])
        diagnoses = _split_diagnoses(counts[split], np.random.default_rng(split_seed))
        items = []
        for i, diagnosis in enumerate(diagnoses):
            slide_id = f"SYNTH-{split}-{i:04d}"
            rng = np.random.default_rng(np.random.SeedSequence([params["seed"], split_index, i + 1]))
            bag = sample_bag(
                diagnosis,
                prototypes,
                rng,
                n_patches=(params["n_patches"][0], params["n_patches"][1]),
                tumour_share_range=(params["tumour_share_range"][0], params["tumour_share_range"][1]),
                noise_std=params["noise_std"],
                slide_shift_std=params["slide_shift_std"],
            )
            name = f"{slide_id}.{file_format}"
            if file_format == "pt":
                _write_pt(dataset_dir / name, bag)
            else:
                _write_h5(dataset_dir / name, bag, slide_id)
            files.append(name)
            share = bag.tumour_share
            items.append(
                {
                    "id": slide_id,
                    "report": make_report(diagnosis, bag.tumour_share, rng),
                    "split": split,
                    "diagnosis": diagnosis,
                    "tumour_share": share,
                    "bag_diagnosis": diagnosis,
                    "bag_tumour_share": share,
                    "num_patches": int(bag.feats.shape[0]),
                }
            )
        if params["shuffle_pairs"] and items:
            shuffle_rng = np.random.default_rng(np.random.SeedSequence([params["seed"], split_index, 0]))
            order = shuffle_rng.permutation(len(items))
            texts = [(items[j]["report"], items[j]["diagnosis"], items[j]["tumour_share"]) for j in order]
            for item, (report, diagnosis, share) in zip(items, texts):
                item["report"], item["diagnosis"], item["tumour_share"] = report, diagnosis, share
        class_balance[split] = {name: diagnoses.count(name) for name in DIAGNOSIS_CLASSES}
        annotation[split] = items

    _write_json(out_dir / ANNOTATION_NAME, annotation)
    if old_manifest:  # drop feature files of an earlier, different demo that this one does not rewrite
        for name in set(old_manifest.get("files", [])) - set(files):
            if "/" not in name and "\\" not in name:
                (dataset_dir / name).unlink(missing_ok=True)
    manifest = {"params": params, "counts": counts, "class_balance": class_balance, "files": files}
    _write_json(manifest_path, manifest)
    return _dataset_from_manifest(out_dir, manifest, generated=True)


# ---------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m scripts.demo.feature_bags --out_dir DIR [--shuffle_pairs] ...``; prints a JSON summary."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.demo.feature_bags",
        description="Write the SYNTHETIC demo dataset (feature bags + reports; not real patients).",
    )
    parser.add_argument("--out_dir", required=True, help="folder to write into")
    parser.add_argument("--shuffle_pairs", action="store_true", help="permute bag/report pairs (control)")
    parser.add_argument("--n_train", type=int, default=160)
    parser.add_argument("--n_val", type=int, default=32)
    parser.add_argument("--n_test", type=int, default=48)
    parser.add_argument("--feature_dim", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--file_format", choices=("pt", "h5"), default="pt")
    parser.add_argument("--noise_std", type=float, default=1.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    demo = make_demo_dataset(
        args.out_dir,
        n_train=args.n_train,
        n_val=args.n_val,
        n_test=args.n_test,
        feature_dim=args.feature_dim,
        seed=args.seed,
        shuffle_pairs=args.shuffle_pairs,
        file_format=args.file_format,
        noise_std=args.noise_std,
    )
    summary = {
        "annotation_file": str(demo.annotation_file),
        "dataset_dir": str(demo.dataset_dir),
        "counts": demo.counts,
        "class_balance": demo.class_balance,
        "shuffle_pairs": demo.shuffle_pairs,
        "generated": demo.generated,
    }
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
