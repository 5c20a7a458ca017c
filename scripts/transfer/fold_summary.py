"""The cross-validation summary: mean and standard deviation of each test score over the folds.

Reads every ``<eval_dir>/fold_<k>/metrics.json`` (k < num_folds) on disk, so folds trained by separate runs
(``fold=k``) are summarised together, and writes ``<eval_dir>/metrics.json``::

    {"task": "subtyping", "num_folds": 5, "folds": [0, 1, 2, 3, 4], "missing_folds": [],
     "metrics": {"auc": {"mean": 0.98, "std": 0.01, "values": [...]}, ...},
     "pooled": {...every fold's test predictions together: confusion matrix / Kaplan-Meier...}}

The standard deviation is the sample one (``ddof=1``; 0 for a single fold).
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from scripts.atomic_io import atomic_write_json

from .task_outputs import read_csv_rows
from .tasks import TaskOutputs

__all__ = ["mean_and_std", "summarize_folds"]

logger = logging.getLogger("histgen.transfer")


def mean_and_std(values: list[float]) -> dict[str, Any]:
    """``{"mean", "std", "values"}`` of the finite values (sample std, 0 for one value)."""
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    mean = float(np.mean(finite)) if finite else float("nan")
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0 if finite else float("nan")
    return {"mean": mean, "std": std, "values": values}


def summarize_folds(eval_dir: str | os.PathLike[str], num_folds: int, outputs: TaskOutputs,
                    info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``<eval_dir>/metrics.json`` from the folds' results on disk and return it.

    Raises:
        FileNotFoundError: no fold has results.
    """
    eval_dir = Path(eval_dir)
    results = {}
    for k in range(num_folds):
        path = eval_dir / f"fold_{k}" / "metrics.json"
        if path.is_file():
            results[k] = json.loads(path.read_text(encoding="utf-8"))
    if not results:
        raise FileNotFoundError(f"{eval_dir}: no fold_<k>/metrics.json to summarise")
    names = [n for n in next(iter(results.values()))["metrics"] if all(n in r["metrics"] for r in results.values())]
    metrics = {n: mean_and_std([float(r["metrics"][n]) for r in results.values()]) for n in names}
    pooled_rows = []
    for k in results:
        csv_path = eval_dir / f"fold_{k}" / "predictions.csv"
        if csv_path.is_file():
            pooled_rows.extend({**row, "fold": k} for row in read_csv_rows(csv_path))
    pooled: dict[str, Any] = {}
    if pooled_rows:
        title = f"test parts of {len(results)} fold(s) pooled"
        pooled = outputs.pooled_report(pooled_rows, eval_dir, title)
    summary = {
        "task": outputs.table.task.name, "num_folds": num_folds, "folds": sorted(results),
        "missing_folds": [k for k in range(num_folds) if k not in results],
        "metrics": metrics, "pooled": pooled,
        "per_fold": {str(k): {"metrics": r["metrics"], **({"selection": r["selection"]} if "selection" in r else {})}
                     for k, r in results.items()},
        **(info or {}),
    }
    atomic_write_json(eval_dir / "metrics.json", summary)
    shown = ", ".join(f"{n} {m['mean']:.4f} ± {m['std']:.4f}" for n, m in metrics.items()
                      if n not in ("num_cases", "num_events"))
    logger.info("cross-validation (%d of %d folds): %s -> %s", len(results), num_folds, shown,
                eval_dir / "metrics.json")
    return summary
