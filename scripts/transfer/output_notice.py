"""The research-use notice of the sibling bundles' prediction tables (issue 14: every output carries it).

Each ``predictions.csv`` (a fold's test predictions under ``eval/fold_<k>/``, the fold ensemble's under
``predictions/``) ends with a ``notice`` column: :func:`scripts.engines.output_notice` of the fold models, i.e.
the research-use notice, preceded by ``SYNTHETIC-DATA MODEL — NOT FOR DIAGNOSIS`` when the models were trained
on the SYNTHETIC demo (``"synthetic_demo": true`` in their ``model_info.json``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from scripts.engines.model_provenance import output_notice

__all__ = ["NOTICE_COLUMN", "transfer_notice", "with_notice"]

#: The last column of every sibling ``predictions.csv``.
NOTICE_COLUMN = "notice"


def transfer_notice(infos: Iterable[Mapping[str, Any] | None]) -> str:
    """The notice of outputs of the fold models whose ``model_info.json`` (or run info) records are ``infos``:
    synthetic when any of them was trained on the SYNTHETIC demo."""
    synthetic = any(bool(info and info.get("synthetic_demo")) for info in infos)
    return output_notice({"synthetic": synthetic})


def with_notice(rows: list[dict[str, Any]], columns: list[str],
                notice: str) -> tuple[list[dict[str, Any]], list[str]]:
    """``rows`` and ``columns`` with the ``notice`` column appended (every row the same notice)."""
    return [{**row, NOTICE_COLUMN: notice} for row in rows], [*columns, NOTICE_COLUMN]
