"""Quiet runs: cuCIM's cufile.log never lands in the folder a command runs from, and its libcuda lines are not shown."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.bundle_runs import bundle_env


def test_importing_the_bundle_leaves_no_cufile_log_and_no_libcuda_lines(tmp_path):
    env = bundle_env()
    env.pop("CUFILE_LOGFILE_PATH", None)  # as a user's shell has it: the product must set it itself
    env["TMPDIR"] = str(tmp_path / "tmp")
    os.makedirs(env["TMPDIR"])
    work = tmp_path / "cwd"
    work.mkdir()
    code = "import scripts, scripts.engines, scripts.wsi, os; print('log:', os.environ['CUFILE_LOGFILE_PATH'])"
    proc = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list(work.iterdir()) == []
    assert f"log: {tmp_path / 'tmp'}" in proc.stdout
    shown = proc.stdout + proc.stderr
    assert "libcuda" not in shown and "cuFile initialization failed" not in shown


def test_a_bundle_run_that_reads_slides_with_cucim_shows_no_libcuda_lines(tmp_path):
    """Under MONAI's reader cuFile starts at the first slide cuCIM opens, not at import: that open is quiet too."""
    from tests.support.shared_fixtures import REPO_ROOT, SHARED

    env = bundle_env()
    env.pop("CUFILE_LOGFILE_PATH", None)
    env["TMPDIR"] = str(tmp_path / "tmp")
    os.makedirs(env["TMPDIR"])
    cmd = [sys.executable, "-m", "monai.bundle", "run", "extract_features",
           "--config_file", str(REPO_ROOT / "configs" / "extract_features.json"),
           "--bundle_root", str(REPO_ROOT), "--wsi_backend", "cucim",
           "--slides_dir", str(SHARED / "fixtures" / "slides"), "--output_dir", str(tmp_path / "out")]
    work = tmp_path / "cwd"
    work.mkdir()
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = proc.stdout + proc.stderr
    assert "1 slides done, 0 skipped, 0 failed" in shown, shown[-3000:]
    assert "libcuda" not in shown and "cuFile initialization failed" not in shown, shown[-3000:]
    assert list(work.iterdir()) == []  # no cufile.log, no config_*.json where the command ran
