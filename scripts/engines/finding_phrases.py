"""The phrase rules of finding-consistent decoding, read from the training reports.

For each finding with a head, the training sentences that state it (read sentence by sentence with the
same rule-based extractor that labels the heads, :class:`scripts.engines.ReportFindingLabeler`) are put in
a prefix tree of word ids. A word is a rule when every sentence through it states one class while the
sentences through its parent prefix state several: there the sentence commits to that class
("lymphovascular invasion" -> "present" / "not"; "histologic type invasive" -> "ductal" / "lobular").
While decoding, the model bans such a word when the heads chose another class
(:mod:`scripts.networks.finding_phrases`).

A sentence start is a *gate* when every training sentence through it states one finding and those sentences
still state several of its classes ("lymphovascular invasion is"): decoding then allows only words that the
training sentences stating that finding use, and ends the sentence only where a training sentence ended, so
a sentence cannot drift into another finding's words between naming a finding and stating its class (where
no rule would apply).

A finding is *required* when at least :data:`REQUIRED_SHARE` of the training reports have a sentence that
goes through one of its rule words; each class of a finding gets a *fallback sentence*, the most frequent
training sentence that states that class and no other finding (:func:`fallback_sentences`; none where the
class is only ever stated beside another finding). A decoded report
that leaves a required finding out gets the fallback sentence of the heads' class appended.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from scripts.flags import as_flag
from scripts.networks.finding_phrases import PhraseRules, empty_phrase_rules

from .grounding import ReportFindingLabeler

logger = logging.getLogger("histgen.grounding")

__all__ = ["REQUIRED_SHARE", "SENTENCE_END", "build_phrase_rules", "fallback_sentences", "finding_phrase_rules",
           "required_findings", "with_finding_phrases"]

#: the token that ends a sentence in cleaned report text.
SENTENCE_END = "."

#: the share of training reports that must state a finding (through a rule word) for it to be required.
REQUIRED_SHARE = 0.95


def _sentences(ids: Sequence[int], sentence_end: int) -> list[list[int]]:
    sentences, current = [], []
    for token in ids:
        if token == sentence_end:
            if current:
                sentences.append(current)
            current = []
        else:
            current.append(token)
    if current:
        sentences.append(current)
    return sentences


def build_phrase_rules(
    sentences: Iterable[tuple[Sequence[int], Sequence[int]]], num_findings: int, sentence_end: int,
    reads: Callable[[Sequence[int]], Sequence[int]] | None = None,
) -> PhraseRules:
    """Rules and gates from ``(word ids, labels [F])`` per sentence (``-1`` = the sentence does not state the
    finding); ``sentences`` should be every training sentence, those that state no finding included (the gates
    need to know which sentence starts only ever lead to one finding). ``reads`` labels a sentence start as the
    labels were made (``words -> labels [F]``); with it, the starts that have committed to a class their words
    do not state yet become strict gates (none without it).

    Returns:
        :class:`PhraseRules` sorted by (finding, context, word), gates sorted by (context, word), no finding
        required (see :func:`required_findings`).
    """
    classes: list[dict[tuple[int, ...], set[int]]] = [{} for _ in range(num_findings)]
    stating: list[Counter[tuple[int, ...]]] = [Counter() for _ in range(num_findings)]
    through: Counter[tuple[int, ...]] = Counter()
    ends: set[tuple[int, ...]] = set()
    finding_words: set[tuple[int, int]] = set()
    for words, labels in sentences:
        prefixes = [tuple(words[:end]) for end in range(1, len(words) + 1)]
        through.update(prefixes)
        if prefixes:
            ends.add(prefixes[-1])
        for f, label in enumerate(labels):
            if label < 0:
                continue
            tree = classes[f]
            tree.setdefault((), set()).add(int(label))
            stating[f].update(prefixes)
            finding_words.update((f, int(w)) for w in words)
            for prefix in prefixes:
                tree.setdefault(prefix, set()).add(int(label))
    rules: list[tuple[int, tuple[int, ...], int, int]] = []
    for f, tree in enumerate(classes):
        for prefix, seen in tree.items():
            if prefix and len(seen) == 1 and len(tree[prefix[:-1]]) > 1:
                rules.append((f, prefix[:-1], prefix[-1], next(iter(seen))))
    rules.sort()
    gates = _gates(classes, stating, through, ends, reads)
    children: dict[tuple[int, ...], set[int]] = {}
    for prefix in through:
        children.setdefault(prefix[:-1], set()).add(prefix[-1])
    strict = sorted({(g, w) for g, (context, _, _, is_strict) in enumerate(gates) if is_strict
                     for w in children.get(context, ())})
    if not rules:
        rules_out = empty_phrase_rules(torch.device("cpu"))
        return rules_out._replace(sentence_end=torch.tensor([sentence_end]),
                                  required=torch.zeros(num_findings, dtype=torch.long))
    return PhraseRules(
        _padded([c for _, c, _, _ in rules]),
        torch.tensor([len(c) for _, c, _, _ in rules], dtype=torch.long),
        torch.tensor([w for _, _, w, _ in rules], dtype=torch.long),
        torch.tensor([f for f, _, _, _ in rules], dtype=torch.long),
        torch.tensor([c for _, _, _, c in rules], dtype=torch.long),
        torch.tensor([sentence_end], dtype=torch.long),
        torch.zeros(num_findings, dtype=torch.long),
        torch.full([0, 1], -1, dtype=torch.long),
        _padded([c for c, _, _, _ in gates]),
        torch.tensor([len(c) for c, _, _, _ in gates], dtype=torch.long),
        torch.tensor([f for _, f, _, _ in gates], dtype=torch.long),
        torch.tensor([e for _, _, e, _ in gates], dtype=torch.long),
        torch.tensor([f for f, _ in sorted(finding_words)], dtype=torch.long),
        torch.tensor([w for _, w in sorted(finding_words)], dtype=torch.long),
        torch.tensor([s for _, _, _, s in gates], dtype=torch.long),
        torch.tensor([g for g, _ in strict], dtype=torch.long),
        torch.tensor([w for _, w in strict], dtype=torch.long),
    )


def _gates(classes: Sequence[dict[tuple[int, ...], set[int]]], stating: Sequence[Counter[tuple[int, ...]]],
           through: Counter[tuple[int, ...]], ends: set[tuple[int, ...]],
           reads: Callable[[Sequence[int]], Sequence[int]] | None) -> list[tuple[tuple[int, ...], int, int, int]]:
    """``(context, finding, 1 if a training sentence ended there else 0, strict)``: the sentence starts through
    which every training sentence states ``finding``, either with several classes between them (strict 0) or,
    with ``reads``, with one class that the start's own words do not state yet (strict 1)."""
    gates = []
    for f, tree in enumerate(classes):
        for prefix, seen in tree.items():
            if not prefix or stating[f][prefix] != through[prefix]:
                continue
            if len(seen) > 1:
                gates.append((prefix, f, int(prefix in ends), 0))
            elif reads is not None and reads(prefix)[f] != next(iter(seen)):
                gates.append((prefix, f, int(prefix in ends), 1))
    return sorted(gates)


def _padded(contexts: Sequence[tuple[int, ...]]) -> torch.Tensor:
    """``[n, L + 1] long`` word ids, ``-1`` after each context (the last column always ``-1``)."""
    width = max([len(c) for c in contexts] + [0]) + 1
    table = torch.full([len(contexts), width], -1, dtype=torch.long)
    for k, words in enumerate(contexts):
        if words:
            table[k, : len(words)] = torch.tensor(words, dtype=torch.long)
    return table


def fallback_sentences(sentences: Sequence[tuple[Sequence[int], Sequence[int]]], num_classes: Sequence[int],
                       sentence_end: int) -> torch.Tensor:
    """``[C_total, W] long``: per class of each finding, the most frequent of ``(word ids, labels [F])`` sentences
    that states that class and no other finding, then the sentence end; ``-1`` padding. A class that the
    training sentences only state together with another finding gets no sentence (an all ``-1`` row): such a
    sentence would also state that other finding's training value, whatever the heads chose for it (renal-two
    states the grade only inside the diagnosis sentence). Ties go to the shorter sentence."""
    offsets = [0]
    for c in num_classes:
        offsets.append(offsets[-1] + int(c))
    counts: list[Counter[tuple[int, ...]]] = [Counter() for _ in range(offsets[-1])]
    for words, labels in sentences:
        stated = [f for f, label in enumerate(labels) if label >= 0]
        if len(stated) == 1:
            counts[offsets[stated[0]] + int(labels[stated[0]])][tuple(words)] += 1
    chosen = [min(c, key=lambda w: (-c[w], len(w), w)) + (sentence_end,) if c else () for c in counts]
    width = max([len(w) for w in chosen] + [1])
    table = torch.full([len(chosen), width], -1, dtype=torch.long)
    for row, words in enumerate(chosen):
        if words:
            table[row, : len(words)] = torch.tensor(words, dtype=torch.long)
    return table


def required_findings(rules: PhraseRules, reports: Sequence[Sequence[Sequence[int]]],
                      share: float = REQUIRED_SHARE) -> torch.Tensor:
    """``[F] long``: 1 for each finding stated through a rule word by at least ``share`` of ``reports``.

    Args:
        rules: the rules (their ``required`` gives ``F``).
        reports: each report as its sentences' word ids.
        share: the fewest reports, as a share, that must state the finding.
    """
    num_findings = rules.required.shape[0]
    starts: dict[tuple[int, ...], set[int]] = {}
    for k in range(rules.word.shape[0]):
        prefix = (*rules.context[k, : int(rules.length[k])].tolist(), int(rules.word[k]))
        starts.setdefault(prefix, set()).add(int(rules.finding[k]))
    stated = [0] * num_findings
    total = 0
    for sentences in reports:
        total += 1
        found: set[int] = set()
        for words in sentences:
            for end in range(1, len(words) + 1):
                found |= starts.get(tuple(words[:end]), set())
        for f in found:
            stated[f] += 1
    if not total:
        return torch.zeros(num_findings, dtype=torch.long)
    return torch.tensor([int(count >= share * total) for count in stated], dtype=torch.long)


def finding_phrase_rules(
    labeler: ReportFindingLabeler, vocab: Any, annotation_file: str | os.PathLike[str], enabled: Any = True
) -> PhraseRules | None:
    """The rules of a training annotation's ``train`` reports, or None (``enabled`` false, no finding heads,
    or a vocabulary without a sentence end).

    Args:
        labeler: the finding heads' labeler (classes in head order).
        vocab: the report vocabulary (:class:`scripts.text.Vocabulary`).
        annotation_file: HistGen annotation JSON.
        enabled: ``finding_phrase_decoding`` (bool or a command-line string).
    """
    if not as_flag(enabled, "finding_phrase_decoding") or not labeler.names:
        return None
    if SENTENCE_END not in vocab.tokens:
        logger.info("finding-consistent decoding off: the vocabulary has no %r token", SENTENCE_END)
        return None
    from scripts.data import load_annotation

    sentence_end = vocab.token_to_id(SENTENCE_END)
    reports = [item["report"] for item in load_annotation(annotation_file, required_splits=("train",))["train"]]
    pairs, split_reports = [], []
    for report in reports:
        split_reports.append(_sentences(vocab.encode(report)[1:-1], sentence_end))
        for words in split_reports[-1]:
            pairs.append((words, labeler(vocab.decode([0, *words]))))
    rules = build_phrase_rules(pairs, len(labeler.names), sentence_end,
                               reads=lambda words: labeler(vocab.decode([0, *words])))
    rules = rules._replace(required=required_findings(rules, split_reports),
                           fallback=fallback_sentences(pairs, list(labeler.num_classes.values()), sentence_end))
    counts = torch.bincount(rules.finding, minlength=len(labeler.names)).tolist()
    required = rules.required.tolist()
    gates, strict = rules.gate_finding.shape[0], int(rules.gate_strict.sum())
    logger.info("finding-consistent decoding: %s; %d sentence starts gated (%d strict)", ", ".join(
        f"{n} {c} rules{' (required)' if r else ''}" for n, c, r in zip(labeler.names, counts, required, strict=True)),
        gates, strict)
    return rules


def with_finding_phrases(network: torch.nn.Module, rules: PhraseRules | None) -> torch.nn.Module:
    """``network`` with ``rules`` set on its finding heads (unchanged when ``rules`` is None or it has no heads)."""
    heads = getattr(network, "findings", None)
    if rules is not None and heads is not None:
        heads.set_phrase_rules(rules)
    return network
