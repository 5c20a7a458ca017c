"""Shared pytest set-up: what native libraries write goes to a temporary folder, never into the checkout.

cuCIM's GPUDirect layer (cuFile) writes ``cufile.log`` into the current folder when it starts (on a machine
without a GPU it logs that ``libcuda.so.1`` is missing). It honours ``CUFILE_LOGFILE_PATH``, so the test
session points it at a temporary file before any test module imports cuCIM; subprocesses inherit it. At the
end of the session a ``cufile.log`` that appeared in the checkout fails the run.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
_CHECKOUT_LOG = REPO_ROOT / "cufile.log"
_LOG_EXISTED = _CHECKOUT_LOG.exists()


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get("CUFILE_LOGFILE_PATH"):
        folder = Path(tempfile.mkdtemp(prefix="histgen-tests-cufile-"))
        os.environ["CUFILE_LOGFILE_PATH"] = str(folder / "cufile.log")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _CHECKOUT_LOG.exists() and not _LOG_EXISTED:
        print(f"\nERROR: a test left {_CHECKOUT_LOG} in the checkout (tests must write under their tmp_path)")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
