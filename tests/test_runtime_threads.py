"""scripts.runtime_threads: the thread-count rule, its inputs (affinity, cgroup quota, runnable tasks) and
how the workflows apply it (a fresh process each, since torch's thread counts are per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

from scripts import runtime_threads as rt

ROOT = Path(__file__).resolve().parents[1]


def test_omp_num_threads_wins_over_the_key_and_the_automatic_rule():
    choice = rt.choose_threads(4, rt.training_work(1, 100_000, 512), 0, environ={"OMP_NUM_THREADS": "3"}, cores=8)
    assert (choice.intra_op, choice.inter_op, choice.source) == (3, None, "OMP_NUM_THREADS")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS"):
        rt.choose_threads(None, environ={"OMP_NUM_THREADS": "many"}, cores=2, busy=None)


def test_the_key_wins_over_the_automatic_rule_and_bad_values_are_named():
    choice = rt.choose_threads(2, 10, 0, environ={}, cores=8, busy=7)
    assert (choice.intra_op, choice.inter_op, choice.source) == (2, 1, "config")
    with pytest.raises(ValueError, match="num_threads"):
        rt.choose_threads(0, environ={}, cores=2, busy=None)


@pytest.mark.parametrize(
    ("cores", "busy", "work", "workers", "expected"),
    [
        (2, 0, rt.training_work(8, 8192, 64), 0, 1),  # the demo: too small to share out
        (2, 0, rt.training_work(1, 30_000, 512), 0, 2),  # released size, quiet machine: every core
        (2, 1, rt.training_work(1, 30_000, 512), 0, 1),  # one other job running: one core left
        (16, 3, None, 0, 13),  # size unknown: the cores the other jobs leave
        (16, None, None, 4, 12),  # runnable tasks unknown: cores minus the loader workers
        (4, 9, None, 0, 1),  # overloaded: never below 1
    ],
)
def test_automatic_rule(cores, busy, work, workers, expected):
    choice = rt.choose_threads(None, work, workers, environ={}, cores=cores, busy=busy)
    assert (choice.intra_op, choice.inter_op, choice.source) == (expected, 1, "automatic")
    assert f"{expected} intra-op" in choice.describe()


def test_loader_workers_keep_an_explicit_setting_and_fit_the_cores_otherwise():
    assert rt.choose_loader_workers(3, 2) == 3
    assert [rt.choose_loader_workers(None, c) for c in (1, 2, 3, 16)] == [0, 0, 2, 4]


def test_usable_cores_reads_a_cgroup_quota(tmp_path):
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert rt.usable_cores(tmp_path) == affinity  # no quota file: affinity alone
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert rt.usable_cores(tmp_path) == affinity
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs
    assert rt.usable_cores(tmp_path) == 1
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert rt.usable_cores(v1) == 1


def test_other_runnable_tasks_subtracts_the_reader(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  1 2 3\nprocs_running 4\nprocs_blocked 0\n")
    assert rt.other_runnable_tasks(samples=3, interval_s=0, stat=stat) == 3
    assert rt.other_runnable_tasks(stat=tmp_path / "missing") is None


_CHILD = """
import json, logging, sys, torch
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from scripts.runtime_threads import apply_thread_choice
key = json.loads(sys.argv[1])
first = apply_thread_choice(key, None, 0)
second = apply_thread_choice(None, None, 0)
print(json.dumps([first.intra_op, first.source, second == first, torch.get_num_threads(),
                  torch.get_num_interop_threads()]))
"""


def test_apply_sets_torch_once_and_logs_once():
    """One fresh process: the key's count reaches torch, a second call changes nothing, one log line."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, "2"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [2, "config", True, 2, 1]
    assert out.stderr.count("torch threads:") == 1, out.stderr


@pytest.mark.parametrize(
    ("config", "workflow"),
    [
        ("configs/train.json", "training"),
        ("configs/evaluate.json", "evaluating"),
        ("configs/inference.json", "inference"),
        ("configs/extract_features.json", "extract_features"),
        # the sibling bundles run their file with the shared base, which holds the workflows
        ("scripts/transfer/configs/transfer_train.json", "training"),
        ("scripts/transfer/configs/transfer_evaluate.json", "evaluating"),
        ("scripts/transfer/configs/transfer_inference.json", "inference"),
    ],
)
def test_workflows_apply_the_choice_right_after_the_settings_check(config, workflow):
    parser = ConfigParser()
    parser.read_config(ROOT / config)
    assert parser["num_threads"] is None
    steps = parser[workflow]
    assert steps[0] == "$scripts.config_checks.check_settings()"
    assert steps[1].startswith("$scripts.runtime_threads.apply_thread_choice(@num_threads,")


def test_training_work_of_the_report_config_keeps_the_demo_on_one_thread():
    parser = ConfigParser()
    parser.read_config(ROOT / "configs/train.json")
    work = rt.training_work(parser["batch_size"], parser["max_patches"], parser["network_def"]["config"]["d_model"])
    assert rt.choose_threads(None, work, parser["num_workers"], environ={}, cores=2, busy=0).intra_op == 1
