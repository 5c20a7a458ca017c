"""Turn cuCIM's printed tile-decode errors into exceptions.

cuCIM's JPEG decoder does not raise on a corrupt tile: it prints ``ERROR in line N while reading
JPEG header: <reason>`` to the process's standard output (file descriptor 1) and returns pixels
anyway. :func:`watch_cucim_decode_errors` redirects descriptor 1 to a temporary file while cuCIM
reads, gives back everything else that was printed, and raises :class:`SlideReadError` if the
decoder complained. The redirection is process-wide; progress bars write to stderr and are not
affected.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from .slide_errors import SlideReadError

_DECODE_ERROR = re.compile(r"ERROR in line \d+ while ([^\n:]*):?\s*\n?([^\n]*)")


def _fd1_usable() -> bool:
    try:
        os.fstat(1)
        return True
    except OSError:
        return False


@contextmanager
def watch_cucim_decode_errors(slide: str) -> Iterator[None]:
    """Raise ``SlideReadError`` naming ``slide`` if cuCIM reports a decode error inside the block.

    A decode error replaces any other error raised inside the block (garbage pixels cause
    follow-up errors such as an empty tissue mask). Without a usable descriptor 1 (rare embedded
    interpreters) the block runs unwatched.
    """
    if not _fd1_usable():
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield
        finally:
            try:
                sys.stdout.flush()
            finally:
                os.dup2(saved, 1)
                os.close(saved)
            sink.seek(0)
            captured = sink.read().decode("utf-8", errors="replace")
            errors = [f"{m.group(1).strip()}: {m.group(2).strip()}" for m in _DECODE_ERROR.finditer(captured)]
            other = _DECODE_ERROR.sub("", captured).strip()
            if other:
                sys.stdout.write(other + "\n")
                sys.stdout.flush()
            if errors:  # the root cause: wins over any error the garbage pixels caused in the block
                shown = "; ".join(dict.fromkeys(errors))
                raise SlideReadError(slide, f"cuCIM reported {len(errors)} tile decode error(s): {shown}")
