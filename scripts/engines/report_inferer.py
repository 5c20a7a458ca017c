"""Inferer and post-processing that turn feature bags into report texts inside MONAI engines."""

from __future__ import annotations

from typing import Any

import torch
from monai.inferers import Inferer
from monai.utils import CommonKeys

from scripts.text import Vocabulary


class ReportGenerationInferer(Inferer):
    """Runs ``network.generate`` (beam search or greedy) instead of a forward pass.

    Args:
        beam_size: beams (1 = greedy).
        max_len: longest report in tokens; None uses the network's ``max_seq_length``.
    """

    def __init__(self, beam_size: int = 3, max_len: int | None = None) -> None:
        super().__init__()
        self.beam_size = beam_size
        self.max_len = max_len

    def __call__(self, inputs: torch.Tensor, network: torch.nn.Module, *args: Any, **kwargs: Any) -> torch.Tensor:
        """``inputs [B, N, D]`` (+ ``mask=[B, N]``) -> ids ``[B, L]``."""
        model = network.module if hasattr(network, "module") else network  # DistributedDataParallel
        return model.generate(inputs, mask=kwargs.get("mask"), beam_size=self.beam_size, max_len=self.max_len)


class DecodeReports:
    """Post-processing: adds ``"hypotheses"``, ``"references"`` (decoded texts) and ``"slide_ids"`` to an output.

    References are the decoded reference ids (cleaned, truncated, ``<unk>``-mapped), which is what
    the paper's scores compare against. Works on the undecollated output dict of a
    ``SupervisedEvaluator(decollate=False)``.
    """

    def __init__(self, vocab: Vocabulary) -> None:
        self.vocab = vocab

    def __call__(self, output: dict[str, Any]) -> dict[str, Any]:
        pred = output[CommonKeys.PRED]
        output["hypotheses"] = self.vocab.decode_batch(pred.tolist())
        label = output.get(CommonKeys.LABEL) or {}
        ref_ids = label.get("report_ids")
        output["references"] = self.vocab.decode_batch(ref_ids.tolist()) if ref_ids is not None else None
        output["slide_ids"] = label.get("ids")
        output["raw_reports"] = label.get("reports")
        return output


def caption_pairs(output: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """Output transform for :class:`scripts.metrics.CaptionMetrics`: ``(hypotheses, references, ids)``."""
    return output["hypotheses"], output["references"], output["slide_ids"]
