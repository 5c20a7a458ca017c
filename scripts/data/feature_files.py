"""Per-slide patch feature files: find, check, read and write.

Two formats, one slide per file, named after the slide id in a dataset folder:

- ``<id>.h5`` (preferred, written by :func:`write_feature_file_h5`): dataset ``feats`` ``[N, D]`` float
  (``features``, the name CLAM and TRIDENT use, is read too), optional ``coords`` ``[N, 2]`` int
  (level-0 x, y of each patch) and optional file attributes (encoder name, patch size, ...).
- ``<id>.pt`` (HistGen's format): a tensor ``[N, D]`` saved with ``torch.save``; a dict holding
  ``feats`` (or ``features``) and optional ``coords`` is accepted too. Read with ``weights_only=True``.

When both exist, :func:`find_feature_file` takes the ``.h5`` (it can carry coordinates).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.utils import optional_import

from scripts.atomic_io import atomic_path
from scripts.safe_load import UnsafeFileError, load_plain

from .errors import BagDataError

h5py, _has_h5py = optional_import("h5py")

__all__ = [
    "FEATURE_SUFFIXES",
    "FeatureBag",
    "FeatureFileInfo",
    "find_feature_file",
    "read_feature_attrs",
    "read_feature_file",
    "read_feature_header",
    "write_feature_file_h5",
]

#: Looked up in this order by :func:`find_feature_file`.
FEATURE_SUFFIXES = (".h5", ".pt")
_FEATURE_KEYS = ("feats", "features")


@dataclass(frozen=True)
class FeatureFileInfo:
    """What a feature file holds, read without loading the features.

    Attributes:
        path: the file.
        num_patches: N.
        feature_dim: D.
        has_coords: whether ``coords [N, 2]`` is stored.
    """

    path: Path
    num_patches: int
    feature_dim: int
    has_coords: bool


@dataclass
class FeatureBag:
    """One slide's patch features.

    Attributes:
        feats: ``[N, D]`` float32.
        coords: ``[N, 2]`` int64 (x, y at level 0) or None when the file has none.
        path: the file it was read from.
        attrs: the file's attributes (h5 only; JSON strings written by us are decoded).
    """

    feats: torch.Tensor
    coords: torch.Tensor | None
    path: Path
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def num_patches(self) -> int:
        return int(self.feats.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.feats.shape[1])


def _label(path: Path, slide_id: str | None) -> str:
    return f"slide {slide_id!r} ({path})" if slide_id is not None else str(path)


def find_feature_file(dataset_dir: str | os.PathLike[str], slide_id: str) -> Path:
    """Path of ``<slide_id>.h5`` or else ``<slide_id>.pt`` in ``dataset_dir``.

    Raises:
        BagDataError: neither exists.
    """
    folder = Path(dataset_dir)
    for suffix in FEATURE_SUFFIXES:
        candidate = folder / f"{slide_id}{suffix}"
        if candidate.is_file():
            return candidate
    names = " or ".join(f"{slide_id}{s}" for s in FEATURE_SUFFIXES)
    raise BagDataError(f"slide {slide_id!r}: no feature file {names} in {folder}")


# ---------------------------------------------------------------------------- checks
def _check_shape(label: str, shape: tuple[int, ...], feature_dim: int | None, what: str = "features") -> None:
    if len(shape) != 2:
        raise BagDataError(f"{label}: {what} must be [N, D], found rank {len(shape)} shape {list(shape)}")
    if shape[0] == 0:
        raise BagDataError(f"{label}: empty bag (0 patches)")
    if shape[1] == 0:
        raise BagDataError(f"{label}: {what} have dimension 0")
    if feature_dim is not None and shape[1] != feature_dim:
        raise BagDataError(f"{label}: feature dimension {shape[1]}, expected {feature_dim}")


def _check_coords_shape(label: str, coords_shape: tuple[int, ...] | None, num_patches: int) -> None:
    if coords_shape is not None and tuple(coords_shape) != (num_patches, 2):
        raise BagDataError(f"{label}: coords must be [{num_patches}, 2], found {list(coords_shape)}")


def _check_finite(label: str, feats: torch.Tensor) -> None:
    finite = torch.isfinite(feats)
    if bool(finite.all()):
        return
    bad = ~finite
    n_nan = int(torch.isnan(feats).sum())
    n_inf = int(bad.sum()) - n_nan
    first_row = int(bad.any(dim=1).nonzero()[0, 0])
    raise BagDataError(f"{label}: features hold {n_nan} NaN and {n_inf} Inf value(s) (first in patch {first_row})")


# ---------------------------------------------------------------------------- .pt
def _pt_payload(obj: Any, label: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(obj, torch.Tensor):
        return obj, None
    if isinstance(obj, dict):
        for key in _FEATURE_KEYS:
            if isinstance(obj.get(key), torch.Tensor):
                coords = obj.get("coords")
                if coords is not None and not isinstance(coords, torch.Tensor):
                    raise BagDataError(f"{label}: 'coords' must be a tensor, found {type(coords).__name__}")
                return obj[key], coords
        raise BagDataError(f"{label}: dict without a 'feats' or 'features' tensor (keys {sorted(map(str, obj))})")
    raise BagDataError(f"{label}: expected a tensor [N, D], found {type(obj).__name__}")


def _load_pt(path: Path, label: str, mmap: bool) -> Any:
    try:
        return load_plain(path, what="feature file", mmap=mmap)
    except UnsafeFileError as err:
        raise BagDataError(f"{label}: {err}") from None
    except Exception as err:  # torch raises RuntimeError, pickle errors, zipfile errors, EOFError ...
        raise BagDataError(f"{label}: unreadable .pt file ({err})") from err


# ---------------------------------------------------------------------------- .h5
def _require_h5py() -> None:
    if not _has_h5py:
        raise BagDataError("reading or writing .h5 feature files needs h5py (pip install h5py)")


def _h5_feature_dataset(handle: Any, label: str) -> Any:
    for key in _FEATURE_KEYS:
        if key in handle:
            return handle[key]
    raise BagDataError(f"{label}: no 'feats' dataset (keys {sorted(handle.keys())})")


def _open_h5(path: Path, label: str) -> Any:
    _require_h5py()
    try:
        return h5py.File(path, "r")
    except Exception as err:
        raise BagDataError(f"{label}: unreadable .h5 file ({type(err).__name__}: {err})") from err


def _decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


# ---------------------------------------------------------------------------- public readers
def read_feature_attrs(path: str | os.PathLike[str], slide_id: str | None = None) -> dict[str, Any]:
    """The attributes of an ``.h5`` feature file, decoded, without reading the features.

    Returns:
        The file attributes (JSON text written by :func:`write_feature_file_h5` decoded back to dicts and
        lists, numpy scalars to Python ones) plus ``n_patches`` and ``feature_dim`` from the feature dataset's
        shape and ``has_coords``.

    Raises:
        BagDataError: missing, unreadable or not an ``.h5`` file, no feature dataset.
    """
    path = Path(path)
    label = _label(path, slide_id)
    if not path.is_file():
        raise BagDataError(f"{label}: feature file not found")
    handle = _open_h5(path, label)
    try:
        with handle:
            shape = tuple(_h5_feature_dataset(handle, label).shape)
            attrs = {key: _decode_attr(value) for key, value in handle.attrs.items()}
            has_coords = "coords" in handle
    except BagDataError:
        raise
    except Exception as err:
        raise BagDataError(f"{label}: unreadable .h5 file ({type(err).__name__}: {err})") from err
    if len(shape) != 2:
        raise BagDataError(f"{label}: features must be [N, D], found rank {len(shape)} shape {list(shape)}")
    attrs["n_patches"], attrs["feature_dim"] = int(shape[0]), int(shape[1])
    attrs["has_coords"] = has_coords
    return attrs


def read_feature_header(
    path: str | os.PathLike[str], slide_id: str | None = None, feature_dim: int | None = None
) -> FeatureFileInfo:
    """Check a feature file's shapes without reading the features (h5 header, or a memory-mapped .pt).

    Raises:
        BagDataError: missing or unreadable file, wrong rank, empty bag, wrong ``feature_dim``,
            coords not ``[N, 2]``. NaN/Inf are *not* checked here (see :func:`read_feature_file`).
    """
    path = Path(path)
    label = _label(path, slide_id)
    if not path.is_file():
        raise BagDataError(f"{label}: feature file not found")
    if path.suffix == ".h5":
        handle = _open_h5(path, label)
        try:
            with handle:
                shape = tuple(_h5_feature_dataset(handle, label).shape)
                coords_shape = tuple(handle["coords"].shape) if "coords" in handle else None
        except BagDataError:
            raise
        except Exception as err:
            raise BagDataError(f"{label}: unreadable .h5 file ({type(err).__name__}: {err})") from err
    else:
        feats, coords = _pt_payload(_load_pt(path, label, mmap=True), label)
        shape = tuple(feats.shape)
        coords_shape = tuple(coords.shape) if coords is not None else None
    _check_shape(label, shape, feature_dim)
    _check_coords_shape(label, coords_shape, shape[0])
    return FeatureFileInfo(path, int(shape[0]), int(shape[1]), coords_shape is not None)


def read_feature_file(
    path: str | os.PathLike[str],
    slide_id: str | None = None,
    feature_dim: int | None = None,
    check_finite: bool = True,
    read_attrs: bool = True,
) -> FeatureBag:
    """Read and check one slide's features.

    Args:
        path: an ``.h5`` or ``.pt`` feature file (any other suffix is read as ``.pt``).
        slide_id: named in error messages.
        feature_dim: expected D, or None to accept any.
        check_finite: reject NaN/Inf values.
        read_attrs: decode the ``.h5`` file's attributes (provenance) into ``attrs``; training loaders leave
            them (a demo file has ~50, and decoding them cost more than reading its features).

    Returns:
        A :class:`FeatureBag` with ``feats [N, D] float32`` and ``coords [N, 2] int64`` or None.

    Raises:
        BagDataError: missing/unreadable/corrupt file, wrong rank, empty bag, wrong dimension, NaN/Inf,
            coords not ``[N, 2]``; the message names the slide and the file.
    """
    path = Path(path)
    label = _label(path, slide_id)
    if not path.is_file():
        raise BagDataError(f"{label}: feature file not found")
    attrs: dict[str, Any] = {}
    if path.suffix == ".h5":
        handle = _open_h5(path, label)
        try:
            with handle:
                dataset = _h5_feature_dataset(handle, label)
                _check_shape(label, tuple(dataset.shape), feature_dim)
                feats_np = dataset[()]
                coords_np = handle["coords"][()] if "coords" in handle else None
                if read_attrs:
                    attrs = {key: _decode_attr(value) for key, value in handle.attrs.items()}
        except BagDataError:
            raise
        except Exception as err:
            raise BagDataError(f"{label}: unreadable .h5 file ({type(err).__name__}: {err})") from err
        if not np.issubdtype(feats_np.dtype, np.number) or np.iscomplexobj(feats_np):
            raise BagDataError(f"{label}: features must be real numbers, found dtype {feats_np.dtype}")
        feats = torch.from_numpy(np.ascontiguousarray(feats_np))
        coords = torch.from_numpy(np.ascontiguousarray(coords_np)) if coords_np is not None else None
    else:
        feats, coords = _pt_payload(_load_pt(path, label, mmap=False), label)
        if feats.is_complex() or feats.dtype == torch.bool:
            raise BagDataError(f"{label}: features must be real numbers, found dtype {feats.dtype}")
    _check_shape(label, tuple(feats.shape), feature_dim)
    _check_coords_shape(label, tuple(coords.shape) if coords is not None else None, int(feats.shape[0]))
    feats = feats.to(torch.float32).contiguous()
    if check_finite:
        _check_finite(label, feats)
    if coords is not None:
        if coords.is_floating_point() and not bool(torch.isfinite(coords).all()):
            raise BagDataError(f"{label}: coords hold NaN or Inf")
        coords = coords.to(torch.int64).contiguous()
    return FeatureBag(feats=feats, coords=coords, path=path, attrs=attrs)


# ---------------------------------------------------------------------------- writer
def _to_numpy(array: Any) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def _attr_value(key: str, value: Any) -> Any:
    if isinstance(value, (str, bool, int, float, np.generic)):
        return value
    if value is None or isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"attribute {key!r}: cannot store {type(value).__name__} in an h5 file")


def write_feature_file_h5(
    path: str | os.PathLike[str],
    feats: torch.Tensor | np.ndarray,
    coords: torch.Tensor | np.ndarray | None = None,
    attrs: dict[str, Any] | None = None,
    compression: str | None = None,
) -> Path:
    """Write one slide's features atomically (temporary file in the same folder, then ``os.replace``).

    Args:
        path: the ``.h5`` file to write (its folder is created).
        feats: ``[N, D]`` float; stored as float16 if given as float16, else float32.
        coords: ``[N, 2]`` patch positions (x, y at level 0), stored as int64; optional.
        attrs: file attributes: str/int/float/bool stored as they are, dicts/lists/None as JSON text.
        compression: h5py compression for both datasets (e.g. ``"gzip"``), default none.

    Returns:
        ``path``. A reader never sees a half-written file; a failed write leaves no temporary file.
    """
    _require_h5py()
    path = Path(path)
    feats_np = _to_numpy(feats)
    if feats_np.ndim != 2 or feats_np.shape[0] == 0:
        raise BagDataError(f"{path}: feats must be a non-empty [N, D] array, found shape {list(feats_np.shape)}")
    feats_np = feats_np.astype(np.float16 if feats_np.dtype == np.float16 else np.float32, copy=False)
    coords_np = None
    if coords is not None:
        coords_np = _to_numpy(coords)
        if coords_np.shape != (feats_np.shape[0], 2):
            raise BagDataError(f"{path}: coords must be [{feats_np.shape[0]}, 2], found {list(coords_np.shape)}")
        coords_np = coords_np.astype(np.int64, copy=False)
    stored_attrs = {key: _attr_value(key, value) for key, value in (attrs or {}).items()}

    # no dataset timestamps (track_times=False): the same features give the same bytes on a rerun
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as out:
        out.create_dataset("feats", data=feats_np, compression=compression, track_times=False)
        if coords_np is not None:
            out.create_dataset("coords", data=coords_np, compression=compression, track_times=False)
        for key, value in stored_attrs.items():
            out.attrs[key] = value
    return path
