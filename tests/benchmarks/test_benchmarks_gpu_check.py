"""benchmarks/gpu_check.sh --dry-run: every stage of the GPU check runs on tiny inputs on the CPU and the
script prints its one table (the real run needs a GPU; no test depends on one)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_dry_run_prints_every_stage(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", "--workdir", str(tmp_path)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    table = out.stdout[out.stdout.index("| stage | what | result |") :]
    rows = [line.split(" | ") for line in table.splitlines()[2:] if line.startswith("| ")]
    stages = [r[0].strip("| ") for r in rows]
    assert stages == ["setup", "read", "read", "extract", "extract", "train", "decode"]
    values = {r[1]: r[2].rstrip(" |") for r in rows}
    cpu_read = next(v for k, v in values.items() if "device=cpu" in k)
    assert float(re.match(r"([\d,.]+) patches/s", cpu_read).group(1).replace(",", "")) > 0
    assert next(v for k, v in values.items() if "device=cuda" in k) == "not run (no GPU)"
    for label in ("DINOv2 ViT-L/14 bf16", "ResNet-50-trunc bf16"):
        value = next(v for k, v in values.items() if k.startswith(label))
        rate, per_hour = re.match(r"([\d,.]+) patches/s = ([\d,.]+) slides/h", value).groups()
        assert float(rate.replace(",", "")) > 0 and float(per_hour.replace(",", "")) > 0
    assert re.fullmatch(r"[\d.]+ s", next(v for k, v in values.items() if k.startswith("tiny-model training step")))
    assert re.fullmatch(r"[\d.]+ s", next(v for k, v in values.items() if k.startswith("beam 3")))
    assert (tmp_path / "dinov2.pth").is_file() and (tmp_path / "resnet50.pth").is_file()  # local random weights
    assert "gpu_check:" in out.stdout and "commit" in out.stdout
