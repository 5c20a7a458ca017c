"""SYNTHETIC slide demos shared by the transfer bundles' tests: built once per test session, then reused.

They stand in for the report bundle's ``demo_data`` folder: a bundle run given ``report_demo_dir=<folder>`` and
the same demo options reuses them instead of writing slides of its own.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from scripts.demo.slide_dataset import make_slide_demo_dataset
from tests.support.shared_fixtures import REPO_ROOT

#: 40 small slides (10 per diagnosis, 6 to 21 patches of 128 px each): enough for 2 folds of both tasks.
TINY_SLIDES: dict[str, object] = {"n_train": 24, "n_val": 8, "n_test": 8, "slide_size": 1024, "seed": 5}
#: The same as a bundle's ``--demo`` value.
TINY_DEMO = repr(TINY_SLIDES)


def tiny_report_demo(tmp_path_factory) -> Path:
    """The tiny slide demo in this session's temporary folder (the first call builds it, ~1 min on 2 cores)."""
    folder = tmp_path_factory.getbasetemp() / "transfer_report_demo_tiny"
    make_slide_demo_dataset(folder, **TINY_SLIDES)
    return folder


def default_report_demo(tmp_path_factory) -> Path:
    """The report bundle's default slide demo (240 slides; the first call builds it, ~4 min on 2 cores, or
    reuses the checkout's, see :func:`seed_with_checkout_demo`)."""
    folder = tmp_path_factory.getbasetemp() / "transfer_report_demo_default"
    seed_with_checkout_demo(folder)
    make_slide_demo_dataset(folder)
    return folder


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copy2(source, target)


def seed_with_checkout_demo(folder: Path) -> bool:
    """Link the checkout's ``demo_data`` (the default demo the README's main job writes; ``.ci/run`` runs it
    before the tests) into ``folder`` when ``folder`` does not exist yet.

    The demo builder then reuses those slides and features only if their parameters and features are current
    (it checks both), else rebuilds them; its writes are atomic renames, so a rebuild never changes the checkout's
    linked files. Returns whether anything was linked.
    """
    source = REPO_ROOT / "demo_data"
    if folder.exists() or not (source / "demo_manifest.json").is_file():
        return False
    shutil.copytree(source, folder, copy_function=_link_or_copy)
    return True
