"""The decoding baseline of :mod:`benchmarks.bench_decoding`: no cache, the whole prefix re-run at every step.

:class:`FullPrefixHistGen` is the same model with the same beam and greedy search; only its decoding step
differs: it keeps the ids decoded so far and runs the teacher-forced decoder over all of them for each new
token, which is what a straightforward implementation does. It exists to measure what the cache saves and
to check that the cached search returns the same ids.
"""

from __future__ import annotations

import torch

from scripts.networks import DecoderCache, HistGen, SlideEncoding


class FullPrefixHistGen(HistGen):
    """HistGen whose decoding step re-runs the full prefix (build it from a model: :meth:`from_model`).

    Its :class:`DecoderCache` holds, per hypothesis, the prefix ids in ``self_k[0]`` (``[B, t] long``) and the
    decoder's memory in ``cross_k[0]`` (``[B, M, d]``) with its mask in ``cross_mask``; the model's
    ``select_hypotheses`` reorders them like real cached keys.
    """

    @classmethod
    def from_model(cls, model: HistGen) -> FullPrefixHistGen:
        baseline = cls(model.config)
        baseline.load_state_dict(model.state_dict())
        return baseline.train(model.training)

    def start_decoding_with_decisions(self, encoding: SlideEncoding, needed: bool
                                      ) -> tuple[DecoderCache, torch.Tensor]:
        memory, memory_mask, logits = self.memory_and_findings(encoding)
        context_k, context_v = self.context.project_memory(self.memory_matrix)
        prefix = torch.zeros(memory.shape[0], 0, dtype=torch.long, device=memory.device)
        cross_mask = None if memory_mask is None else memory_mask[:, None, None, :]
        cache = DecoderCache([prefix], [], [memory], [], cross_mask, context_k, context_v, 0)
        return cache, self.decisions_of(logits, needed)

    def decode_step(self, ids: torch.Tensor, cache: DecoderCache) -> tuple[torch.Tensor, DecoderCache]:
        prefix = torch.cat([cache.self_k[0], ids[:, None]], dim=1)
        memory = cache.cross_k[0]
        memory_mask = None if cache.cross_mask is None else cache.cross_mask[:, 0, 0, :]
        words = self.word_states(prefix, 0, cache.context_k, cache.context_v)
        self_mask = self.decoder.self_attention_mask(prefix, mask_padding=False)
        logprobs = self.decoder(words, self_mask, memory, memory_mask)[:, -1]
        return logprobs, cache._replace(self_k=[prefix], step=cache.step + 1)
