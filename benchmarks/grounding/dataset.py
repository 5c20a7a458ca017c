"""Writing (or reusing) one benchmark's files in the HistGen layout the report bundle reads.

On disk (``out_dir``)::

    features/<slide_id>.pt    tensor [N, D] float32 (torch.save of a plain tensor, HistGen's format)
    annotation.json           {"train": [{"id", "report", "split", "findings", ...}], "val": [...], "test": [...]}
    annotation_shuffled.json  the class-balanced shuffled-pairs control (train/val permuted, test true)
    labels.csv                slide_id, split, then one column per finding (the slide's truth)
    manifest.json             the parameters, counts and files; a later call with the same parameters reuses all

Train with ``--dataset_dir <out_dir>/features --annotation_file <out_dir>/annotation.json``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scripts.atomic_io import atomic_write_bytes, atomic_write_json, atomic_write_text

from .bags import sample_bag, sample_truth
from .control import shuffled_annotation
from .feature_space import make_feature_space
from .findings import FINDINGS
from .params import BenchmarkParams
from .report_writer import write_report

__all__ = [
    "ANNOTATION_NAME",
    "FEATURES_DIR_NAME",
    "LABELS_NAME",
    "MANIFEST_NAME",
    "SHUFFLED_ANNOTATION_NAME",
    "BenchmarkDataset",
    "class_counts",
    "make_benchmark_dataset",
    "read_labels",
]

logger = logging.getLogger("benchmarks.grounding")

ANNOTATION_NAME = "annotation.json"
SHUFFLED_ANNOTATION_NAME = "annotation_shuffled.json"
LABELS_NAME = "labels.csv"
MANIFEST_NAME = "manifest.json"
FEATURES_DIR_NAME = "features"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class BenchmarkDataset:
    """One benchmark's files.

    Attributes:
        out_dir: the folder.
        dataset_dir: ``features/`` (the bundle's ``--dataset_dir``).
        annotation_file: true pairs (``--annotation_file``).
        shuffled_annotation_file: the control.
        labels_file: ``labels.csv``.
        params: the parameters.
        counts: slides per split.
        patches: total patches per split.
        generated: True if this call wrote the files.
    """

    out_dir: Path
    dataset_dir: Path
    annotation_file: Path
    shuffled_annotation_file: Path
    labels_file: Path
    params: BenchmarkParams
    counts: dict[str, int]
    patches: dict[str, int]
    generated: bool


def class_counts(n: int, k: int, imbalance: float) -> list[int]:
    """Slides per class for a split of ``n``: weights decay geometrically from 1 to ``1/imbalance``, rounded by
    largest remainder, every class at least once when ``n >= k``."""
    weights = np.asarray([imbalance ** (-c / (k - 1)) for c in range(k)])
    exact = n * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    if n >= k:
        counts = np.maximum(counts, 1)
    while counts.sum() > n:
        counts[int(np.argmax(counts))] -= 1
    for c in np.argsort(-(exact - np.floor(exact)), kind="stable"):
        if counts.sum() >= n:
            break
        counts[c] += 1
    return [int(v) for v in counts]


def _tensor_bytes(features: np.ndarray) -> bytes:
    buffer = io.BytesIO()  # through a buffer, so the bytes do not depend on the file name
    torch.save(torch.from_numpy(features), buffer)
    return buffer.getvalue()


def _labels_csv(annotation: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["slide_id", "split", *FINDINGS])
    for split in SPLITS:
        for item in annotation[split]:
            writer.writerow([item["id"], split, *(item["findings"][f] for f in FINDINGS)])
    return buffer.getvalue()


def read_labels(path: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """``labels.csv`` -> ``{slide_id: {"split": ..., finding: value, ...}}``."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"slide_id", "split", *FINDINGS} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: labels file lacks column(s) {sorted(missing)}")
        return {row["slide_id"]: {k: v for k, v in row.items() if k != "slide_id"} for row in reader}


def _reusable(out_dir: Path, params: BenchmarkParams) -> dict[str, Any] | None:
    try:
        manifest = json.loads((out_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("params") != params.to_dict():
        return None
    names = (ANNOTATION_NAME, SHUFFLED_ANNOTATION_NAME, LABELS_NAME)
    if not all((out_dir / n).is_file() for n in names):
        return None
    if not all((out_dir / FEATURES_DIR_NAME / n).is_file() for n in manifest.get("files", [])):
        return None
    return manifest


def _result(out_dir: Path, params: BenchmarkParams, manifest: dict[str, Any], generated: bool) -> BenchmarkDataset:
    return BenchmarkDataset(
        out_dir=out_dir,
        dataset_dir=out_dir / FEATURES_DIR_NAME,
        annotation_file=out_dir / ANNOTATION_NAME,
        shuffled_annotation_file=out_dir / SHUFFLED_ANNOTATION_NAME,
        labels_file=out_dir / LABELS_NAME,
        params=params,
        counts=dict(manifest["counts"]),
        patches=dict(manifest["patches"]),
        generated=generated,
    )


def _refresh_control(out_dir: Path, params: BenchmarkParams) -> None:
    """Rewrite a reused folder's control annotation when this code deals the reports differently (the dealing is
    derived from ``annotation.json`` and the seed, so it is cheap to check; a missing or unreadable copy is
    written again).

    Raises:
        ValueError: ``annotation.json`` cannot be read as JSON (the message names it and how to start over).
    """
    source = out_dir / ANNOTATION_NAME
    try:
        annotation = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{source}: the benchmark's annotation cannot be read ({type(err).__name__}: {err}); "
                         f"delete {out_dir} to write the benchmark again") from err
    expected = shuffled_annotation(annotation, params.seed)
    control = out_dir / SHUFFLED_ANNOTATION_NAME
    try:
        current = json.loads(control.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        logger.warning("%s cannot be read (%s): writing it again from %s", control, type(err).__name__, source)
        current = None
    if current != expected:
        logger.info("the control's dealing changed: rewriting %s", control)
        atomic_write_json(control, expected, indent=1)


def make_benchmark_dataset(params: BenchmarkParams, out_dir: str | os.PathLike[str]) -> BenchmarkDataset:
    """Write the benchmark of ``params`` into ``out_dir``, or reuse it when ``manifest.json`` matches.

    Deterministic: the same parameters give the same bytes. Splits keep the class proportions of
    :func:`class_counts`; each slide's rng is derived from (seed, split, index), so changing one split's size
    does not change the other splits' slides.
    """
    out_dir = Path(out_dir)
    manifest = _reusable(out_dir, params)
    if manifest is not None:
        logger.info("reusing the grounding benchmark in %s", out_dir)
        _refresh_control(out_dir, params)
        return _result(out_dir, params, manifest, generated=False)
    logger.info("writing the SYNTHETIC grounding benchmark %s in %s", params.key(), out_dir)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)  # a half-written folder must never look complete
    features_dir = out_dir / FEATURES_DIR_NAME
    features_dir.mkdir(parents=True, exist_ok=True)
    space = make_feature_space(params)
    sizes = {"train": params.n_train, "val": params.n_val, "test": params.n_test}
    annotation: dict[str, Any] = {
        "_comment": "SYNTHETIC grounding benchmark (benchmarks.grounding): random feature bags and generated "
                    "reports, not real patients.",
        "synthetic": True,
        "generator": {"module": "benchmarks.grounding", **params.to_dict()},
    }
    files: list[str] = []
    patches: dict[str, int] = {}
    for split_index, split in enumerate(SPLITS):
        order_rng = np.random.default_rng([params.seed, split_index, 0xD1A])
        per_class = class_counts(sizes[split], params.n_diagnoses, params.imbalance)
        diagnoses = [d for d, count in zip(params.diagnoses, per_class) for _ in range(count)]
        diagnoses = [diagnoses[i] for i in order_rng.permutation(len(diagnoses))]
        items = []
        for i, diagnosis in enumerate(diagnoses):
            slide_id = f"SYNTH-{split}-{i:04d}"
            rng = np.random.default_rng([params.seed, split_index, i + 1])
            truth = sample_truth(params, diagnosis, rng)
            features, tumour_share = sample_bag(params, space, truth, rng)
            atomic_write_bytes(features_dir / f"{slide_id}.pt", _tensor_bytes(features))
            files.append(f"{slide_id}.pt")
            items.append({
                "id": slide_id,
                "report": write_report(truth, rng, params.report_styles, params.p_comment),
                "split": split,
                "findings": truth.findings(),
                "nodes_positive": truth.nodes_positive,
                "nodes_examined": truth.nodes_examined,
                "tumour_share": round(tumour_share, 6),
                "num_patches": int(features.shape[0]),
            })
        annotation[split] = items
        patches[split] = sum(item["num_patches"] for item in items)
    atomic_write_json(out_dir / ANNOTATION_NAME, annotation, indent=1)
    atomic_write_json(out_dir / SHUFFLED_ANNOTATION_NAME, shuffled_annotation(annotation, params.seed), indent=1)
    atomic_write_text(out_dir / LABELS_NAME, _labels_csv(annotation))
    for stale in set(p.name for p in features_dir.glob("*.pt")) - set(files):
        (features_dir / stale).unlink()
    manifest = {"params": params.to_dict(), "key": params.key(), "counts": sizes, "patches": patches, "files": files}
    atomic_write_json(out_dir / MANIFEST_NAME, manifest, indent=1)
    return _result(out_dir, params, manifest, generated=True)
