"""The CPU benchmarks of issue 13: bench_slide_pipeline's two pipelines on the real CMU slide, and one
bench_threads child run (a fresh process: thread counts are per process). Tiny sizes; the full runs are in
docs/benchmarks.md."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from benchmarks import bench_threads
from benchmarks.bench_slide_pipeline import CMU, Timing, run_clam_style, run_ours
from scripts.encoders import build_encoder

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not CMU.is_file(), reason="the shared CMU fixture slide is not here")
def test_both_pipelines_encode_the_same_patches_of_the_real_slide(tmp_path):
    encoder = build_encoder("builtin-small")
    ours = run_ours(CMU.resolve(), encoder, 8, tmp_path)
    clam = run_clam_style(CMU.resolve(), encoder, 8, tmp_path)
    assert ours.patches == clam.patches == 8
    assert ours.total_patches == clam.total_patches > 8  # the whole slide's tissue patches, for the scaling
    for timing in (ours, clam):
        assert all(seconds >= 0 for seconds in timing.stages.values())
        assert timing.stages["encode"] > 0 and timing.stages["read"] > 0
    with h5py.File(tmp_path / "CMU-1-Small-Region.h5") as a, h5py.File(tmp_path / "CMU-1-Small-Region_clam.h5") as b:
        np.testing.assert_array_equal(a["coords"][:], b["coords"][:])
        assert a["feats"].shape == b["features"].shape == (8, encoder.embed_dim)
        # same patches, same encoder; the transforms differ only in resize arithmetic (uint8 vs float)
        cosine = np.sum(a["feats"][:] * b["features"][:], 1) / (
            np.linalg.norm(a["feats"][:], axis=1) * np.linalg.norm(b["features"][:], axis=1)
        )
        assert cosine.min() > 0.9


def test_slide_seconds_scale_the_timed_patches_to_the_slide():
    timing = Timing(patches=10, total_patches=100)
    timing.stages.update(setup=1.0, read=0.5, transform=0.5, encode=1.0, write=0.0)
    assert timing.slide_seconds() == pytest.approx(1.0 + 0.2 * 100)


def test_bench_threads_child_trains_on_the_automatic_choice(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = bench_threads.run_child("automatic", patches=32, steps=1)
    assert result["setting"] == "automatic" and result["threads"] == 1  # the demo's size: one thread
    assert result["step_s"] > 0 and np.isfinite(result["loss"])
