"""Batched beam search with the reference HistGen semantics.

Semantics (the reference ``CaptionModel.beam_search`` with one group, no length penalty):
the first step expands BOS into the ``beam_size`` best words; at each later step the
``beam_size`` best (beam, word) continuations by summed log-probability survive; a beam whose
last word is the end token is recorded as finished with its summed log-probability and stays in
the beam with a -1000 penalty; at ``max_len`` every beam is recorded; the best recorded beam wins
(the earliest recorded on ties). Unlike the reference, every bag of the batch is decoded at once,
nothing is bound to a device, and the search stops as soon as no live beam can still beat the
best finished one, which returns the same ids as running to ``max_len``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from scripts.networks.hierarchical_encoder import EncodedSlide

from .stepper import CachedStepper, Stepper

FINISHED_PENALTY = 1000.0


@torch.no_grad()
def beam_search(
    model: torch.nn.Module,
    encoded: EncodedSlide,
    beam_size: int,
    max_len: int,
    stepper: Stepper | None = None,
    eos_id: int = 0,
    early_stop: bool = True,
) -> torch.Tensor:
    """Beam search over ``B`` encoded bags.

    Args:
        model: a HistGen model.
        encoded: encoder output for ``B`` bags.
        beam_size: beams kept per bag.
        max_len: most tokens per report (the end token included).
        stepper: decoding state over ``B`` hypotheses; a ``CachedStepper`` by default.
        eos_id: end token (also BOS and PAD in HistGen).
        early_stop: stop once no live beam can beat the best finished one (same result, faster).

    Returns:
        ``[B, max_len] long`` ids of the best beam per bag, 0-padded after its end token.
    """
    stepper = stepper or CachedStepper(model, encoded)
    b = encoded.region_tokens.shape[0]
    device = encoded.region_tokens.device
    logprobs = stepper.step(torch.full((b,), eos_id, dtype=torch.long, device=device))
    vocab = logprobs.shape[-1]
    if beam_size > vocab:
        raise ValueError(f"beam_size {beam_size} exceeds the number of output ids {vocab}")

    best_score = torch.full((b,), float("-inf"), device=device)
    best_seq = torch.zeros(b, max_len, dtype=torch.long, device=device)
    seqs = torch.zeros(b, beam_size, 0, dtype=torch.long, device=device)
    sums = torch.zeros(b, 1, device=logprobs.device, dtype=logprobs.dtype)
    offsets = torch.arange(b, device=device)[:, None]
    slack = 1e-5 * max_len  # log-probs can exceed 0 by rounding only

    block_empty = getattr(getattr(model, "config", None), "compat", "default") != "histgen-v1"
    for t in range(max_len):
        if t == 0 and block_empty and max_len > 1:
            logprobs = logprobs.clone()
            logprobs[:, eos_id] = float("-inf")
        width = sums.shape[1]
        candidates = (sums.unsqueeze(-1) + logprobs.view(b, width, vocab)).view(b, -1)
        sums, ix = candidates.topk(beam_size, dim=-1)
        beam_ix = torch.div(ix, vocab, rounding_mode="floor")
        words = ix % vocab
        if t > 0:
            seqs = seqs.gather(1, beam_ix.unsqueeze(-1).expand(-1, -1, seqs.shape[-1]))
        seqs = torch.cat([seqs, words.unsqueeze(-1)], dim=-1)
        stepper.select((beam_ix + offsets * width).reshape(-1))

        ended = words == eos_id
        if t == max_len - 1:
            ended = torch.ones_like(ended)
        for v in range(beam_size):
            better = ended[:, v] & (sums[:, v] > best_score)
            if bool(better.any()):
                best_score = torch.where(better, sums[:, v], best_score)
                best_seq[better] = 0
                best_seq[better, : t + 1] = seqs[better, v]
        sums = sums - ended.to(sums.dtype) * FINISHED_PENALTY

        if t == max_len - 1:
            break
        if early_stop and bool((best_score >= sums.max(dim=1).values + slack).all()):
            break
        logprobs = F.log_softmax(stepper.step(seqs[:, :, -1].reshape(-1)), dim=-1)
    return best_seq
