"""Feature files checked against the model before inference decodes them.

``extract_features`` writes its settings into each ``.h5`` (attributes, :mod:`scripts.wsi.feature_outputs`);
training saves those of its features as ``models/feature_extraction.json``. Features made another way (a
different encoder or weights, another patch size or resolution) give the model input it never saw, and
its reports are then unreliable with no sign of it. :func:`check_feature_files` compares
:data:`CHECKED_KEYS` and refuses a mismatch, naming the file, the setting and both values, unless the
expert override ``allow_feature_mismatch`` is set (then it is logged as a warning). Files that carry no
settings (HistGen's ``.pt``, ``.h5`` from other tools) cannot be checked: one warning says so.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .model_files import EXTRACTION_FILE, load_feature_extraction

__all__ = ["CHECKED_KEYS", "FeatureMismatchError", "check_feature_files", "feature_mismatches"]

#: Settings compared between a feature file's attributes and the model's ``feature_extraction.json``.
CHECKED_KEYS = ("encoder_name", "encoder_checksum", "patch_size", "target_mpp")

logger = logging.getLogger("histgen.features")


class FeatureMismatchError(ValueError):
    """Feature files extracted with other settings than the model's training features."""


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bytes):
        a = a.decode("utf-8", errors="replace")
    if isinstance(b, bytes):
        b = b.decode("utf-8", errors="replace")
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
    except (TypeError, ValueError):
        return str(a) == str(b)


def _shown(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if hasattr(value, "item"):
        value = value.item()
    text = str(value)
    return text[:12] if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else text  # checksums


def feature_mismatches(attrs: dict[str, Any], record: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, file value, model value)`` for each :data:`CHECKED_KEYS` entry both record and that differs."""
    return [(key, attrs[key], record[key]) for key in CHECKED_KEYS
            if key in attrs and key in record and not _same(attrs[key], record[key])]


def check_feature_files(
    paths: Sequence[str | os.PathLike[str]],
    model_dir: str | os.PathLike[str],
    allow_mismatch: bool = False,
) -> None:
    """Compare each feature file's extraction attributes with ``<model_dir>/feature_extraction.json``.

    Args:
        paths: ``.h5`` / ``.pt`` feature files about to be decoded.
        model_dir: the model folder.
        allow_mismatch: log a mismatch as a warning and go on (the ``allow_feature_mismatch`` key).

    Raises:
        FeatureMismatchError: a file's encoder name or checksum, patch size or target mpp differs from the
            model's, naming each differing setting with both values, the first file and the count.
    """
    from scripts.wsi import read_h5_attrs

    record = load_feature_extraction(model_dir)
    where = Path(model_dir) / EXTRACTION_FILE
    if record is None:
        logger.info("%s: not found, so the feature files cannot be checked against the model's training "
                    "features (the model does not record how they were made)", where)
        return
    unchecked: list[Path] = []
    differing: dict[tuple[str, str, str], list[Path]] = {}
    for path in map(Path, paths):
        attrs = read_h5_attrs(path) if path.suffix == ".h5" else None
        if not attrs or not any(key in attrs for key in CHECKED_KEYS):
            unchecked.append(path)
            continue
        for key, got, want in feature_mismatches(attrs, record):
            differing.setdefault((key, _shown(got), _shown(want)), []).append(path)
    if unchecked:
        logger.warning(
            "%d feature file(s) carry no extraction settings (e.g. %s; HistGen .pt files never do): they cannot be "
            "checked against the model's encoder %s, patch_size %s, target_mpp %s (%s)", len(unchecked),
            unchecked[0], record.get("encoder_name"), record.get("patch_size"), record.get("target_mpp"), where)
    if not differing:
        return
    details = "; ".join(
        f"{key} {got} in {files[0]}" + (f" and {len(files) - 1} more file(s)" if len(files) > 1 else "")
        + f" but {want} in the model's {EXTRACTION_FILE}"
        for (key, got, want), files in differing.items()
    )
    message = (f"features do not match the model in {Path(model_dir)}: {details}; its reports would be "
               "unreliable. Re-extract the slides with the model's settings (or run inference on the slides "
               "themselves with --slide / --slides_dir)")
    if allow_mismatch:
        logger.warning("%s. Going on because allow_feature_mismatch is true", message)
        return
    raise FeatureMismatchError(f"{message}, or set --allow_feature_mismatch true to decode them anyway")
