"""The one check of an id that becomes a file name: slide ids, report ids, fold names.

Ids come from files a user or a colleague hands us (a slides CSV, an annotation JSON, a request), so an
id is treated as untrusted text. It may name one file inside the output folder and nothing else:

- not empty, at most :data:`MAX_ID_LENGTH` characters;
- no path separator (``/``, and ``\\`` which is one on Windows), so no absolute path and no sub-folder;
- not ``.`` or ``..`` and no ``..`` anywhere (``a..b`` reads like an escape in logs and shell globs);
- no control characters (newlines, NUL, escape sequences) and no leading or trailing whitespace.

>>> check_file_id("TCGA-AA-3511-01Z-00-DX1", "slide id")
'TCGA-AA-3511-01Z-00-DX1'
>>> output_file("/out", "case 7", ".h5", "slide id").name
'case 7.h5'
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

__all__ = ["MAX_ID_LENGTH", "UnsafeIdError", "check_file_id", "fold_dir_name", "output_file"]

#: Longest id accepted (file names are limited to 255 bytes on common file systems; room for suffixes).
MAX_ID_LENGTH = 200


class UnsafeIdError(ValueError):
    """An id that cannot safely name a file inside the output folder."""


def _problem(value: str) -> str | None:
    if not value:
        return "it is empty"
    if len(value) > MAX_ID_LENGTH:
        return f"it is longer than {MAX_ID_LENGTH} characters"
    if "/" in value or "\\" in value:
        return "it holds a path separator ('/' or '\\'); an id names one file, not a path"
    if ".." in value or value == ".":
        return "it holds '..' or is '.'"
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value):
        return "it holds a control character"
    if value != value.strip():
        return "it starts or ends with whitespace"
    return None


def check_file_id(value: object, kind: str = "id") -> str:
    """``value`` as a string if it can name a file inside the output folder.

    Args:
        value: the id (a slide id, a report id, a fold name).
        kind: what it is, for the message (``"slide id"``).

    Raises:
        UnsafeIdError: the id is empty, too long, holds a separator, ``..``, a control character or
            outer whitespace; the message names the id (as ``repr``) and the rule it breaks.
    """
    if not isinstance(value, str):
        raise UnsafeIdError(f"{kind} {value!r}: must be text, got {type(value).__name__}")
    problem = _problem(value)
    if problem:
        raise UnsafeIdError(f"{kind} {value!r} cannot be used as a file name: {problem}")
    return value


def output_file(folder: str | os.PathLike[str], file_id: str, suffix: str = "", kind: str = "id") -> Path:
    """``folder / f"{file_id}{suffix}"`` after :func:`check_file_id`; the result is always inside ``folder``.

    Raises:
        UnsafeIdError: a bad id (see :func:`check_file_id`).
    """
    name = check_file_id(file_id, kind) + suffix
    path = Path(folder) / name
    if path.parent != Path(folder):  # belt and braces: the checks above make this impossible
        raise UnsafeIdError(f"{kind} {file_id!r}: {path} is not directly inside {folder}")
    return path


def fold_dir_name(fold: object) -> str:
    """``"fold_<k>"`` for a fold index ``k`` (a non-negative int, or its decimal text).

    Raises:
        UnsafeIdError: anything else (``"../x"``, ``-1``, ``True``, ``1.5``).
    """
    if isinstance(fold, bool) or not (isinstance(fold, int) or (isinstance(fold, str) and fold.isdecimal()
                                                                and fold.isascii())):
        raise UnsafeIdError(f"fold {fold!r}: a fold is a non-negative whole number")
    if int(fold) < 0:
        raise UnsafeIdError(f"fold {fold!r}: a fold is a non-negative whole number")
    return f"fold_{int(fold)}"
