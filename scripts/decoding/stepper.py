"""Steppers: how a decoder produces next-token log-probabilities for a batch of hypotheses.

``CachedStepper`` keeps the keys/values of the decoded prefix (one token of work per step);
``FullPrefixStepper`` re-runs the whole prefix at every step, which is what a straightforward
implementation does. Both give the same ids; the second exists as the benchmark baseline.
"""

from __future__ import annotations

from typing import Protocol

import torch

from scripts.networks.hierarchical_encoder import EncodedSlide


class Stepper(Protocol):
    """A decoding state over ``B'`` hypotheses."""

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Feed ``ids [B']`` (one token each); return log-probabilities ``[B', V+1]``."""
        ...

    def select(self, index: torch.Tensor) -> None:
        """Reorder/duplicate hypotheses along the batch axis: ``index [B''] long``."""
        ...


def _repeat_encoded(encoded: EncodedSlide, index: torch.Tensor) -> EncodedSlide:
    return EncodedSlide(
        encoded.region_tokens.index_select(0, index),
        encoded.region_mask.index_select(0, index),
        encoded.patch_weights.index_select(0, index),
    )


class CachedStepper:
    """Incremental decoding with cached self-attention keys/values and projected region tokens."""

    def __init__(self, model: torch.nn.Module, encoded: EncodedSlide) -> None:
        self.model = model
        self.cache, self.memory_kv = model.start_decoding(encoded)

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        logprobs, self.cache = self.model.decode_step(ids, self.cache, self.memory_kv)
        return logprobs

    def select(self, index: torch.Tensor) -> None:
        self.cache = self.cache.select(index)


class FullPrefixStepper:
    """Baseline: keeps the prefix ids and runs the teacher-forced decoder over all of them each step."""

    def __init__(self, model: torch.nn.Module, encoded: EncodedSlide) -> None:
        self.model = model
        self.encoded = encoded
        self.prefix: torch.Tensor | None = None

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids[:, None]
        self.prefix = ids if self.prefix is None else torch.cat([self.prefix, ids], dim=1)
        memory_kv = self.model.context.project_memory(self.model.memory_matrix)
        region_mask = self.model._decoder_region_mask(self.encoded)
        logprobs = self.model.decoder(
            self.prefix, self.encoded.region_tokens, region_mask, self.model.context, memory_kv, mask_padding=False
        )
        return logprobs[:, -1]

    def select(self, index: torch.Tensor) -> None:
        self.encoded = _repeat_encoded(self.encoded, index)
        if self.prefix is not None:
            self.prefix = self.prefix.index_select(0, index)
