"""Errors a person can read at the end of ``python -m monai.bundle run ...``.

MONAI wraps an error raised inside a config expression or a ``_target_`` in ``RuntimeError("Failed to
evaluate ConfigExpression: ...")``, so the message that names the file or key sits in the middle of a 20-70
line traceback. When the process is ``python -m monai.bundle`` (or a ``torchrun`` worker of it), importing
``scripts`` installs :func:`readable_excepthook`: the last lines a user sees are the cause, one or a few lines
(``ERROR: AnnotationError: /data/ann.json: annotation file not found``), and where the full traceback went.

The full traceback is written to ``<output_dir>/logs/error.log`` when the run's output folder is known (see
:func:`remember_log_folder`), else to ``histgen-error-<pid>.log`` in the system's temporary folder; with
``HISTGEN_TRACEBACK=1`` (or the root logger at DEBUG) it is printed as well.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import traceback
from pathlib import Path
from types import TracebackType

__all__ = ["install_readable_errors", "readable_excepthook", "remember_log_folder", "user_facing_error"]

_WRAPPER_PREFIXES = ("Failed to evaluate", "Failed to instantiate", "Failed to run")
_MAX_LINES = 6
_state: dict[str, Path | None] = {"log_folder": None}


def remember_log_folder(folder: str | os.PathLike[str] | None) -> None:
    """Where the full traceback of a failed run goes (``<folder>/error.log``)."""
    _state["log_folder"] = Path(folder) if folder is not None else None


def user_facing_error(exc: BaseException) -> BaseException:
    """The error worth showing: the first one in the chain that is not a MONAI 'Failed to ...' wrapper."""
    seen: set[int] = set()
    current = exc
    while id(current) not in seen:
        seen.add(id(current))
        wrapper = isinstance(current, RuntimeError) and str(current).startswith(_WRAPPER_PREFIXES)
        nxt = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
        if not wrapper or nxt is None:
            return current
        current = nxt
    return current


def _traceback_file() -> Path:
    folder = _state["log_folder"]
    candidates = ([folder / "logs"] if folder is not None else []) + [Path(tempfile.gettempdir())]
    for candidate in candidates:
        try:
            candidate.mkdir(parents=True, exist_ok=True)
            in_run = folder is not None and candidate == folder / "logs"
            name = "error.log" if in_run else f"histgen-error-{os.getpid()}.log"
            path = candidate / name
            path.touch()
            return path
        except OSError:
            continue
    return Path(tempfile.gettempdir()) / f"histgen-error-{os.getpid()}.log"


def readable_excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """Print the cause of an uncaught error in a few lines; write the full traceback to a file."""
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    full = "".join(traceback.format_exception(exc_type, exc, tb))
    path = _traceback_file()
    try:
        path.write_text(full, encoding="utf-8")
        where = f"full traceback: {path}"
    except OSError:
        where = "full traceback could not be written; set HISTGEN_TRACEBACK=1 to print it"
    if os.environ.get("HISTGEN_TRACEBACK", "").strip().lower() in ("1", "true", "yes", "on") or \
            logging.getLogger().isEnabledFor(logging.DEBUG):
        sys.stderr.write(full)
    cause = user_facing_error(exc)
    lines = (str(cause) or repr(cause)).splitlines() or [""]
    if isinstance(cause, SyntaxError) and cause.text:
        lines.append(f"in: {cause.text.strip()}")
    shown = lines[:_MAX_LINES] + ([f"... {len(lines) - _MAX_LINES} more line(s) in the traceback file"]
                                  if len(lines) > _MAX_LINES else [])
    sys.stderr.write("\nERROR: " + type(cause).__name__ + ": " + "\n  ".join(shown) + f"\n({where})\n")
    sys.stderr.flush()


def _started_as_bundle_cli() -> bool:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return spec is not None and spec.name in ("monai.bundle.__main__", "monai.bundle")


def install_readable_errors(force: bool = False) -> bool:
    """Install :func:`readable_excepthook` when this process is ``python -m monai.bundle`` (or ``force``)."""
    if not (force or _started_as_bundle_cli()) or sys.excepthook is readable_excepthook:
        return False
    if sys.excepthook is not sys.__excepthook__:
        return False  # somebody else's hook (an IDE, a debugger): leave it
    sys.excepthook = readable_excepthook
    return True
