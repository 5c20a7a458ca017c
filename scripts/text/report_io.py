"""Reading report text from files or bytes."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ReportTextError

__all__ = ["read_report_text"]

_UTF8_BOM = "\ufeff"


def read_report_text(source: str | os.PathLike[str] | bytes, name: str | None = None) -> str:
    """Decode a report as strict UTF-8.

    Undecodable bytes are an error, never silently replaced: a replaced character would change the
    tokens and so the training target. A leading UTF-8 byte-order mark is dropped; nothing else is changed
    (cleaning is :func:`scripts.text.clean_report`'s job).

    Args:
        source: a path to a text file, or the raw bytes of a report.
        name: what to call the report in error messages (defaults to the path, or ``"<bytes>"``).

    Returns:
        The decoded text.

    Raises:
        ReportTextError: the file cannot be read, or its bytes are not UTF-8; the message gives the byte
            offset and the offending bytes, e.g. ``"r1.txt: not UTF-8 at byte 12 (b'\\xe9'): ..."``.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = name or "<bytes>"
    else:
        path = Path(source)
        label = name or str(path)
        try:
            data = path.read_bytes()
        except OSError as err:
            raise ReportTextError(f"{label}: cannot read report text ({err.strerror or err})") from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        bad = data[err.start : err.end]
        raise ReportTextError(
            f"{label}: not UTF-8 at byte {err.start} ({bad!r}): {err.reason}; re-encode the report as UTF-8"
        ) from err
    return text[1:] if text.startswith(_UTF8_BOM) else text
