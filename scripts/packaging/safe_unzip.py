"""Unzip a bundle without ever writing outside the target folder.

Every member is checked *before* anything is written: absolute names (``/etc/x``, ``C:\\x``,
``\\\\server\\x``), ``..`` parts, backslashes, symbolic links and other non-regular entries are
refused with :class:`UnsafeArchiveError`, so a crafted archive leaves the disk untouched. Files
are then written one by one (never through ``ZipFile.extractall``) and their resolved paths are
checked again against the target.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path, PurePosixPath

from .checksums import CHECKSUM_FILE, verify_checksums

__all__ = ["UnsafeArchiveError", "check_member", "safe_extract"]


class UnsafeArchiveError(ValueError):
    """An archive member would escape the target folder or is not a plain file or folder."""


def check_member(info: zipfile.ZipInfo, archive: str = "archive") -> PurePosixPath | None:
    """The safe relative path of a member, or None for a folder entry.

    Raises:
        UnsafeArchiveError: absolute path, drive letter, ``..``, backslash, NUL, link or special file.
    """
    name = info.filename
    label = f"{archive}: member {name!r}"
    if not name or "\x00" in name:
        raise UnsafeArchiveError(f"{label}: empty name or NUL byte")
    if "\\" in name:
        raise UnsafeArchiveError(f"{label}: backslash in the name (a Windows path?)")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{label}: absolute path")
    path = PurePosixPath(name)
    if any(part == ".." for part in path.parts):
        raise UnsafeArchiveError(f"{label}: '..' would leave the target folder")
    mode = info.external_attr >> 16
    if mode and stat.S_ISLNK(mode):
        raise UnsafeArchiveError(f"{label}: symbolic link")
    if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise UnsafeArchiveError(f"{label}: not a regular file or folder (mode {oct(mode)})")
    if info.is_dir():
        return None
    parts = [p for p in path.parts if p not in ("", ".")]
    if not parts:
        raise UnsafeArchiveError(f"{label}: no file name")
    return PurePosixPath(*parts)


def safe_extract(
    zip_path: str | os.PathLike[str], target_dir: str | os.PathLike[str], verify: bool = True
) -> list[Path]:
    """Extract ``zip_path`` into ``target_dir`` (created if needed) and return the written files.

    Args:
        zip_path: the archive.
        target_dir: where its members go; nothing is ever written elsewhere.
        verify: check the extracted files against every ``CHECKSUMS.sha256`` the archive holds.

    Raises:
        UnsafeArchiveError: a member is unsafe (nothing has been written then).
        ChecksumError: ``verify`` and a file differs from its recorded checksum.
    """
    zip_path = Path(zip_path)
    target = Path(target_dir).resolve()
    with zipfile.ZipFile(zip_path) as archive:
        members = [(info, check_member(info, zip_path.name)) for info in archive.infolist()]
        seen: set[str] = set()
        for info, rel in members:
            if rel is not None:
                if rel.as_posix() in seen:
                    raise UnsafeArchiveError(f"{zip_path.name}: member {info.filename!r} appears twice")
                seen.add(rel.as_posix())
        target.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for info, rel in members:
            if rel is None:
                continue
            dest = target.joinpath(*rel.parts)
            if not dest.resolve().is_relative_to(target):  # e.g. through a symlink already in the target
                raise UnsafeArchiveError(f"{zip_path.name}: member {info.filename!r} resolves outside {target}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(dest, "wb") as out:
                while block := src.read(1 << 20):
                    out.write(block)
            written.append(dest)
    if verify:
        for listing in sorted(p for p in written if p.name == CHECKSUM_FILE):
            verify_checksums(listing.parent)
    return written
