"""Yes/no settings as they arrive from a config or the command line (``--freeze_encoder false`` is a string)."""

from __future__ import annotations

from typing import Any

__all__ = ["as_flag"]

_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off", "none", "null", "")


def as_flag(value: Any, name: str = "flag") -> bool:
    """``True``/``False`` from a bool, a number 0/1 or a word (true/false, yes/no, on/off).

    Raises:
        ValueError: anything else (naming the setting).
    """
    if isinstance(value, bool) or value is None:
        return bool(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}")
