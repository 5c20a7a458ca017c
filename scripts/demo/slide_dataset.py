"""The embedded demo from real slide files: SYNTHETIC pyramidal WSIs -> patch features -> annotation.

The default demo of the report bundle. Three steps, each cached on disk:

1. **slides**: ``n_train + n_val + n_test`` synthetic Aperio-style SVS files
   (:mod:`scripts.demo.synthetic_slides`: JPEG tiles, several levels, ``MPP`` metadata, an H&E-like
   texture per diagnosis, glass background, marker-pen strokes on some slides), classes balanced within
   each split, written by ``workers`` processes. Each slide's ground truth (label map of its layout)
   goes to ``truth/<id>.npz``;
2. **features**: :class:`scripts.wsi.FeatureExtractor` (the code of ``configs/extract_features.json``)
   with the ``builtin-small`` encoder writes ``features/<id>.h5`` (``feats [N, 128]``, ``coords``,
   extraction attributes) and ``features/manifest.csv``;
3. **reports**: each slide's report is written from what the slide shows
   (:func:`scripts.demo.reports.make_report`): its diagnosis and the lesion's share of the tissue inside
   the extracted patches, measured on the ground-truth label map. ``annotation.json`` pairs them;
   ``annotation_shuffled.json`` permutes the reports within each split, every diagnosis's slides getting
   every diagnosis's reports in equal numbers (the "no signal" control).

On disk (``out_dir``)::

    slides/<id>.svs            SYNTHETIC slides (not patient data)
    truth/<id>.npz             label_map [h, w] uint8, pen_mask [h, w] bool, params (JSON)
    features/<id>.h5           feats [N, D] float32, coords [N, 2] int64 + extraction attributes
    features/manifest.csv      extraction outcome per slide
    annotation.json            HistGen layout {"train": [...], "val": [...], "test": [...]}, "synthetic": true
    annotation_shuffled.json   the same with reports permuted within each split
    demo_manifest.json         parameters, files and timings; a later call with the same parameters reuses all

A call whose ``demo_manifest.json`` holds the same parameters, whose files all exist and whose feature
files are current (same attributes as the extractor would write, incl. slide size/mtime and encoder
checksum) writes nothing. Otherwise slides whose ground-truth file holds other parameters are rewritten,
the extractor recomputes only stale feature files, and the annotations and manifest are rewritten.
Every file is written atomically, so a killed build resumes where it stopped.

Example:
    >>> demo = make_slide_demo_dataset("demo_data")  # doctest: +SKIP
    >>> demo.annotation_file, demo.dataset_dir, demo.feature_dim  # doctest: +SKIP
    (PosixPath('demo_data/annotation.json'), PosixPath('demo_data/features'), 128)

CLI: ``python -m scripts.demo.slide_dataset --out_dir DIR [--n_train 160 ...]``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import hashlib
import io
import json
import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scripts.atomic_io import atomic_write_bytes, atomic_write_json

from .reports import DEMO_KEY_PHRASES, make_report, share_band
from .synthetic_slides import write_synthetic_slide
from .tissue_classes import COMPONENT_IDS, DIAGNOSIS_CLASSES

__all__ = [
    "ANNOTATION_NAME",
    "SHUFFLED_ANNOTATION_NAME",
    "SLIDE_DEMO_VERSION",
    "SlideDemoDataset",
    "SlideDemoParams",
    "make_slide_demo_dataset",
    "sampled_lesion_share",
    "slide_demo_params",
]

logger = logging.getLogger(__name__)

#: Bump when the slides, the extraction or the reports change meaning, so old demo folders are rebuilt.
SLIDE_DEMO_VERSION = 3
MANIFEST_NAME = "demo_manifest.json"
ANNOTATION_NAME = "annotation.json"
SHUFFLED_ANNOTATION_NAME = "annotation_shuffled.json"
SLIDES_DIR_NAME = "slides"
TRUTH_DIR_NAME = "truth"
TEXTURES_DIR_NAME = "textures"  # the shared texture bank while slides are written (removed afterwards)
#: a folder that keeps the texture bank between demo builds (tests set it; unset, each build renders its own)
TEXTURE_CACHE_ENV = "HISTGEN_TEXTURE_CACHE"
FEATURES_DIR_NAME = "features"
SPLITS = ("train", "val", "test")


@dataclass
class SlideDemoDataset:
    """A slide demo on disk.

    Attributes:
        out_dir: the folder holding everything.
        annotation_file: the annotation to train on (``annotation_shuffled.json`` with ``shuffle_pairs``).
        dataset_dir: folder of ``<id>.h5`` feature files.
        slides_dir: folder of ``<id>.svs`` slides.
        feature_dim: D of the features.
        counts: slides per split, e.g. ``{"train": 160, "val": 32, "test": 48}``.
        class_balance: split -> diagnosis -> number of slides.
        shuffle_pairs: whether ``annotation_file`` is the shuffled control.
        params: the parameters (as in the manifest).
        generated: True if this call wrote anything, False if it reused every file.
        seconds: wall time of this call's steps (``slides``, ``features``, ``annotation``, ``total``).
    """

    out_dir: Path
    annotation_file: Path
    dataset_dir: Path
    slides_dir: Path
    feature_dim: int
    counts: dict[str, int]
    class_balance: dict[str, dict[str, int]]
    shuffle_pairs: bool
    params: dict[str, Any] = field(default_factory=dict)
    generated: bool = True
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _SlideJob:
    """One slide to write: its id, split, diagnosis and generation parameters."""

    slide_id: str
    split: str
    diagnosis: str
    params: dict[str, Any]


# ---------------------------------------------------------------------------- ground truth
def sampled_lesion_share(
    label_map: np.ndarray, label_scale: float, coords: np.ndarray, patch_size_level0: int, diagnosis: str
) -> float:
    """Share of lesion (lesion texture + necrosis) in the tissue covered by the extracted patches.

    Args:
        label_map: ``[h, w]`` uint8 component ids of the slide layout (``tissue_classes.COMPONENT_IDS``).
        label_scale: level-0 pixels per label-map cell.
        coords: ``[N, 2]`` level-0 ``(x, y)`` of the patches' top-left corners.
        patch_size_level0: patch side in level-0 pixels.
        diagnosis: the slide's diagnosis (its lesion component).

    Returns:
        lesion cells / tissue cells over the label-map cells the patches cover (0 when they hold no tissue).
    """
    covered = np.zeros(label_map.shape, dtype=bool)
    h, w = label_map.shape
    for x, y in np.asarray(coords, dtype=np.int64).reshape(-1, 2):
        r0, c0 = int(y // label_scale), int(x // label_scale)
        r1 = min(h, int(np.ceil((y + patch_size_level0) / label_scale)))
        c1 = min(w, int(np.ceil((x + patch_size_level0) / label_scale)))
        covered[r0:r1, c0:c1] = True
    labels = label_map[covered]
    tissue = int(np.count_nonzero(labels != COMPONENT_IDS["background"]))
    lesion = int(np.count_nonzero((labels == COMPONENT_IDS[diagnosis]) | (labels == COMPONENT_IDS["necrosis"])))
    return lesion / tissue if tissue else 0.0


def _truth_path(out_dir: Path, slide_id: str) -> Path:
    return out_dir / TRUTH_DIR_NAME / f"{slide_id}.npz"


def _slide_path(out_dir: Path, slide_id: str) -> Path:
    return out_dir / SLIDES_DIR_NAME / f"{slide_id}.svs"


def _read_truth(path: Path) -> dict[str, Any] | None:
    """``{"label_map", "pen_mask", "label_scale", "params"}`` of a ground-truth file, or None if unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {
                "label_map": data["label_map"],
                "pen_mask": data["pen_mask"],
                "label_scale": float(data["label_scale"]),
                "params": json.loads(str(data["params"])),
            }
    except (OSError, ValueError, KeyError):
        return None


def _truth_matches(out_dir: Path, job: _SlideJob) -> bool:
    """True when the slide file exists and its ground truth was written with ``job.params``."""
    if not _slide_path(out_dir, job.slide_id).is_file():
        return False
    truth = _read_truth(_truth_path(out_dir, job.slide_id))
    return truth is not None and truth["params"] == job.params


# ---------------------------------------------------------------------------- slides
def _write_slide(out_dir: str, job: _SlideJob, encode_threads: int | None = None) -> tuple[str, float]:
    """Write one slide, then its ground truth (the truth file marks a finished slide); returns (id, seconds)."""
    folder = Path(out_dir)
    p = job.params
    info = write_synthetic_slide(
        _slide_path(folder, job.slide_id),
        job.diagnosis,
        p["seed"],
        size=(p["size"], p["size"]),
        tile=p["tile"],
        mpp=p["mpp"],
        tumour_fraction=p["tumour_fraction"],
        pen_marks=p["pen_marks"],
        downsample=p["downsample"],
        jpeg_quality=p["jpeg_quality"],
        texture_variants=p["texture_variants"],
        texture_cache=texture_bank_dir(folder),
        layout_side=p["layout_side"],
        encode_threads=encode_threads,
    )
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        label_map=info.label_map,
        pen_mask=info.pen_mask,
        label_scale=np.float64(info.label_scale),
        params=np.array(json.dumps(p, sort_keys=True)),
    )
    atomic_write_bytes(_truth_path(folder, job.slide_id), buffer.getvalue())
    return job.slide_id, info.seconds


def _default_workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, 8))


class _Progress:
    """Log lines ``slides 48/240 (20 %), 31 s, ~124 s left`` at most every ``every`` seconds (and at the end)."""

    def __init__(self, what: str, total: int, every: float = 10.0) -> None:
        self.what, self.total, self.every = what, total, every
        self.done, self.start, self.last = 0, time.perf_counter(), time.perf_counter()

    def step(self) -> None:
        self.done += 1
        now = time.perf_counter()
        if self.done < self.total and now - self.last < self.every:
            return
        self.last = now
        elapsed = now - self.start
        left = elapsed / self.done * (self.total - self.done)
        logger.info("%s %d/%d (%d %%), %.0f s, ~%.0f s left", self.what, self.done, self.total,
                    100 * self.done // self.total, elapsed, left)


def _bank_entries_used(jobs: list[_SlideJob]) -> list[tuple[str, int, int, float]]:
    """``(component, variant, period, mpp)`` of the texture bank the slides of ``jobs`` read."""
    from .synthetic_slides import SWATCH_PERIOD, bank_entries

    keys = {(job.params["texture_variants"], job.params["mpp"]) for job in jobs if job.params["texture_variants"]}
    return [(name, v, SWATCH_PERIOD, mpp) for variants, mpp in sorted(keys) for name, v in bank_entries(variants)]


def texture_bank_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Where the demo's texture bank swatches are kept while its slides are written.

    ``<out_dir>/textures`` (removed when the slides are written), or, when the environment variable
    :data:`TEXTURE_CACHE_ENV` names a folder, a subfolder of it named by a digest of the rendering code, kept
    between builds: the swatches depend only on that code and their file names (component, variant, period,
    mpp), so a test session renders them once instead of once per demo it builds.
    """
    shared = os.environ.get(TEXTURE_CACHE_ENV, "").strip()
    if not shared:
        return Path(out_dir) / TEXTURES_DIR_NAME
    digest = hashlib.sha256()
    for name in ("synthetic_slides.py", "tissue_textures.py"):
        digest.update((Path(__file__).parent / name).read_bytes())
    return Path(shared) / f"bank-{digest.hexdigest()[:16]}"


def _render_bank_entry(out_dir: str, entry: tuple[str, int, int, float]) -> None:
    from .synthetic_slides import bank_swatch

    bank_swatch(*entry, cache_dir=str(texture_bank_dir(out_dir)))


def _run_all(pool: concurrent.futures.Executor | None, calls: list[tuple[Any, ...]], progress: _Progress) -> None:
    """Run ``fn(*args)`` for every ``(fn, *args)`` in ``calls``, in ``pool`` or here; the first failure stops."""
    if pool is None:
        for fn, *args in calls:
            fn(*args)
            progress.step()
        return
    futures = [pool.submit(fn, *args) for fn, *args in calls]
    for future in concurrent.futures.as_completed(futures):
        future.result()  # a failed slide stops the build with its exception
        progress.step()


def _write_slides(out_dir: Path, jobs: list[_SlideJob], workers: int) -> None:
    """Render the shared texture bank, then write ``jobs``, with ``workers`` processes (fork where available:
    the workers need no torch), logging progress every few seconds."""
    if not jobs:
        return
    bank = [(_render_bank_entry, str(out_dir), entry) for entry in _bank_entries_used(jobs)]
    if workers <= 1 or len(jobs) == 1:
        _run_all(None, bank, _Progress("texture bank swatches", len(bank)))
        _run_all(None, [(_write_slide, str(out_dir), job) for job in jobs], _Progress("slides", len(jobs)))
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        _run_all(pool, bank, _Progress("texture bank swatches", len(bank)))
        # one JPEG thread per process: the processes already fill the cores
        calls = [(_write_slide, str(out_dir), job, 1) for job in jobs]
        _run_all(pool, calls, _Progress("slides", len(jobs)))


def _split_diagnoses(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` class names, balanced (counts differ by at most one), in random order."""
    k = len(DIAGNOSIS_CLASSES)
    first = rng.permutation(k)
    return [DIAGNOSIS_CLASSES[first[i % k]] for i in rng.permutation(n)]


def _plan_slides(counts: dict[str, int], params: dict[str, Any]) -> list[_SlideJob]:
    """Every slide's id, diagnosis and generation parameters, from the demo parameters alone."""
    slide = params["slide"]
    jobs = []
    for split_index, split in enumerate(SPLITS):
        diagnoses = _split_diagnoses(counts[split], np.random.default_rng([params["seed"], split_index, 0]))
        for i, diagnosis in enumerate(diagnoses):
            rng = np.random.default_rng([params["seed"], split_index, i + 1])
            low, high = slide["tumour_fraction_range"]
            job_params = {
                "diagnosis": diagnosis,
                "seed": int(rng.integers(2**31 - 1)),
                "tumour_fraction": round(float(rng.uniform(low, high)), 6),
                "pen_marks": bool(rng.random() < slide["pen_mark_probability"]),
                "size": slide["size"],
                "tile": slide["tile"],
                "mpp": slide["mpp"],
                "downsample": slide["downsample"],
                "jpeg_quality": slide["jpeg_quality"],
                "texture_variants": slide["texture_variants"],
                "layout_side": slide["layout_side"],
                "report_seed": [params["seed"], split_index, i + 1],
            }
            jobs.append(_SlideJob(f"SYNTH-{split}-{i:04d}", split, diagnosis, job_params))
    return jobs


# ---------------------------------------------------------------------------- features
def _build_extractor(features_dir: Path, extraction: dict[str, Any], progress: bool) -> Any:
    from scripts.encoders import build_encoder
    from scripts.wsi import FeatureExtractor

    encoder = build_encoder(extraction["encoder_name"])
    return FeatureExtractor(
        features_dir,
        encoder,
        slides_dir=features_dir.parent / SLIDES_DIR_NAME,
        wsi_backend=extraction["wsi_backend"],
        target_mpp=extraction["target_mpp"],
        patch_size=extraction["patch_size"],
        tissue_fraction=extraction["tissue_fraction"],
        batch_size=extraction["batch_size"],
        num_workers=extraction["num_workers"],
        save_thumbnails=extraction["save_thumbnails"],
        progress=progress,
    )


def _features_current(extractor: Any, out_dir: Path, jobs: list[_SlideJob]) -> bool:
    from scripts.wsi import read_h5_attrs, stale_reasons

    for job in jobs:
        stored = read_h5_attrs(out_dir / FEATURES_DIR_NAME / f"{job.slide_id}.h5")
        if stale_reasons(stored, extractor.expected_attrs(_slide_path(out_dir, job.slide_id))):
            return False
    return True


def _extract(extractor: Any, out_dir: Path, jobs: list[_SlideJob]) -> None:
    """Run the extractor slide by slide (one process: other ranks wait for this one) and write its manifest."""
    from scripts.wsi import ManifestRow, SlideSource, write_manifest

    rows: list[ManifestRow] = []
    for job in jobs:
        rows.append(extractor.extract_slide(SlideSource(job.slide_id, str(_slide_path(out_dir, job.slide_id)))))
    write_manifest(out_dir / FEATURES_DIR_NAME / "manifest.csv", rows)
    failed = [r for r in rows if r.status == "failed"]
    if failed:
        listed = "; ".join(r.error for r in failed[:5])
        raise RuntimeError(f"{out_dir}: feature extraction failed for {len(failed)} demo slide(s): {listed}")


# ---------------------------------------------------------------------------- annotation
def _annotation_items(out_dir: Path, jobs: list[_SlideJob]) -> dict[str, list[dict[str, Any]]]:
    """Annotation items per split, reports written from each slide's ground truth inside its patches."""
    import h5py

    items: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
    for job in jobs:
        truth = _read_truth(_truth_path(out_dir, job.slide_id))
        if truth is None:
            raise RuntimeError(f"{_truth_path(out_dir, job.slide_id)}: ground truth unreadable")
        with h5py.File(out_dir / FEATURES_DIR_NAME / f"{job.slide_id}.h5", "r") as handle:
            coords = handle["coords"][()]
            patch_size_level0 = int(handle.attrs["patch_size_level0"])
        share = sampled_lesion_share(truth["label_map"], truth["label_scale"], coords, patch_size_level0, job.diagnosis)
        rng = np.random.default_rng(job.params["report_seed"])
        items[job.split].append(
            {
                "id": job.slide_id,
                "report": make_report(job.diagnosis, share, rng),
                "split": job.split,
                "diagnosis": job.diagnosis,
                "tumour_share": round(share, 6),
                "slide_diagnosis": job.diagnosis,
                "slide_tumour_share": round(share, 6),
                "num_patches": int(len(coords)),
                "pen_marks": job.params["pen_marks"],
                "slide": f"{SLIDES_DIR_NAME}/{job.slide_id}.svs",
            }
        )
    return items


def _balanced_report_order(diagnoses: list[str], rng: np.random.Generator) -> list[int]:
    """For each slide, the index of the slide whose report it gets, so that every diagnosis's slides receive
    every diagnosis's reports in (near) equal numbers.

    A plain random permutation keeps a chance excess of some (slide class, report class) pairs (e.g. 15 vs
    the expected 10 of 40 slides); a model that has learned the classes then learns that excess and scores
    above chance on the true test pairs, which makes the "no signal" control look like a leak. Dealing
    each class's slides round-robin over the report classes removes that excess.
    """
    classes = sorted(set(diagnoses))
    reports_of = {c: [i for i, d in enumerate(diagnoses) if d == c] for c in classes}
    for pool in reports_of.values():
        rng.shuffle(pool)
    order = [-1] * len(diagnoses)
    shift = int(rng.integers(1, len(classes))) if len(classes) > 1 else 0  # first deal: another class's report
    for offset, slide_class in enumerate(classes):
        slides = [i for i, d in enumerate(diagnoses) if d == slide_class]
        rng.shuffle(slides)
        for j, slide in enumerate(slides):
            wanted = classes[(offset + shift + j) % len(classes)]
            # classes of unequal size: take from the wanted class, else from the fullest remaining pool
            pool = reports_of[wanted] or max(reports_of.values(), key=len)
            order[slide] = pool.pop()
    return order


def _shuffled(items: dict[str, list[dict[str, Any]]], seed: int) -> dict[str, list[dict[str, Any]]]:
    """Reports (with their diagnosis and share) permuted among each split's slides, class-balanced
    (:func:`_balanced_report_order`)."""
    out = {}
    for split_index, split in enumerate(SPLITS):
        rows = [dict(item) for item in items[split]]
        rng = np.random.default_rng([seed, split_index, 0, 1])
        order = _balanced_report_order([row["diagnosis"] for row in rows], rng)
        texts = [(rows[j]["report"], rows[j]["diagnosis"], rows[j]["tumour_share"]) for j in order]
        for row, (report, diagnosis, share) in zip(rows, texts):
            row["report"], row["diagnosis"], row["tumour_share"] = report, diagnosis, share
        out[split] = rows
    return out


def _annotation(items: dict[str, list[dict[str, Any]]], params: dict[str, Any], shuffled: bool) -> dict[str, Any]:
    return {
        "_comment": (
            "SYNTHETIC demo data made by scripts.demo.slide_dataset: synthetic slides and template reports, "
            "not real patients. Do not use for any clinical or scientific claim."
        ),
        "synthetic": True,
        # the clinical key phrases of the demo's reports: evaluation scores them (any dataset may declare its own)
        "key_phrases": {group: list(phrases) for group, phrases in DEMO_KEY_PHRASES.items()},
        "shuffled_pairs": shuffled,
        "generator": {"module": "scripts.demo.slide_dataset", **params},
        **items,
    }


# ---------------------------------------------------------------------------- the dataset
def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _dataset(out_dir: Path, manifest: dict[str, Any], shuffle_pairs: bool, generated: bool,
             seconds: dict[str, float]) -> SlideDemoDataset:
    return SlideDemoDataset(
        out_dir=out_dir,
        annotation_file=out_dir / (SHUFFLED_ANNOTATION_NAME if shuffle_pairs else ANNOTATION_NAME),
        dataset_dir=out_dir / FEATURES_DIR_NAME,
        slides_dir=out_dir / SLIDES_DIR_NAME,
        feature_dim=int(manifest["feature_dim"]),
        counts=dict(manifest["counts"]),
        class_balance={split: dict(v) for split, v in manifest["class_balance"].items()},
        shuffle_pairs=shuffle_pairs,
        params=dict(manifest["params"]),
        generated=generated,
        seconds=seconds,
    )


@dataclass(frozen=True)
class SlideDemoParams:
    """What identifies a slide demo's files; :meth:`record` is its manifest's ``params``.

    Attributes:
        n_train, n_val, n_test: slides per split (classes balanced within each split).
        seed: one seed for the slides, their classes, the reports and the shuffle.
        slide_size: level-0 side of every slide in pixels.
        mpp: level-0 micrometres per pixel of the slides.
        downsample: factor between pyramid levels (2: a 2048 px slide has levels 2048, 1024, 512, 256).
        tile: TIFF tile side.
        jpeg_quality: JPEG quality of the tiles.
        tumour_fraction_range: (low, high) of each slide's lesion share of the tissue in its layout; the
            report states the share measured inside the extracted patches.
        pen_mark_probability: chance that a slide carries marker-pen strokes.
        texture_variants: texture swatches per tissue component shared by all slides (each slide picks one
            and shifts it); 0 renders every slide's own swatches (~4x slower).
        layout_side: cells on the longer side of each slide's layout grid (its ground-truth label map).
        encoder_name: patch encoder (``scripts.encoders.build_encoder``; only weight-free encoders make sense
            for a demo).
        target_mpp, patch_size, tissue_fraction, wsi_backend, batch_size, num_workers, save_thumbnails:
            :class:`scripts.wsi.FeatureExtractor` settings.
    """

    n_train: int = 160
    n_val: int = 32
    n_test: int = 48
    seed: int = 0
    slide_size: int = 2048
    mpp: float = 0.5
    downsample: int = 2
    tile: int = 256
    jpeg_quality: int = 80
    tumour_fraction_range: Sequence[float] = (0.1, 0.9)
    pen_mark_probability: float = 0.5
    texture_variants: int = 3
    layout_side: int = 256
    encoder_name: str = "builtin-small"
    target_mpp: float = 0.5
    patch_size: int = 128
    tissue_fraction: float = 0.5
    wsi_backend: str = "auto"
    batch_size: int = 64
    num_workers: int = 2
    save_thumbnails: bool = False

    def record(self) -> dict[str, Any]:
        """The parameter record (``demo_manifest.json``'s ``params``), checked.

        Raises:
            ValueError: negative or all-zero split sizes, or a bad ``tumour_fraction_range``.
        """
        counts = {"train": int(self.n_train), "val": int(self.n_val), "test": int(self.n_test)}
        if any(n < 0 for n in counts.values()) or sum(counts.values()) == 0:
            raise ValueError(f"split sizes must be >= 0 and not all 0, got {counts}")
        low, high = (float(v) for v in self.tumour_fraction_range)
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(
                f"tumour_fraction_range must be (low, high) within [0, 1], got {self.tumour_fraction_range}"
            )
        return {
            "version": SLIDE_DEMO_VERSION,
            "n_train": counts["train"],
            "n_val": counts["val"],
            "n_test": counts["test"],
            "seed": int(self.seed),
            "control": "class-balanced shuffle",
            "slide": {
                "size": int(self.slide_size),
                "mpp": float(self.mpp),
                "downsample": int(self.downsample),
                "tile": int(self.tile),
                "jpeg_quality": int(self.jpeg_quality),
                "tumour_fraction_range": [low, high],
                "pen_mark_probability": float(self.pen_mark_probability),
                "texture_variants": int(self.texture_variants),
                "layout_side": int(self.layout_side),
            },
            "extraction": {
                "encoder_name": str(self.encoder_name),
                "target_mpp": float(self.target_mpp),
                "patch_size": int(self.patch_size),
                "tissue_fraction": float(self.tissue_fraction),
                "wsi_backend": str(self.wsi_backend),
                "batch_size": int(self.batch_size),
                "num_workers": int(self.num_workers),
                "save_thumbnails": bool(self.save_thumbnails),
            },
        }


def slide_demo_params(**options: Any) -> dict[str, Any]:
    """The parameter record of a slide demo made with ``options`` (:class:`SlideDemoParams` fields).

    Another tool can tell whether a finished demo folder was made with given options by comparing its
    manifest's ``params`` with this.
    """
    return SlideDemoParams(**options).record()


def make_slide_demo_dataset(
    out_dir: str | os.PathLike[str],
    params: SlideDemoParams | None = None,
    *,
    shuffle_pairs: bool = False,
    workers: int | None = None,
    progress: bool = False,
    **options: Any,
) -> SlideDemoDataset:
    """Write (or reuse) the SYNTHETIC slide demo in ``out_dir`` (see the module docstring).

    Args:
        out_dir: folder to write into (created).
        params: the demo's parameters (default: :class:`SlideDemoParams` ()).
        shuffle_pairs: return the shuffled annotation (both are always written).
        workers: processes writing slides (default: available cores, at most 8). Not part of the cache key.
        progress: show the extractor's progress bars (slide writing always logs its progress).
        **options: :class:`SlideDemoParams` fields that replace those of ``params``.

    Returns:
        A :class:`SlideDemoDataset`.
    """
    start = time.perf_counter()
    params = dataclasses.replace(params or SlideDemoParams(), **options).record()
    counts = {split: params[f"n_{split}"] for split in SPLITS}
    out_dir = Path(out_dir)
    jobs = _plan_slides(counts, params)
    manifest_path = out_dir / MANIFEST_NAME
    manifest = _read_json(manifest_path)
    extractor = _build_extractor(out_dir / FEATURES_DIR_NAME, params["extraction"], progress)
    annotations_exist = (out_dir / ANNOTATION_NAME).is_file() and (out_dir / SHUFFLED_ANNOTATION_NAME).is_file()
    if (
        manifest is not None
        and manifest.get("params") == params
        and annotations_exist
        and all(_truth_matches(out_dir, job) for job in jobs)
        and _features_current(extractor, out_dir, jobs)
    ):
        logger.info("using the existing SYNTHETIC slide demo (not real patients) in %s", out_dir)
        return _dataset(out_dir, manifest, shuffle_pairs, False, {"total": time.perf_counter() - start})

    manifest_path.unlink(missing_ok=True)  # a half-rebuilt folder must never look complete
    seconds: dict[str, float] = {}
    todo = [job for job in jobs if not _truth_matches(out_dir, job)]
    n_workers = _default_workers() if workers is None else max(1, int(workers))
    logger.info(
        "building the SYNTHETIC slide demo (not real patients) in %s: writing %d of %d slides with %d process(es)",
        out_dir, len(todo), len(jobs), min(n_workers, max(1, len(todo))),
    )
    tick = time.perf_counter()
    _write_slides(out_dir, todo, n_workers)
    seconds["slides"] = time.perf_counter() - tick
    if texture_bank_dir(out_dir) == out_dir / TEXTURES_DIR_NAME:
        shutil.rmtree(out_dir / TEXTURES_DIR_NAME, ignore_errors=True)  # the slides hold what it was for

    tick = time.perf_counter()
    _extract(extractor, out_dir, jobs)
    seconds["features"] = time.perf_counter() - tick

    tick = time.perf_counter()
    items = _annotation_items(out_dir, jobs)
    atomic_write_json(out_dir / ANNOTATION_NAME, _annotation(items, params, False), indent=1)
    atomic_write_json(out_dir / SHUFFLED_ANNOTATION_NAME, _annotation(_shuffled(items, params["seed"]), params, True),
                      indent=1)
    seconds["annotation"] = time.perf_counter() - tick
    seconds["total"] = time.perf_counter() - start

    keep = {job.slide_id for job in jobs}
    for folder, suffix in ((SLIDES_DIR_NAME, ".svs"), (TRUTH_DIR_NAME, ".npz"), (FEATURES_DIR_NAME, ".h5")):
        for path in (out_dir / folder).glob(f"*{suffix}"):
            if path.stem not in keep:  # files of an earlier, larger demo
                path.unlink(missing_ok=True)
    class_balance = {
        split: {name: sum(item["slide_diagnosis"] == name for item in items[split]) for name in DIAGNOSIS_CLASSES}
        for split in SPLITS
    }
    manifest = {
        "params": params,
        "counts": counts,
        "class_balance": class_balance,
        "feature_dim": int(extractor.encoder.embed_dim),
        "encoder_checksum": str(extractor.encoder.checksum),
        "share_bands": {split: _band_counts(items[split]) for split in SPLITS},
        "files": [job.slide_id for job in jobs],
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }
    atomic_write_json(manifest_path, manifest, indent=1)
    logger.info(
        "slide demo ready in %.0f s (slides %.0f s, features %.0f s): %s",
        seconds["total"], seconds["slides"], seconds["features"], counts,
    )
    return _dataset(out_dir, manifest, shuffle_pairs, True, seconds)


def _band_counts(items: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        band = share_band(item["slide_tumour_share"])
        counts[band] = counts.get(band, 0) + 1
    return counts


# ---------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m scripts.demo.slide_dataset --out_dir DIR``; prints a JSON summary."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.demo.slide_dataset",
        description="Write the SYNTHETIC slide demo (slides, features, reports; not real patients).",
    )
    parser.add_argument("--out_dir", required=True, help="folder to write into")
    parser.add_argument("--n_train", type=int, default=160)
    parser.add_argument("--n_val", type=int, default=32)
    parser.add_argument("--n_test", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slide_size", type=int, default=2048)
    parser.add_argument("--patch_size", type=int, default=128)
    parser.add_argument("--texture_variants", type=int, default=SlideDemoParams.texture_variants)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    demo = make_slide_demo_dataset(
        args.out_dir, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test, seed=args.seed,
        slide_size=args.slide_size, patch_size=args.patch_size, texture_variants=args.texture_variants,
        workers=args.workers,
    )
    summary = {
        "annotation_file": str(demo.annotation_file),
        "dataset_dir": str(demo.dataset_dir),
        "slides_dir": str(demo.slides_dir),
        "counts": demo.counts,
        "class_balance": demo.class_balance,
        "generated": demo.generated,
        "seconds": {k: round(v, 1) for k, v in demo.seconds.items()},
    }
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
