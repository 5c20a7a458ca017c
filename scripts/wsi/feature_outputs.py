"""Per-slide outputs of feature extraction and the rule that decides whether they are current.

- ``<slide_id>.h5``: ``feats [N, D]`` float32, ``coords [N, 2]`` int64 (level-0 x, y) and attributes,
  written by ``scripts.data.write_feature_file_h5`` (atomic: temporary file + ``os.replace``).
- ``<slide_id>.pt`` (``save_pt``): HistGen's layout, a float32 tensor ``[N, D]``, also atomic.

A finished ``.h5`` is *current* when the attributes listed in :data:`RUN_KEYS` equal those the run
would write: the slide file's size and mtime, the encoder's name and checksum, every patch and
tissue parameter, the stain normalisation (``stain_normalization``: ``none`` or ``macenko``) and the
patch preprocessing chain (``preprocessing``: ``encoder`` for the encoder's own steps, else
``custom: <transform names>``). Files written before the last two existed count as ``none`` / ``encoder``
(:data:`RUN_KEY_DEFAULTS`). Temporary files are named ``.<output file name>.<random>.tmp`` (e.g.
``.CASE-1.h5.k2x9.tmp``); those left by a killed run are removed before the slide is processed again.
"""

from __future__ import annotations

import glob
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scripts.atomic_io import atomic_path
from scripts.data.errors import BagDataError
from scripts.data.feature_files import read_feature_attrs, read_feature_file, write_feature_file_h5
from scripts.ids import output_file

#: Bumped when the meaning of the stored features or attributes changes.
FORMAT_VERSION = 1

#: Attributes compared to decide whether a finished file is current.
RUN_KEYS = (
    "format_version",
    "slide_file_size",
    "slide_mtime",
    "encoder_name",
    "encoder_checksum",
    "wsi_backend",
    "target_mpp",
    "assume_mpp",
    "mpp_tolerance",
    "patch_size",
    "step",
    "tissue_fraction",
    "tissue_params",
    "stain_normalization",
    "preprocessing",
)
#: Values taken for run keys that files written before the key existed lack (the settings those files were made with).
RUN_KEY_DEFAULTS = {"stain_normalization": "none", "preprocessing": "encoder"}
#: The slide file's own attributes among :data:`RUN_KEYS` (they change when the file is copied or touched).
SLIDE_FILE_KEYS = ("slide_file_size", "slide_mtime")
#: The run keys a model's inputs depend on: the extraction settings, saved with a model trained on the files.
EXTRACTION_KEYS = tuple(key for key in RUN_KEYS if key not in SLIDE_FILE_KEYS)


def h5_path(output_dir: str | os.PathLike, slide_id: str) -> Path:
    """``<output_dir>/<slide_id>.h5``; raises ``scripts.ids.UnsafeIdError`` for an id that would leave the folder."""
    return output_file(output_dir, slide_id, ".h5", "slide id")


def pt_path(output_dir: str | os.PathLike, slide_id: str) -> Path:
    return output_file(output_dir, slide_id, ".pt", "slide id")


def thumbnail_path(output_dir: str | os.PathLike, slide_id: str) -> Path:
    return output_file(output_dir, slide_id, "_thumb.png", "slide id")


def _canonical(value: Any) -> Any:
    """Comparable form of an attribute (JSON text for containers and None, floats rounded)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str) and (value[:1] in ("{", "[") or value == "null"):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, TypeError):
            return value
    if isinstance(value, float):
        return float(f"{value:.12g}") if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def read_h5_attrs(path: str | os.PathLike) -> dict[str, Any] | None:
    """Attributes of a finished ``.h5`` (without reading the features), or None if unreadable.

    A thin view of :func:`scripts.data.read_feature_attrs` (the one h5 reader): a file is finished when it holds
    ``feats`` and ``coords``; ``n_patches`` and ``feature_dim`` come from the features' shape.
    """
    try:
        attrs = read_feature_attrs(path)
    except BagDataError:  # missing, truncated or foreign file: not current
        return None
    if not attrs.pop("has_coords"):
        return None
    return attrs


def extraction_record(path: str | os.PathLike) -> dict[str, Any] | None:
    """The :data:`EXTRACTION_KEYS` (decoded) and ``feature_dim`` of an extractor ``.h5``; None for other files."""
    attrs = read_h5_attrs(path)
    if attrs is None:
        return None
    attrs = {**RUN_KEY_DEFAULTS, **attrs}
    if any(key not in attrs for key in EXTRACTION_KEYS):
        return None
    return {**{key: _canonical(attrs[key]) for key in EXTRACTION_KEYS}, "feature_dim": attrs["feature_dim"]}


def stale_reasons(stored: dict[str, Any] | None, expected: dict[str, Any]) -> list[str]:
    """Why a stored file is not current (empty list = current)."""
    if stored is None:
        return ["no readable feature file"]
    stored = {**RUN_KEY_DEFAULTS, **stored}
    reasons = []
    for key in RUN_KEYS:
        if key not in stored:
            reasons.append(f"{key} missing")
        elif _canonical(stored[key]) != _canonical(expected.get(key)):
            reasons.append(f"{key} {_canonical(stored[key])!r} -> {_canonical(expected.get(key))!r}")
    return reasons


def remove_stale_temporaries(output_dir: str | os.PathLike, slide_id: str) -> list[Path]:
    """Delete the temporary files of ``slide_id``'s outputs left by a killed run; return them."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    removed = []
    for final in (h5_path(folder, slide_id), pt_path(folder, slide_id), thumbnail_path(folder, slide_id)):
        for tmp in folder.glob(glob.escape(f".{final.name}.") + "*.tmp"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def write_features_h5(path: Path, feats: np.ndarray, coords: np.ndarray, attrs: dict[str, Any]) -> Path:
    """Write ``feats [N, D]`` float32 and ``coords [N, 2]`` int64 with ``attrs`` atomically."""
    return write_feature_file_h5(
        path, np.asarray(feats, dtype=np.float32), np.asarray(coords, dtype=np.int64), attrs=attrs
    )


def write_features_pt(path: Path, feats: np.ndarray | torch.Tensor) -> Path:
    """Write HistGen's ``.pt`` (a float32 tensor ``[N, D]``) atomically."""
    tensor = torch.as_tensor(np.asarray(feats, dtype=np.float32)).contiguous()
    with atomic_path(path) as tmp:
        torch.save(tensor, tmp)
        os.chmod(tmp, 0o644)
    return path


def read_h5_feats(path: Path) -> np.ndarray:
    """``feats [N, D]`` of a finished ``.h5`` (to rebuild a missing ``.pt``)."""
    return read_feature_file(path, check_finite=False).feats.numpy()
