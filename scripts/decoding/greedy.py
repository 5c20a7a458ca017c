"""Greedy decoding (beam size 1), with the reference's optional repeated-trigram penalty."""

from __future__ import annotations

import torch

from scripts.networks.hierarchical_encoder import EncodedSlide

from .stepper import CachedStepper, Stepper

# The reference adds ln(1/2) * alpha (alpha = 2, ln(1/2) rounded to -0.693) to a word's
# log-probability for every earlier occurrence of the trigram it would complete.
TRIGRAM_PENALTY = -0.693 * 2.0


class TrigramPenalty:
    """Counts the trigrams each sequence has produced and penalises their repetition."""

    def __init__(self, batch_size: int) -> None:
        self.seen: list[dict[tuple[int, int], list[int]]] = [{} for _ in range(batch_size)]

    def __call__(self, logprobs: torch.Tensor, seq: torch.Tensor, t: int) -> torch.Tensor:
        """Penalise ``logprobs [B, V]`` before choosing token ``t`` given ``seq [B, >=t]``."""
        if t < 3:
            return logprobs
        rows = seq[:, t - 3 : t].tolist()
        penalty = torch.zeros_like(logprobs)
        for i, (a, b, c) in enumerate(rows):
            self.seen[i].setdefault((a, b), []).append(c)
            for word in self.seen[i].get((b, c), []):
                penalty[i, word] += 1
        return logprobs + penalty * TRIGRAM_PENALTY


@torch.no_grad()
def greedy_search(
    model: torch.nn.Module,
    encoded: EncodedSlide,
    max_len: int,
    stepper: Stepper | None = None,
    eos_id: int = 0,
    block_trigrams: bool = True,
) -> torch.Tensor:
    """Pick the most likely token at each step.

    Args:
        model: a HistGen model (for its decoder).
        encoded: the encoder output for ``B`` bags.
        max_len: number of tokens to generate at most.
        stepper: decoding state; a ``CachedStepper`` by default.
        eos_id: end token (also BOS and PAD in HistGen).
        block_trigrams: penalise repeated trigrams as the reference's greedy sampler does by default.

    Returns:
        ``[B, max_len] long`` ids, 0 after each sequence's end token.
    """
    stepper = stepper or CachedStepper(model, encoded)
    b = encoded.region_tokens.shape[0]
    device = encoded.region_tokens.device
    seq = torch.zeros(b, max_len, dtype=torch.long, device=device)
    it = torch.full((b,), eos_id, dtype=torch.long, device=device)
    unfinished = torch.ones(b, dtype=torch.bool, device=device)
    trigrams = TrigramPenalty(b) if block_trigrams else None
    for t in range(max_len):
        logprobs = stepper.step(it)
        if trigrams is not None:
            logprobs = trigrams(logprobs, seq, t)
        it = logprobs.argmax(dim=-1).masked_fill(~unfinished, eos_id)
        seq[:, t] = it
        unfinished &= it != eos_id
        if not bool(unfinished.any()):
            break
    return seq
