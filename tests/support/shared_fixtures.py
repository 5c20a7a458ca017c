"""Locations of the read-only fixtures that sit beside the checkout (``../shared``)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"
HISTGEN_SMALL = SHARED / "fixtures" / "histgen_official" / "small"


def require_histgen_small() -> Path:
    """The reference-output fixture folder, or skip the test with the reason."""
    if not (HISTGEN_SMALL / "checkpoint.pth").is_file():
        pytest.skip(f"reference HistGen fixture not found at {HISTGEN_SMALL} (needs ../shared beside the checkout)")
    return HISTGEN_SMALL
