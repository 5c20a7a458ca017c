"""The files of a cross-validated model: one ``model.pt`` per fold, with ``model_info.json`` beside it.

::

    <model_dir>/fold_<k>/model.pt          state dict of the network selected on fold k's val part
    <model_dir>/fold_<k>/model_info.json   {"task", "fold", "network": {build_mil_network arguments},
                                            "classes" or "bin_edges", "selected_by", "epoch", "pretrained_encoder"...}
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from scripts.atomic_io import atomic_torch_save, atomic_write_json
from scripts.engines.model_files import unwrap
from scripts.ids import fold_dir_name
from scripts.safe_load import load_plain

from .mil_networks import build_mil_network, network_spec

__all__ = [
    "fold_model_dir",
    "list_fold_models",
    "load_fold_info",
    "load_fold_weights",
    "network_from_fold_models",
    "save_fold_model",
    "saved_model_info",
]

MODEL_FILE = "model.pt"
INFO_FILE = "model_info.json"


def fold_model_dir(model_dir: str | os.PathLike[str], fold: int) -> Path:
    return Path(model_dir) / fold_dir_name(fold)


def save_fold_model(model_dir: str | os.PathLike[str], fold: int, state: dict[str, torch.Tensor], network: nn.Module,
                    info: dict[str, Any]) -> Path:
    """Write fold ``fold``'s weights ``state`` and its ``model_info.json`` atomically; returns the model path."""
    folder = fold_model_dir(model_dir, fold)
    atomic_write_json(folder / INFO_FILE, {"fold": fold, "network": network_spec(unwrap(network)), **info})
    return atomic_torch_save(folder / MODEL_FILE, state)


def list_fold_models(model_dir: str | os.PathLike[str]) -> list[int]:
    """Folds that have both files, sorted."""
    folder = Path(model_dir)
    folds = []
    for path in folder.glob("fold_*") if folder.is_dir() else []:
        match = re.fullmatch(r"fold_(\d+)", path.name)
        if match and (path / MODEL_FILE).is_file() and (path / INFO_FILE).is_file():
            folds.append(int(match.group(1)))
    return sorted(folds)


def load_fold_info(model_dir: str | os.PathLike[str], fold: int) -> dict[str, Any]:
    path = fold_model_dir(model_dir, fold) / INFO_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no fold model info; train the bundle first")
    return json.loads(path.read_text(encoding="utf-8"))


def saved_model_info(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``model_info.json`` of the first saved fold (network, classes, ... shared by every fold).

    Raises:
        FileNotFoundError: no fold model in ``model_dir``.
    """
    folds = list_fold_models(model_dir)
    if not folds:
        raise FileNotFoundError(f"{model_dir}: no fold_<k>/{MODEL_FILE} with {INFO_FILE}; train the bundle first")
    return load_fold_info(model_dir, folds[0])


def network_from_fold_models(model_dir: str | os.PathLike[str], channels_first: bool = False) -> nn.Module:
    """An (untrained) network of the architecture the fold models share.

    ``channels_first``: the MONAI-interface class, whose ``forward`` takes ``[B, D, N]`` bags (the bundles'
    ``network_def``; see :func:`build_mil_network`).
    """
    return build_mil_network(**saved_model_info(model_dir)["network"], channels_first=channels_first)


def load_fold_weights(network: nn.Module, model_dir: str | os.PathLike[str], fold: int) -> dict[str, Any]:
    """Load fold ``fold``'s weights into ``network`` (unwrapped); returns its info.

    Raises:
        FileNotFoundError: the fold has no model.
        ValueError: the fold's model has another architecture than ``network``.
    """
    info = load_fold_info(model_dir, fold)
    model = unwrap(network)
    if info["network"] != network_spec(model):
        raise ValueError(f"{fold_model_dir(model_dir, fold)}: architecture {info['network']} differs from the "
                         f"network being evaluated {network_spec(model)}")
    state = load_plain(fold_model_dir(model_dir, fold) / MODEL_FILE, what="fold model weights")
    model.load_state_dict(state)
    return info
