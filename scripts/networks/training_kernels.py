"""Faster arithmetic for the same network: the switch that ``compat="default"`` turns on.

:func:`use_fast_training_kernels` swaps, in a built model, every :class:`torch.nn.Dropout` for
:class:`scripts.networks.fast_dropout.FastDropout`, makes attention drop its probabilities with the same cheap
masks, and runs :class:`scripts.networks.layers.ReferenceLayerNorm` as one fused ``F.layer_norm``. Parameters,
their names and the functions computed stay the same (up to float rounding, and dropout masks drawn
differently), so checkpoints load either way; ``compat="histgen-v1"`` keeps the reference's kernels.
"""

from __future__ import annotations

from torch import nn

from .fast_dropout import FastDropout
from .layers import MultiHeadAttention, ReferenceLayerNorm

__all__ = ["use_fast_training_kernels"]


def use_fast_training_kernels(model: nn.Module) -> nn.Module:
    """Switch ``model``'s dropout, attention dropout and layer norms to the fast kernels, in place.

    Returns:
        ``model`` itself.
    """
    for parent in list(model.modules()):
        if isinstance(parent, ReferenceLayerNorm):
            parent.fused = True
        elif isinstance(parent, MultiHeadAttention):
            parent.fast_dropout = True
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, FastDropout(child.p, child.inplace))
    return model
