"""Fit the transfer network's per-dimension input standardisation on each fold's training part.

Patch features can differ in scale by orders of magnitude between dimensions (the slide demo's
``builtin-small`` ones do). The report bundle's HistGen standardises them (``input_norm``) with a mean and std
fitted on its training split; a transfer network gets the same treatment on the current fold's **training part**
(never val or test), when training starts:

- HistGen encoder, randomly initialised, with ``input_norm`` on (the bundles' ``histgen`` default): fitted;
- HistGen encoder from a report model: the report model's own statistics are kept (its first layer was trained
  on them); a report model without ``input_norm`` has none, and none are added;
- ABMIL with ``input_norm`` on: fitted.

The statistics are buffers of the network, so the fold models carry them to evaluation and inference.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import torch
from ignite.engine import Engine, Events
from torch import nn

from scripts.data import read_feature_file
from scripts.engines.model_files import unwrap

from .fold_data import CrossValidationData
from .mil_networks import ABMIL, HistGenMIL

__all__ = ["FoldInputNorm", "fit_fold_input_norm"]

logger = logging.getLogger("histgen.transfer")


def _training_bags(data: CrossValidationData) -> Iterator[torch.Tensor]:
    """The current fold's training bags, whole (``[N, D]``), read from their feature files."""
    for record in data.records("train"):
        yield read_feature_file(record.path, slide_id=record.slide_id, feature_dim=data.table.feature_dim).feats


def fit_fold_input_norm(network: nn.Module, data: CrossValidationData,
                        pretrained_encoder: str | os.PathLike[str] | None = None) -> bool:
    """Fit ``network``'s input statistics on the current fold's training part where that applies (see the module).

    Args:
        network: a :class:`HistGenMIL` or :class:`ABMIL` (or a DDP wrapper of one).
        data: the cross-validation state; its current fold's training part is used.
        pretrained_encoder: the report model the HistGen encoder started from, or None.

    Returns:
        True when statistics were fitted.
    """
    model = unwrap(network)
    if isinstance(model, HistGenMIL):
        target: nn.Module = model.encoder
        enabled = bool(model.encoder.config.input_norm)
        if enabled and pretrained_encoder:
            logger.info("input_norm: keeping the report model's feature statistics (%s)", pretrained_encoder)
            return False
    elif isinstance(model, ABMIL):
        target, enabled = model, model.input_norm
    else:
        raise TypeError(f"expected a HistGenMIL or ABMIL network, got {type(model).__name__}")
    if not enabled:
        return False
    target.fit_input_norm(_training_bags(data))  # type: ignore[operator]
    std = target.input_std  # type: ignore[union-attr]
    logger.info("fold %s: input_norm fitted on its %d training slides (std %.3g..%.3g)", data.fold,
                len(data.records("train")), float(std.min()), float(std.max()))
    return True


class FoldInputNorm:
    """MONAI trainer handler: :func:`fit_fold_input_norm` at the start of every fold's training run.

    :class:`scripts.transfer.CrossValidation` restores the initial weights (buffers included) before each fold's
    ``trainer.run()``, so each fold's statistics come from its own training part only.

    Args:
        data: the cross-validation state.
        network: the trained network.
        pretrained_encoder: the report model the HistGen encoder starts from, or None.
    """

    def __init__(self, data: CrossValidationData, network: nn.Module,
                 pretrained_encoder: str | os.PathLike[str] | None = None) -> None:
        self.data = data
        self.network = network
        self.pretrained_encoder = pretrained_encoder

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        fit_fold_input_norm(self.network, self.data, self.pretrained_encoder)
