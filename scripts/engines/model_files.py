"""The files a trained report model is made of: ``model.pt``, ``vocab.json``, ``model_config.json``.

``findings_vocabulary.json`` joins them when training built one (the diagnosis/grade/stage classes of the
training reports, :class:`scripts.metrics.FindingsVocabulary`): evaluation and inference of that model
read its findings with the same classes.

``feature_extraction.json`` joins them when the training features came from ``scripts.wsi.FeatureExtractor``:
the encoder and patch settings that slide inference must use to give the model the same kind of input.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from scripts.atomic_io import atomic_torch_save, atomic_write_json
from scripts.metrics import FindingsVocabulary
from scripts.networks import HistGen, HistGenConfig
from scripts.safe_load import load_plain
from scripts.text import Vocabulary

MODEL_FILE = "model.pt"
VOCAB_FILE = "vocab.json"
CONFIG_FILE = "model_config.json"
EXTRACTION_FILE = "feature_extraction.json"
FINDINGS_VOCAB_FILE = "findings_vocabulary.json"

logger = logging.getLogger(__name__)


def unwrap(network: torch.nn.Module) -> torch.nn.Module:
    """The model inside a ``DistributedDataParallel``/``DataParallel`` wrapper."""
    return network.module if hasattr(network, "module") else network


def save_report_model(
    model_dir: str | os.PathLike[str],
    network: torch.nn.Module,
    vocab: Vocabulary,
    extraction: dict[str, Any] | None = None,
    findings_vocabulary: FindingsVocabulary | None = None,
) -> Path:
    """Write ``model.pt`` (state dict), ``vocab.json`` and ``model_config.json`` atomically into ``model_dir``.

    Args:
        model_dir: the model folder.
        network: the model (unwrapped from DDP if needed).
        vocab: its vocabulary.
        extraction: feature-extraction settings of the training features
            (:func:`scripts.engines.feature_extraction_of`), written to ``feature_extraction.json``; None
            removes an old one (the model was trained on features of unknown origin).
        findings_vocabulary: the training reports' finding classes, written to ``findings_vocabulary.json``
            (None leaves an existing file as it is).
    """
    model_dir = Path(model_dir)
    model = unwrap(network)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_write_json(model_dir / CONFIG_FILE, model.config.to_dict())
    vocab.save(model_dir / VOCAB_FILE)
    if extraction is not None:
        atomic_write_json(model_dir / EXTRACTION_FILE, extraction)
    else:
        (model_dir / EXTRACTION_FILE).unlink(missing_ok=True)
    if findings_vocabulary is not None:
        findings_vocabulary.save(model_dir / FINDINGS_VOCAB_FILE)
    atomic_torch_save(model_dir / MODEL_FILE, state)
    return model_dir / MODEL_FILE


def load_model_config(model_dir: str | os.PathLike[str], **overrides: Any) -> HistGenConfig:
    """The ``HistGenConfig`` saved beside a model."""
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no model config; train a model first or give the hyper-parameters")
    return HistGenConfig.from_json(path, **overrides)


def load_feature_extraction(model_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``feature_extraction.json`` saved beside a model, or None when there is none."""
    path = Path(model_dir) / EXTRACTION_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def load_findings_vocabulary(
    model_dir: str | os.PathLike[str], annotation_file: str | os.PathLike[str] | None = None
) -> FindingsVocabulary | None:
    """The ``findings_vocabulary.json`` saved beside a model; else one built from ``annotation_file``'s train
    split (logged), else None (findings are then read with rule-based diagnosis phrases only)."""
    path = Path(model_dir) / FINDINGS_VOCAB_FILE
    if path.is_file():
        return FindingsVocabulary.load(path)
    if annotation_file is not None:
        logger.info("%s not found: building the findings vocabulary from the train split of %s", path,
                    annotation_file)
        return FindingsVocabulary.from_annotation(annotation_file)
    logger.info("%s not found: findings are read without a vocabulary (rule-based diagnosis phrases)", path)
    return None


def load_report_model(
    model_dir: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[HistGen, Vocabulary]:
    """A trained model and its vocabulary from ``model_dir`` (eval mode)."""
    model_dir = Path(model_dir)
    model = HistGen(load_model_config(model_dir))
    path = model_dir / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model weights not found")
    model.load_state_dict(load_plain(path, what="model weights"))
    return model.to(device).eval(), Vocabulary.load(model_dir / VOCAB_FILE)
