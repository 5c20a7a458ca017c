"""The files a trained report model is made of: ``model.pt``, ``vocab.json``, ``model_config.json``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from scripts.atomic_io import atomic_torch_save, atomic_write_json
from scripts.networks import HistGen, HistGenConfig
from scripts.text import Vocabulary

MODEL_FILE = "model.pt"
VOCAB_FILE = "vocab.json"
CONFIG_FILE = "model_config.json"


def unwrap(network: torch.nn.Module) -> torch.nn.Module:
    """The model inside a ``DistributedDataParallel``/``DataParallel`` wrapper."""
    return network.module if hasattr(network, "module") else network


def save_report_model(model_dir: str | os.PathLike[str], network: torch.nn.Module, vocab: Vocabulary) -> Path:
    """Write ``model.pt`` (state dict), ``vocab.json`` and ``model_config.json`` atomically into ``model_dir``."""
    model_dir = Path(model_dir)
    model = unwrap(network)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_write_json(model_dir / CONFIG_FILE, model.config.to_dict())
    vocab.save(model_dir / VOCAB_FILE)
    atomic_torch_save(model_dir / MODEL_FILE, state)
    return model_dir / MODEL_FILE


def load_model_config(model_dir: str | os.PathLike[str], **overrides: Any) -> HistGenConfig:
    """The ``HistGenConfig`` saved beside a model."""
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no model config; train a model first or give the hyper-parameters")
    return HistGenConfig.from_json(path, **overrides)


def load_report_model(
    model_dir: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[HistGen, Vocabulary]:
    """A trained model and its vocabulary from ``model_dir`` (eval mode)."""
    model_dir = Path(model_dir)
    model = HistGen(load_model_config(model_dir))
    path = model_dir / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model weights not found")
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(device).eval(), Vocabulary.load(model_dir / VOCAB_FILE)
