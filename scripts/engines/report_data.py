"""Where the report bundle's data comes from: the user's HistGen dataset or the embedded demo."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import torch

from scripts.data import FEATURE_SUFFIXES, load_annotation, read_feature_header
from scripts.text import Vocabulary

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ReportData:
    """A resolved dataset.

    Attributes:
        dataset_dir: folder of ``<slide_id>.h5`` / ``.pt`` feature files.
        annotation_file: HistGen-format annotation JSON.
        feature_dim: D of the feature files.
        synthetic: True for the embedded demo.
    """

    dataset_dir: Path
    annotation_file: Path
    feature_dim: int
    synthetic: bool


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def feature_dim_of(dataset_dir: str | os.PathLike[str], annotation_file: str | os.PathLike[str]) -> int:
    """D of the first readable feature file of the annotation's train (or first) split."""
    annotation = load_annotation(annotation_file)
    folder = Path(dataset_dir)
    for split in ("train", "val", "test", *annotation):
        for item in annotation.get(split, []):
            for suffix in FEATURE_SUFFIXES:
                path = folder / f"{item['id']}{suffix}"
                if path.is_file():
                    return read_feature_header(path, item["id"]).feature_dim
    raise FileNotFoundError(f"{folder}: no feature file for any slide of {annotation_file}")


def resolve_report_data(
    dataset_dir: str | os.PathLike[str] | None,
    annotation_file: str | os.PathLike[str] | None,
    output_dir: str | os.PathLike[str],
    demo: dict[str, Any] | None = None,
) -> ReportData:
    """Use the given dataset, or build the SYNTHETIC demo when neither path is given.

    Args:
        dataset_dir: folder of feature files, or None.
        annotation_file: HistGen annotation JSON, or None.
        output_dir: run folder; the demo is written to ``<output_dir>/demo_data``.
        demo: keyword arguments of :func:`scripts.demo.feature_bags.make_demo_dataset`
            (e.g. ``{"shuffle_pairs": true}`` for the control run).
    """
    if dataset_dir is None and annotation_file is None:
        from scripts.demo.feature_bags import make_demo_dataset

        options = dict(demo or {})
        name = "demo_data_shuffled" if options.get("shuffle_pairs") else "demo_data"
        # in a distributed run rank 0 writes the demo first; the other ranks then reuse its files
        rank0_first = _distributed()
        if rank0_first and torch.distributed.get_rank() != 0:
            torch.distributed.barrier()
        built = make_demo_dataset(Path(output_dir) / name, **options)
        if rank0_first and torch.distributed.get_rank() == 0:
            torch.distributed.barrier()
        logger.warning(
            "no dataset_dir/annotation_file given: using the SYNTHETIC demo dataset in %s "
            "(generated feature bags, not patient data)", built.annotation_file.parent,
        )
        dataset_dir, annotation_file, synthetic = built.dataset_dir, built.annotation_file, True
    elif dataset_dir is None or annotation_file is None:
        raise ValueError(
            "give both dataset_dir (feature files) and annotation_file (HistGen JSON), or neither for the demo; "
            f"got dataset_dir={dataset_dir!r}, annotation_file={annotation_file!r}"
        )
    else:
        synthetic = False
        for label, path in (("dataset_dir", dataset_dir), ("annotation_file", annotation_file)):
            if not Path(path).exists():
                raise FileNotFoundError(f"{label} {path}: not found")
    return ReportData(
        Path(dataset_dir), Path(annotation_file), feature_dim_of(dataset_dir, annotation_file), synthetic
    )


def build_vocabulary(
    annotation_file: str | os.PathLike[str], threshold: int, vocab_file: str | os.PathLike[str] | None = None
) -> Vocabulary:
    """The vocabulary of the train split (HistGen's rule), or the one saved in ``vocab_file`` if given."""
    if vocab_file:
        return Vocabulary.load(vocab_file)
    return Vocabulary.from_reference_annotation(annotation_file, threshold)


def default_key_phrases(data: ReportData) -> dict[str, list[str]] | None:
    """Key phrases for clinical-correctness scores: the demo's diagnoses and tumour shares, else None."""
    if not data.synthetic:
        return None
    from scripts.demo.reports import DEMO_KEY_PHRASES

    return {group: list(phrases) for group, phrases in DEMO_KEY_PHRASES.items()}


def feature_file_list(
    feature_files: str | os.PathLike[str] | list[str] | None, dataset_dir: str | os.PathLike[str] | None
) -> list[Path]:
    """Feature files for inference: the given file(s), or every ``.h5``/``.pt`` file in ``dataset_dir``."""
    if feature_files:
        paths = [Path(p) for p in ([feature_files] if isinstance(feature_files, (str, os.PathLike)) else feature_files)]
    elif dataset_dir:
        folder = Path(dataset_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"dataset_dir {folder}: not a folder")
        paths = sorted(p for p in folder.iterdir() if p.suffix in FEATURE_SUFFIXES and not p.name.startswith("."))
    else:
        raise ValueError("inference needs feature_files (a file or a list) or dataset_dir (a folder of feature files)")
    if not paths:
        raise FileNotFoundError(f"no .h5/.pt feature files found in {dataset_dir}")
    return paths
