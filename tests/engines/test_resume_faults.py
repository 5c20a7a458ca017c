"""Resume after a kill ends as the uninterrupted run does; a fresh run never inherits an earlier run's model.

The kill tests run ``python -m monai.bundle run training`` on tiny data with a config overlay that loads
``tests/support/resume_faults.py`` (fault injection: ``os._exit`` at a chosen iteration, during validation, in the
middle of the checkpoint write, after the old checkpoint was moved aside), resume with the same command and
compare every epoch's loss, learning rate and validation scores, the best epoch and the final weights with an
uninterrupted run of the same seed.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine, Events

from scripts.demo.feature_bags import make_demo_dataset
from scripts.engines import CheckpointError, TrainingCheckpoint, read_checkpoint
from tests.support.bundle_runs import REPO_ROOT, bundle_env, path_of

EPOCHS = 3
SETTINGS = {"max_epochs": EPOCHS, "batch_size": 4, "val_batch_size": 4, "max_seq_length": 20, "beam_size": 1}
EPOCH_LINE = re.compile(r"epoch (\d+)/\d+ \| loss ([\d.]+) \| lr ([\d.e+-]+) \| [\d.]+ s \| val BLEU_4 ([\d.]+) "
                        r"ROUGE_L ([\d.]+)")


def _overlay(folder: Path) -> Path:
    """A config file that replaces ``training`` by the same list with the fault injector armed before the run."""
    config = json.loads((REPO_ROOT / "configs" / "train.json").read_text())
    steps = config["training"]
    steps.insert(steps.index("$@train#trainer.run()"), "$resume_faults.install(@train#trainer, @validate#evaluator)")
    path = folder / "faults.json"
    imports = [*config["imports"], "$import tests.support.resume_faults as resume_faults"]
    path.write_text(json.dumps({"imports": imports, "training": steps}))
    return path


def _train(demo, out: Path, overlay: Path, kill: str | None = None, **extra: object) -> subprocess.CompletedProcess:
    configs = f"['configs/train.json','{overlay}']"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", configs,
           "--dataset_dir", path_of(demo.dataset_dir), "--annotation_file", path_of(demo.annotation_file),
           "--output_dir", path_of(out)]
    for key, value in {**SETTINGS, **extra}.items():
        cmd += [f"--{key}", str(value)]
    env = bundle_env()
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["OMP_NUM_THREADS"] = "1"
    if kill:
        env["HISTGEN_TEST_KILL"] = kill
    return subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)


def _epochs(log: str) -> dict[int, tuple[float, ...]]:
    """Each epoch's (loss, lr, BLEU_4, ROUGE_L) from the summary lines; a later line of an epoch wins."""
    return {int(m[1]): tuple(float(v) for v in m.groups()[1:]) for m in EPOCH_LINE.finditer(log)}


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["model"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume")
    demo = make_demo_dataset(folder / "demo", n_train=8, n_val=4, n_test=4, feature_dim=16, n_patches=(10, 30))
    return demo, _overlay(folder)


@pytest.fixture(scope="module")
def uninterrupted(tiny, tmp_path_factory):
    demo, overlay = tiny
    out = tmp_path_factory.mktemp("reference")
    proc = _train(demo, out, overlay)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, proc.stdout + proc.stderr


# 8 training slides in batches of 4: 2 iterations per epoch
KILL_POINTS = ["iteration:3", "iteration:6", "validation:2", "checkpoint:2", "rotated:2"]


@pytest.mark.slow
@pytest.mark.parametrize("kill", KILL_POINTS)
def test_resume_after_a_kill_matches_the_uninterrupted_run(kill, tiny, uninterrupted, tmp_path):
    demo, overlay = tiny
    ref_out, ref_log = uninterrupted
    out = tmp_path / "run"
    killed = _train(demo, out, overlay, kill=kill)
    assert killed.returncode == 137, killed.stderr[-3000:]
    assert not (out / "checkpoints" / "last.pt").exists() or kill != "rotated:2"
    resumed = _train(demo, out, overlay)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    log = resumed.stdout + resumed.stderr
    if kill == "rotated:2":
        assert "resuming from the previous checkpoint" in log
    else:
        assert "resumed from" in log
    reference, got = _epochs(ref_log), {**_epochs(killed.stdout + killed.stderr), **_epochs(log)}
    assert sorted(reference) == sorted(got) == list(range(1, EPOCHS + 1))
    for epoch in reference:
        assert got[epoch] == pytest.approx(reference[epoch], rel=1e-4, abs=1e-4), f"epoch {epoch}"
    ref_best = json.loads((ref_out / "checkpoints" / "best.json").read_text())
    best = json.loads((out / "checkpoints" / "best.json").read_text())
    assert best["epoch"] == ref_best["epoch"]
    # a finding that no validation report states scores NaN in both runs
    assert best["val_metrics"] == pytest.approx(ref_best["val_metrics"], abs=1e-6, nan_ok=True)
    ref_weights, weights = _weights(ref_out), _weights(out)
    for name, value in ref_weights.items():
        torch.testing.assert_close(weights[name], value, rtol=1e-5, atol=1e-6)
    metric_diff = max(abs(a - b) for e in reference for a, b in zip(got[e], reference[e], strict=True))
    weight_diff = max(float((weights[n].float() - v.float()).abs().max()) for n, v in ref_weights.items())
    print(f"kill at {kill}: best epoch {best['epoch']} (reference {ref_best['epoch']}), largest difference of the "
          f"logged loss/lr/BLEU_4/ROUGE_L {metric_diff:.1e}, of the final weights {weight_diff:.1e}")
    assert (out / "models" / "model.pt").is_file()
    assert not list(out.rglob("*.tmp"))


@pytest.mark.slow
def test_resume_with_weight_averaging_matches_the_uninterrupted_run(tiny, tmp_path):
    """With ``weight_average_half_life`` set, the average is validated, saved as the model, and resumed."""
    demo, overlay = tiny
    ref_out, out = tmp_path / "reference", tmp_path / "run"
    reference = _train(demo, ref_out, overlay, weight_average_half_life=1.0)
    assert reference.returncode == 0, reference.stderr[-4000:]
    assert "moving average of the weights" in reference.stdout + reference.stderr
    killed = _train(demo, out, overlay, kill="iteration:3", weight_average_half_life=1.0)
    assert killed.returncode == 137, killed.stderr[-3000:]
    resumed = _train(demo, out, overlay, weight_average_half_life=1.0)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    ref_epochs = _epochs(reference.stdout + reference.stderr)
    got = {**_epochs(killed.stdout + killed.stderr), **_epochs(resumed.stdout + resumed.stderr)}
    assert sorted(got) == sorted(ref_epochs) == list(range(1, EPOCHS + 1))
    for epoch in ref_epochs:
        assert got[epoch] == pytest.approx(ref_epochs[epoch], rel=1e-4, abs=1e-4), f"epoch {epoch}"
    ref_state = torch.load(ref_out / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    state = torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert state["weight_averaging"]["num_updates"] == ref_state["weight_averaging"]["num_updates"] == 2 * EPOCHS
    for name, value in ref_state["weight_averaging"]["average"].items():
        torch.testing.assert_close(state["weight_averaging"]["average"][name], value, rtol=1e-5, atol=1e-6)
    # the saved model is the average at its epoch, not the raw weights the optimiser kept training
    best = json.loads((out / "checkpoints" / "best.json").read_text())
    saved = torch.load(out / "models" / "model.pt", map_location="cpu", weights_only=True)
    ref_saved = torch.load(ref_out / "models" / "model.pt", map_location="cpu", weights_only=True)
    for name, value in ref_saved.items():
        torch.testing.assert_close(saved[name], value, rtol=1e-5, atol=1e-6)
    if best["epoch"] == EPOCHS:
        average, raw = state["weight_averaging"]["average"], state["model"]
        assert any(not torch.equal(saved[n], raw[n]) for n in average), "the saved model is the raw weights"
        for name, value in average.items():
            torch.testing.assert_close(saved[name], value)


@pytest.mark.slow
def test_truncated_last_checkpoint_is_named_and_the_previous_one_used(tiny, uninterrupted, tmp_path):
    demo, overlay = tiny
    ref_out, ref_log = uninterrupted
    out = tmp_path / "run"
    killed = _train(demo, out, overlay, kill="iteration:6")  # last.pt = epoch 2, last.prev.pt = epoch 1
    assert killed.returncode == 137
    last = out / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    resumed = _train(demo, out, overlay)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    log = resumed.stdout + resumed.stderr
    assert "CheckpointError" in log and str(last) in log
    assert "resuming from the previous checkpoint" in log and "at epoch 1" in log
    reference, got = _epochs(ref_log), _epochs(log)
    for epoch in (2, 3):
        assert got[epoch] == pytest.approx(reference[epoch], rel=1e-4, abs=1e-4), f"epoch {epoch}"


@pytest.mark.slow
def test_fresh_run_in_a_used_folder_does_not_keep_the_old_best(tiny, tmp_path):
    demo, overlay = tiny
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "models").mkdir()
    (out / "checkpoints" / "best.json").write_text(json.dumps({"metric": "BLEU_4", "score": 99.0, "epoch": 7}))
    (out / "models" / "model.pt").write_bytes(b"an earlier run's model")
    proc = _train(demo, out, overlay, resume="false", max_epochs=1)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "fresh run (resume is false): removing the earlier run's files" in proc.stdout + proc.stderr
    best = json.loads((out / "checkpoints" / "best.json").read_text())
    assert best["epoch"] == 1 and best["score"] < 99
    assert (out / "models" / "model.pt").read_bytes() != b"an earlier run's model"


# --- fast checks of the handler itself -------------------------------------------------------------------


def _engine_with_checkpoint(tmp_path: Path, resume: bool, write_model: bool) -> tuple[Engine, TrainingCheckpoint]:
    net = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    engine = Engine(lambda e, b: torch.rand(1).item())
    handler = TrainingCheckpoint(tmp_path / "ck" / "last.pt", {"model": net, "optimizer": opt, "lr_scheduler": sched},
                                 resume=resume, best_state_file=tmp_path / "ck" / "best.json",
                                 model_dir=tmp_path / "models")
    handler.attach(engine)
    if write_model:
        def save_model(e: Engine) -> None:
            (tmp_path / "models").mkdir(exist_ok=True)
            (tmp_path / "ck").mkdir(exist_ok=True)
            (tmp_path / "models" / "model.pt").write_bytes(b"m")
            (tmp_path / "ck" / "best.json").write_text(json.dumps({"score": 0.5, "epoch": e.state.epoch}))
        engine.add_event_handler(Events.EPOCH_COMPLETED, save_model)
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: (opt.step(), sched.step()))
    return engine, handler


def test_checkpoint_holds_rng_and_loads_with_weights_only(tmp_path):
    engine, _ = _engine_with_checkpoint(tmp_path, resume=True, write_model=True)
    engine.run([0, 1], max_epochs=2)
    checkpoint = read_checkpoint(tmp_path / "ck" / "last.pt")  # weights_only=True inside
    assert checkpoint["trainer"] == {"epoch": 2, "iteration": 4}
    assert set(checkpoint["rng"]) >= {"torch", "numpy", "python"}
    assert checkpoint["best"] == {"score": 0.5, "epoch": 2}
    assert checkpoint["lr_scheduler"]["last_epoch"] == 2  # saved after the LR step of epoch 2
    assert read_checkpoint(tmp_path / "ck" / "last.prev.pt")["trainer"]["epoch"] == 1
    expected = torch.rand(3)  # the draws after epoch 2 ...
    _, handler = _engine_with_checkpoint(tmp_path, resume=True, write_model=False)
    engine2 = Engine(lambda e, b: None)
    handler.attach(engine2)
    engine2.state.max_epochs = 5
    handler.load(engine2)
    torch.testing.assert_close(torch.rand(3), expected)  # ... are drawn again after a resume


def test_truncated_checkpoint_is_a_named_error(tmp_path):
    path = tmp_path / "last.pt"
    torch.save({"trainer": {"epoch": 1, "iteration": 2}, "model": {"w": torch.zeros(100)}}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match=re.escape(str(path)) + ".*truncated or corrupt"):
        read_checkpoint(path)


def test_fresh_run_removes_the_earlier_runs_files_and_fails_without_a_model(tmp_path, caplog):
    (tmp_path / "ck").mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "ck" / "best.json").write_text(json.dumps({"score": math.inf, "epoch": 9}))
    (tmp_path / "models" / "model.pt").write_bytes(b"old")
    engine, _ = _engine_with_checkpoint(tmp_path, resume=False, write_model=False)
    with pytest.raises(RuntimeError, match="training ended without saving a model in"):
        engine.run([0], max_epochs=1)
    assert not (tmp_path / "ck" / "best.json").exists() and not (tmp_path / "models" / "model.pt").exists()
    assert "fresh run (resume is false)" in caplog.text
