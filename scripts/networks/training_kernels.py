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

__all__ = ["set_training_kernels", "use_fast_training_kernels"]


def set_training_kernels(model: nn.Module, fast: bool) -> nn.Module:
    """Switch ``model``'s dropout, attention dropout and layer norms to the fast kernels or back, in place.

    Args:
        model: any module; its :class:`torch.nn.Dropout` / :class:`FastDropout` children are swapped, its
            :class:`MultiHeadAttention` and :class:`ReferenceLayerNorm` modules switched.
        fast: True for the fast kernels, False for the reference ones (the benchmarks time both).

    Returns:
        ``model`` itself.
    """
    old, new = (nn.Dropout, FastDropout) if fast else (FastDropout, nn.Dropout)
    for parent in list(model.modules()):
        if isinstance(parent, ReferenceLayerNorm):
            parent.fused = fast
        elif isinstance(parent, MultiHeadAttention):
            parent.fast_dropout = fast
        for name, child in list(parent.named_children()):
            if type(child) is old:
                setattr(parent, name, new(child.p, child.inplace))
    return model


def use_fast_training_kernels(model: nn.Module) -> nn.Module:
    """:func:`set_training_kernels` with ``fast=True`` (what ``compat="default"`` does when it builds a model)."""
    return set_training_kernels(model, fast=True)
