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

A finding that (nearly) every training report states is *required*: when the decoded report does not state
it (no rule word of that finding was written), :func:`complete_reports` appends the finding's *fallback
sentence* for the heads' class (the training reports' most frequent sentence stating that class alone), so
every report says what the heads decided about it (renal-two benchmark: every training report states the
margin and the heads were right on 40 of 40 test slides, while 8 of 40 decoded reports ended without a
margin sentence).

A sentence that has said which finding it is about but not yet which class ("lymphovascular invasion is")
stands at a *gate*: every training sentence through the words written so far states that finding, and they
still state several classes. There the next word must be one that the training sentences stating that
finding use, and the sentence (or the report) may only end where a training sentence ended. Without this
the decoder drifted into another finding's words before committing, and no rule applied: renal-two's
reports wrote "lymphovascular invasion is clear of all surgical margins are free of tumour" and a bare
"lymphovascular invasion." on slides the LVI head had called absent, which a reader takes as "present".
The finding's own words stay allowed off the training phrases ("lymph nodes negative for metastatic
carcinoma" where the training sentences only began "lymph nodes 3 of 19 ..."): holding the sentence to the
exact training phrases pushed the decoder into phrasings it had not learnt (renal-two: BLEU-4 0.299 ->
0.254, lymph nodes 0.65 -> 0.20).

Once the sentence has committed to a class but its words do not state it yet ("the carcinoma is clear":
committed to a free margin, "margins" still to come), the gate is *strict*: only the words that followed
those words in the training sentences may come next, until the sentence has said it ("the carcinoma is
clear of all margins"). renal-two wrote "the carcinoma is clear of tumour size 12 mm", which states no
margin, and since the rule word had fired no margin sentence was appended either.

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
        required: ``[F] long`` 1 for a finding every report must state, else 0; ``[0]`` (none required) in
            rules saved before this field existed.
        fallback: ``[C_total, W] long`` per class of every finding (heads' order), the word ids of the sentence
            appended when a required finding is missing, ending with the sentence end, ``-1`` after it; an
            all ``-1`` row has no sentence; ``[0, 1]`` when there are none.
        gate_context: ``[G, L' + 1] long`` a sentence start (word ids, ``-1`` after ``gate_length[g]``; the
            last column is always ``-1``) where the sentence has named ``gate_finding[g]`` but not its class.
        gate_length: ``[G] long`` words of each gate's context (at least 1).
        gate_finding: ``[G] long`` the finding the gate's sentences state.
        gate_end: ``[G] long`` 1 where a training sentence ended right after the context (the sentence end
            is then allowed there), else 0.
        word_finding: ``[W] long`` with ``word_id``: the pairs (finding, word) of the words that the training
            sentences stating that finding use; at a gate of finding ``f`` only these words may follow.
        word_id: ``[W] long`` see ``word_finding``.
        gate_strict: ``[G] long`` 1 for a gate after the sentence committed to a class but before its words
            state it: only ``strict_word`` rows of that gate may follow (not the finding's words).
        strict_gate: ``[S] long`` with ``strict_word``: the pairs (gate row, word) of the words allowed after
            a strict gate's context. ``G = 0``: no gates (rules saved before them).
    """

    context: torch.Tensor
    length: torch.Tensor
    word: torch.Tensor
    finding: torch.Tensor
    label: torch.Tensor
    sentence_end: torch.Tensor
    required: torch.Tensor
    fallback: torch.Tensor
    gate_context: torch.Tensor
    gate_length: torch.Tensor
    gate_finding: torch.Tensor
    gate_end: torch.Tensor
    word_finding: torch.Tensor
    word_id: torch.Tensor
    gate_strict: torch.Tensor
    strict_gate: torch.Tensor
    strict_word: torch.Tensor


class PhraseState(NamedTuple):
    """Where each of ``H`` hypotheses stands in its current sentence.

    Attributes:
        alive: ``[H, K] bool`` rules whose context the sentence has followed so far.
        length: ``[H] long`` words in the current sentence.
        gate_alive: ``[H, G] bool`` gates whose context the sentence has followed so far.
    """

    alive: torch.Tensor
    length: torch.Tensor
    gate_alive: torch.Tensor


def phrase_start(rules: PhraseRules, hypotheses: int) -> PhraseState:
    """State of ``hypotheses`` empty reports (every one at a sentence start)."""
    k = rules.word.shape[0]
    device = rules.word.device
    return PhraseState(torch.ones(hypotheses, k, dtype=torch.bool, device=device),
                       torch.zeros(hypotheses, dtype=torch.long, device=device),
                       torch.ones(hypotheses, rules.gate_finding.shape[0], dtype=torch.bool, device=device))


def phrase_ban(rules: PhraseRules, state: PhraseState, decisions: torch.Tensor, logprobs: torch.Tensor
               ) -> torch.Tensor:
    """``logprobs [H, V]`` with the words that would state a class other than ``decisions [H, F]`` banned, and,
    in a sentence standing at a gate, every word the training sentences stating the gate's finding do not use
    (the sentence end and the report's end too, unless a training sentence ended there)."""
    applicable = state.alive & (rules.length[None, :] == state.length[:, None])  # [H, K]
    chosen = decisions.gather(1, rules.finding[None, :].expand(decisions.shape[0], -1))  # [H, K]
    banned = applicable & (chosen != rules.label[None, :])
    # count the banned rules per word: O(H * K), not a [K, V] one-hot product at every decoding step
    index = rules.word[None, :].expand(banned.shape[0], -1)
    hits = torch.zeros_like(logprobs).scatter_add_(1, index, banned.to(logprobs.dtype))  # [H, V]
    out = logprobs.masked_fill(hits > 0, -1.0e4)  # BANNED_LOGPROB (TorchScript reads no float globals)
    if rules.gate_finding.shape[0] == 0:
        return out
    at_gate = state.gate_alive & (rules.gate_length[None, :] == state.length[:, None])  # [H, G]
    strict = rules.gate_strict[None, :] > 0
    loose = (at_gate & ~strict).to(logprobs.dtype)
    num_findings = int(torch.cat([rules.gate_finding, rules.word_finding]).max()) + 1
    findings = torch.zeros(at_gate.shape[0], num_findings, dtype=logprobs.dtype, device=logprobs.device)
    findings = findings.scatter_add_(1, rules.gate_finding[None, :].expand(at_gate.shape[0], -1),
                                     loose)  # [H, F]: the findings each uncommitted sentence is naming
    # each (finding, word) pair allows its word where its finding is named: O(H * W), as the bans above
    allowed = torch.zeros_like(logprobs).scatter_add_(
        1, rules.word_id[None, :].expand(at_gate.shape[0], -1), findings.index_select(1, rules.word_finding))
    if rules.strict_word.shape[0] > 0:
        after = (at_gate & strict).to(logprobs.dtype).index_select(1, rules.strict_gate)  # [H, S]
        allowed = allowed.scatter_add_(1, rules.strict_word[None, :].expand(at_gate.shape[0], -1), after)
    end = int(rules.sentence_end[0])
    if end >= 0:
        may_end = (at_gate & (rules.gate_end[None, :] > 0)).any(dim=1)
        allowed[:, end] = allowed[:, end] + may_end.to(logprobs.dtype)
    gated = at_gate.any(dim=1, keepdim=True)  # [H, 1]
    return out.masked_fill(gated & (allowed == 0), -1.0e4)


def phrase_advance(rules: PhraseRules, state: PhraseState, words: torch.Tensor) -> PhraseState:
    """The state after each hypothesis wrote ``words [H]``."""
    last = rules.context.shape[1] - 1
    expected = rules.context.t().index_select(0, state.length.clamp(max=last))  # [H, K]
    alive = state.alive & (expected == words[:, None])
    ended = words == rules.sentence_end
    alive = alive | ended[:, None]
    gate_alive = state.gate_alive
    if rules.gate_finding.shape[0] > 0:
        gate_last = rules.gate_context.shape[1] - 1
        gate_expected = rules.gate_context.t().index_select(0, state.length.clamp(max=gate_last))  # [H, G]
        gate_alive = (gate_alive & (gate_expected == words[:, None])) | ended[:, None]
    length = torch.where(ended, torch.zeros_like(state.length), state.length + 1)
    return PhraseState(alive, length, gate_alive)


def phrase_select(state: PhraseState, index: torch.Tensor) -> PhraseState:
    """Keep/reorder/duplicate hypotheses: ``index [H'] long``."""
    return PhraseState(state.alive.index_select(0, index), state.length.index_select(0, index),
                       state.gate_alive.index_select(0, index))


def empty_phrase_rules(device: torch.device) -> PhraseRules:
    """No rules (decoding is left as it is)."""
    empty = torch.zeros(0, dtype=torch.long, device=device)
    return PhraseRules(torch.full([0, 1], -1, dtype=torch.long, device=device), empty, empty, empty, empty,
                       torch.full([1], -1, dtype=torch.long, device=device), empty,
                       torch.full([0, 1], -1, dtype=torch.long, device=device),
                       torch.full([0, 1], -1, dtype=torch.long, device=device), empty, empty, empty, empty,
                       empty, empty, empty, empty)


def stated_findings(rules: PhraseRules, ids: torch.Tensor) -> torch.Tensor:
    """``[B, F] bool``: the findings each report of ``ids [B, L]`` (decoded, 0 after the end) commits to a class,
    i.e. where it wrote a rule word of that finding after the rule's context (``F`` = ``required``'s length)."""
    b = ids.shape[0]
    num_findings = rules.required.shape[0]
    stated = torch.zeros(b, num_findings, dtype=torch.bool, device=ids.device)
    if num_findings == 0 or rules.word.shape[0] == 0:
        return stated
    state = phrase_start(rules, b)
    index = rules.finding[None, :].expand(b, -1)
    for t in range(ids.shape[1]):
        words = ids[:, t]
        fired = state.alive & (rules.length[None, :] == state.length[:, None]) & (rules.word[None, :] == words[:, None])
        hits = torch.zeros(b, num_findings, dtype=torch.float32, device=ids.device)
        stated = stated | (hits.scatter_add_(1, index, fired.to(torch.float32)) > 0)
        state = phrase_advance(rules, state, words)
    return stated


def complete_reports(rules: PhraseRules, offsets: list[int], decisions: torch.Tensor, ids: torch.Tensor
                     ) -> torch.Tensor:
    """``ids [B, L]`` with, for each required finding a report does not state, the fallback sentence of the
    heads' class (``decisions [B, F]``; ``offsets``: each finding's first class row) appended before its end
    token (after a sentence end, added when the report's last sentence has none). The result keeps ``L``
    columns (a report already near ``L`` tokens is cut there)."""
    if rules.required.shape[0] == 0 or rules.fallback.shape[0] == 0 or decisions.shape[1] == 0:
        return ids
    missing = (rules.required[None, :] > 0) & ~stated_findings(rules, ids)
    if not bool(missing.any()):
        return ids
    out = ids.clone()
    length = ids.shape[1]
    rows: list[list[int]] = ids.tolist()
    todo: list[list[bool]] = missing.tolist()
    chosen: list[list[int]] = decisions.tolist()
    for b in range(len(rows)):
        if not any(todo[b]):
            continue
        words: list[int] = []
        for value in rows[b]:
            if value == 0:
                break
            words.append(value)
        end = int(rules.sentence_end[0])
        if end >= 0 and len(words) > 0 and words[-1] != end:
            words.append(end)  # close the report's last sentence before a new one starts
        for f in range(len(todo[b])):
            if todo[b][f]:
                sentence: list[int] = rules.fallback[offsets[f] + chosen[b][f]].tolist()
                for w in sentence:
                    if w >= 0:
                        words.append(w)
        words = words[:length]
        out[b] = torch.tensor(words + [0] * (length - len(words)), dtype=ids.dtype, device=ids.device)
    return out


def sentence_trigram_repeats(seqs: torch.Tensor, sentence_end: int, vocab: int) -> torch.Tensor:
    """``[B, W, V] bool``: True for each word that would repeat a trigram of the hypothesis's current sentence.

    ``seqs [B, W, T]`` are the words written so far (``T >= 3``); the current sentence starts after the last
    ``sentence_end``. A decoder that lost track of where it is repeats a phrase within a sentence ("closest
    margin at the closest margin at 7 mm"); reports do not, so beam search bans the word that would do it.
    """
    t = seqs.shape[-1]
    is_end = (seqs == sentence_end).to(torch.long)
    ends_so_far = torch.cumsum(is_end, dim=-1)
    sentence = ends_so_far - is_end  # an end token belongs to the sentence it closes
    current = ends_so_far[..., -1:]  # the sentence the next word starts or continues
    same = sentence[..., : t - 2] == current
    pair = (seqs[..., : t - 2] == seqs[..., t - 2 : t - 1]) & (seqs[..., 1 : t - 1] == seqs[..., t - 1 :])
    hits = (pair & same).to(torch.long)
    repeats = torch.zeros(seqs.shape[0], seqs.shape[1], vocab, dtype=torch.long, device=seqs.device)
    return repeats.scatter_reduce(2, seqs[..., 2:], hits, reduce="amax") > 0
