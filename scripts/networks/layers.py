"""Transformer building blocks shared by the HistGen encoder and decoder.

The numerics follow the reference code so that its checkpoints load without drift: a LayerNorm
that divides by the unbiased standard deviation plus eps, pre-norm residual blocks, and
sinusoidal position encodings added to the input.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .fast_dropout import fast_dropout


class ReferenceLayerNorm(nn.Module):
    """LayerNorm as HistGen defines it: ``w * (x - mean) / (std + eps) + b`` with unbiased std.

    With ``fused`` (set for ``compat="default"``, see :func:`scripts.networks.training_kernels`) the same
    function runs as one ``F.layer_norm`` call: with ``c = sqrt((n - 1) / n)``, ``x`` of ``n`` features,
    ``w * c * (x - mean) / sqrt(var + (c * eps)^2) + b``, where ``var`` is the biased variance. That equals the
    formula above up to ``eps`` entering under the root (a relative change below ``eps / std``), and costs a
    quarter of the time of the separate mean, std, subtract and divide, forwards and backwards.
    """

    def __init__(self, features: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(features))
        self.bias = nn.Parameter(torch.zeros(features))
        self.eps = eps
        self.fused = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1]
        if self.fused and n > 1:
            c = math.sqrt((n - 1) / n)
            return F.layer_norm(x, [n], self.weight * c, self.bias, (c * self.eps) ** 2)
        mean = x.mean(-1, keepdim=True)
        centred = x - mean
        if n < 2:
            return self.weight * centred / (x.std(-1, keepdim=True) + self.eps) + self.bias
        # the unbiased std as the norm of the centred values: torch's std (Welford updates along the last axis)
        # takes ~3x the time of this whole norm on the CPU; the two agree to rounding (~1e-7 relative)
        std = torch.linalg.vector_norm(centred, dim=-1, keepdim=True) / math.sqrt(n - 1)
        return self.weight * centred / (std + self.eps) + self.bias


def sinusoid_table(length: int, d_model: int, device: torch.device | None = None) -> torch.Tensor:
    """Sinusoidal position table.

    Returns:
        ``[length, d_model]`` float32, even channels sine and odd channels cosine.
    """
    position = torch.arange(0, length, device=device).unsqueeze(1).float()
    div_term = torch.exp(
        torch.arange(0, d_model, 2, device=device).float() * -(math.log(10000.0) / d_model)
    )
    table = torch.zeros(length, d_model, device=device)
    table[:, 0::2] = torch.sin(position * div_term)
    table[:, 1::2] = torch.cos(position * div_term)
    return table


class PositionEncoding(nn.Module):
    """Adds sinusoidal positions then applies dropout.

    The table is computed on demand and never saved in checkpoints (the reference saved 527 MiB
    of these buffers in every checkpoint).
    """

    def __init__(self, d_model: int, dropout: float) -> None:
        super().__init__()
        self.d_model = d_model
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("table", torch.zeros(0, d_model), persistent=False)

    def positions(self, start: int, length: int, device: torch.device) -> torch.Tensor:
        """Rows ``start .. start+length-1`` of the table: ``[length, d_model]``."""
        needed = start + length
        if self.table.shape[0] < needed or self.table.device != device:
            size = max(needed, 2 * self.table.shape[0], 128)
            self.table = sinusoid_table(size, self.d_model, device=device)
        return self.table[start:needed]

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """``x: [..., L, d_model]`` -> same shape, positions ``start..start+L-1`` added."""
        pos = self.positions(start, x.shape[-2], x.device)
        return self.dropout(x + pos.to(x.dtype))


#: inputs of at most this many rows (a decoding step's beams) are multiplied as ``weight @ rows^T``...
FEW_ROWS = 16
#: ... by weights of at least this many entries (the released 512 x 512 layers have 262,144)
LARGE_WEIGHT = 65_536


class Linear(nn.Linear):
    """:class:`torch.nn.Linear` that multiplies a few rows as ``weight @ x^T``.

    A decoding step feeds one row per beam (3 in the released configuration) through ~30 layers whose weights
    do not fit in the processor's caches. For ``x [3, 512]`` the library splits ``x @ weight^T`` over the 3 rows
    and runs it on one thread; written as ``weight @ x^T`` it splits over the weight's rows, so every thread
    streams its share of the weight (1.3x faster decoding with 2 threads, the same with 1). The function is the
    same; the sums run in another order (~1e-7 relative). Only weights of at least ``LARGE_WEIGHT`` entries take
    that path: a small model's weights stay in cache, and there the extra reshapes cost more than they save
    (+27 % on the demo network's beam search). Parameter names are :class:`torch.nn.Linear`'s.
    """

    __constants__ = [*nn.Linear.__constants__, "few_rows"]
    few_rows = FEW_ROWS

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__(in_features, out_features, bias, device, dtype)
        #: whether inputs of at most ``few_rows`` rows are multiplied as ``weight @ x^T``
        self.streams_weight = in_features * out_features >= LARGE_WEIGHT

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        width = x.shape[-1]
        if not self.streams_weight or x.dim() < 2 or x.numel() > self.few_rows * width:
            return F.linear(x, self.weight, self.bias)
        rows = x.reshape(-1, width)
        if self.bias is None:
            out = torch.mm(self.weight, rows.t()).t()
        else:
            out = torch.addmm(self.bias.unsqueeze(1), self.weight, rows.t()).t()
        shape = list(x.shape[:-1])
        shape.append(self.weight.shape[0])
        return out.reshape(shape)


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention with boolean key masks.

    Masks are broadcastable to ``[B, heads, Lq, Lk]``; ``True`` marks keys that may be attended.
    """

    def __init__(self, num_heads: int, d_model: int, dropout: float = 0.1) -> None:
        """Args: ``dropout`` is applied to the attention probabilities while training."""
        super().__init__()
        self.num_heads = num_heads
        self.d_head = d_model // num_heads
        self.q_proj = Linear(d_model, d_model)
        self.k_proj = Linear(d_model, d_model)
        self.v_proj = Linear(d_model, d_model)
        self.out_proj = Linear(d_model, d_model)
        self.dropout_p = dropout
        #: while training, drop attention probabilities with :func:`scripts.networks.fast_dropout.fast_dropout`
        #: (explicit softmax) instead of the fused kernel's dropout, which falls back to a slow Bernoulli draw
        self.fast_dropout = False

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, L, d_model]`` -> ``[B, heads, L, d_head]``."""
        return x.view(x.shape[0], -1, self.num_heads, self.d_head).transpose(1, 2)

    def project_kv(self, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values split into heads, for caching: two ``[B, heads, Lk, d_head]``."""
        return self.split_heads(self.k_proj(key)), self.split_heads(self.v_proj(value))

    def attend(
        self, query: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Attention of ``query [B, Lq, d_model]`` over projected ``k, v``; returns ``[B, Lq, d_model]``."""
        q = self.split_heads(self.q_proj(query))
        p = self.dropout_p if self.training else 0.0
        if p > 0.0 and self.fast_dropout and not torch.jit.is_scripting():
            out = self._attend_fast_dropout(q, k, v, mask, p)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        out = out.transpose(1, 2).reshape(query.shape[0], -1, self.num_heads * self.d_head)
        return self.out_proj(out)

    @torch.jit.unused
    def _attend_fast_dropout(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, p: float
    ) -> torch.Tensor:
        """Softmax attention with :func:`fast_dropout` on the probabilities; a query with no allowed key gets 0."""
        scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(self.d_head))
        if mask is not None:
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        probs = torch.softmax(scores, dim=-1)
        if mask is not None:
            probs = probs * mask.any(dim=-1, keepdim=True).to(probs.dtype)
        return torch.matmul(fast_dropout(probs, p, True), v)

    def attend_with_weights(
        self, query: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`attend` that also returns the attention probabilities ``[B, heads, Lq, Lk]``.

        The probabilities are computed explicitly (scaled dot product, masked keys get 0) and the output is
        their product with ``v``, so the two are consistent; :meth:`attend` uses the fused kernel instead.
        """
        q = self.split_heads(self.q_proj(query))
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_head)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        p = self.dropout_p if self.training else 0.0
        out = torch.matmul(F.dropout(probs, p, self.training), v)
        out = out.transpose(1, 2).reshape(query.shape[0], -1, self.num_heads * self.d_head)
        return self.out_proj(out), probs

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        k, v = self.project_kv(key, value)
        return self.attend(query, k, v, mask)


class FeedForward(nn.Module):
    """Position-wise ``Linear -> ReLU -> Dropout -> Linear``."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.w_1 = Linear(d_model, d_ff)
        self.w_2 = Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.dropout(F.relu(self.w_1(x))))


class EncoderLayer(nn.Module):
    """Pre-norm self-attention + feed-forward block (used for regions and for the slide level)."""

    def __init__(self, d_model: int, d_ff: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(num_heads, d_model, dropout)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.norm1 = ReferenceLayerNorm(d_model)
        self.norm2 = ReferenceLayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x: [B, L, d]``, ``mask: [B, 1, 1, L] bool`` or None -> ``[B, L, d]``."""
        h = self.norm1(x)
        x = x + self.dropout(self.self_attn(h, h, h, mask))
        return x + self.dropout(self.feed_forward(self.norm2(x)))
