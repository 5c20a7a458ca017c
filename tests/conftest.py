"""Suite-wide pytest hooks: native libraries' logs stay out of the checkout, and skips are policed in CI.

cuCIM's GPUDirect layer (cuFile) writes ``cufile.log`` into the current folder when it starts (on a machine
without a GPU it logs that ``libcuda.so.1`` is missing). It honours ``CUFILE_LOGFILE_PATH``, so the test
session points it at a temporary file before any test module imports cuCIM; subprocesses inherit it. At the
end of the session a ``cufile.log`` that appeared in the checkout fails the run.

Parallel runs: with pytest-xdist (``-n auto``, as README and ``.ci/run`` use it) each worker process and the
bundle subprocesses it starts use one intra-op thread (``OMP_NUM_THREADS=1``) unless the variable is already
set: two workers with two OpenMP threads each on two cores spin against each other and run slower than one.

Allowed skips: with ``HISTGEN_STRICT_SKIPS=1`` (set by ``.ci/run``) the run fails when a test is skipped
for any reason outside :data:`ALLOWED_SKIPS`, so that a missing fixture, package, app install or Java
cannot hide behind a skip. Allowed: tests that need a CUDA GPU (CI is CPU-only) and the two benchmark-mode
tests that time the reference HistGen code from a checkout the user points to (``HISTGEN_REFERENCE``).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
_CHECKOUT_LOG = REPO_ROOT / "cufile.log"
_LOG_EXISTED = _CHECKOUT_LOG.exists()

#: name -> pattern of a skip reason that CI accepts (documented in README.md, "Run the tests")
ALLOWED_SKIPS: dict[str, re.Pattern[str]] = {
    "needs CUDA": re.compile(r"\bCUDA\b"),
    # timing against the reference code needs its checkout (Apache-2.0, not vendored; CI has no internet)
    "needs the reference HistGen checkout": re.compile(r"no reference HistGen checkout at .* \(set HISTGEN_REFERENCE"),
}

_skips: list[tuple[str, str]] = []


def _parallel(config: pytest.Config) -> bool:
    workers = getattr(config.option, "numprocesses", None)
    return bool(os.environ.get("PYTEST_XDIST_WORKER")) or (workers not in (None, 0, "0"))


def pytest_configure(config: pytest.Config) -> None:
    if _parallel(config) and not os.environ.get("OMP_NUM_THREADS"):
        os.environ["OMP_NUM_THREADS"] = "1"
    if hasattr(config.option, "loadscopereorder"):
        # pytest-xdist (>= 3.6) re-sorts --dist loadfile's files by their number of tests unless told not to,
        # which would undo LONGEST_FIRST below and leave one worker finishing a long file alone at the end
        config.option.loadscopereorder = False
    if not os.environ.get("CUFILE_LOGFILE_PATH"):
        folder = Path(tempfile.mkdtemp(prefix="histgen-tests-cufile-"))
        os.environ["CUFILE_LOGFILE_PATH"] = str(folder / "cufile.log")
    if not os.environ.get(TEXTURE_CACHE_ENV):
        # one texture bank for the session's demo builds (workers and bundle subprocesses inherit it); the
        # swatches are the same in every build, so rendering them per demo (~6 s on 2 cores) was repeated work
        os.environ[TEXTURE_CACHE_ENV] = tempfile.mkdtemp(prefix="histgen-tests-textures-")


#: ``scripts.demo.slide_dataset.TEXTURE_CACHE_ENV`` (spelt out: this file is also copied into folders without
#: ``scripts`` by tests/test_skip_policy.py; tests/demo/test_slide_demo.py checks the two agree)
TEXTURE_CACHE_ENV = "HISTGEN_TEXTURE_CACHE"


#: the longest test files (minutes each on 2 cores): collected first so that parallel workers start them first
#: and the run does not end waiting on one of them (pytest-xdist hands out files in collection order)
LONGEST_FIRST = (
    "demo/test_demo_training.py", "docs/test_docs_guides_commands.py", "docs/test_docs_share_and_serve_commands.py",
    "docs/test_docs_readme_commands.py", "transfer/test_transfer_survival_doc_commands.py",
    "transfer/test_transfer_subtyping_doc_commands.py", "transfer/test_subtyping_bundle.py",
    "transfer/test_survival_bundle.py",
    "packaging/test_transfer_export_zip.py", "metrics/test_metrics.py", "engines/test_resume_faults.py",
    "benchmarks/test_bench_grounding.py", "packaging/test_export_zip.py", "serving/test_mlflow_registry.py",
    "serving/test_transfer_registry.py", "engines/test_report_bundle.py", "engines/test_offline_runs.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}

    def order(item: pytest.Item) -> int:
        path = Path(str(item.fspath)).resolve()
        for name, i in rank.items():
            if path.as_posix().endswith(f"/tests/{name}"):
                return i
        return len(rank)

    items.sort(key=order)  # stable: the order inside a file, and of the other files, is kept


def _strict() -> bool:
    return os.environ.get("HISTGEN_STRICT_SKIPS", "").strip().lower() in ("1", "true", "yes", "on")


def _reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skips.append((report.nodeid, _reason(report)))


def unexpected_skips() -> list[tuple[str, str]]:
    """Skipped tests whose reason matches none of :data:`ALLOWED_SKIPS`."""
    return [(node, why) for node, why in _skips if not any(p.search(why) for p in ALLOWED_SKIPS.values())]


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _CHECKOUT_LOG.exists() and not _LOG_EXISTED:
        print(f"\nERROR: a test left {_CHECKOUT_LOG} in the checkout (tests must write under their tmp_path)")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if _strict() and unexpected_skips() and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    bad = unexpected_skips()
    if not (_strict() and bad):
        return
    terminalreporter.section("skips that are not allowed (HISTGEN_STRICT_SKIPS=1)", sep="=", red=True)
    for node, why in bad:
        terminalreporter.line(f"{node}: {why}", red=True)
    terminalreporter.line(f"allowed: {', '.join(ALLOWED_SKIPS)} (tests/conftest.py ALLOWED_SKIPS)")
