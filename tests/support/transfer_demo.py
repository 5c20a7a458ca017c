"""SYNTHETIC slide demos shared by the transfer bundles' tests: built once per test session, then reused.

They stand in for the report bundle's ``demo_data`` folder: a bundle run given ``report_demo_dir=<folder>`` and
the same demo options reuses them instead of writing slides of its own.
"""

from __future__ import annotations

from pathlib import Path

from scripts.demo.slide_dataset import make_slide_demo_dataset

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
    """The report bundle's default slide demo (240 slides; the first call builds it, ~4 min on 2 cores)."""
    folder = tmp_path_factory.getbasetemp() / "transfer_report_demo_default"
    make_slide_demo_dataset(folder)
    return folder
