"""What a report model was trained on (``models/provenance.json``) and the notices its outputs carry.

Training writes ``provenance.json`` beside ``model.pt`` (:func:`training_provenance`, saved by
:func:`scripts.engines.save_report_model`)::

    {"dataset": "HistGen demo (synthetic slides)", "synthetic": true, "annotation_file": "...",
     "slides": {"train": 168, "val": 24, "test": 48}, "extraction": {"encoder_name": "builtin-small",
     "patch_size": 128, "target_mpp": 0.5, ...}, "trained_at": "2026-12-01T18:02:11Z",
     "code_version": "0.1.0+git.796430b"}

Every reader shows it as one line (:func:`provenance_summary`) when it loads the model, and every output
(``<id>.txt``, the ``notice`` column of ``reports.csv``, the log, the pyfunc model's ``notice`` column)
carries :func:`output_notice`: :data:`RESEARCH_NOTICE`, preceded by :data:`SYNTHETIC_WARNING` when the model
saw only synthetic data. A model without ``provenance.json`` (saved before it existed, or imported) says so.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

__all__ = [
    "PROVENANCE_FILE",
    "RESEARCH_NOTICE",
    "SYNTHETIC_WARNING",
    "code_version",
    "is_synthetic",
    "load_provenance",
    "log_model_provenance",
    "output_notice",
    "provenance_summary",
    "training_provenance",
]

PROVENANCE_FILE = "provenance.json"
#: First line of every output of a model trained only on synthetic data.
SYNTHETIC_WARNING = "SYNTHETIC-DATA MODEL — NOT FOR DIAGNOSIS"
#: Carried by every output.
RESEARCH_NOTICE = "Research use only: not a medical device; not for diagnosis or treatment decisions."

logger = logging.getLogger("histgen.model")

_BUNDLE_ROOT = Path(__file__).resolve().parents[2]


def code_version() -> str:
    """The bundle's ``configs/metadata.json`` version, with ``+git.<commit>`` when the code is a git checkout."""
    version = "unknown"
    try:
        version = json.loads((_BUNDLE_ROOT / "configs" / "metadata.json").read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError):
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=_BUNDLE_ROOT, capture_output=True,
                                text=True, timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{version}+git.{commit}" if commit else version


def _split_sizes(annotation_file: str | os.PathLike[str]) -> dict[str, int]:
    try:
        annotation = json.loads(Path(annotation_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {split: len(items) for split, items in annotation.items() if isinstance(items, list)}


def training_provenance(data: Any, extraction: dict[str, Any] | None = None,
                        dataset_name: str | None = None) -> dict[str, Any]:
    """The record of a training run's data (saved as ``provenance.json`` with the model).

    Args:
        data: the run's :class:`scripts.engines.ReportData` (``dataset_dir``, ``annotation_file``, ``synthetic``).
        extraction: the training features' extraction settings (``feature_extraction.json``), or None.
        dataset_name: a name to show; default the demo's name, else the annotation file's folder name.

    Returns:
        ``dataset, synthetic, dataset_dir, annotation_file, slides {split: count}, extraction, code_version``
        (``trained_at`` is added when the model is saved).
    """
    synthetic = bool(getattr(data, "synthetic", False))
    annotation = Path(data.annotation_file)
    name = dataset_name or ("HistGen demo (synthetic slides)" if synthetic else annotation.resolve().parent.name)
    return {
        "dataset": name,
        "synthetic": synthetic,
        "dataset_dir": str(data.dataset_dir),
        "annotation_file": str(annotation),
        "slides": _split_sizes(annotation),
        "extraction": dict(extraction) if extraction else None,
        "code_version": code_version(),
    }


def stamped(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with ``trained_at`` (UTC, seconds) set to now: the time the model files are written."""
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return {**record, "trained_at": now}


def load_provenance(model_dir: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """``<model_dir>/provenance.json``, or None when the model has none (or ``model_dir`` is None)."""
    if model_dir is None:
        return None
    path = Path(model_dir) / PROVENANCE_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(record, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(record).__name__}")
    return record


def is_synthetic(record: dict[str, Any] | None) -> bool:
    """True when the model's record says it saw only synthetic data."""
    return bool(record and record.get("synthetic"))


def provenance_summary(record: dict[str, Any] | None) -> str:
    """One line: what the model was trained on, when, with which code and features."""
    if not record:
        return "model provenance unknown (no provenance.json: saved before it was recorded, or imported)"
    slides = record.get("slides") or {}
    total = sum(int(n) for n in slides.values()) if slides else None
    parts = [f"trained on {record.get('dataset', 'an unnamed dataset')}"
             + (" (SYNTHETIC data)" if record.get("synthetic") else " (real data)")]
    if total is not None:
        parts.append(f"{total} slides ({', '.join(f'{k} {v}' for k, v in slides.items())})")
    extraction = record.get("extraction") or {}
    if extraction:
        parts.append(f"features {extraction.get('encoder_name')} at {extraction.get('patch_size')} px, "
                     f"{extraction.get('target_mpp')} um/px")
    else:
        parts.append("features of unrecorded origin")
    if record.get("trained_at"):
        parts.append(f"saved {record['trained_at']}")
    if record.get("code_version"):
        parts.append(f"code {record['code_version']}")
    return "model " + "; ".join(parts)


def output_notice(record: dict[str, Any] | None) -> str:
    """The notice every output of the model carries (one line)."""
    if is_synthetic(record):
        return f"{SYNTHETIC_WARNING}: trained only on synthetic slides, it describes no real tissue. {RESEARCH_NOTICE}"
    return RESEARCH_NOTICE


def log_model_provenance(model_dir: str | os.PathLike[str] | None,
                         record: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Log the one-line summary of the model in ``model_dir`` (and the synthetic warning); return its record."""
    if record is None:
        record = load_provenance(model_dir)
    logger.info("%s", provenance_summary(record))
    if is_synthetic(record):
        logger.warning("%s (%s): its reports are not about real tissue", SYNTHETIC_WARNING, model_dir)
    return record
