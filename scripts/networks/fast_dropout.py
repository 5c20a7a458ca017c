"""Dropout whose random mask is cheap to draw on large CPU tensors.

``torch.nn.functional.dropout`` draws one Bernoulli sample per element; on the CPU that draw
(``aten::bernoulli_``) was a third of a released-size training step (a torch.profiler run at 30,000 patches:
18.8 s of 58 s, more than every matrix product together). Here one 64-bit random integer gives four 16-bit
uniform draws, an element is kept when its draw is at or above ``round(p * 65536)``, and kept elements are
scaled by the inverse of the kept share: the same dropout, with ``p`` rounded to a multiple of 1/65,536
(0.1 stays 0.1 to within 1e-5). The draws come from torch's default generator, so ``torch.manual_seed`` fixes
the masks and gradient checkpointing (which restores that generator) recomputes the same ones.

Small tensors, and everything on other devices, use ``F.dropout`` as before. TorchScript sees only that path
(the exported model is for inference, where dropout is off).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FastDropout", "fast_dropout"]

#: below this many elements the plain kernel is as fast
MIN_ELEMENTS = 1 << 16
_LEVELS = 1 << 16


class _ScaleByMask(torch.autograd.Function):
    """``x * scale * keep`` with the boolean ``keep`` saved (1 byte per element), not a float copy of it."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return _apply(x, keep, scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # noqa: D102
        (keep,) = ctx.saved_tensors
        return _apply(grad, keep, ctx.scale), None, None


def _apply(x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
    # multiplying in place by the mask's bytes read as uint8 needs no float copy of the mask (at 100,000
    # patches that copy is 200 MB); a bool operand or a bool -> float cast would be several times slower
    return (x * scale).mul_(keep.view(torch.uint8))


def _keep_mask(x: torch.Tensor, p: float) -> tuple[torch.Tensor, float]:
    """A boolean keep mask shaped like ``x`` (each element kept with probability ~``1 - p``) and its scale."""
    numel = x.numel()
    threshold = int(round(p * _LEVELS))
    # the full 64-bit range: random_() alone leaves the sign bit 0, which would bias every fourth draw
    bits = torch.empty((numel + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2**63), None)
    draws = bits.view(torch.int16)[:numel].view(x.shape)  # uniform over -32768 .. 32767
    keep = draws >= threshold - _LEVELS // 2
    return keep, _LEVELS / (_LEVELS - threshold)


def fast_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout(x, p, training)`` with the cheap mask on large CPU floating-point tensors."""
    if not training or p <= 0.0:
        return x
    if x.device.type != "cpu" or not x.is_floating_point() or x.numel() < MIN_ELEMENTS or p >= 1.0:
        return F.dropout(x, p, training)
    keep, scale = _keep_mask(x, p)
    return _ScaleByMask.apply(x, keep, scale)


class FastDropout(nn.Dropout):
    """:class:`torch.nn.Dropout` drawing its mask with :func:`fast_dropout` (same ``p``, no state)."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__(p, inplace)
        self.min_elements = MIN_ELEMENTS  # an attribute, since TorchScript cannot read int globals

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.p > 0.0 and x.numel() >= self.min_elements and not torch.jit.is_scripting():
            return self._fast(x)
        return F.dropout(x, self.p, self.training, self.inplace)

    @torch.jit.unused
    def _fast(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, True)
