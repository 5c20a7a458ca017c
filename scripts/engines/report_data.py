"""Where the report bundle's data comes from: the user's HistGen dataset, or the folder a producer (the
embedded demo, declared in the config) writes."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from scripts.data import (
    FEATURE_SUFFIXES,
    DatasetProducer,
    load_annotation,
    read_feature_header,
    vocabulary_from_annotation,
)
from scripts.text import Vocabulary

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ReportData:
    """A resolved dataset.

    Attributes:
        dataset_dir: folder of ``<slide_id>.h5`` / ``.pt`` feature files.
        annotation_file: HistGen-format annotation JSON.
        feature_dim: D of the feature files.
        synthetic: True for data a producer wrote as SYNTHETIC (the embedded demo).
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
    producer: DatasetProducer | None = None,
) -> ReportData:
    """Use the given dataset, or the one ``producer`` writes when neither path is given.

    Args:
        dataset_dir: folder of feature files, or None.
        annotation_file: HistGen annotation JSON, or None.
        output_dir: run folder, handed to the producer.
        producer: writes (or reuses) a dataset under ``output_dir`` and returns its paths
            (:class:`scripts.data.ProducedDataset`); the configs declare the SYNTHETIC demo
            (``$scripts.demo.DemoProducer(@demo)``). Its folder is then read like a user's.

    Raises:
        ValueError: only one of the paths given, or neither and no producer.
        FileNotFoundError: a given path does not exist.
    """
    synthetic = False
    if dataset_dir is None and annotation_file is None:
        if producer is None:
            raise ValueError("give dataset_dir (feature files) and annotation_file (HistGen JSON)")
        # in a distributed run rank 0 writes the data first; the other ranks then reuse its files
        rank0_first = _distributed()
        if rank0_first and torch.distributed.get_rank() != 0:
            torch.distributed.barrier()
        try:
            produced = producer(Path(output_dir))
        finally:
            if rank0_first and torch.distributed.get_rank() == 0:
                torch.distributed.barrier()
        if produced.annotation_file is None:
            raise ValueError(f"{producer!r} wrote no annotation file (report generation needs one)")
        dataset_dir, annotation_file, synthetic = produced.dataset_dir, produced.annotation_file, produced.synthetic
        if synthetic:
            logger.warning(
                "no dataset_dir/annotation_file given: using the SYNTHETIC demo dataset in %s (%s, not patient data)",
                Path(annotation_file).parent, produced.description,
            )
    elif dataset_dir is None or annotation_file is None:
        raise ValueError(
            "give both dataset_dir (feature files) and annotation_file (HistGen JSON), or neither for the demo; "
            f"got dataset_dir={dataset_dir!r}, annotation_file={annotation_file!r}"
        )
    else:
        for label, path in (("dataset_dir", dataset_dir), ("annotation_file", annotation_file)):
            if not Path(path).exists():
                raise FileNotFoundError(f"{label} {path}: not found")
    return ReportData(
        Path(dataset_dir), Path(annotation_file), feature_dim_of(dataset_dir, annotation_file), synthetic
    )


def feature_extraction_of(data: ReportData, split: str = "train") -> dict[str, Any] | None:
    """The patch-extraction settings of a dataset, to save beside a model (``models/feature_extraction.json``).

    Read from the h5 attributes that :class:`scripts.wsi.FeatureExtractor` writes (encoder name and
    checksum, ``target_mpp``, ``patch_size``, ``step``, ``tissue_fraction``, tissue-mask parameters...)
    of every slide of ``split``. Slide inference extracts new slides with these settings.

    Returns:
        The settings of the first slide (plus ``feature_dim`` and ``checked_files``), or None when any
        slide's features do not come from the extractor (``.pt`` files, other tools, the feature-bag demo).
        Slides whose settings differ from the first one's are counted in ``differing`` and logged.
    """
    from scripts.data import find_feature_file, load_annotation
    from scripts.data.errors import BagDataError
    from scripts.wsi.feature_outputs import extraction_record

    annotation = load_annotation(data.annotation_file)
    record: dict[str, Any] | None = None
    differing: dict[str, int] = {}
    checked = 0
    for item in annotation.get(split, []):
        try:
            path = find_feature_file(data.dataset_dir, item["id"])
        except BagDataError:
            continue
        attrs = extraction_record(path) if path.suffix == ".h5" else None
        if attrs is None:
            logger.info("%s: no feature-extraction attributes; no extraction settings are saved with the model", path)
            return None
        checked += 1
        if record is None:
            record = attrs
            continue
        for key, value in attrs.items():
            if value != record[key]:
                differing[key] = differing.get(key, 0) + 1
    if record is None:
        return None
    if differing:
        logger.warning(
            "%s: the %s features were extracted with different settings (slides differing from %s: %s); "
            "slide inference will use the first slide's",
            data.dataset_dir, split, annotation[split][0]["id"], differing,
        )
    return {**record, "checked_files": checked, "differing": differing}


def build_vocabulary(
    annotation_file: str | os.PathLike[str], threshold: int, vocab_file: str | os.PathLike[str] | None = None
) -> Vocabulary:
    """The vocabulary of the train split (HistGen's rule), or the one saved in ``vocab_file`` if given."""
    if vocab_file:
        return Vocabulary.load(vocab_file)
    return vocabulary_from_annotation(annotation_file, threshold)


def default_key_phrases(data: ReportData) -> dict[str, list[str]] | None:
    """Key phrases for clinical-correctness scores: the annotation's ``key_phrases`` (``{group: [phrases]}``, the
    demo declares its diagnoses and tumour shares there), else None."""
    try:
        declared = json.loads(Path(data.annotation_file).read_text(encoding="utf-8")).get("key_phrases")
    except (OSError, ValueError, AttributeError):
        return None
    if declared is None:
        return None
    if not isinstance(declared, dict) or not all(
        isinstance(v, list) and all(isinstance(p, str) for p in v) for v in declared.values()
    ):
        raise ValueError(f"{data.annotation_file}: key_phrases must be {{group: [phrase, ...]}}, got {declared!r}")
    return {str(group): list(phrases) for group, phrases in declared.items()}


def feature_file_list(
    feature_files: str | os.PathLike[str] | list[str] | None,
    dataset_dir: str | os.PathLike[str] | None,
    allow_none: bool = False,
) -> list[Path]:
    """Feature files for inference: the given file(s), or every ``.h5``/``.pt`` file in ``dataset_dir``.

    ``allow_none=True`` returns ``[]`` when neither is given (the configs' default values, so that MONAI's
    ``check_properties`` resolves ``dataset`` without data); the workflow's run then calls it again without
    ``allow_none`` to stop with the clear error.
    """
    if allow_none and not feature_files and not dataset_dir:
        return []
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
