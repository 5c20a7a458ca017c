"""The benchmarks' side-by-side modes: ours alone on tiny sizes always, the reference code when a checkout is here.

The reference HistGen code is not part of this repository. The checks that run it look for a checkout in
``$HISTGEN_REFERENCE`` or next to the repository (``../reference``) and are skipped, saying so, without one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from benchmarks import bench_training_step
from benchmarks.bench_decoding import time_against_reference
from benchmarks.reference_histgen import import_reference
from scripts.networks import HistGenConfig

REPO = Path(__file__).resolve().parents[2]
REFERENCE = Path(os.environ.get("HISTGEN_REFERENCE", REPO.parent / "reference"))
needs_reference = pytest.mark.skipif(
    not (REFERENCE / "models" / "histgen_model.py").is_file(),
    reason=f"no reference HistGen checkout at {REFERENCE} (set HISTGEN_REFERENCE to one)",
)
SMALL_1024 = HistGenConfig(in_dim=1024, d_vf=64, d_model=32, d_ff=32, num_heads=4, num_layers=2, topk=8, cmm_size=32,
                           cmm_dim=32, region_size=8, prototype_num=6, vocab_size=40)


def test_a_folder_that_is_no_checkout_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path.name}: not a HistGen checkout"):
        import_reference(tmp_path)


@pytest.mark.slow  # the released configuration's model and optimiser: ~10 s quiet, 50 s on a loaded machine
def test_training_step_of_ours_runs_in_its_own_process(capsys):
    bench_training_step.main(["--sizes", "150", "--steps", "1", "--threads", "1", "--tokens", "8"])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.strip().startswith("150 |"))
    seconds, peak_mb = float(row.split("|")[2]), float(row.split("|")[3].replace(",", ""))
    assert seconds > 0 and peak_mb > 100


@needs_reference
def test_decoding_against_the_reference_returns_its_ids():
    torch.manual_seed(0)
    rows = time_against_reference(str(REFERENCE), SMALL_1024, [60], tokens=8, beam=3, repeats=1)
    assert rows[0]["same_ids"] == 1.0 and rows[0]["ours_s"] > 0 and rows[0]["ref_s"] > 0


@pytest.mark.slow
@needs_reference
def test_training_step_of_the_reference_runs():
    result = bench_training_step.reference_step(str(REFERENCE), 150, 8, 1, 1)
    assert result["seconds"] > 0 and result["peak_mb"] > 100 and 0 < result["loss"] < 20


def test_training_kernels_benchmark_prints_both_kernels_and_their_ratio(capsys):
    from benchmarks import bench_training_kernels

    bench_training_kernels.main(["--quick"])
    lines = capsys.readouterr().out.splitlines()
    row = lines[-1].split("|")
    assert "2,000" in row[0]
    reference_s, fast_s = float(row[1]), float(row[2])
    assert reference_s > 0 and fast_s > 0
    ratio = float(row[3].strip().rstrip("x"))
    assert abs(ratio - reference_s / fast_s) <= 0.03 * ratio + 0.01  # printed times and ratio are rounded


def test_reference_kernels_undo_the_fast_ones():
    import torch

    from benchmarks.bench_training_kernels import QUICK
    from scripts.networks import HistGen, HistGenConfig
    from scripts.networks.fast_dropout import FastDropout
    from scripts.networks.layers import MultiHeadAttention, ReferenceLayerNorm
    from scripts.networks.training_kernels import set_training_kernels

    model = set_training_kernels(HistGen(HistGenConfig(**QUICK)), fast=False)
    assert not any(isinstance(m, FastDropout) for m in model.modules())
    assert any(type(m) is torch.nn.Dropout for m in model.modules())
    assert not any(m.fused for m in model.modules() if isinstance(m, ReferenceLayerNorm))
    assert not any(m.fast_dropout for m in model.modules() if isinstance(m, MultiHeadAttention))
