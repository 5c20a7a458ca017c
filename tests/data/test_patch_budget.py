"""Training memory does not grow with the size of a slide's bag: a 200,000-patch bag trains under 8 GB.

The run is a real ``python -m monai.bundle run training`` whose address space is capped with
``RLIMIT_AS`` (set in the child before Python starts). Importing torch and the bundle already maps about
4 GB of virtual memory (measured: VmPeak 4.0 GB, RSS 0.95 GB after ``import torch, scripts.engines``), so
8 GB leaves about 4 GB for the data and the step.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import numpy as np
import pytest

from scripts.data.feature_files import write_feature_file_h5
from tests.support.bundle_runs import REPO_ROOT, bundle_env, path_of

LIMIT = 8 * 1024**3
BIG = 200_000
DIM = 128


def _cap_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


@pytest.fixture(scope="module")
def big_bag(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bigbag")
    rng = np.random.default_rng(0)
    sizes = {"big": BIG, "small-1": 50, "small-2": 40, "small-3": 30}
    for slide_id, n in sizes.items():
        write_feature_file_h5(folder / f"{slide_id}.h5", rng.standard_normal((n, DIM), dtype=np.float32))
    report = "lung adenocarcinoma with acinar pattern ."
    item = lambda i: {"id": i, "report": report}  # noqa: E731
    annotation = {"train": [item("big"), item("small-1")], "val": [item("small-2")], "test": [item("small-3")]}
    (folder / "annotation.json").write_text(json.dumps(annotation))
    return folder


def _train(folder, out, **extra: object) -> subprocess.CompletedProcess[str]:
    settings = {"dataset_dir": path_of(folder), "annotation_file": path_of(folder / "annotation.json"),
                "output_dir": path_of(out), "max_epochs": 1, "batch_size": 2, "vocab_threshold": 1,
                "beam_size": 1, "max_seq_length": 20, **extra}
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", "configs/train.json"]
    for key, value in settings.items():
        cmd += [f"--{key}", str(value)]
    env = bundle_env()
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900,
                          preexec_fn=_cap_address_space)


@pytest.mark.slow  # about 80 s on 2 busy cores (writing the 100 MB bag, one bundle run)
def test_a_200000_patch_bag_trains_under_an_8_gb_address_space_limit(big_bag, tmp_path):
    proc = _train(big_bag, tmp_path / "run")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert f"big: {BIG} patches, over max_patches=8192: using a random subset of 8192" in log
    assert (tmp_path / "run" / "models" / "model.pt").is_file()
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS of the training process: {peak_mib:.0f} MiB")


@pytest.mark.slow
def test_without_a_budget_the_same_bag_exceeds_the_limit(big_bag, tmp_path):
    """The control: the limit is real (every patch of the bag in one step needs more than 8 GB)."""
    proc = _train(big_bag, tmp_path / "run", max_patches="null")
    assert proc.returncode != 0
    assert "memory" in proc.stderr.splitlines()[-2].lower() or "alloc" in proc.stderr.lower(), proc.stderr[-2000:]
