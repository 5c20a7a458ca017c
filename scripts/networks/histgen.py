"""HistGen: bag of patch features -> pathology report, one closed model that ``torch.jit.script`` compiles."""

from pathlib import Path
from typing import Any, NamedTuple

import torch

from .config import HistGenConfig
from .finding_heads import SlideFindingHeads
from .finding_phrases import (
    PhraseRules,
    complete_reports,
    empty_phrase_rules,
    phrase_advance,
    phrase_ban,
    phrase_select,
    phrase_start,
    sentence_trigram_repeats,
)
from .report_decoder import DecoderCache, ReportDecoder, select_hypotheses
from .slide_encoder import SlideEncoder, SlideEncoding
from .training_kernels import use_fast_training_kernels

# The reference greedy sampler adds ln(1/2) * alpha (alpha = 2, ln(1/2) rounded to -0.693) to a word's
# log-probability for every earlier occurrence of the trigram it would complete.
TRIGRAM_PENALTY = -0.693 * 2.0
# a finished beam stays in the beam with this penalty, as in the reference's beam search
FINISHED_PENALTY = 1000.0


class ReportScores(NamedTuple):
    """What the training forward pass returns.

    Attributes:
        logprobs: ``[B, T-1, vocab_size + 1]`` teacher-forced log-probabilities (see :meth:`HistGen.score`).
        finding_logits: ``[B, C_total]`` the finding heads' logits, concatenated in head order
            (``[B, 0]`` for a model without finding heads).
    """

    logprobs: torch.Tensor
    finding_logits: torch.Tensor


class HistGen(SlideEncoder):
    """HistGen report generator (Guo et al., MICCAI 2024).

    ``features [B, N, in_dim]`` -> :class:`SlideEncoder` (projection, cross-modal context, local-global
    encoder) -> region tokens ``[B, R, d_model]`` -> the decoder's memory (:meth:`decoder_memory`) ->
    :class:`ReportDecoder` whose word embeddings also query the cross-modal memory -> log-probabilities
    over ``vocab_size + 1`` ids (0 = BOS/EOS/PAD). Beam search and greedy search are methods of the model.

    HistGen *is* a slide encoder with a decoder added, so every parameter keeps the name it had in the
    ``model.pt`` files written before (``projection.*``, ``encoder.*``, ``decoder.*``...).

    ``torch.jit.script(model)`` compiles it as it is: ``forward``/``score``, ``encode``, ``generate``,
    ``decode`` and ``reports`` are kept in the scripted module, with the vocabulary's ``tokens`` when given.

    Example:
        >>> model = HistGen(HistGenConfig(in_dim=64, d_vf=64, d_model=32, d_ff=32, num_heads=4,
        ...     topk=8, cmm_size=16, cmm_dim=32, region_size=8, prototype_num=4, vocab_size=20))
        >>> ids = model.generate(torch.randn(2, 50, 64), beam_size=3, max_len=10)  # [2, 10]

    Args:
        config: hyper-parameters (``HistGenConfig(**overrides)`` when None).
        tokens: the vocabulary's tokens (``tokens[i]`` has id ``i + 1``), for :meth:`decode` and :meth:`reports`.
        overrides: fields of ``config`` to change.
    """

    tokens: list[str]

    def __init__(self, config: HistGenConfig | None = None, tokens: list[str] | None = None, **overrides: Any) -> None:
        if config is None:
            config = HistGenConfig(**overrides)
        elif overrides:
            config = HistGenConfig.from_dict(config.to_dict(), **overrides)
        super().__init__(config, initialise=False)
        c = config
        self.decoder_masks_padded_regions = c.behaviour.decoder_masks_padded_regions
        self.blocks_empty_report = c.behaviour.blocks_empty_report
        self.beam_size = c.beam_size
        self.max_seq_length = c.max_seq_length
        self.vocab_size = c.vocab_size
        self.decoder = ReportDecoder(c.vocab_size, c.d_model, c.d_ff, c.num_heads, c.num_layers, c.dropout)
        # finding heads read the patch tokens and add one memory token per finding (docs/grounding.md)
        self.findings = None
        if c.finding_classes:
            self.findings = SlideFindingHeads(c.d_model, list(c.finding_classes.values()), dropout=c.dropout)
        # module attributes, since TorchScript cannot read float globals
        self.trigram_penalty = TRIGRAM_PENALTY
        self.finished_penalty = FINISHED_PENALTY
        self.tokens = []
        self.set_tokens(tokens or [])
        self.reset_parameters()
        if c.behaviour.fast_training_kernels:
            use_fast_training_kernels(self)

    def set_tokens(self, tokens: list[str]) -> None:
        """Attach the vocabulary's tokens (``tokens[i]`` has id ``i + 1``) for :meth:`decode`."""
        if tokens and len(tokens) != self.vocab_size:
            raise ValueError(f"{len(tokens)} tokens given for a model with vocab_size={self.vocab_size}")
        self.tokens = list(tokens)

    # ------------------------------------------------------------------ decoder input
    def memory_and_findings(
        self, encoding: SlideEncoding, finding_labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The decoder's memory, its mask and the finding heads' logits ``[B, C_total]`` (``[B, 0]`` without heads).

        The memory is the region tokens (masked to the real regions unless ``compat="histgen-v1"``), followed
        by one token per finding when the model has finding heads. ``finding_labels [B, F]`` (training only,
        ``-1`` unknown) sets the class each finding token carries; otherwise the heads decide.
        """
        memory = encoding.region_tokens
        memory_mask: torch.Tensor | None = None
        if self.decoder_masks_padded_regions:
            memory_mask = encoding.region_mask
        heads = self.findings
        if heads is None:
            return memory, memory_mask, memory.new_zeros(memory.shape[0], 0)
        found = heads(encoding.finding_tokens, encoding.patch_mask, finding_labels)
        memory = torch.cat([memory, found.tokens], dim=1)
        if memory_mask is not None:
            memory_mask = torch.cat([memory_mask, memory_mask.new_ones(found.tokens.shape[:2])], dim=1)
        return memory, memory_mask, found.logits

    def decoder_memory(self, encoding: SlideEncoding) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What the decoder's cross-attention reads: ``memory [B, M, d]`` and ``memory_mask [B, M] bool`` or None.

        The region tokens come first (``M = R`` without finding heads, ``R + F`` with them).
        """
        memory, memory_mask, _ = self.memory_and_findings(encoding)
        return memory, memory_mask

    def phrase_rules(self) -> PhraseRules:
        """The finding heads' phrase rules (none without heads), see :mod:`scripts.networks.finding_phrases`."""
        heads = self.findings
        if heads is None:
            return empty_phrase_rules(self.decoder.logit.weight.device)
        return heads.phrase_rules()

    @torch.jit.unused
    def check_phrase_rules(self) -> None:
        """Raise ``ValueError`` when the held phrase rules name a word id the decoder cannot write."""
        if self.findings is not None:
            self.findings.check_phrase_rules(self.findings.phrase_rules(), self.decoder.logit.out_features)

    def finding_decisions(self, encoding: SlideEncoding, needed: bool = True) -> torch.Tensor:
        """The class each finding head chose for each bag, ``[B, F] long`` (``[B, 0]`` without heads or when
        not ``needed``; the heads only run when needed)."""
        heads = self.findings
        if heads is not None and needed:
            logits = heads(encoding.finding_tokens, encoding.patch_mask).logits
        else:
            logits = encoding.patch_tokens.new_zeros(encoding.patch_tokens.shape[0], 0)
        return self.decisions_of(logits, needed)

    def decisions_of(self, logits: torch.Tensor, needed: bool = True) -> torch.Tensor:
        """The finding heads' logits ``[B, C_total]`` -> the class each head chose, ``[B, F] long`` (``[B, 0]``
        without heads or when not ``needed``)."""
        heads = self.findings
        if heads is None or not needed:
            return torch.zeros(logits.shape[0], 0, dtype=torch.long, device=logits.device)
        return heads.decisions(logits)

    @torch.jit.export
    def predict_findings(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The finding heads' class probabilities ``[B, C_total]`` (softmax per head; ``[B, 0]`` without heads)."""
        with torch.no_grad():
            _, _, logits = self.memory_and_findings(self.encode(features, mask))
            heads = self.findings
            if heads is None:
                return logits
            return heads.probabilities(logits)

    def word_states(self, ids: torch.Tensor, start: int, context_k: torch.Tensor, context_v: torch.Tensor
                    ) -> torch.Tensor:
        """``ids [B, L]`` at positions ``start..`` -> word embeddings plus their cross-modal memory responses."""
        x = self.decoder.embed_words(ids, start)
        return x + self.context.respond(x, context_k, context_v)

    # ------------------------------------------------------------------ scoring
    def forward(
        self,
        features: torch.Tensor,
        target_ids: torch.Tensor,
        mask: torch.Tensor | None = None,
        finding_labels: torch.Tensor | None = None,
    ) -> ReportScores:
        """Training pass: teacher-forced log-probabilities (see :meth:`score`) and the finding heads' logits.

        ``finding_labels [B, F] long`` (``-1`` unknown): the findings the reports state, carried by the finding
        tokens in place of the heads' decisions (teacher forcing of the findings).
        """
        memory, memory_mask, finding_logits = self.memory_and_findings(self.encode(features, mask), finding_labels)
        return ReportScores(self._teacher_forced(target_ids, memory, memory_mask), finding_logits)

    @torch.jit.export
    def score(
        self, features: torch.Tensor, target_ids: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Teacher-forced log-probabilities of the next token.

        Args:
            features: ``[B, N, in_dim]``.
            target_ids: ``[B, T] long``, ``[0, w1, ..., wn, 0, 0...]``.
            mask: ``[B, N] bool`` or None.

        Returns:
            ``[B, T-1, vocab_size + 1]`` log-probabilities for ``target_ids[:, 1:]`` given ``target_ids[:, :-1]``.
        """
        memory, memory_mask = self.decoder_memory(self.encode(features, mask))
        return self._teacher_forced(target_ids, memory, memory_mask)

    def _teacher_forced(
        self, target_ids: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None
    ) -> torch.Tensor:
        ids = target_ids[:, :-1]
        context_k, context_v = self.context.project_memory(self.memory_matrix)
        words = self.word_states(ids, 0, context_k, context_v)
        return self.decoder(words, self.decoder.self_attention_mask(ids), memory, memory_mask)

    def cross_attention(
        self, ids: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Cross-attention probabilities of every decoder layer on ``memory``, teacher-forced on ``ids``.

        Args:
            ids: ``[B, T] long`` BOS (0) then the words; keys with id 0 after position 0 are masked.
            memory: ``[B, M, d]`` (see :meth:`decoder_memory`).
            memory_mask: ``[B, M] bool`` or None.

        Returns:
            ``[layers, B, heads, T, M]``: query ``t`` is the step that produced word ``t + 1``.
        """
        context_k, context_v = self.context.project_memory(self.memory_matrix)
        words = self.word_states(ids, 0, context_k, context_v)
        _, probs = self.decoder.cross_attention(words, self.decoder.self_attention_mask(ids), memory, memory_mask)
        return probs

    # ------------------------------------------------------------------ step-wise decoding
    def start_decoding(self, encoding: SlideEncoding) -> DecoderCache:
        """Empty decoder cache for ``B`` encoded bags (one hypothesis each)."""
        return self.start_decoding_with_decisions(encoding, False)[0]

    def start_decoding_with_decisions(self, encoding: SlideEncoding, needed: bool
                                      ) -> tuple[DecoderCache, torch.Tensor]:
        """:meth:`start_decoding` and :meth:`finding_decisions` from one pass of the finding heads."""
        memory, memory_mask, logits = self.memory_and_findings(encoding)
        context_k, context_v = self.context.project_memory(self.memory_matrix)
        cache = self.decoder.start(memory, memory_mask, context_k, context_v)
        return cache, self.decisions_of(logits, needed)

    def decode_step(self, ids: torch.Tensor, cache: DecoderCache) -> tuple[torch.Tensor, DecoderCache]:
        """One cached decoding step: ``ids [B]`` -> log-probabilities ``[B, V+1]`` and the new cache."""
        words = self.word_states(ids[:, None], cache.step, cache.context_k, cache.context_v)
        return self.decoder.step(words, cache)

    def beam_search(
        self, encoding: SlideEncoding, beam_size: int, max_len: int, early_stop: bool = True
    ) -> torch.Tensor:
        """Batched beam search with the reference HistGen semantics.

        The reference ``CaptionModel.beam_search`` with one group and no length penalty: the first step
        expands BOS into the ``beam_size`` best words; at each later step the ``beam_size`` best (beam, word)
        continuations by summed log-probability survive; a beam whose last word is the end token is recorded as
        finished with its summed log-probability and stays in the beam with a -1000 penalty; at ``max_len``
        every beam is recorded; the best recorded beam wins (the earliest recorded on ties). Unlike the
        reference, every bag is decoded at once and, with ``early_stop``, the search stops as soon as no live
        beam can beat the best finished one (which returns the same ids as running to ``max_len``).

        Returns:
            ``[B, max_len] long`` ids of the best beam per bag, 0-padded after its end token.
        """
        b = encoding.region_tokens.shape[0]
        device = encoding.region_tokens.device
        # the words that would state a class the finding heads did not choose are banned (finding_phrases)
        rules = self.phrase_rules()
        constrained = rules.word.shape[0] > 0
        cache, decisions = self.start_decoding_with_decisions(encoding, constrained)
        logprobs, cache = self.decode_step(torch.zeros(b, dtype=torch.long, device=device), cache)
        vocab = logprobs.shape[-1]
        if beam_size > vocab:
            raise ValueError(f"beam_size {beam_size} exceeds the number of output ids {vocab}")
        if self.blocks_empty_report and max_len > 1:
            logprobs = self._no_end_token(logprobs)
        phrases = phrase_start(rules, b)
        bag_decisions = decisions
        if constrained:
            logprobs = phrase_ban(rules, phrases, decisions, logprobs)
            decisions = decisions.repeat_interleave(beam_size, dim=0)
        best_score = torch.full([b], float("-inf"), device=device, dtype=logprobs.dtype)
        best_seq = torch.zeros(b, max_len, dtype=torch.long, device=device)
        seqs = torch.zeros(b, beam_size, 0, dtype=torch.long, device=device)
        sums = torch.zeros(b, 1, device=device, dtype=logprobs.dtype)
        offsets = torch.arange(b, device=device)[:, None]
        slack = 1e-5 * max_len  # log-probs can exceed 0 by rounding only
        # with finding-consistent decoding the sentence end is known: no trigram repeats within a sentence
        sentence_end = int(rules.sentence_end[0]) if constrained else -1
        for t in range(max_len):
            width = sums.shape[1]
            candidates = (sums.unsqueeze(-1) + logprobs.view(b, width, vocab)).view(b, -1)
            sums, ix = candidates.topk(beam_size, dim=-1)
            beam_ix = torch.div(ix, vocab, rounding_mode="floor")
            words = ix % vocab
            if t > 0:
                seqs = seqs.gather(1, beam_ix.unsqueeze(-1).expand(-1, -1, seqs.shape[-1]))
            seqs = torch.cat([seqs, words.unsqueeze(-1)], dim=-1)
            kept = (beam_ix + offsets * width).reshape(-1)
            # after the first step every row continues a beam of its own bag: the bag's memory stays in place
            cache = select_hypotheses(cache, kept, t == 0)
            if constrained:
                phrases = phrase_advance(rules, phrase_select(phrases, kept), words.reshape(-1))

            ended = words == 0
            if t == max_len - 1:
                ended = torch.ones_like(ended)
            for v in range(beam_size):
                better = ended[:, v] & (sums[:, v] > best_score)
                if bool(better.any()):
                    best_score = torch.where(better, sums[:, v], best_score)
                    rows = better.nonzero().squeeze(1)
                    fresh = torch.zeros(rows.shape[0], max_len, dtype=torch.long, device=device)
                    fresh[:, : t + 1] = seqs.index_select(0, rows)[:, v]
                    best_seq = best_seq.index_copy(0, rows, fresh)
            sums = sums - ended.to(sums.dtype) * self.finished_penalty

            if t == max_len - 1:
                break
            if early_stop and bool((best_score >= sums.max(dim=1).values + slack).all()):
                break
            step_logprobs, cache = self.decode_step(seqs[:, :, -1].reshape(-1), cache)
            logprobs = torch.log_softmax(step_logprobs, dim=-1)
            if constrained:
                logprobs = phrase_ban(rules, phrases, decisions, logprobs)
            if sentence_end >= 0 and seqs.shape[-1] >= 3:
                repeats = sentence_trigram_repeats(seqs, sentence_end, vocab).view(-1, vocab)
                logprobs = logprobs.masked_fill(repeats, -1.0e4)  # BANNED_LOGPROB
        return self._complete(rules, bag_decisions, best_seq)

    def _complete(self, rules: PhraseRules, decisions: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """``ids`` with the fallback sentence of each required finding a report left out (finding_phrases)."""
        heads = self.findings
        if heads is None or rules.word.shape[0] == 0:
            return ids
        return complete_reports(rules, heads.offsets, decisions, ids)

    def greedy_search(self, encoding: SlideEncoding, max_len: int, block_trigrams: bool = True) -> torch.Tensor:
        """Pick the most likely token at each step.

        Args:
            encoding: the slide encoder's output for ``B`` bags.
            max_len: number of tokens to generate at most.
            block_trigrams: penalise repeated trigrams as the reference's greedy sampler does by default.

        Returns:
            ``[B, max_len] long`` ids, 0 after each sequence's end token.
        """
        b = encoding.region_tokens.shape[0]
        device = encoding.region_tokens.device
        rules = self.phrase_rules()
        constrained = rules.word.shape[0] > 0
        cache, decisions = self.start_decoding_with_decisions(encoding, constrained)
        phrases = phrase_start(rules, b)
        seq = torch.zeros(b, max_len, dtype=torch.long, device=device)
        it = torch.zeros(b, dtype=torch.long, device=device)
        unfinished = torch.ones(b, dtype=torch.bool, device=device)
        # per sequence: (first * width + second) -> the words that followed that pair
        seen: list[dict[int, list[int]]] = []
        for _ in range(b):
            seen.append(torch.jit.annotate(dict[int, list[int]], {}))
        for t in range(max_len):
            logprobs, cache = self.decode_step(it, cache)
            if t == 0 and self.blocks_empty_report and max_len > 1:
                logprobs = self._no_end_token(logprobs)
            if block_trigrams and t >= 3:
                last3: list[list[int]] = seq[:, t - 3 : t].tolist()
                logprobs = logprobs + self._trigram_penalty(logprobs, last3, seen)
            if constrained:
                logprobs = phrase_ban(rules, phrases, decisions, logprobs)
            it = logprobs.argmax(dim=-1).masked_fill(~unfinished, 0)
            if constrained:
                phrases = phrase_advance(rules, phrases, it)
            seq[:, t] = it
            unfinished = unfinished & (it != 0)
            if not bool(unfinished.any()):
                break
        return self._complete(rules, decisions, seq)

    def _no_end_token(self, logprobs: torch.Tensor) -> torch.Tensor:
        """``logprobs [B, V+1]`` with the end token (id 0) made impossible."""
        blocked = torch.zeros_like(logprobs)
        blocked[:, 0] = float("-inf")
        return logprobs + blocked

    def _trigram_penalty(self, logprobs: torch.Tensor, last3: list[list[int]], seen: list[dict[int, list[int]]]
                         ) -> torch.Tensor:
        """Record each row's last trigram; penalise the words that would repeat one: ``[B, V+1]``."""
        width = logprobs.shape[-1]
        penalty = torch.zeros_like(logprobs)
        for i in range(len(last3)):
            first, second, third = last3[i][0], last3[i][1], last3[i][2]
            key = first * width + second
            if key in seen[i]:
                seen[i][key].append(third)
            else:
                seen[i][key] = [third]
            follow = second * width + third
            if follow in seen[i]:
                for word in seen[i][follow]:
                    penalty[i, word] += 1.0
        return penalty * self.trigram_penalty

    @torch.jit.export
    def generate(
        self,
        features: torch.Tensor,
        mask: torch.Tensor | None = None,
        beam_size: int | None = None,
        max_len: int | None = None,
        block_trigrams: bool = True,
    ) -> torch.Tensor:
        """Decode reports (in eval mode, without gradients).

        Args:
            features: ``[B, N, in_dim]``.
            mask: ``[B, N] bool`` or None.
            beam_size: beam width (default ``config.beam_size``); 1 is greedy decoding.
            max_len: longest report in tokens (default ``config.max_seq_length``).
            block_trigrams: greedy only: penalise repeated trigrams, as the reference's greedy
                sampler does by default (its beam search never does).

        Returns:
            ``[B, max_len] long`` token ids, 0-padded after the end token.
        """
        beam = self.beam_size if beam_size is None else beam_size
        length = self.max_seq_length if max_len is None else max_len
        if beam < 1 or length < 1:
            raise ValueError(f"beam_size and max_len must be >= 1, got {beam}, {length}")
        if torch.jit.is_scripting():
            return self._generate(features, mask, beam, length, block_trigrams)
        return self._generate_in_eval_mode(features, mask, beam, length, block_trigrams)

    @torch.jit.unused
    def _generate_in_eval_mode(
        self, features: torch.Tensor, mask: torch.Tensor | None, beam_size: int, max_len: int, block_trigrams: bool
    ) -> torch.Tensor:
        was_training = self.training
        self.eval()
        try:
            return self._generate(features, mask, beam_size, max_len, block_trigrams)
        finally:
            self.train(was_training)

    def _generate(
        self, features: torch.Tensor, mask: torch.Tensor | None, beam_size: int, max_len: int, block_trigrams: bool
    ) -> torch.Tensor:
        with torch.no_grad():
            encoding = self.encode(features, mask)
            if beam_size == 1:
                return self.greedy_search(encoding, max_len, block_trigrams)
            return self.beam_search(encoding, beam_size, max_len)

    # ------------------------------------------------------------------ text
    @torch.jit.export
    def decode(self, ids: torch.Tensor) -> list[str]:
        """Ids ``[B, L]`` -> texts: skip one leading 0, stop at the next 0, join tokens with spaces."""
        if len(self.tokens) == 0:
            raise RuntimeError("this model holds no vocabulary tokens (build it with tokens=vocab.tokens)")
        texts: list[str] = []
        rows: list[list[int]] = ids.tolist()
        for row in rows:
            start = 1 if len(row) > 0 and row[0] == 0 else 0
            words: list[str] = []
            for value in row[start:]:
                if value == 0:
                    break
                words.append(self.tokens[value - 1])
            texts.append(" ".join(words))
        return texts

    @torch.jit.export
    def reports(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> list[str]:
        """``features [B, N, D]`` -> report texts (the config's beam size and length)."""
        return self.decode(self.generate(features, mask, self.beam_size, self.max_seq_length, True))

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_reference_checkpoint(
        cls, checkpoint_path: str | Path, config_path: str | Path, **overrides: Any
    ) -> "HistGen":
        """Build a model from a reference HistGen trainer checkpoint (``model_best.pth``).

        Args:
            checkpoint_path: the reference trainer's ``{'epoch', 'state_dict', ...}`` file.
            config_path: JSON with the hyper-parameters (keys of ``HistGenConfig``).
            overrides: e.g. ``compat="default"`` to load the weights into the corrected network.
                The default is ``compat="histgen-v1"``, which reproduces the reference outputs.
        """
        from .reference_checkpoint import load_reference_state_dict

        overrides.setdefault("compat", "histgen-v1")
        config = HistGenConfig.from_json(config_path, **overrides)
        model = cls(config)
        model.load_state_dict(load_reference_state_dict(checkpoint_path, config))
        return model.eval()
