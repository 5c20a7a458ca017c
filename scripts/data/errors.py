"""Errors raised by the data package. Messages name the file and the slide or item."""

from __future__ import annotations


class AnnotationError(ValueError):
    """An annotation file is missing, not JSON, or not in HistGen's layout."""


class BagDataError(ValueError):
    """A slide's feature bag (or its report) cannot be used: missing, corrupt, NaN/Inf, wrong shape."""
