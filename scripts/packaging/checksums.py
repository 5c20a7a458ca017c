"""SHA-256 checksum lists in ``sha256sum`` format (``<hex>  <relative/path>``), written and verified."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["CHECKSUM_FILE", "ChecksumError", "format_checksums", "parse_checksums", "sha256_bytes", "sha256_file",
           "verify_checksums"]

#: Name of the checksum list at the top of an exported bundle (``sha256sum -c CHECKSUMS.sha256`` verifies it).
CHECKSUM_FILE = "CHECKSUMS.sha256"


class ChecksumError(ValueError):
    """A file is missing, extra or differs from its recorded SHA-256."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def format_checksums(entries: Iterable[tuple[str, str]]) -> str:
    """``(relative_path, hex)`` pairs -> ``sha256sum`` text, sorted by path."""
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(entries))


def parse_checksums(text: str, source: str = CHECKSUM_FILE) -> dict[str, str]:
    """``sha256sum`` text -> ``{relative_path: hex}``."""
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name:
            raise ChecksumError(f"{source} line {number}: expected '<sha256>  <path>', got {line!r}")
        out[name] = digest.lower()
    return out


def verify_checksums(root: str | os.PathLike[str], checksum_file: str = CHECKSUM_FILE) -> int:
    """Check every file under ``root`` against ``root/checksum_file``; returns the number of files checked.

    Raises:
        ChecksumError: a listed file is missing or differs, or a file is not listed.
    """
    root = Path(root)
    listing = root / checksum_file
    if not listing.is_file():
        raise ChecksumError(f"{listing}: checksum list not found")
    expected = parse_checksums(listing.read_text(encoding="utf-8"), str(listing))
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p != listing}
    problems = [f"missing: {name}" for name in sorted(set(expected) - present)]
    problems += [f"not listed: {name}" for name in sorted(present - set(expected))]
    problems += [f"differs: {name}" for name in sorted(set(expected) & present)
                 if sha256_file(root / name) != expected[name]]
    if problems:
        raise ChecksumError(f"{root}: {len(problems)} checksum problem(s): " + "; ".join(problems[:20]))
    return len(expected)
