"""Start a transfer model from a trained report model's encoder (``model.pt`` + ``model_config.json`` beside it).

The report bundle writes ``<output_dir>/models/model.pt`` (a HistGen state dict) and ``model_config.json``
(:mod:`scripts.engines.model_files`). The transfer model's encoder takes every tensor of it except the report
decoder's; its sizes come from ``model_config.json``, so they always match the weights.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from torch import nn

from scripts.flags import as_flag
from scripts.networks import HistGenConfig
from scripts.safe_load import UnsafeFileError, load_plain

from .errors import EncoderWeightsError
from .mil_networks import ABMIL, HistGenMIL

__all__ = [
    "encoder_config",
    "find_report_model",
    "load_pretrained_encoder",
    "resolve_pretrained_encoder",
    "trainable_parameters",
]

logger = logging.getLogger("histgen.transfer")

REPORT_MODEL_FILE = "model.pt"
REPORT_CONFIG_FILE = "model_config.json"
# report-only parts of a report model: the decoder, the finding heads that feed it, and the heads' view
# (slide_norm "heads"), which the transfer encoder does not build (encoder_config drops finding_classes)
_REPORT_ONLY_PREFIXES = ("decoder.", "findings.", "finding_view.")


def find_report_model(report_bundle_dir: str | os.PathLike[str] | None) -> str | None:
    """``<report_bundle_dir>/models/model.pt`` if it exists with its ``model_config.json``, else None."""
    if not report_bundle_dir:
        return None
    path = Path(report_bundle_dir) / "models" / REPORT_MODEL_FILE
    if path.is_file() and (path.parent / REPORT_CONFIG_FILE).is_file():
        return str(path)
    logger.info("no report model at %s: the HistGen encoder will start from random weights", path)
    return None


#: Values of ``pretrained_encoder`` that mean "random initialisation" (``None`` cannot be given on the command
#: line: MONAI drops ``--key None`` overrides).
NO_PRETRAINING = ("", "none", "null", "false", "random")


def resolve_pretrained_encoder(value: str | os.PathLike[str] | bool | None,
                               report_bundle_dir: str | os.PathLike[str] | None,
                               in_dim: int | None = None) -> str | None:
    """The report ``model.pt`` to start from, or None for a random encoder.

    Args:
        value: ``"auto"`` (the report bundle's ``models/model.pt`` when it exists and was trained on features of
            size ``in_dim``, else None, with a warning saying why), a path (used as given: a mismatch is an
            error later), or one of ``none``/``null``/``false``/``random``/empty (random initialisation).
        report_bundle_dir: the report bundle (the repository root) for ``"auto"``.
        in_dim: D of the feature files, to check an ``"auto"`` model against.
    """
    if value is None or value is False or str(value).strip().lower() in NO_PRETRAINING:
        return None
    if str(value).strip().lower() != "auto":
        return str(value)
    found = find_report_model(report_bundle_dir)
    if found is not None and in_dim is not None:
        trained_on = _report_config(Path(found)).in_dim
        if trained_on != in_dim:
            logger.warning("pretrained_encoder=auto: the report model %s was trained on features of D=%d, these "
                           "feature files have D=%d: NOT used (give a matching model.pt to start from one)", found,
                           trained_on, in_dim)
            return None
    return found


def _report_config(model_file: Path) -> HistGenConfig:
    config_file = model_file.parent / REPORT_CONFIG_FILE
    if not model_file.is_file():
        raise EncoderWeightsError(f"pretrained_encoder {model_file}: file not found (a report bundle model.pt)")
    if not config_file.is_file():
        raise EncoderWeightsError(f"pretrained_encoder {model_file}: no {REPORT_CONFIG_FILE} beside it, so the "
                                  "encoder sizes are unknown (the report bundle writes both)")
    try:
        return HistGenConfig.from_json(config_file)
    except (ValueError, FileNotFoundError, TypeError) as err:
        raise EncoderWeightsError(f"{config_file}: not a HistGen model config ({err})") from err


def encoder_config(histgen: dict[str, Any] | None, pretrained_encoder: str | os.PathLike[str] | None,
                   in_dim: int | None = None) -> dict[str, Any]:
    """The HistGen encoder's hyper-parameters: the report model's (when ``pretrained_encoder`` is given), else
    the bundle's ``histgen`` settings.

    A report model in ``compat="histgen-v1"`` (an imported reference checkpoint) is run as ``"default"``, which
    accepts padded batches; its weights are the same. The report's finding heads and their ``finding_view`` stay
    behind (``finding_classes`` is emptied).

    Raises:
        EncoderWeightsError: the report model's files are missing, or its ``in_dim`` is not the features' D.
    """
    if not pretrained_encoder:
        return dict(histgen or {})
    config = _report_config(Path(pretrained_encoder)).to_dict()
    # no finding heads in a transfer model, so no finding_view either: it would cost a pass over every patch and
    # hold parameters without gradients, which DistributedDataParallel refuses
    config["finding_classes"] = {}
    if config.get("compat") != "default":
        logger.info("report model compat=%r: the transfer encoder runs it as compat='default'", config["compat"])
        config["compat"] = "default"
    if in_dim is not None and config["in_dim"] != in_dim:
        raise EncoderWeightsError(
            f"pretrained_encoder {pretrained_encoder}: the report model was trained on features of D="
            f"{config['in_dim']} but these feature files have D={in_dim}; use a report model trained on the same "
            "patch encoder's features, or pretrained_encoder=null for a randomly initialised encoder"
        )
    different = {k: (v, config.get(k)) for k, v in (histgen or {}).items() if k in config and config[k] != v}
    if different:
        shown = ", ".join(f"{k}: {theirs} (bundle setting {ours})" for k, (ours, theirs) in different.items())
        logger.info("HistGen encoder sizes come from the report model's %s: %s", REPORT_CONFIG_FILE, shown)
    return config


def load_pretrained_encoder(network: nn.Module, pretrained_encoder: str | os.PathLike[str] | None,
                            freeze_encoder: bool = False) -> nn.Module:
    """Load a report model's encoder weights into ``network`` (a :class:`HistGenMIL`) and optionally freeze them.

    Logs, at warning level, whether the encoder is report-pretrained (which file) or randomly initialised.

    Args:
        network: the transfer model.
        pretrained_encoder: a report ``model.pt``, or None for random initialisation.
        freeze_encoder: keep the encoder's weights fixed while training.

    Returns:
        ``network`` itself.

    Raises:
        EncoderWeightsError: missing files, or weights that do not fit the encoder (other sizes).
    """
    freeze_encoder = as_flag(freeze_encoder, "freeze_encoder")
    if isinstance(network, ABMIL):
        if pretrained_encoder:
            logger.warning("model=abmil has no HistGen encoder: pretrained_encoder %s is NOT used", pretrained_encoder)
        return network
    if not isinstance(network, HistGenMIL):
        raise TypeError(f"expected a HistGenMIL or ABMIL network, got {type(network).__name__}")
    if not pretrained_encoder:
        logger.warning("HistGen encoder: RANDOM initialisation (pretrained_encoder is null)%s",
                       "; frozen (a random-feature baseline)" if freeze_encoder else "")
    else:
        path = Path(pretrained_encoder)
        _report_config(path)
        try:
            state = load_plain(path, what="pretrained encoder weights")
        except UnsafeFileError:
            raise
        except Exception as err:
            raise EncoderWeightsError(f"pretrained_encoder {path}: unreadable ({type(err).__name__}: {err})") from err
        if not isinstance(state, dict):
            raise EncoderWeightsError(f"pretrained_encoder {path}: expected a state dict, found {type(state).__name__}")
        encoder_state = {k: v for k, v in state.items() if not k.startswith(_REPORT_ONLY_PREFIXES)}
        try:
            network.encoder.load_state_dict(encoder_state, strict=True)
        except RuntimeError as err:
            raise EncoderWeightsError(
                f"pretrained_encoder {path}: weights do not fit the encoder (was the model built from this file's "
                f"{REPORT_CONFIG_FILE}?): {str(err).splitlines()[0]}"
            ) from err
        count = sum(int(v.numel()) for v in encoder_state.values())
        logger.warning("HistGen encoder: REPORT-PRETRAINED weights from %s (%d tensors, %d values)%s", path,
                       len(encoder_state), count, "; frozen" if freeze_encoder else "; fine-tuned")
    if freeze_encoder:
        network.freeze_encoder()
    return network


def trainable_parameters(network: nn.Module) -> list[nn.Parameter]:
    """The parameters that receive gradients (a frozen encoder's are left out of the optimiser)."""
    params = [p for p in network.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the network has no trainable parameter")
    return params
