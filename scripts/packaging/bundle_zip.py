"""Export a bundle as ``dist/<bundle_name>_v<version>.zip`` that runs from wherever it is unzipped.

The archive holds one folder, ``<bundle_name>/``, with ``configs/``, ``models/`` (the trained files
that exist), ``scripts/`` (the bundle's Python package, without caches), ``docs/``, ``LICENSE`` and
``CHECKSUMS.sha256`` (SHA-256 of every other member). Members are sorted and time-stamped with a
fixed date, so the same inputs give the same bytes. Run through ``configs/export.json``::

    python -m monai.bundle run export --config_file configs/export.json
    python -m monai.bundle run export --config_file bundle/subtyping/configs/export.json

The sibling bundles (``bundle/subtyping``, ``bundle/survival``) keep only ``configs/``, ``docs/`` and
``models/`` in their folder; their code and ``LICENSE`` live in the repository root (``code_root``), and
their models are one sub-folder per fold (``model_subdirs=("fold_*",)``). Their zip has the same layout as
the report bundle's, so MONAI finds ``scripts`` beside ``configs/`` wherever it is unzipped.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from scripts.atomic_io import atomic_path

from .checksums import CHECKSUM_FILE, format_checksums, sha256_bytes

__all__ = [
    "BundleVersionError",
    "bundle_zip_name",
    "check_version",
    "collect_bundle_files",
    "export_bundle_zip",
    "package_root",
]

#: 1980-01-01, the earliest date a zip entry can hold: reproducible archives.
FIXED_DATE = (1980, 1, 1, 0, 0, 0)
SKIPPED_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints"}
SKIPPED_SUFFIXES = (".pyc", ".pyo", ".tmp")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class BundleVersionError(ValueError):
    """The bundle's ``metadata.json`` has no version, or its version is not in the changelog."""


def check_version(meta_file: str | os.PathLike[str]) -> str:
    """The bundle version from ``metadata.json``, which must be a key of its ``changelog``."""
    meta_file = Path(meta_file)
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleVersionError(f"{meta_file}: metadata file not found") from None
    except json.JSONDecodeError as err:
        raise BundleVersionError(f"{meta_file}: not valid JSON ({err})") from None
    version = meta.get("version")
    if not isinstance(version, str) or not version.strip():
        raise BundleVersionError(f"{meta_file}: no 'version' string")
    changelog = meta.get("changelog") or {}
    if version not in changelog:
        known = ", ".join(sorted(changelog)) or "none"
        raise BundleVersionError(
            f"{meta_file}: version {version} has no entry in 'changelog' (entries: {known}); "
            "add one that says what changed before exporting"
        )
    return version


def bundle_zip_name(bundle_name: str, version: str) -> str:
    return f"{bundle_name}_v{version}.zip"


def _keep(path: Path, root: Path, exclude: Sequence[str]) -> bool:
    rel = path.relative_to(root)
    if any(part in SKIPPED_DIRS or part.startswith(".") for part in rel.parts):
        return False
    if path.name.endswith(SKIPPED_SUFFIXES):
        return False
    return not any(rel.as_posix() == e or rel.as_posix().startswith(e.rstrip("/") + "/") for e in exclude)


def _files_under(folder: Path, exclude: Sequence[str] = ()) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink() and _keep(p, folder, exclude))


def package_root() -> Path:
    """The folder holding the imported ``scripts`` package: the repository root, or an unzipped bundle."""
    return Path(__file__).resolve().parents[2]


def _model_files(models: Path, model_subdirs: Sequence[str]) -> dict[str, Path]:
    """Archive name -> file for the files directly in ``models`` and in its sub-folders matching ``model_subdirs``.

    ``model_subdirs`` are shell patterns such as ``fold_*``; other sub-folders (checkpoints) are left out.
    """
    files: dict[str, Path] = {}
    for path in _files_under(models):
        rel = path.relative_to(models)
        if len(rel.parts) == 1 or any(fnmatch.fnmatchcase(rel.parts[0], pattern) for pattern in model_subdirs):
            files[f"models/{rel.as_posix()}"] = path
    return files


def collect_bundle_files(
    bundle_root: str | os.PathLike[str],
    model_dir: str | os.PathLike[str] | None = None,
    docs_exclude: Sequence[str] = ("dev",),
    code_root: str | os.PathLike[str] | None = None,
    model_subdirs: Sequence[str] = (),
) -> dict[str, Path]:
    """Archive name (relative to ``<bundle_name>/``) -> source file, for every file the bundle ships.

    Args:
        bundle_root: folder holding ``configs/`` and ``docs/`` (and, by default, ``scripts/`` and ``LICENSE``).
        model_dir: trained files (default ``<bundle_root>/models``); every regular file directly in it is shipped.
        docs_exclude: sub-folders of ``docs/`` left out (developer notes).
        code_root: folder holding the ``scripts/`` package and ``LICENSE`` (default ``bundle_root``); the
            sibling bundles give the repository root.
        model_subdirs: shell patterns of ``model_dir`` sub-folders shipped too (``("fold_*",)`` for the
            sibling bundles' fold models); other sub-folders are left out.

    Raises:
        FileNotFoundError: no ``configs/`` or ``scripts/`` package, or ``model_subdirs`` given and no sub-folder
            matching them holds a ``model.pt`` (a zip of an untrained sibling bundle would infer nothing).
    """
    root = Path(bundle_root)
    code = Path(code_root) if code_root is not None else root
    models = Path(model_dir) if model_dir else root / "models"
    if not (root / "configs").is_dir():
        raise FileNotFoundError(f"{root}: not a bundle root (no configs/ folder)")
    if not (code / "scripts" / "__init__.py").is_file():
        where = "bundle root" if code_root is None else "code_root"
        raise FileNotFoundError(f"{code}: {where} without the scripts/ package (scripts/__init__.py)")
    files: dict[str, Path] = {}
    for folder, prefix, exclude in ((root / "configs", "configs", ()), (code / "scripts", "scripts", ()),
                                    (root / "docs", "docs", tuple(docs_exclude))):
        for path in _files_under(folder, exclude):
            files[f"{prefix}/{path.relative_to(folder).as_posix()}"] = path
    model_files = _model_files(models, tuple(model_subdirs))
    if model_subdirs and not any(name.endswith("/model.pt") and name.count("/") == 2 for name in model_files):
        patterns = ", ".join(f"{pattern}/model.pt" for pattern in model_subdirs)
        raise FileNotFoundError(f"{models}: no trained fold model ({patterns}); train the bundle first")
    files.update(model_files)
    if (code / "LICENSE").is_file():
        files["LICENSE"] = code / "LICENSE"
    return files


def _write_member(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (0o100644 & 0xFFFF) << 16  # regular file, rw-r--r--
    archive.writestr(info, data)


def export_bundle_zip(
    bundle_root: str | os.PathLike[str] = ".",
    bundle_name: str = "histgen_report",
    dist_dir: str | os.PathLike[str] | None = None,
    model_dir: str | os.PathLike[str] | None = None,
    meta_file: str | os.PathLike[str] | None = None,
    docs_exclude: Iterable[str] = ("dev",),
    code_root: str | os.PathLike[str] | None = None,
    model_subdirs: Iterable[str] = (),
) -> Path:
    """Write ``<dist_dir>/<bundle_name>_v<version>.zip`` atomically and return its path.

    Args:
        bundle_root: the bundle folder.
        bundle_name: top folder inside the archive and start of its file name.
        dist_dir: output folder (default ``<bundle_root>/dist``).
        model_dir: trained files to ship (default ``<bundle_root>/models``).
        meta_file: ``metadata.json`` giving the version (default ``<bundle_root>/configs/metadata.json``).
        docs_exclude: sub-folders of ``docs/`` not shipped.
        code_root: folder of the ``scripts/`` package and ``LICENSE`` (default ``bundle_root``).
        model_subdirs: shell patterns of ``model_dir`` sub-folders shipped too (e.g. ``("fold_*",)``).

    Raises:
        BundleVersionError: the version is missing or not in the changelog.
    """
    if not _NAME.match(bundle_name):
        raise ValueError(f"bundle_name {bundle_name!r}: use letters, digits, '_', '-', '.' only")
    root = Path(bundle_root)
    version = check_version(meta_file or root / "configs" / "metadata.json")
    files = collect_bundle_files(root, model_dir, tuple(docs_exclude), code_root, tuple(model_subdirs))
    if meta_file and Path(meta_file).resolve() != (root / "configs" / "metadata.json").resolve():
        files["configs/metadata.json"] = Path(meta_file)
    out = Path(dist_dir) if dist_dir else root / "dist"
    target = out / bundle_zip_name(bundle_name, version)
    digests = []
    with atomic_path(target) as tmp:
        with zipfile.ZipFile(tmp, "w") as archive:
            for name in sorted(files):
                data = files[name].read_bytes()
                digests.append((name, sha256_bytes(data)))
                _write_member(archive, f"{bundle_name}/{name}", data)
            _write_member(archive, f"{bundle_name}/{CHECKSUM_FILE}", format_checksums(digests).encode("utf-8"))
    return target
