"""Transformer report decoder over a generic memory, with an explicit cache for step-wise decoding.

The decoder's cross-attention reads ``memory [B, M, d]`` with ``memory_mask [B, M] bool`` (or None): HistGen
passes its region tokens; anything else of width ``d`` (e.g. extra tokens appended to them) works the same.
Everything here is plain tensors, lists of tensors and NamedTuples, so ``torch.jit.script`` compiles it.
"""

import math
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .layers import FeedForward, Linear, MultiHeadAttention, PositionEncoding, ReferenceLayerNorm


class DecoderCache(NamedTuple):
    """Decoding state of a batch of ``B`` hypotheses.

    Attributes:
        self_k, self_v: per layer ``[B, heads, t, d_head]`` keys/values of the ``t`` tokens decoded so far.
        cross_k, cross_v: per layer ``[B, heads, M, d_head]`` projected memory.
        cross_mask: ``[B, 1, 1, M] bool`` memory slots that may be attended, or None for all.
        context_k, context_v: ``[heads, S, d_head]`` the projected cross-modal memory that the words query
            (the same for every hypothesis, never reordered).
        step: number of tokens already fed.
    """

    self_k: list[torch.Tensor]
    self_v: list[torch.Tensor]
    cross_k: list[torch.Tensor]
    cross_v: list[torch.Tensor]
    cross_mask: Optional[torch.Tensor]  # noqa: UP045 - TorchScript reads NamedTuple fields as Optional[...]
    context_k: torch.Tensor
    context_v: torch.Tensor
    step: int


class DecoderLayer(nn.Module):
    """Pre-norm masked self-attention, cross-attention over the memory, feed-forward."""

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
        x = x + self.dropout(self.self_attn.attend(self.norm1(x), self_kv[0], self_kv[1], self_mask))
        x = x + self.dropout(self.cross_attn.attend(self.norm2(x), cross_kv[0], cross_kv[1], cross_mask))
        return x + self.dropout(self.feed_forward(self.norm3(x)))

    def forward_with_weights(
        self,
        x: torch.Tensor,
        self_kv: tuple[torch.Tensor, torch.Tensor],
        self_mask: torch.Tensor | None,
        cross_kv: tuple[torch.Tensor, torch.Tensor],
        cross_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` that also returns the cross-attention probabilities ``[B, heads, L, M]``."""
        x = x + self.dropout(self.self_attn.attend(self.norm1(x), self_kv[0], self_kv[1], self_mask))
        attended, probs = self.cross_attn.attend_with_weights(self.norm2(x), cross_kv[0], cross_kv[1], cross_mask)
        x = x + self.dropout(attended)
        return x + self.dropout(self.feed_forward(self.norm3(x))), probs


class ReportDecoder(nn.Module):
    """Word embedding + ``num_layers`` decoder layers + output layer.

    The words' response from the cross-modal memory is added by the model between :meth:`embed_words` and
    the layers (the memory is shared with the slide encoder), so the decoder takes word states ``[B, L, d]``.
    """

    def __init__(
        self, vocab_size: int, d_model: int, d_ff: int, num_heads: int, num_layers: int, dropout: float
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.num_heads = num_heads
        self.embed = nn.Embedding(vocab_size + 1, d_model)
        self.position = PositionEncoding(d_model, dropout)
        self.layers = nn.ModuleList(
            [DecoderLayer(d_model, d_ff, num_heads, dropout) for _ in range(num_layers)]
        )
        self.norm = ReferenceLayerNorm(d_model)
        self.logit = Linear(d_model, vocab_size + 1)

    def embed_words(self, ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        """``ids [B, L]`` at positions ``start..`` -> scaled embeddings plus positions ``[B, L, d]``."""
        return self.position(self.embed(ids) * math.sqrt(self.d_model), start)

    def output(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden states ``[..., d]`` -> log-probabilities ``[..., V+1]``."""
        return F.log_softmax(self.logit(self.norm(x)), dim=-1)

    @staticmethod
    def self_attention_mask(ids: torch.Tensor, mask_padding: bool = True) -> torch.Tensor:
        """Causal mask ``[B, 1, T, T] bool`` for ``ids [B, T]``; with ``mask_padding`` keys whose id is 0 are
        masked too, except position 0 (BOS), as in the reference."""
        t = ids.shape[1]
        keep = ids > 0 if mask_padding else torch.ones_like(ids, dtype=torch.bool)
        keep[:, 0] = True
        causal = torch.ones(t, t, dtype=torch.bool, device=ids.device).tril()
        return keep[:, None, None, :] & causal[None, None]

    def forward(
        self,
        words: torch.Tensor,
        self_mask: torch.Tensor | None,
        memory: torch.Tensor,
        memory_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """Teacher-forced pass.

        Args:
            words: ``[B, T, d]`` word states (embeddings, positions and memory responses).
            self_mask: ``[B, 1, T, T] bool`` (:meth:`self_attention_mask`) or None.
            memory: ``[B, M, d]`` what the cross-attention reads.
            memory_mask: ``[B, M] bool`` or None.

        Returns:
            log-probabilities ``[B, T, vocab_size + 1]``.
        """
        cross_mask = None if memory_mask is None else memory_mask[:, None, None, :]
        x = words
        for layer in self.layers:
            h = layer.norm1(x)
            x = layer(x, layer.self_attn.project_kv(h, h), self_mask,
                      layer.cross_attn.project_kv(memory, memory), cross_mask)
        return self.output(x)

    def cross_attention(
        self,
        words: torch.Tensor,
        self_mask: torch.Tensor | None,
        memory: torch.Tensor,
        memory_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` that also returns every layer's cross-attention probabilities.

        Returns:
            log-probabilities ``[B, T, V+1]`` and probabilities ``[layers, B, heads, T, M]`` (0 on masked slots).
        """
        cross_mask = None if memory_mask is None else memory_mask[:, None, None, :]
        x = words
        weights: list[torch.Tensor] = []
        for layer in self.layers:
            h = layer.norm1(x)
            x, probs = layer.forward_with_weights(x, layer.self_attn.project_kv(h, h), self_mask,
                                                  layer.cross_attn.project_kv(memory, memory), cross_mask)
            weights.append(probs)
        return self.output(x), torch.stack(weights)

    def start(
        self, memory: torch.Tensor, memory_mask: torch.Tensor | None, context_k: torch.Tensor, context_v: torch.Tensor
    ) -> DecoderCache:
        """Empty cache over ``memory [B, M, d]`` (``memory_mask [B, M] bool`` or None)."""
        b = memory.shape[0]
        empty = memory.new_zeros(b, self.num_heads, 0, self.d_model // self.num_heads)
        self_k: list[torch.Tensor] = []
        self_v: list[torch.Tensor] = []
        cross_k: list[torch.Tensor] = []
        cross_v: list[torch.Tensor] = []
        for layer in self.layers:
            k, v = layer.cross_attn.project_kv(memory, memory)
            cross_k.append(k)
            cross_v.append(v)
            self_k.append(empty)
            self_v.append(empty)
        cross_mask = None if memory_mask is None else memory_mask[:, None, None, :]
        return DecoderCache(self_k, self_v, cross_k, cross_v, cross_mask, context_k, context_v, 0)

    def step(self, words: torch.Tensor, cache: DecoderCache) -> tuple[torch.Tensor, DecoderCache]:
        """Feed one word state per hypothesis: ``words [B, 1, d]`` -> log-probabilities ``[B, V+1]``, new cache."""
        x = words
        new_k: list[torch.Tensor] = []
        new_v: list[torch.Tensor] = []
        i = 0
        for layer in self.layers:
            h = layer.norm1(x)
            k, v = layer.self_attn.project_kv(h, h)
            k = torch.cat([cache.self_k[i], k], dim=2)
            v = torch.cat([cache.self_v[i], v], dim=2)
            new_k.append(k)
            new_v.append(v)
            x = layer(x, (k, v), None, (cache.cross_k[i], cache.cross_v[i]), cache.cross_mask)
            i += 1
        logprobs = self.output(x[:, -1])
        return logprobs, DecoderCache(new_k, new_v, cache.cross_k, cache.cross_v, cache.cross_mask,
                                      cache.context_k, cache.context_v, cache.step + 1)


def select_hypotheses(cache: DecoderCache, index: torch.Tensor, memory_too: bool = True) -> DecoderCache:
    """Keep/reorder/duplicate hypotheses: ``index [B'] long`` into the batch axis of every per-hypothesis tensor.

    Args:
        cache: the decoding state.
        index: the hypothesis each new row continues.
        memory_too: also select the projected memory (``cross_k``, ``cross_v``, ``cross_mask``). Pass False only
            when every new row continues a hypothesis of its own bag and the batch keeps its size (a beam
            search's reordering after its first step): the rows of one bag hold the same memory, so selecting
            it copies ~3 MB per layer per step in the released configuration for nothing.
    """
    self_k = [t.index_select(0, index) for t in cache.self_k]
    self_v = [t.index_select(0, index) for t in cache.self_v]
    if not memory_too:
        return DecoderCache(self_k, self_v, cache.cross_k, cache.cross_v, cache.cross_mask, cache.context_k,
                            cache.context_v, cache.step)
    cross_mask = cache.cross_mask
    if cross_mask is not None:
        cross_mask = cross_mask.index_select(0, index)
    return DecoderCache(
        self_k,
        self_v,
        [t.index_select(0, index) for t in cache.cross_k],
        [t.index_select(0, index) for t in cache.cross_v],
        cross_mask,
        cache.context_k,
        cache.context_v,
        cache.step,
    )
