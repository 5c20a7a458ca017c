"""Fit the network's input normalisation on the training split before training starts."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch

from .model_files import unwrap

logger = logging.getLogger("histgen.train")


def fit_input_norm(network: torch.nn.Module, train_bags: Iterable[Any]) -> torch.nn.Module:
    """Fit ``input_mean``/``input_std`` on the training bags when the network has ``input_norm`` on.

    Every rank of a distributed run reads the whole train split (the dataset is not sharded, only its
    sampler), so all ranks get the same statistics. A resumed run fits them again and then loads the
    checkpoint's, which are the same for the same data.

    Args:
        network: a :class:`scripts.networks.HistGen` (or a DDP wrapper of one).
        train_bags: the train split's dataset (items with ``"features"``).

    Returns:
        ``network``.
    """
    model = unwrap(network)
    if not getattr(model.config, "input_norm", False):
        logger.info("input_norm is off: patch features go into the network as they are")
        return network
    model.fit_input_norm(train_bags)
    return network
