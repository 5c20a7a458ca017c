"""The files a trained report model is made of: ``model.pt``, ``vocab.json``, ``model_config.json``.

``findings_vocabulary.json`` joins them when training built one (the diagnosis/grade/stage classes of the
training reports, :class:`scripts.metrics.FindingsVocabulary`): evaluation and inference of that model
read its findings with the same classes.

``provenance.json`` joins them when training knows its data (:mod:`scripts.engines.model_provenance`): the
dataset's name, whether it is synthetic, the number of slides per split, the extraction settings, the date
and the code version; readers log it as one line and every output carries its notice.

``feature_extraction.json`` joins them when the training features came from ``scripts.wsi.FeatureExtractor``:
the encoder and patch settings that slide inference must use to give the model the same kind of input.

These files are the one source of the defaults a model carries: the beam size and report length
(``model_config.json``) and the extraction settings (``feature_extraction.json``). Every reader
(``configs/inference.json``, slide inference, the pyfunc model, the MONAI Label and MONAI Deploy apps) goes
through :func:`decoding_settings` and :func:`extraction_settings`: a user's override wins and is logged
when it differs from what the model was trained with; the constants below apply only when the model
records nothing.
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

from .model_provenance import PROVENANCE_FILE, stamped

MODEL_FILE = "model.pt"
VOCAB_FILE = "vocab.json"
CONFIG_FILE = "model_config.json"
EXTRACTION_FILE = "feature_extraction.json"
FINDINGS_VOCAB_FILE = "findings_vocabulary.json"

#: Beam width for a model whose ``model_config.json`` records none (the ``HistGenConfig`` default).
DEFAULT_BEAM_SIZE: int = HistGenConfig.beam_size
#: Extraction settings for a model without ``feature_extraction.json`` (those of ``configs/extract_features.json``).
DEFAULT_EXTRACTION: dict[str, Any] = {"encoder_name": "builtin-small", "target_mpp": 0.5, "patch_size": 256,
                                      "tissue_fraction": 0.5}
#: Settings that change the features a model sees: overriding them is allowed but logged as a warning.
FEATURE_DEFINING = ("encoder_name", "target_mpp", "patch_size", "step", "tissue_fraction", "tissue_params")

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
    provenance: dict[str, Any] | None = None,
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
        provenance: what the model was trained on (:func:`scripts.engines.training_provenance`), written
            with the save time as ``provenance.json``; None removes an old one (the data is unknown).
    """
    model_dir = Path(model_dir)
    model = unwrap(network)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_write_json(model_dir / CONFIG_FILE, {**model.config.to_dict(), **vocabulary_record(vocab)})
    vocab.save(model_dir / VOCAB_FILE)
    if extraction is not None:
        atomic_write_json(model_dir / EXTRACTION_FILE, extraction)
    else:
        (model_dir / EXTRACTION_FILE).unlink(missing_ok=True)
    if findings_vocabulary is not None:
        findings_vocabulary.save(model_dir / FINDINGS_VOCAB_FILE)
    if provenance is not None:
        atomic_write_json(model_dir / PROVENANCE_FILE, stamped(provenance))
    else:
        (model_dir / PROVENANCE_FILE).unlink(missing_ok=True)
    atomic_torch_save(model_dir / MODEL_FILE, state)
    return model_dir / MODEL_FILE


class VocabularyMismatchError(ValueError):
    """A ``vocab.json`` that is not the vocabulary the model was trained with (its reports would be nonsense)."""


def vocabulary_record(vocab: Vocabulary) -> dict[str, Any]:
    """What ``model_config.json`` records of the vocabulary: ``vocab_tokens`` (its size) and ``vocab_sha256``."""
    return {"vocab_tokens": len(vocab), "vocab_sha256": vocab.checksum}


def check_vocabulary(model_dir: str | os.PathLike[str], vocab: Vocabulary, vocab_path: str | os.PathLike[str]) -> None:
    """Fail unless ``vocab`` is the vocabulary recorded in ``model_dir/model_config.json``.

    Models saved before the checksum was recorded are checked by size only (``vocab_size``).

    Raises:
        VocabularyMismatchError: naming the vocabulary file, the model folder, and both sizes and checksums.
    """
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        return
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    size = record.get("vocab_tokens", record.get("vocab_size"))
    checksum = record.get("vocab_sha256")
    if (size is not None and int(size) != len(vocab)) or (checksum is not None and checksum != vocab.checksum):
        raise VocabularyMismatchError(
            f"{vocab_path}: not the vocabulary of the model in {Path(model_dir)} ({len(vocab)} tokens, sha256 "
            f"{vocab.checksum[:12]}; the model was trained with {size} tokens, sha256 {str(checksum)[:12]}); "
            f"use the vocab.json saved with the model"
        )


def load_model_vocabulary(
    model_dir: str | os.PathLike[str], vocab_file: str | os.PathLike[str] | None = None
) -> Vocabulary:
    """The vocabulary of the model in ``model_dir`` (``vocab.json`` there, or ``vocab_file``), checked against it.

    Raises:
        VocabularyMismatchError: the file is another vocabulary than the model's (see :func:`check_vocabulary`).
    """
    path = Path(vocab_file) if vocab_file is not None else Path(model_dir) / VOCAB_FILE
    vocab = Vocabulary.load(path)
    check_vocabulary(model_dir, vocab, path)
    return vocab


class ModelNotFoundError(FileNotFoundError):
    """``model_dir`` holds no trained model."""


def require_model_dir(model_dir: str | os.PathLike[str]) -> Path:
    """``model_dir`` when it holds ``model.pt`` and ``model_config.json``; else a clear error.

    ``configs/inference.json``'s ``model_dir`` is ``<output_dir>/models`` unless given, so a run with an
    ``--output_dir`` of its own needs ``--model_dir`` too: the message says so.

    Raises:
        ModelNotFoundError: naming the folder, what is missing and the ``--model_dir`` override.
    """
    folder = Path(model_dir)
    missing = [name for name in (MODEL_FILE, CONFIG_FILE) if not (folder / name).is_file()]
    if missing:
        raise ModelNotFoundError(
            f"{folder}: no trained model here (missing {', '.join(missing)}); model_dir is <output_dir>/models "
            "unless given, so when --output_dir names a new folder for the reports, give the model's folder "
            "too, e.g. --model_dir models (the demo model trained in the bundle root)"
        )
    return folder


def load_model_config(model_dir: str | os.PathLike[str], **overrides: Any) -> HistGenConfig:
    """The ``HistGenConfig`` saved beside a model."""
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no model config; train a model first or give the hyper-parameters")
    return HistGenConfig.from_json(path, **overrides)


def load_feature_extraction(model_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``feature_extraction.json`` saved beside a model, or None when there is none."""
    return _read_json(Path(model_dir) / EXTRACTION_FILE)


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
    try:
        model.load_state_dict(load_plain(path, what="model weights"))
        model.check_phrase_rules()
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    return model.to(device).eval(), load_model_vocabulary(model_dir)


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def decoding_settings(
    model_dir: str | os.PathLike[str] | None,
    beam_size: int | None = None,
    max_len: int | None = None,
    recorded: dict[str, Any] | None = None,
) -> tuple[int, int | None]:
    """``(beam_size, max_len)`` to decode with: the override when given, else the model's ``model_config.json``.

    Args:
        model_dir: the model folder (None when ``recorded`` is given, e.g. the config inside a ``model.ts``).
        beam_size: a user's beam width, or None (or < 1) for the model's ``beam_size``.
        max_len: a user's longest report, or None (or < 1) for the model's ``max_seq_length``.
        recorded: the model config as a dict, instead of reading it from ``model_dir``.

    Returns:
        The beam width (``DEFAULT_BEAM_SIZE`` when the model records none) and the length (None when the
        model records none: the network's own ``max_seq_length`` applies). An override that differs from
        the recorded value is logged.
    """
    if recorded is None:
        recorded = _read_json(Path(model_dir) / CONFIG_FILE) if model_dir is not None else None
    recorded = recorded or {}
    trained_beam = int(recorded.get("beam_size", DEFAULT_BEAM_SIZE))
    trained_len = recorded.get("max_seq_length")
    beam = trained_beam if beam_size is None or int(beam_size) < 1 else int(beam_size)
    length = trained_len if max_len is None or int(max_len) < 1 else int(max_len)
    if beam != trained_beam:
        logger.info("beam_size %d overrides the model's %d", beam, trained_beam)
    if trained_len is not None and length != trained_len:
        logger.info("max_len %s overrides the model's max_seq_length %s", length, trained_len)
    return beam, None if length is None else int(length)


def extraction_settings(
    model_dir: str | os.PathLike[str] | None,
    overrides: dict[str, Any] | None = None,
    recorded: dict[str, Any] | None = None,
    fallback: bool = False,
) -> dict[str, Any]:
    """The patch-extraction settings to give a model its kind of input: its ``feature_extraction.json``,
    with ``overrides`` applied (each one that changes the features and differs from the record is logged
    as a warning).

    Args:
        model_dir: the model folder (None when ``recorded`` is given).
        overrides: a user's settings (keys of ``feature_extraction.json``); None values are ignored.
        recorded: the record itself (e.g. read from a ``model.ts``), instead of reading ``model_dir``.
        fallback: without a record, start from :data:`DEFAULT_EXTRACTION` (logged) instead of failing.

    Raises:
        FileNotFoundError: no record, no fallback, and ``encoder_name``, ``target_mpp`` or ``patch_size``
            not given as overrides.
    """
    if recorded is None and model_dir is not None:
        recorded = load_feature_extraction(model_dir)
    where = Path(model_dir) / EXTRACTION_FILE if model_dir is not None else Path(EXTRACTION_FILE)
    settings = dict(recorded or {})
    if recorded is None and fallback:
        logger.warning("%s: not found; extracting with the default settings %s (the model's own are unknown)",
                       where, DEFAULT_EXTRACTION)
        settings = dict(DEFAULT_EXTRACTION)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if recorded is not None and key in FEATURE_DEFINING and recorded.get(key) != value:
            logger.warning("extraction setting %s=%r differs from the %r the model was trained with: "
                           "its reports may be unreliable", key, value, recorded.get(key))
        settings[key] = value
    missing = [k for k in ("encoder_name", "target_mpp", "patch_size") if k not in settings]
    if missing:
        raise FileNotFoundError(
            f"{where}: not found, so the model's feature-extraction settings are unknown (missing {missing}); "
            "train on features from extract_features, or give them as "
            "--extraction_overrides \"{'encoder_name': ..., 'target_mpp': ..., 'patch_size': ...}\""
        )
    return settings
