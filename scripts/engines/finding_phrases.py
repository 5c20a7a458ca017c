"""The phrase rules of finding-consistent decoding, read from the training reports.

For each finding with a head, the training sentences that state it (read sentence by sentence with the
same rule-based extractor that labels the heads, :class:`scripts.engines.ReportFindingLabeler`) are put in
a prefix tree of word ids. A word is a rule when every sentence through it states one class while the
sentences through its parent prefix state several: there the sentence commits to that class
("lymphovascular invasion" -> "present" / "not"; "histologic type invasive" -> "ductal" / "lobular").
While decoding, the model bans such a word when the heads chose another class
(:mod:`scripts.networks.finding_phrases`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from scripts.flags import as_flag
from scripts.networks.finding_phrases import PhraseRules, empty_phrase_rules

from .grounding import ReportFindingLabeler

logger = logging.getLogger("histgen.grounding")

__all__ = ["SENTENCE_END", "build_phrase_rules", "finding_phrase_rules", "with_finding_phrases"]

#: the token that ends a sentence in cleaned report text.
SENTENCE_END = "."


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
    sentences: Iterable[tuple[Sequence[int], Sequence[int]]], num_findings: int, sentence_end: int
) -> PhraseRules:
    """Rules from ``(word ids, labels [F])`` per sentence (``-1`` = the sentence does not state the finding).

    Returns:
        :class:`PhraseRules` sorted by (finding, context, word).
    """
    classes: list[dict[tuple[int, ...], set[int]]] = [{} for _ in range(num_findings)]
    for words, labels in sentences:
        for f, label in enumerate(labels):
            if label < 0:
                continue
            tree = classes[f]
            tree.setdefault((), set()).add(int(label))
            for end in range(1, len(words) + 1):
                tree.setdefault(tuple(words[:end]), set()).add(int(label))
    rules: list[tuple[int, tuple[int, ...], int, int]] = []
    for f, tree in enumerate(classes):
        for prefix, seen in tree.items():
            if prefix and len(seen) == 1 and len(tree[prefix[:-1]]) > 1:
                rules.append((f, prefix[:-1], prefix[-1], next(iter(seen))))
    rules.sort()
    if not rules:
        rules_out = empty_phrase_rules(torch.device("cpu"))
        return rules_out._replace(sentence_end=torch.tensor([sentence_end]))
    width = max(len(context) for _, context, _, _ in rules) + 1
    context = torch.full([len(rules), width], -1, dtype=torch.long)
    for k, (_, words, _, _) in enumerate(rules):
        context[k, : len(words)] = torch.tensor(words, dtype=torch.long)
    return PhraseRules(
        context,
        torch.tensor([len(c) for _, c, _, _ in rules], dtype=torch.long),
        torch.tensor([w for _, _, w, _ in rules], dtype=torch.long),
        torch.tensor([f for f, _, _, _ in rules], dtype=torch.long),
        torch.tensor([c for _, _, _, c in rules], dtype=torch.long),
        torch.tensor([sentence_end], dtype=torch.long),
    )


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
    pairs = []
    for report in reports:
        for words in _sentences(vocab.encode(report)[1:-1], sentence_end):
            pairs.append((words, labeler(vocab.decode([0, *words]))))
    rules = build_phrase_rules(pairs, len(labeler.names), sentence_end)
    counts = torch.bincount(rules.finding, minlength=len(labeler.names)).tolist()
    logger.info("finding-consistent decoding: %s", ", ".join(f"{n} {c} rules" for n, c in zip(labeler.names,
                                                                                             counts, strict=True)))
    return rules


def with_finding_phrases(network: torch.nn.Module, rules: PhraseRules | None) -> torch.nn.Module:
    """``network`` with ``rules`` set on its finding heads (unchanged when ``rules`` is None or it has no heads)."""
    heads = getattr(network, "findings", None)
    if rules is not None and heads is not None:
        heads.set_phrase_rules(rules)
    return network
