"""Transformer report decoder with cached keys and values for step-wise decoding."""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from .context_memory import CrossModalMemory
from .layers import FeedForward, MultiHeadAttention, PositionEncoding, ReferenceLayerNorm


class DecoderLayer(nn.Module):
    """Pre-norm masked self-attention, cross-attention over region tokens, feed-forward."""

    def __init__(self, d_model: int, d_ff: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(num_heads, d_model, dropout)
        self.cross_attn = MultiHeadAttention(num_heads, d_model, dropout)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.norm1 = ReferenceLayerNorm(d_model)
        self.norm2 = ReferenceLayerNorm(d_model)
        self.norm3 = ReferenceLayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        self_kv: tuple[torch.Tensor, torch.Tensor],
        self_mask: torch.Tensor | None,
        cross_kv: tuple[torch.Tensor, torch.Tensor],
        cross_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """``x [B, L, d]`` with projected self keys/values (already including ``x``) and memory keys/values."""
        x = x + self.dropout(self.self_attn.attend(self.norm1(x), *self_kv, self_mask))
        x = x + self.dropout(self.cross_attn.attend(self.norm2(x), *cross_kv, cross_mask))
        return x + self.dropout(self.feed_forward(self.norm3(x)))


@dataclasses.dataclass
class DecoderCache:
    """Decoding state of a batch of hypotheses.

    Attributes:
        self_k, self_v: per layer ``[B, heads, t, d_head]`` keys/values of the tokens decoded so far.
        cross_k, cross_v: per layer ``[B, heads, R, d_head]`` projected region tokens.
        cross_mask: ``[B, 1, 1, R] bool`` or None.
        step: number of tokens already fed.
    """

    self_k: list[torch.Tensor]
    self_v: list[torch.Tensor]
    cross_k: list[torch.Tensor]
    cross_v: list[torch.Tensor]
    cross_mask: torch.Tensor | None
    step: int = 0

    def select(self, index: torch.Tensor) -> DecoderCache:
        """Keep/reorder hypotheses: ``index [B'] long`` into the batch axis."""
        pick = [t.index_select(0, index) for t in (*self.self_k, *self.self_v, *self.cross_k, *self.cross_v)]
        n = len(self.self_k)
        mask = None if self.cross_mask is None else self.cross_mask.index_select(0, index)
        return DecoderCache(pick[:n], pick[n : 2 * n], pick[2 * n : 3 * n], pick[3 * n :], mask, self.step)


class ReportDecoder(nn.Module):
    """Word embedding + text-side memory response + ``num_layers`` decoder layers + output layer."""

    def __init__(
        self, vocab_size: int, d_model: int, d_ff: int, num_heads: int, num_layers: int, dropout: float
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.embed = nn.Embedding(vocab_size + 1, d_model)
        self.position = PositionEncoding(d_model, dropout)
        self.layers = nn.ModuleList(
            [DecoderLayer(d_model, d_ff, num_heads, dropout) for _ in range(num_layers)]
        )
        self.norm = ReferenceLayerNorm(d_model)
        self.logit = nn.Linear(d_model, vocab_size + 1)

    def embed_tokens(
        self, ids: torch.Tensor, start: int, context: CrossModalMemory, memory_kv: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """``ids [B, L]`` at positions ``start..`` -> embeddings plus their memory responses ``[B, L, d]``."""
        x = self.position(self.embed(ids) * math.sqrt(self.d_model), start=start)
        return x + context.respond(x, *memory_kv)

    def forward(
        self,
        ids: torch.Tensor,
        region_tokens: torch.Tensor,
        region_mask: torch.Tensor | None,
        context: CrossModalMemory,
        memory_kv: tuple[torch.Tensor, torch.Tensor],
        mask_padding: bool = True,
    ) -> torch.Tensor:
        """Teacher-forced pass.

        Args:
            ids: ``[B, T]`` input ids (BOS first). Keys whose id is 0 (padding), except position 0,
                are masked, as in the reference.
            region_tokens: ``[B, R, d]``.
            region_mask: ``[B, R] bool`` or None.
            context: the cross-modal memory module.
            memory_kv: its projected memory.
            mask_padding: mask keys with id 0 (training); False attends to every earlier token, as
                step-wise decoding does.

        Returns:
            log-probabilities ``[B, T, vocab_size + 1]``.
        """
        t = ids.shape[1]
        keep = ids > 0 if mask_padding else torch.ones_like(ids, dtype=torch.bool)
        keep[:, 0] = True
        causal = torch.ones(t, t, dtype=torch.bool, device=ids.device).tril()
        self_mask = keep[:, None, None, :] & causal[None, None]
        cross_mask = None if region_mask is None else region_mask[:, None, None, :]
        x = self.embed_tokens(ids, 0, context, memory_kv)
        for layer in self.layers:
            h = layer.norm1(x)
            kv = layer.self_attn.project_kv(h, h)
            cross_kv = layer.cross_attn.project_kv(region_tokens, region_tokens)
            x = layer(x, kv, self_mask, cross_kv, cross_mask)
        return F.log_softmax(self.logit(self.norm(x)), dim=-1)

    def start(self, region_tokens: torch.Tensor, region_mask: torch.Tensor | None) -> DecoderCache:
        """Empty cache for ``region_tokens [B, R, d]``."""
        b = region_tokens.shape[0]
        heads = self.layers[0].self_attn.num_heads
        empty = region_tokens.new_zeros(b, heads, 0, self.d_model // heads)
        cross = [layer.cross_attn.project_kv(region_tokens, region_tokens) for layer in self.layers]
        mask = None if region_mask is None else region_mask[:, None, None, :]
        n = len(self.layers)
        return DecoderCache(
            [empty] * n, [empty] * n, [k for k, _ in cross], [v for _, v in cross], mask, 0
        )

    def step(
        self,
        ids: torch.Tensor,
        cache: DecoderCache,
        context: CrossModalMemory,
        memory_kv: tuple[torch.Tensor, torch.Tensor],
    ) -> tuple[torch.Tensor, DecoderCache]:
        """Feed one token per hypothesis: ``ids [B]`` -> log-probabilities ``[B, V+1]`` and the new cache."""
        x = self.embed_tokens(ids[:, None], cache.step, context, memory_kv)
        new_k, new_v = [], []
        for i, layer in enumerate(self.layers):
            h = layer.norm1(x)
            k, v = layer.self_attn.project_kv(h, h)
            k = torch.cat([cache.self_k[i], k], dim=2)
            v = torch.cat([cache.self_v[i], v], dim=2)
            new_k.append(k)
            new_v.append(v)
            x = layer(x, (k, v), None, (cache.cross_k[i], cache.cross_v[i]), cache.cross_mask)
        logprobs = F.log_softmax(self.logit(self.norm(x[:, -1])), dim=-1)
        cache = DecoderCache(new_k, new_v, cache.cross_k, cache.cross_v, cache.cross_mask, cache.step + 1)
        return logprobs, cache
