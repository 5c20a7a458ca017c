"""Suite-wide pytest hooks.

Allowed skips: with ``HISTGEN_STRICT_SKIPS=1`` (set by ``.ci/run``) the run fails when a test is skipped
for any reason outside :data:`ALLOWED_SKIPS`, so that a missing fixture, package, app install or Java
cannot hide behind a skip. Today the only allowed skip is a test that needs a CUDA GPU (CI is CPU-only).
"""

from __future__ import annotations

import os
import re

import pytest

#: name -> pattern of a skip reason that CI accepts (documented in README.md, "Run the tests")
ALLOWED_SKIPS: dict[str, re.Pattern[str]] = {"needs CUDA": re.compile(r"\bCUDA\b")}

_skips: list[tuple[str, str]] = []


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
