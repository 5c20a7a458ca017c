"""Finding heads: what the slide shows, read by attention pooling, handed to the decoder as memory tokens.

A report generator trained only with next-token NLL can score well on n-gram metrics while writing the
same diagnosis for every slide: the decoder learns the report template long before the weak gradient
through cross-attention teaches it which region tokens tell one diagnosis from another (measured in
``docs/grounding.md``). The finding heads give the encoder a direct signal and the decoder a direct
source:

- one gated attention-pooling branch per finding (diagnosis, grade, margin, ... : the classes come from
  the reports themselves, see :class:`scripts.metrics.FindingsVocabulary`) reads the patch tokens, as an
  ABMIL classifier does, so a finding carried by a few percent of the patches is not averaged away;
- a linear classifier per finding, trained with cross-entropy on the finding read from the training
  report (an auxiliary loss, :class:`scripts.engines.GroundedReportLoss`);
- one memory token per finding: the embedding of the finding's class plus a learned type embedding. The
  class is the heads' decision (argmax); while training, where the report states the finding, it is the
  report's class (teacher forcing of the findings), so the decoder learns from the first epoch to write
  what the token says, instead of waiting for the heads to become right. The decoder cross-attends to these
  tokens beside the region tokens, so "which diagnosis" is one attention step away. The token holds the
  class and nothing else: with the pooled vector added as well (its LayerNorm-ed norm ~sqrt(d), the class
  embedding's ~1) the class was a small part of the token, and on the needle benchmark the heads were right
  on LVI for every test slide while the reports were right on 0.47 (docs/grounding.md).

The heads also hold the phrase rules of :mod:`scripts.networks.finding_phrases` (buffers, saved with the
weights): the words at which a training sentence commits to a class, so that decoding writes the class the
heads chose, the findings every report must state and the sentence that states each class when a report
leaves a required finding out, and the gates that keep a finding's sentence on the training phrasing until it
commits. A model saved before the rules existed loads with none; one saved before required findings existed,
with none required; one saved before the gates existed, with no gates.
"""

from typing import Any, NamedTuple

import torch
from torch import nn

from .finding_phrases import PhraseRules

#: the buffers that hold the phrase rules, in :class:`PhraseRules` field order.
PHRASE_BUFFERS = ("phrase_context", "phrase_length", "phrase_word", "phrase_finding", "phrase_label",
                  "phrase_sentence_end", "phrase_required", "phrase_fallback", "phrase_gate_context",
                  "phrase_gate_length", "phrase_gate_finding", "phrase_gate_end", "phrase_word_finding",
                  "phrase_word_id", "phrase_gate_strict", "phrase_strict_gate", "phrase_strict_word")


class FindingOutputs(NamedTuple):
    """What the finding heads return.

    Attributes:
        logits: ``[B, C_total]`` the heads' class logits, concatenated in head order (head ``f`` owns
            columns ``offsets[f]:offsets[f + 1]`` of :attr:`SlideFindingHeads.offsets`).
        tokens: ``[B, F, d_model]`` one memory token per finding (class embedding + type embedding).
        attention: ``[B, F, N]`` pooling weights per finding over the patches (0 on padding).
    """

    logits: torch.Tensor
    tokens: torch.Tensor
    attention: torch.Tensor


class SlideFindingHeads(nn.Module):
    """Per-finding gated attention pooling, classifiers and decoder memory tokens.

    Args:
        d_model: width of the patch tokens and of the memory tokens.
        num_classes: classes per finding, in head order (each >= 2).
        hidden: width of the gated attention (default ``d_model``).
        dropout: dropout on the pooled vectors.

    Example:
        >>> heads = SlideFindingHeads(32, [6, 3, 2])
        >>> out = heads(torch.randn(2, 50, 32), torch.ones(2, 50, dtype=torch.bool))
        >>> out.logits.shape, out.tokens.shape
        (torch.Size([2, 11]), torch.Size([2, 3, 32]))
    """

    def __init__(self, d_model: int, num_classes: list[int], hidden: int = 0, dropout: float = 0.1) -> None:
        super().__init__()
        if not num_classes:
            raise ValueError("SlideFindingHeads needs at least one finding")
        if any(int(c) < 2 for c in num_classes):
            raise ValueError(f"every finding needs >= 2 classes, got {list(num_classes)}")
        hidden = hidden or d_model
        self.num_findings = len(num_classes)
        self.num_classes = [int(c) for c in num_classes]
        offsets = [0]
        for c in self.num_classes:
            offsets.append(offsets[-1] + c)
        self.offsets = offsets
        self.norm = nn.LayerNorm(d_model)
        self.attn_value = nn.Linear(d_model, hidden)
        self.attn_gate = nn.Linear(d_model, hidden)
        self.attn_score = nn.Linear(hidden, self.num_findings)
        self.dropout = nn.Dropout(dropout)
        self.classifiers = nn.ModuleList([nn.Linear(d_model, c) for c in self.num_classes])
        # unit-variance entries, as the LayerNorm-ed region tokens beside them in the memory
        self.class_embed = nn.Parameter(torch.randn(offsets[-1], d_model))
        self.type_embed = nn.Parameter(torch.randn(self.num_findings, d_model))
        self.token_norm = nn.LayerNorm(d_model)
        empty = torch.zeros(0, dtype=torch.long)
        self.register_buffer("phrase_context", torch.full([0, 1], -1, dtype=torch.long))
        self.register_buffer("phrase_length", empty.clone())
        self.register_buffer("phrase_word", empty.clone())
        self.register_buffer("phrase_finding", empty.clone())
        self.register_buffer("phrase_label", empty.clone())
        self.register_buffer("phrase_sentence_end", torch.full([1], -1, dtype=torch.long))
        self.register_buffer("phrase_required", empty.clone())
        self.register_buffer("phrase_fallback", torch.full([0, 1], -1, dtype=torch.long))
        self.register_buffer("phrase_gate_context", torch.full([0, 1], -1, dtype=torch.long))
        for name in PHRASE_BUFFERS[9:]:
            self.register_buffer(name, empty.clone())

    def set_phrase_rules(self, rules: PhraseRules) -> None:
        """Hold ``rules`` (see :mod:`scripts.networks.finding_phrases`), checked against the heads' classes."""
        self.check_phrase_rules(rules)
        device = self.class_embed.device
        for name, value in zip(PHRASE_BUFFERS, rules, strict=True):
            setattr(self, name, value.to(device=device, dtype=torch.long))

    def check_phrase_rules(self, rules: PhraseRules, vocab_size: int = 0) -> None:
        """Raise ``ValueError`` unless ``rules`` fit these heads (and, with ``vocab_size`` > 0, ids ``< vocab_size``).

        Rules read from a file are data: a row naming a finding, class or word id that does not exist would
        fail deep inside decoding (an index error), so it is refused up front.
        """
        k = rules.word.shape[0]
        if rules.context.dim() != 2 or rules.sentence_end.shape != (1,):
            raise ValueError("phrase rules: context must be [K, L + 1] and sentence_end [1]")
        if any(t.shape[0] != k for t in (rules.context, rules.length, rules.word, rules.finding, rules.label)):
            raise ValueError("phrase rules: context, length, word, finding and label need one row per rule")
        if k:
            if int(rules.finding.min()) < 0 or int(rules.finding.max()) >= self.num_findings:
                raise ValueError(f"phrase rules name a finding outside 0..{self.num_findings - 1}")
            sizes = torch.tensor(self.num_classes)[rules.finding.cpu()]
            if bool(((rules.label.cpu() < 0) | (rules.label.cpu() >= sizes)).any()):
                raise ValueError("phrase rules name a class outside their finding's classes")
            if bool((rules.context[:, -1] != -1).any()) or int(rules.length.max()) >= rules.context.shape[1]:
                raise ValueError("phrase rules: every context row must end with -1 padding")
            if int(rules.length.min()) < 0:
                raise ValueError("phrase rules: negative context length")
        if rules.required.dim() != 1 or rules.required.shape[0] not in (0, self.num_findings):
            raise ValueError(f"phrase rules: required must have one entry per finding ({self.num_findings}) or none")
        if bool(((rules.required != 0) & (rules.required != 1)).any()):
            raise ValueError("phrase rules: required entries must be 0 or 1")
        if rules.fallback.dim() != 2 or rules.fallback.shape[0] not in (0, self.offsets[-1]):
            raise ValueError(f"phrase rules: fallback must have one row per class ({self.offsets[-1]}) or none")
        self._check_gates(rules)
        if vocab_size > 0:
            ids = torch.cat([rules.context.reshape(-1), rules.word, rules.sentence_end,
                             rules.fallback.reshape(-1), rules.gate_context.reshape(-1), rules.word_id,
                             rules.strict_word]).cpu()
            if (bool(((ids < -1) | (ids >= vocab_size)).any()) or bool((rules.word.cpu() < 0).any())
                    or bool((torch.cat([rules.word_id, rules.strict_word]).cpu() < 0).any())):
                raise ValueError(f"phrase rules name word ids outside the model's vocabulary (0..{vocab_size - 1})")

    def _check_gates(self, rules: PhraseRules) -> None:
        """Raise ``ValueError`` unless the gates' tensors agree with each other and these heads."""
        g = rules.gate_finding.shape[0]
        if rules.gate_context.dim() != 2 or any(t.dim() != 1 for t in (rules.gate_length, rules.gate_finding,
                                                                        rules.gate_end, rules.word_finding,
                                                                        rules.word_id, rules.gate_strict,
                                                                        rules.strict_gate, rules.strict_word)):
            raise ValueError("phrase rules: gate_context must be [G, L + 1]; the other gate tensors one-dimensional")
        if any(t.shape[0] != g for t in (rules.gate_context, rules.gate_length, rules.gate_end, rules.gate_strict)):
            raise ValueError("phrase rules: gate_context, gate_length, gate_finding, gate_end and gate_strict need "
                             "one row per gate")
        if rules.word_finding.shape[0] != rules.word_id.shape[0]:
            raise ValueError("phrase rules: word_finding and word_id need one entry per (finding, word) pair")
        if rules.strict_gate.shape[0] != rules.strict_word.shape[0]:
            raise ValueError("phrase rules: strict_gate and strict_word need one entry per (gate, word) pair")
        if rules.strict_gate.shape[0] and (int(rules.strict_gate.min()) < 0 or int(rules.strict_gate.max()) >= g):
            raise ValueError(f"phrase rules: strict_gate names a gate outside 0..{g - 1}")
        for name, findings in (("gate_finding", rules.gate_finding), ("word_finding", rules.word_finding)):
            if findings.shape[0] and (int(findings.min()) < 0 or int(findings.max()) >= self.num_findings):
                raise ValueError(f"phrase rules: {name} names a finding outside 0..{self.num_findings - 1}")
        if g:
            width = rules.gate_context.shape[1]
            if bool((rules.gate_context[:, -1] != -1).any()) or int(rules.gate_length.max()) >= width:
                raise ValueError("phrase rules: every gate context row must end with -1 padding")
            if int(rules.gate_length.min()) < 1:
                raise ValueError("phrase rules: a gate's context needs at least one word")

    def phrase_rules(self) -> PhraseRules:
        """The rules held (``K = 0`` when none were set)."""
        return PhraseRules(self.phrase_context, self.phrase_length, self.phrase_word, self.phrase_finding,
                           self.phrase_label, self.phrase_sentence_end, self.phrase_required, self.phrase_fallback,
                           self.phrase_gate_context, self.phrase_gate_length, self.phrase_gate_finding,
                           self.phrase_gate_end, self.phrase_word_finding, self.phrase_word_id,
                           self.phrase_gate_strict, self.phrase_strict_gate, self.phrase_strict_word)

    def per_head(self, logits: torch.Tensor) -> list[torch.Tensor]:
        """``logits [B, C_total]`` split into one ``[B, C_f]`` block per head, in head order."""
        blocks: list[torch.Tensor] = []
        for f in range(self.num_findings):
            blocks.append(logits[:, self.offsets[f] : self.offsets[f + 1]])
        return blocks

    def decisions(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits [B, C_total]`` -> the class each head chose, ``[B, F] long``."""
        return torch.stack([block.argmax(dim=-1) for block in self.per_head(logits)], dim=1)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits [B, C_total]`` -> each head's softmax, concatenated in head order ``[B, C_total]``."""
        return torch.cat([torch.softmax(block, dim=-1) for block in self.per_head(logits)], dim=-1)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # the rules have as many rows as the training reports gave: take the saved shapes; a model saved
        # before the rules existed has none (decoding as it was)
        for name in PHRASE_BUFFERS:
            saved = state_dict.get(prefix + name)
            if saved is None:
                state_dict[prefix + name] = getattr(self, name)
            else:
                setattr(self, name, torch.empty_like(saved, device=self.class_embed.device))
        super()._load_from_state_dict(state_dict, prefix, *args)
        self.check_phrase_rules(self.phrase_rules())

    def forward(
        self, tokens: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor | None = None
    ) -> FindingOutputs:
        """Pool, classify and build the memory tokens.

        Args:
            tokens: ``[B, N, d]`` patch tokens.
            mask: ``[B, N] bool`` (True = real patch).
            labels: ``[B, F] long`` class per finding (``-1`` unknown) to build the tokens from, while
                training; None (inference) uses the heads' decisions throughout.

        Returns:
            :class:`FindingOutputs`.
        """
        x = self.norm(tokens)
        gated = torch.tanh(self.attn_value(x)) * torch.sigmoid(self.attn_gate(x))
        scores = self.attn_score(gated).transpose(1, 2)  # [B, F, N]
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        attention = torch.softmax(scores, dim=-1)
        pooled = self.dropout(torch.bmm(attention, x))  # [B, F, d]
        logits: list[torch.Tensor] = []
        expected: list[torch.Tensor] = []
        for f, classifier in enumerate(self.classifiers):
            head_logits = classifier(pooled[:, f])
            logits.append(head_logits)
            start, stop = self.offsets[f], self.offsets[f + 1]
            chosen = head_logits.argmax(dim=-1)
            if labels is not None:
                known = labels[:, f]
                chosen = torch.where(known >= 0, known, chosen)
            expected.append(self.class_embed[start:stop].index_select(0, chosen))
        class_tokens = torch.stack(expected, dim=1)  # [B, F, d]
        memory = self.token_norm(class_tokens + self.type_embed[None])
        return FindingOutputs(torch.cat(logits, dim=-1), memory, attention)

