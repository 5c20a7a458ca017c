"""Make the MONAI Deploy App SDK importable when it lives in a side folder (``build/monai_deploy_env``).

The SDK's package is ``monai.deploy``: installed into the venv it would sit inside MONAI's package
and be imported by every ``import monai`` (see ``install.sh``). Installed with ``--target`` elsewhere,
it is attached here, for this process only: the folder goes on ``sys.path`` (``pkg_resources``,
``typeguard``, ``colorama``) and its ``monai/`` is appended to ``monai.__path__``.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SDK_DIR = REPO_ROOT / "build" / "monai_deploy_env"


def ensure_deploy_sdk(sdk_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """Import ``monai.deploy`` from the environment, or else from ``sdk_dir`` / ``$MONAI_DEPLOY_SDK_PATH`` /
    ``build/monai_deploy_env``; returns the side folder used (None when the SDK is installed normally).

    Raises:
        ModuleNotFoundError: the SDK is in neither place (the message says how to install it).
    """
    import monai

    try:
        importlib.import_module("monai.deploy.core")
        return None
    except ImportError:
        pass
    folder = Path(sdk_dir or os.environ.get("MONAI_DEPLOY_SDK_PATH") or DEFAULT_SDK_DIR).resolve()
    if not (folder / "monai" / "deploy" / "__init__.py").is_file():
        raise ModuleNotFoundError(
            f"MONAI Deploy App SDK not found (not installed, and no {folder / 'monai' / 'deploy'}); "
            "run `bash apps/monai_deploy/install.sh` or set MONAI_DEPLOY_SDK_PATH"
        )
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    if str(folder / "monai") not in monai.__path__:
        monai.__path__.append(str(folder / "monai"))
    importlib.invalidate_caches()
    importlib.import_module("monai.deploy.core")
    return folder


def ensure_bundle_on_path(bundle_root: str | os.PathLike[str] | None = None) -> Path:
    """Put the report bundle (``scripts`` package) on ``sys.path``: ``$HISTGEN_BUNDLE_ROOT``, else this app's
    folder when ``scripts/`` was copied next to it (a packaged MAP), else the repository."""
    here = Path(__file__).resolve().parent
    candidates = [bundle_root, os.environ.get("HISTGEN_BUNDLE_ROOT"), here, REPO_ROOT]
    for candidate in candidates:
        if candidate and (Path(candidate) / "scripts" / "__init__.py").is_file():
            root = Path(candidate).resolve()
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
            return root
    raise ModuleNotFoundError("the report bundle's scripts/ package was not found; set HISTGEN_BUNDLE_ROOT")
