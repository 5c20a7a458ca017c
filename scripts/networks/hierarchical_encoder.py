"""Local-global hierarchical encoder: region attention, slide-level attention, attentive pooling."""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from .heap_trim import checkpoint_chunks
from .layers import EncoderLayer, PositionEncoding, ReferenceLayerNorm

# checkpointed region attention is recomputed in chunks of about this many tokens
CHECKPOINT_CHUNK_TOKENS = 8192
# without gradients the region layers run on runs of regions of about this many tokens (B * regions * region_size),
# so that a layer's temporaries (~10 tensors of tokens x d_model) stay in the processor's caches instead of being
# fresh tens-of-MB buffers (see docs/benchmarks.md, "Encoding in runs of regions")
INFERENCE_CHUNK_TOKENS = 1024


class LocalGlobalEncoder(nn.Module):
    """Two-layer hierarchical encoder over a bag of patch tokens.

    The bag is cut into regions of ``region_size - 1`` consecutive patches, each followed by a
    learned global token. Layer 1 runs region self-attention, then slide-level attention over one
    token per region whose output is written back; layer 2 runs region self-attention only. A
    final norm and attentive pooling inside each region give the region tokens.

    The default switches read the global token and mask padding, so that a padded batch gives the
    same result as each bag on its own; ``compat="histgen-v1"`` (see
    :class:`scripts.networks.config.NetworkBehaviour`) turns both off to reproduce the reference.

    Args:
        slide_attention_reads_first_patch: the slide-level step reads the *first patch* of each region
            (and a region is real when its first patch is) instead of its global token.
        pooling_masks_padding: the attentive pooling gives padding tokens no weight.
    """

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        num_heads: int,
        region_size: int,
        dropout: float,
        slide_attention_reads_first_patch: bool = False,
        pooling_masks_padding: bool = True,
    ) -> None:
        super().__init__()
        self.region_size = region_size
        self.slide_attention_reads_first_patch = slide_attention_reads_first_patch
        self.pooling_masks_padding = pooling_masks_padding
        self.global_token = nn.Parameter(torch.randn(1, 1, d_model))
        self.position = PositionEncoding(d_model, dropout)
        self.region_layers = nn.ModuleList(
            [EncoderLayer(d_model, d_ff, num_heads, dropout) for _ in range(2)]
        )
        self.slide_layer = EncoderLayer(d_model, d_ff, num_heads, dropout)
        self.norm = ReferenceLayerNorm(d_model)
        self.pool_proj = nn.Linear(d_model, d_model)
        self.pool_score = nn.Linear(d_model, 1, bias=False)
        self.pool_dense = nn.Linear(d_model, d_model)
        # bags of at least this many patches (B * N) recompute the region attention in the backward pass,
        # in chunks of about CHECKPOINT_CHUNK_TOKENS tokens (set from the config by the slide encoder)
        self.checkpoint_min_patches = 2**62
        self.checkpoint_chunk_tokens = CHECKPOINT_CHUNK_TOKENS
        # without gradients, run the region layers on runs of regions of about this many tokens (0: all at once)
        self.inference_chunk_tokens = INFERENCE_CHUNK_TOKENS

    def num_regions(self, num_patches: int) -> int:
        return max(1, math.ceil(num_patches / (self.region_size - 1)))

    def to_regions(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad and cut ``x [B, N, d]``, ``mask [B, N]`` into ``[B, R, rs, d]``, ``[B, R, rs]``.

        Each region's learned global token is appended as its last token.
        """
        b, n, d = x.shape[0], x.shape[1], x.shape[2]
        per_region = self.region_size - 1
        r = self.num_regions(n)
        pad = r * per_region - n
        if pad:
            x = torch.cat([x, x.new_zeros(b, pad, d)], dim=1)
            mask = torch.cat([mask, mask.new_zeros(b, pad)], dim=1)
        x = x.view(b, r, per_region, d)
        mask = mask.view(b, r, per_region)
        glob = self.global_token.to(x.dtype).expand(b, r, 1, d)
        x = torch.cat([x, glob], dim=2)
        mask = torch.cat([mask, mask.new_ones(b, r, 1)], dim=2)
        return x, mask

    def region_attention(self, layer: int, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Self-attention inside each region with region layer ``layer`` (0 or 1): ``x [B, R, rs, d]``,
        ``mask [B, R, rs]``."""
        if not torch.jit.is_scripting() and self.training and torch.is_grad_enabled():
            if x.shape[0] * x.shape[1] * (x.shape[2] - 1) >= self.checkpoint_min_patches:
                return self._checkpointed_region_attention(layer, x, mask)
        if not torch.is_grad_enabled():
            return self._region_attention_in_runs(layer, x, mask)
        return self._region_attention(layer, x, mask)

    def _region_attention_in_runs(self, layer: int, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """:meth:`_region_attention` a run of regions at a time (regions are independent): the same result, with
        temporaries that stay in cache (inference only: under autograd the runs' activations would all be kept)."""
        xs, masks = self._chunks(x, mask, self.inference_chunk_tokens)
        if len(xs) == 1:
            return self._region_attention(layer, x, mask)
        parts: list[torch.Tensor] = []
        for i in range(len(xs)):
            parts.append(self._region_attention(layer, xs[i], masks[i]))
        return torch.cat(parts, dim=1)

    @torch.jit.unused
    def _checkpointed_region_attention(self, layer: int, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Region attention recomputed in the backward pass, a chunk of regions at a time (regions are independent),
        so that the recomputation never holds more than one chunk's activations."""
        parts = checkpoint_chunks(functools.partial(self._region_attention, layer),
                                  self._checkpoint_chunks(x, mask), self._patches(x))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    @staticmethod
    def _chunks(x: torch.Tensor, mask: torch.Tensor, tokens: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``x [B, R, rs, d]`` and ``mask [B, R, rs]`` cut into runs of regions of ~``tokens`` tokens (one run for
        ``tokens <= 0``): ``checkpoint_chunk_tokens`` for the checkpointed pass, ``inference_chunk_tokens`` without
        gradients."""
        if tokens <= 0:
            return [x], [mask]
        per_chunk = max(1, tokens // (x.shape[0] * x.shape[2]))
        return list(x.split(per_chunk, dim=1)), list(mask.split(per_chunk, dim=1))

    @torch.jit.unused
    def _checkpoint_chunks(self, x: torch.Tensor, mask: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """:meth:`_chunks` of ``checkpoint_chunk_tokens`` as ``(x, mask)`` pairs, the arguments of each checkpoint."""
        return list(zip(*self._chunks(x, mask, self.checkpoint_chunk_tokens)))

    @staticmethod
    def _patches(x: torch.Tensor) -> int:
        """Patch slots (``B * R * (rs - 1)``) of region tokens ``x [B, R, rs, d]``."""
        return x.shape[0] * x.shape[1] * (x.shape[2] - 1)

    def _region_attention(self, layer: int, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, r, rs, d = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
        flat = self.position(x.reshape(b * r, rs, d))
        flat_mask = mask.reshape(b * r, 1, 1, rs)
        # a module cannot be a TorchScript argument: pick the layer by constant index
        if layer == 0:
            out = self.region_layers[0](flat, flat_mask)
        else:
            out = self.region_layers[1](flat, flat_mask)
        return out.view(b, r, rs, d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode ``x [B, N, d]`` with ``mask [B, N] bool`` (True = real patch).

        Returns:
            ``region_tokens [B, R, d]`` (one per region of ``region_size - 1`` patches), ``region_mask [B, R] bool``
            (regions holding a real patch) and ``patch_weights [B, R * (region_size - 1)]`` (pooling weight of each
            patch inside its region, in bag order).
        """
        b = x.shape[0]
        x, token_mask = self.to_regions(x, mask)
        x = self.region_attention(0, x, token_mask)

        if self.slide_attention_reads_first_patch:
            slot = 0
            region_mask = token_mask[:, :, 0]
        else:
            slot = self.region_size - 1
            region_mask = token_mask[:, :, :-1].any(dim=-1)
        slide_tokens = self.position(x[:, :, slot])
        slide_tokens = self.slide_layer(slide_tokens, region_mask[:, None, None, :])
        x = torch.cat([x[:, :, :slot], slide_tokens.unsqueeze(2), x[:, :, slot + 1 :]], dim=2)

        if not torch.jit.is_scripting() and self.training and torch.is_grad_enabled() and (
                x.shape[0] * x.shape[1] * (x.shape[2] - 1) >= self.checkpoint_min_patches):
            pooled, weights = self._checkpointed_region_tail(x, token_mask)
        elif not torch.is_grad_enabled():
            pooled, weights = self._region_tail_in_runs(x, token_mask)
        else:
            pooled, weights = self._region_tail(x, token_mask)
        region_tokens = torch.tanh(self.pool_dense(pooled))
        patch_weights = weights[:, :, :-1].reshape(b, -1)
        return region_tokens, region_mask, patch_weights

    def _region_tail(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Second region layer, final norm and attentive pooling, each region on its own: ``x [B, R, rs, d]`` ->
        pooled ``[B, R, d]`` and pooling weights ``[B, R, rs]``."""
        x = self._region_attention(1, x, mask)
        x = self.norm(x)
        scores = torch.tanh(self.pool_score(self.pool_proj(x))).squeeze(-1)  # [B, R, rs]
        if self.pooling_masks_padding:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return torch.sum(weights.unsqueeze(-1) * x, dim=2), weights

    def _region_tail_in_runs(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_region_tail` a run of regions at a time (inference, see :meth:`_region_attention_in_runs`)."""
        xs, masks = self._chunks(x, mask, self.inference_chunk_tokens)
        if len(xs) == 1:
            return self._region_tail(x, mask)
        pooled: list[torch.Tensor] = []
        weights: list[torch.Tensor] = []
        for i in range(len(xs)):
            p, w = self._region_tail(xs[i], masks[i])
            pooled.append(p)
            weights.append(w)
        return torch.cat(pooled, dim=1), torch.cat(weights, dim=1)

    @torch.jit.unused
    def _checkpointed_region_tail(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_region_tail` recomputed in the backward pass a chunk of regions at a time: only the pooled tokens
        and weights of a large bag are kept, not its ``[B, R, rs, d]`` activations."""
        parts = checkpoint_chunks(self._region_tail, self._checkpoint_chunks(x, mask), self._patches(x))
        if len(parts) == 1:
            return parts[0]
        return torch.cat([p[0] for p in parts], dim=1), torch.cat([p[1] for p in parts], dim=1)
