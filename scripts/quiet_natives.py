"""Keep native libraries' noise out of the user's folders and terminal.

cuCIM's GPUDirect layer (cuFile) starts when ``cucim`` is imported: it writes ``cufile.log`` into the
current folder unless ``CUFILE_LOGFILE_PATH`` says where, and on a machine without a CUDA driver it prints
three lines (``dlopen error libcuda.so.1 ... cuFile initialization failed``) that a user cannot act on:
slides are then read through the CPU, as intended.

- :func:`point_cufile_log` (run when ``scripts`` is imported, before anything imports cuCIM) sends the
  log to ``<temp dir>/histgen-cufile-<user>.log`` unless the user set ``CUFILE_LOGFILE_PATH``;
- :func:`import_cucim_quietly` imports cuCIM with the process's stdout and stderr captured (cuFile prints
  to stdout) and replaces those lines with one debug-level log line that quotes them and says what they mean;
- :func:`cufile_quiet` does the same around any block: under MONAI's reader cuFile starts at the first slide
  that cuCIM opens (not at import), so the slide reader opens its first cuCIM slide inside it.
"""

from __future__ import annotations

import getpass
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["CUFILE_LOG_ENV", "cufile_quiet", "import_cucim_quietly", "point_cufile_log"]

logger = logging.getLogger("histgen.natives")

CUFILE_LOG_ENV = "CUFILE_LOGFILE_PATH"

_DONE: bool | None = None  # the result of the first import_cucim_quietly() of this process


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return str(os.getuid()) if hasattr(os, "getuid") else "user"


def point_cufile_log() -> Path:
    """Set ``CUFILE_LOGFILE_PATH`` to a file in the temp folder unless it is set; returns the log path."""
    if not os.environ.get(CUFILE_LOG_ENV):
        os.environ[CUFILE_LOG_ENV] = str(Path(tempfile.gettempdir()) / f"histgen-cufile-{_user()}.log")
    return Path(os.environ[CUFILE_LOG_ENV])


def import_cucim_quietly() -> bool:
    """Import cuCIM (when installed) without its cuFile start-up lines on the terminal; True when it imported.

    The lines are logged once at debug level with what they mean; anything else cuCIM printed is passed on.
    """
    global _DONE
    point_cufile_log()
    if _DONE is not None:
        return _DONE
    with cufile_quiet():
        _DONE = _import_cucim()
    return _DONE


@contextmanager
def cufile_quiet() -> Iterator[None]:
    """Run a block that may start cuFile (importing cuCIM, or its first slide open under MONAI) quietly.

    The process's stdout and stderr descriptors are captured during the block; cuFile's lines become one
    debug log line, anything else printed is written back to stderr. Without real descriptors (notebooks,
    captured streams) the block runs as it is.
    """
    point_cufile_log()
    streams = []
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
            streams.append(stream.fileno())
        except (AttributeError, OSError, ValueError):  # no real file behind it
            continue
    if not streams:
        yield
        return
    saved = [os.dup(fd) for fd in streams]
    with tempfile.TemporaryFile(mode="w+b") as captured:
        for fd in streams:
            os.dup2(captured.fileno(), fd)
        try:
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (AttributeError, OSError, ValueError):
                    pass
            for fd, copy in zip(streams, saved):
                os.dup2(copy, fd)
                os.close(copy)
            captured.seek(0)
            _report(captured.read().decode("utf-8", "replace"))


def _import_cucim() -> bool:
    from monai.utils import optional_import

    # MONAI's optional_import (as scripts.wsi uses it) is what starts cuFile, not a bare ``import cucim``
    _, found = optional_import("cucim")
    return bool(found)


def _report(text: str) -> None:
    cufile = [line for line in text.splitlines() if any(w in line for w in ("libcuda", "cuda symbols", "cuFile"))]
    other = [line for line in text.splitlines() if line.strip() and line not in cufile]
    if cufile:
        logger.debug("cuCIM: GPUDirect Storage (cuFile) is off here (no CUDA driver); slides are decoded on the "
                     "CPU, which is expected on a machine without a GPU. cuFile said: %s", " | ".join(cufile))
    if other:
        sys.stderr.write("\n".join(other) + "\n")
