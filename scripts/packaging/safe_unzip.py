"""Unzip a bundle without ever writing outside the target folder, and leave nothing behind when refusing.

Every member is checked *before* anything is written: absolute names (``/etc/x``, ``C:\\x``,
``\\\\server\\x``), ``..`` parts, backslashes, symbolic links and other non-regular entries are
refused with :class:`UnsafeArchiveError`; an entry without file-type bits (what ``zipfile.writestr``
writes, e.g. mode ``0o600``) is a regular file. Sizes are checked against :class:`ExtractLimits`
(total size, size of one file, number of files, compression ratio), first from the archive's directory
and again while decompressing, each with its own error (:class:`ZipBombError` subclasses). An archive
must carry a ``CHECKSUMS.sha256`` covering every file (:class:`MissingChecksumsError` otherwise) unless
the caller passes ``allow_unverified=True``.

Files are written one by one (never through ``ZipFile.extractall``) into a hidden staging folder inside
the target, verified there, and only then moved into place; any refusal removes the staging folder and
the folders this call created, so a refused archive leaves the disk as it was.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .checksums import CHECKSUM_FILE, ChecksumError, verify_checksums

__all__ = [
    "ArchiveMemberTooLargeError",
    "ArchiveTooLargeError",
    "CompressionRatioError",
    "ExtractLimits",
    "MissingChecksumsError",
    "TooManyMembersError",
    "UnsafeArchiveError",
    "ZipBombError",
    "check_member",
    "safe_extract",
]

GIB = 1 << 30


class UnsafeArchiveError(ValueError):
    """An archive member would escape the target folder or is not a plain file or folder."""


class ZipBombError(UnsafeArchiveError):
    """The archive would expand beyond :class:`ExtractLimits`."""


class ArchiveTooLargeError(ZipBombError):
    """The members together exceed ``max_total_bytes``."""


class ArchiveMemberTooLargeError(ZipBombError):
    """One member exceeds ``max_file_bytes``."""


class TooManyMembersError(ZipBombError):
    """More members than ``max_files``."""


class CompressionRatioError(ZipBombError):
    """A member (or the whole archive) expands more than ``max_ratio`` times its compressed size."""


class MissingChecksumsError(ChecksumError):
    """The archive has no ``CHECKSUMS.sha256`` for some of its files, and unverified archives were not allowed."""


@dataclass(frozen=True)
class ExtractLimits:
    """Bounds on what one archive may expand to (defaults fit a bundle with multi-GB weights).

    Attributes:
        max_total_bytes: all members together, uncompressed.
        max_file_bytes: one member, uncompressed.
        max_files: number of members (files and folders).
        max_ratio: uncompressed / compressed size, for a member over ``ratio_floor_bytes`` and for the
            archive as a whole (bundle files compress at most ~10x; a zip bomb 1000x and more).
        ratio_floor_bytes: members smaller than this are not ratio-checked (tiny files compress oddly).
    """

    max_total_bytes: int = 16 * GIB
    max_file_bytes: int = 8 * GIB
    max_files: int = 10_000
    max_ratio: float = 100.0
    ratio_floor_bytes: int = 1 << 20


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
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no file type recorded (zipfile.writestr, other tools)
    if kind == stat.S_IFLNK:
        raise UnsafeArchiveError(f"{label}: symbolic link")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise UnsafeArchiveError(f"{label}: not a regular file or folder (mode {oct(info.external_attr >> 16)})")
    if info.is_dir():
        return None
    parts = [p for p in path.parts if p not in ("", ".")]
    if not parts:
        raise UnsafeArchiveError(f"{label}: no file name")
    return PurePosixPath(*parts)


def _check_sizes(infos: list[zipfile.ZipInfo], archive: Path, limits: ExtractLimits) -> None:
    """Refuse an archive whose directory already announces more than ``limits`` allow."""
    if len(infos) > limits.max_files:
        raise TooManyMembersError(f"{archive.name}: {len(infos)} members, more than the limit of {limits.max_files}")
    total = 0
    for info in infos:
        if info.file_size > limits.max_file_bytes:
            raise ArchiveMemberTooLargeError(
                f"{archive.name}: member {info.filename!r} expands to {info.file_size} bytes, more than the "
                f"limit of {limits.max_file_bytes}")
        if info.file_size > limits.ratio_floor_bytes and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise CompressionRatioError(
                f"{archive.name}: member {info.filename!r} expands {info.file_size / max(info.compress_size, 1):.0f} "
                f"times (limit {limits.max_ratio:g}); refusing a possible zip bomb")
        total += info.file_size
    if total > limits.max_total_bytes:
        raise ArchiveTooLargeError(
            f"{archive.name}: members expand to {total} bytes, more than the limit of {limits.max_total_bytes}")
    packed = max(archive.stat().st_size, 1)
    if total > limits.ratio_floor_bytes and total > limits.max_ratio * packed:
        raise CompressionRatioError(
            f"{archive.name}: {packed} bytes expand to {total} ({total / packed:.0f} times, limit "
            f"{limits.max_ratio:g}); refusing a possible zip bomb")


def _copy_bounded(source, dest: Path, info: zipfile.ZipInfo, budget: int, archive: Path,
                  limits: ExtractLimits) -> int:
    """Stream one member to ``dest``; stop as soon as it outgrows its declared size or the budget left."""
    allowed = min(info.file_size, limits.max_file_bytes, budget)
    written = 0
    with open(dest, "wb") as out:
        while block := source.read(1 << 20):
            written += len(block)
            if written > allowed:
                error = ArchiveTooLargeError if written > budget else ArchiveMemberTooLargeError
                raise error(f"{archive.name}: member {info.filename!r} expands beyond {allowed} bytes "
                            "(its declared size or the archive's limit)")
            out.write(block)
    return written


def _covered(rel: PurePosixPath, listings: set[PurePosixPath]) -> bool:
    """True if a ``CHECKSUMS.sha256`` sits in ``rel``'s folder or one above it."""
    return any(folder == PurePosixPath(".") or folder in rel.parents for folder in listings)


def _created_parents(folder: Path) -> list[Path]:
    """The folders ``folder.mkdir(parents=True)`` would create, deepest first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    return missing


def safe_extract(
    zip_path: str | os.PathLike[str],
    target_dir: str | os.PathLike[str],
    verify: bool = True,
    allow_unverified: bool = False,
    limits: ExtractLimits | None = None,
) -> list[Path]:
    """Extract ``zip_path`` into ``target_dir`` (created if needed) and return the written files.

    Args:
        zip_path: the archive.
        target_dir: where its members go; nothing is ever written elsewhere.
        verify: check the extracted files against every ``CHECKSUMS.sha256`` the archive holds.
        allow_unverified: accept files no ``CHECKSUMS.sha256`` covers (an archive from elsewhere than
            ``export_bundle_zip``); off by default.
        limits: size limits (default :class:`ExtractLimits`).

    Raises:
        UnsafeArchiveError: a member is unsafe (nothing has been written then).
        ZipBombError: a size limit is exceeded (nothing is left on disk).
        MissingChecksumsError: files without a checksum list and not ``allow_unverified`` (nothing written).
        ChecksumError: ``verify`` and a file differs from its recorded checksum (nothing is left on disk).
    """
    zip_path = Path(zip_path)
    limits = limits or ExtractLimits()
    target = Path(target_dir).resolve()
    with zipfile.ZipFile(zip_path) as archive:
        infos = archive.infolist()
        members = [(info, check_member(info, zip_path.name)) for info in infos]
        seen: set[str] = set()
        for info, rel in members:
            if rel is not None:
                if rel.as_posix() in seen:
                    raise UnsafeArchiveError(f"{zip_path.name}: member {info.filename!r} appears twice")
                seen.add(rel.as_posix())
        _check_sizes(infos, zip_path, limits)
        files = [rel for _, rel in members if rel is not None]
        listings = {rel.parent for rel in files if rel.name == CHECKSUM_FILE}
        unlisted = [rel.as_posix() for rel in files if not _covered(rel, listings)]
        if unlisted and not allow_unverified:
            raise MissingChecksumsError(
                f"{zip_path.name}: no {CHECKSUM_FILE} covers {len(unlisted)} file(s) (e.g. {unlisted[0]}), so they "
                "cannot be verified; pass allow_unverified=True only for an archive you trust")
        created = _created_parents(target)
        target.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{zip_path.name}.", suffix=".partial", dir=target))
        try:
            budget = limits.max_total_bytes
            for info, rel in members:
                if rel is None:
                    continue
                dest = staging.joinpath(*rel.parts)
                dest.parent.mkdir(parents=True, exist_ok=True)
                if not dest.resolve().is_relative_to(staging.resolve()):
                    raise UnsafeArchiveError(f"{zip_path.name}: member {info.filename!r} resolves outside {target}")
                with archive.open(info) as src:
                    budget -= _copy_bounded(src, dest, info, budget, zip_path, limits)
            if verify:
                for folder in sorted(listings):
                    verify_checksums(staging.joinpath(*folder.parts))
            written = []
            for rel in files:  # verified: move into place
                final = target.joinpath(*rel.parts)
                if not final.parent.resolve().is_relative_to(target):  # e.g. a symlink already in the target
                    raise UnsafeArchiveError(f"{zip_path.name}: member {rel.as_posix()!r} resolves outside {target}")
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging.joinpath(*rel.parts), final)
                written.append(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            for folder in created:  # deepest first; only folders this call made, and only when empty
                try:
                    folder.rmdir()
                except OSError:
                    break
            raise
        shutil.rmtree(staging, ignore_errors=True)
    return written
