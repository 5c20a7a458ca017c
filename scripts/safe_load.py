"""The one way this package reads a ``torch.save`` file it did not make itself in this process.

Checkpoints, ``model.pt``, encoder weights and ``.pt`` feature bags can come from a colleague, a download
or an attacker; a pickle can run any code when it is loaded. Every such file is read with
``torch.load(weights_only=True)``: tensors, containers (dict, list, tuple, OrderedDict) and plain values
(int, float, bool, str, None) only. A caller that needs one more plain type names it in ``allow``
(for example :data:`NUMPY_SCALAR_GLOBALS` for the reference trainer's ``numpy.float64`` best score);
nothing else is ever allow-listed. A file that asks for any other global is refused with
:class:`UnsafeFileError` before any of its objects is built.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["NUMPY_SCALAR_GLOBALS", "UnsafeFileError", "load_plain"]

_GLOBAL_NAME = re.compile(r"GLOBAL ([\w.]+)")
_UNPICKLER_DETAIL = re.compile(r"WeightsUnpickler error:\s*(.+?)(?:\n\n|$)", re.S)


class UnsafeFileError(ValueError):
    """A ``torch.save`` file that holds objects other than tensors and plain values (it could run code)."""


def _numpy_scalar_globals() -> list[Any]:
    """``numpy`` scalars pickle as ``multiarray.scalar(dtype, bytes)``: the reconstructor and the dtypes."""
    core = getattr(np, "_core", None) or np.core
    found: list[Any] = [core.multiarray.scalar, np.dtype]
    dtypes = getattr(np, "dtypes", None)
    for name in ("Float64DType", "Float32DType", "Int64DType", "Int32DType", "BoolDType"):
        if dtypes is not None and hasattr(dtypes, name):
            found.append(getattr(dtypes, name))
    return found


#: Globals that rebuild a numpy scalar (``numpy.float64(0.3)``, ``numpy.int64(7)``): plain numbers only.
NUMPY_SCALAR_GLOBALS: tuple[Any, ...] = tuple(_numpy_scalar_globals())


def load_plain(
    path: str | os.PathLike[str],
    *,
    what: str,
    allow: Sequence[Any] = (),
    mmap: bool = False,
) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, refusing anything but tensors and plain values.

    Args:
        path: the file.
        what: what the file is, for messages (``"resume checkpoint"``, ``"encoder weights"``).
        allow: extra globals the file may name (plain types only, e.g. :data:`NUMPY_SCALAR_GLOBALS`).
        mmap: memory-map the tensors (zip-format files only; falls back to a normal read).

    Raises:
        UnsafeFileError: the file names another global (a class, a function): it is not loaded.
        ValueError: the file is not a readable ``torch.save`` file (truncated, another format).
    """
    path = Path(path)
    try:
        with torch.serialization.safe_globals(list(allow)):
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
            except RuntimeError as err:
                if not mmap or "mmap" not in str(err):
                    raise
                return torch.load(path, map_location="cpu", weights_only=True)  # a legacy (non-zip) file
    except pickle.UnpicklingError as err:
        message = str(err)
        found = _GLOBAL_NAME.search(message)
        if found is not None:
            raise UnsafeFileError(
                f"{path}: refused to load this {what}: it names {found.group(1)}, not a tensor or a plain value, "
                "and unpickling it could run code. Only tensors and plain values are read (torch.load "
                "weights_only=True); re-save the file as a plain state dict on a machine you trust"
            ) from None
        detail = _UNPICKLER_DETAIL.search(message)
        reason = detail.group(1).strip() if detail else message.splitlines()[0]
        raise ValueError(f"{path}: cannot read this {what}: not a plain torch.save file ({reason})") from None
    except (OSError, EOFError, RuntimeError, ValueError) as err:
        first = str(err).splitlines()[0] if str(err) else ""
        raise ValueError(f"{path}: cannot read this {what} ({type(err).__name__}: {first})") from err
