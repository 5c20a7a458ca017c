"""The rows of a pyfunc input DataFrame as feature bags: one slide per row, a file path or the bag itself.

==============  ==============================  =========================================================
column          type                            meaning
==============  ==============================  =========================================================
``slide_id``    string, optional                id echoed in the output (default: file name or ``bag-<i>``)
``feature_file`` string, optional               path of a ``.h5``/``.pt`` feature file; a served model
                                                refuses it unless ``HISTGEN_FEATURE_ROOT`` names a folder
                                                (:mod:`scripts.serving.feature_paths`)
``features``    array of arrays of double,      the bag itself, ``[N, D]`` (``D`` = the model's ``in_dim``)
                optional
==============  ==============================  =========================================================

Each row gives ``feature_file`` or ``features`` (not both): the input format of the report model
(:mod:`scripts.serving.pyfunc_model`), shared by the subtyping and survival models.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

__all__ = ["bag_tensor", "bags_from_frame", "is_present"]


def is_present(value: Any) -> bool:
    """False for None, NaN and blank strings (how pandas fills a column a row does not use)."""
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    if isinstance(value, str):
        return bool(value.strip())
    return True


def bag_tensor(bag: Any, label: str, feature_dim: int | None = None) -> torch.Tensor:
    """``[N, D]`` float32 tensor of a bag (array, nested list or tensor), checked.

    Raises:
        ValueError: not a non-empty 2-D array, NaN/Inf values, or ``D != feature_dim``; the message names ``label``.
    """
    if isinstance(bag, torch.Tensor):
        feats = bag.detach().to(torch.float32).cpu()
    else:
        rows = [np.asarray(r, dtype=np.float32) for r in bag] if isinstance(bag, (list, np.ndarray)) else bag
        try:
            feats = torch.as_tensor(np.asarray(rows, dtype=np.float32))
        except ValueError as err:
            raise ValueError(f"{label}: a feature bag must be an [N, D] array of numbers ({err})") from None
    if feats.dim() != 2 or feats.shape[0] == 0 or feats.shape[1] == 0:
        raise ValueError(f"{label}: a feature bag must be a non-empty [N, D] array, got shape {list(feats.shape)}")
    if not bool(torch.isfinite(feats).all()):
        raise ValueError(f"{label}: the feature bag holds NaN or Inf values")
    if feature_dim is not None and feats.shape[1] != feature_dim:
        raise ValueError(f"{label}: feature dimension {feats.shape[1]}, the model expects {feature_dim}")
    return feats


def bags_from_frame(
    frame: pd.DataFrame, read_file: Callable[[str, str], torch.Tensor], feature_dim: int | None = None
) -> tuple[list[torch.Tensor], list[str]]:
    """Bags ``[N_i, D]`` and slide ids of the rows of ``frame`` (see the module docstring), in order.

    Args:
        frame: the model input.
        read_file: ``(path, slide_id) -> [N, D]`` for ``feature_file`` rows (it checks the file).
        feature_dim: the model's ``D``, checked for ``features`` rows.

    Raises:
        ValueError: a row gives neither or both of ``feature_file`` and ``features``, or a bad bag.
    """
    bags: list[torch.Tensor] = []
    ids: list[str] = []
    for index, row in enumerate(frame.to_dict(orient="records")):
        path, feats = row.get("feature_file"), row.get("features")
        has_path, has_feats = is_present(path), is_present(feats)
        if has_path == has_feats:
            raise ValueError(f"row {index}: give exactly one of 'feature_file' and 'features'")
        slide_id = str(row["slide_id"]) if is_present(row.get("slide_id")) else None
        if has_path:
            slide_id = slide_id or Path(str(path)).stem
            bags.append(read_file(str(path), slide_id))
        else:
            slide_id = slide_id or f"bag-{index}"
            bags.append(bag_tensor(feats, f"row {index} ({slide_id})", feature_dim))
        ids.append(slide_id)
    return bags, ids
