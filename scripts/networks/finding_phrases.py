"""Decoding that states what the finding heads decided: the words that commit a sentence to a class.

The finding heads can be right on every test slide while the decoder, which reads their decision only
through one memory token, still writes the other value now and then (needle benchmark, LVI: heads right on
40 of 40 slides, text on 32). :class:`PhraseRules` holds, for each finding, the words at which a training
sentence commits to one of the finding's classes: the rule ``(context, word, finding, class)`` says "a
sentence that starts with ``context`` and goes on with ``word`` states ``class``" (built from the training
reports by :func:`scripts.engines.finding_phrase_rules`: every training sentence that starts with
``context + [word]`` and states the finding states that class, while sentences starting with ``context``
state several). While decoding, a word that would commit the current sentence to a class other than the
heads' decision gets :data:`BANNED_LOGPROB`, so the beam (or greedy) search writes the phrase of the heads'
class instead. Sentences outside the training phrases are not touched.

A finding that (nearly) every training report states is *required*: the end token is banned until the
report has written a word that commits a sentence to one of its classes, so the report cannot stop before
saying it (renal-two benchmark: every training report states the margin, 8 of 40 generated reports ended
without a margin sentence).

Everything here is tensors and NamedTuples, so ``torch.jit.script`` compiles the model with it. The rules
are buffers of :class:`scripts.networks.finding_heads.SlideFindingHeads` (saved in ``model.pt``); a model
without rules (``K = 0``) decodes exactly as before.
"""

from typing import NamedTuple

import torch

#: log-probability given to a word that would state a class the heads did not choose.
BANNED_LOGPROB = -1.0e4


class PhraseRules(NamedTuple):
    """``K`` rules; a rule's context is the sentence's first ``length[k]`` words.

    Attributes:
        context: ``[K, L + 1] long`` word ids from the sentence start, ``-1`` after ``length[k]`` (the last
            column is always ``-1``).
        length: ``[K] long`` words of context (0 = the sentence's first word).
        word: ``[K] long`` the word that commits the sentence to ``label[k]``.
        finding: ``[K] long`` the finding (head index).
        label: ``[K] long`` the class within that finding.
        sentence_end: ``[1] long`` the id of the sentence-ending token (``"."``), ``-1`` when unknown.
        required: ``[F] long`` 1 for a finding the report must state before its end token, else 0; ``[0]``
            (no finding required) in rules saved before this field existed.
    """

    context: torch.Tensor
    length: torch.Tensor
    word: torch.Tensor
    finding: torch.Tensor
    label: torch.Tensor
    sentence_end: torch.Tensor
    required: torch.Tensor


class PhraseState(NamedTuple):
    """Where each of ``H`` hypotheses stands in its current sentence.

    Attributes:
        alive: ``[H, K] bool`` rules whose context the sentence has followed so far.
        length: ``[H] long`` words in the current sentence.
        stated: ``[H, F] bool`` findings the report has committed to a class so far (``F`` = the rules'
            ``required`` length).
    """

    alive: torch.Tensor
    length: torch.Tensor
    stated: torch.Tensor


def phrase_start(rules: PhraseRules, hypotheses: int) -> PhraseState:
    """State of ``hypotheses`` empty reports (every one at a sentence start)."""
    k = rules.word.shape[0]
    device = rules.word.device
    return PhraseState(torch.ones(hypotheses, k, dtype=torch.bool, device=device),
                       torch.zeros(hypotheses, dtype=torch.long, device=device),
                       torch.zeros(hypotheses, rules.required.shape[0], dtype=torch.bool, device=device))


def phrase_ban(rules: PhraseRules, state: PhraseState, decisions: torch.Tensor, logprobs: torch.Tensor
               ) -> torch.Tensor:
    """``logprobs [H, V]`` with the words that would state a class other than ``decisions [H, F]`` banned,
    and the end token (id 0) banned while a required finding is not stated yet."""
    applicable = state.alive & (rules.length[None, :] == state.length[:, None])  # [H, K]
    chosen = decisions.gather(1, rules.finding[None, :].expand(decisions.shape[0], -1))  # [H, K]
    banned = applicable & (chosen != rules.label[None, :])
    # count the banned rules per word: O(H * K), not a [K, V] one-hot product at every decoding step
    index = rules.word[None, :].expand(banned.shape[0], -1)
    hits = torch.zeros_like(logprobs).scatter_add_(1, index, banned.to(logprobs.dtype))  # [H, V]
    if rules.required.shape[0] > 0:
        missing = ((rules.required[None, :] > 0) & ~state.stated).any(dim=1)  # [H]
        hits[:, 0] = hits[:, 0] + missing.to(hits.dtype)
    return logprobs.masked_fill(hits > 0, -1.0e4)  # BANNED_LOGPROB (TorchScript reads no float globals)


def phrase_advance(rules: PhraseRules, state: PhraseState, words: torch.Tensor) -> PhraseState:
    """The state after each hypothesis wrote ``words [H]``."""
    last = rules.context.shape[1] - 1
    stated = state.stated
    if stated.shape[1] > 0:
        # a rule fires when its context was followed and its word is written now
        now = (rules.length[None, :] == state.length[:, None]) & (rules.word[None, :] == words[:, None])
        fired = state.alive & now  # [H, K]
        index = rules.finding[None, :].expand(fired.shape[0], -1)
        hits = torch.zeros(stated.shape, dtype=torch.float32, device=stated.device)
        stated = stated | (hits.scatter_add_(1, index, fired.to(torch.float32)) > 0)
    expected = rules.context.t().index_select(0, state.length.clamp(max=last))  # [H, K]
    alive = state.alive & (expected == words[:, None])
    ended = words == rules.sentence_end
    alive = alive | ended[:, None]
    length = torch.where(ended, torch.zeros_like(state.length), state.length + 1)
    return PhraseState(alive, length, stated)


def phrase_select(state: PhraseState, index: torch.Tensor) -> PhraseState:
    """Keep/reorder/duplicate hypotheses: ``index [H'] long``."""
    return PhraseState(state.alive.index_select(0, index), state.length.index_select(0, index),
                       state.stated.index_select(0, index))


def empty_phrase_rules(device: torch.device) -> PhraseRules:
    """No rules (decoding is left as it is)."""
    empty = torch.zeros(0, dtype=torch.long, device=device)
    return PhraseRules(torch.full([0, 1], -1, dtype=torch.long, device=device), empty, empty, empty, empty,
                       torch.full([1], -1, dtype=torch.long, device=device), empty)
