"""Errors raised by the report text package."""

from __future__ import annotations


class ReportTextError(ValueError):
    """A report text cannot be used (empty, no words, undecodable bytes, bad vocabulary file)."""
