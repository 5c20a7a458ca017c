"""Batch preparation for MONAI's ``SupervisedTrainer`` / ``SupervisedEvaluator``.

A batch is what :func:`scripts.data.collate_bags` returns. MONAI calls
``prepare_batch(batchdata, device, non_blocking)`` and accepts ``(inputs, targets, args, kwargs)``;
the inferer then runs ``network(inputs, *args, **kwargs)``.
"""

from __future__ import annotations

from typing import Any

import torch


def _move(batch: dict[str, Any], device: torch.device | str | None, non_blocking: bool) -> dict[str, Any]:
    out = dict(batch)
    for key in ("features", "mask", "report_ids", "report_mask"):
        value = out.get(key)
        if isinstance(value, torch.Tensor):
            out[key] = value.to(device=device, non_blocking=non_blocking)
    return out


def prepare_teacher_forcing_batch(
    batchdata: dict[str, Any], device: torch.device | str | None = None, non_blocking: bool = False, **kwargs: Any
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor], dict[str, torch.Tensor]]:
    """Training: ``network(features, report_ids, mask=mask)``; targets are ``(report_ids, report_mask)``."""
    if batchdata.get("report_ids") is None:
        raise ValueError(f"training batch without reports (slides {batchdata.get('ids')})")
    b = _move(batchdata, device, non_blocking)
    return b["features"], (b["report_ids"], b["report_mask"]), (b["report_ids"],), {"mask": b["mask"]}


def prepare_generation_batch(
    batchdata: dict[str, Any], device: torch.device | str | None = None, non_blocking: bool = False, **kwargs: Any
) -> tuple[torch.Tensor, dict[str, Any], tuple[()], dict[str, torch.Tensor]]:
    """Validation/inference: ``generate(features, mask=mask)``; the label carries ids and references."""
    b = _move(batchdata, device, non_blocking)
    label = {"ids": b["ids"], "report_ids": b.get("report_ids"), "reports": b.get("reports")}
    return b["features"], label, (), {"mask": b["mask"]}
