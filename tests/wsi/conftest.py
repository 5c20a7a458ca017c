"""Fixtures of the scripts.wsi tests: the builtin-small encoder and a folder of good and bad slides."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from scripts.encoders import build_encoder
from tests.support.slide_files import cmu_rgb, shared_path, write_pyramid_tiff


@pytest.fixture(scope="module")
def encoder():
    return build_encoder("builtin-small")


@pytest.fixture(scope="module")
def slides(tmp_path_factory) -> dict[str, Path]:
    """Good and bad slides side by side in one folder (blank = glass only, no tissue)."""
    folder = tmp_path_factory.mktemp("slides")
    rgb = cmu_rgb()
    shutil.copy(shared_path("fixtures", "slides", "CMU-1-Small-Region.svs"), folder / "cmu.svs")
    for name in ("unreadable.svs", "unopenable.tiff"):
        shutil.copy(shared_path("fixtures", "openslide", name), folder / name)
    mirrored = np.ascontiguousarray(np.concatenate([rgb, rgb[:, ::-1]], axis=1)[:2048])  # 4440 x 2048
    write_pyramid_tiff(folder / "mirror.svs", mirrored, mpp=0.5, levels=3)
    glass = np.clip(238 + np.random.default_rng(0).integers(-3, 4, (1024, 1024, 3)), 0, 255).astype(np.uint8)
    write_pyramid_tiff(folder / "blank.svs", glass, mpp=0.5, levels=2)
    return {p.stem: p for p in folder.iterdir()}
