"""Errors of the transfer bundles. Messages name the CSV file and line, the slide, the fold or the split file."""

from __future__ import annotations


class SlideTableError(ValueError):
    """A label CSV cannot be used: a missing column, bad rows (unknown class, bad time or event), missing files."""


class SplitError(ValueError):
    """Cross-validation splits cannot be made, or saved splits do not fit the CSV."""


class EncoderWeightsError(ValueError):
    """A report model cannot provide the encoder weights (missing file, other sizes, other feature dimension)."""
