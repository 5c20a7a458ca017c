"""CI fails when a test is skipped for a reason outside the allowed list (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CASES = '''
import pytest

def test_runs():
    assert True

@pytest.mark.skipif(True, reason="pinned memory needs CUDA")
def test_gpu_only():
    pass
'''


def _pytest(folder: Path, strict: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HISTGEN_STRICT_SKIPS"}
    if strict:
        env["HISTGEN_STRICT_SKIPS"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=120)


def test_only_allowed_skips_pass_in_strict_mode(tmp_path):
    (tmp_path / "conftest.py").write_text((Path(__file__).parent / "conftest.py").read_text())
    (tmp_path / "test_cases.py").write_text(CASES)
    assert _pytest(tmp_path, strict=True).returncode == 0  # a CUDA skip is allowed
    (tmp_path / "test_more.py").write_text(
        "import pytest\n\ndef test_meteor():\n    pytest.skip('java is not on PATH (METEOR needs Java 8+)')\n")
    strict = _pytest(tmp_path, strict=True)
    assert strict.returncode == 1, strict.stdout[-2000:]
    assert "test_more.py::test_meteor: java is not on PATH" in strict.stdout
    assert "test_gpu_only" not in strict.stdout.split("skips that are not allowed")[1]
    assert _pytest(tmp_path, strict=False).returncode == 0  # a developer's run still passes with a skip
