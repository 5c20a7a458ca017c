"""Padding a list of bag items into one batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .bag_datasets import SKIPPED_KEY
from .errors import BagDataError

__all__ = ["COORD_PAD", "collate_bags"]

#: Value of padded coordinates (real coordinates are >= 0).
COORD_PAD = -1


def _row_layout(item: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, int, torch.Tensor | None]:
    """Where an item's rows go in its batch row: ``(positions, sources, row length, slide bounds in the row)``.

    ``features[row, positions[k]] = item_features[sources[k]]``. A multi-slide case with ``region_patches`` fills
    the last region of every slide but the last with repeats of that slide's own first patches (the *filler*,
    outside the slide's bounds), so that no region mixes two slides while the mask stays left-aligned.
    """
    size = int(item["features"].shape[0])
    bounds = item.get("case_bounds")
    if bounds is None:
        every = torch.arange(size)
        return every, every, size, None
    region = item.get("region_patches")
    positions, sources, placed, start = [], [], [], 0
    for index, (first, end) in enumerate(bounds.tolist()):
        count = end - first
        positions.append(torch.arange(start, start + count))
        sources.append(torch.arange(first, end))
        placed.append((start, start + count))
        start += count
        filler = -count % region if region and count and index < len(bounds) - 1 else 0
        if filler:
            positions.append(torch.arange(start, start + filler))
            sources.append(first + torch.arange(filler) % count)
            start += filler
    return torch.cat(positions), torch.cat(sources), start, torch.tensor(placed, dtype=torch.long).view(-1, 2)


def collate_bags(items: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """Pad bags of different sizes into one batch (usable as a DataLoader ``collate_fn``, with workers).

    Args:
        items: dataset items ``{"id", "features" [N_i, D], "coords" [N_i, 2] | None, "report",
            "report_ids" [T_i] | None}``; skip markers (``{"id", "skipped": reason}``) and None are dropped.

    Returns:
        A dict (B = number of kept items, Nmax = largest bag, Tmax = longest id list)::

            features     [B, Nmax, D] float32, zero-padded
            mask         [B, Nmax] bool, True = real patch
            num_patches  [B] int64
            coords       [B, Nmax, 2] int64 padded with -1, or None if any item has no coords
            report_ids   [B, Tmax] int64, 0-padded, or None if any item has none
            report_mask  [B, Tmax] float32, 1.0 at every position of an item's (truncated) id list
                         (BOS and EOS included, as the reference), or None
            ids          list[str]; reports: list[str]
            skipped      list[{"id", "reason"}] of dropped items
            case_bounds  (only when an item is a multi-slide case) list of LongTensor [S, 2] per item: the
                         (start, end) positions of each slide of a case in the padded row, None for other items
            case_slides  (idem) list of the case's slide ids per item, None for other items

        A multi-slide case (items with ``case_bounds``, see :mod:`scripts.data.bag_datasets`) with
        ``region_patches`` has the last region of each slide but the last filled up with repeats of that slide's
        own first patches (coords -1, outside its ``case_bounds``), so that no region mixes two slides while the
        mask stays left-aligned as the network requires; ``num_patches`` counts the filler too.

        When every item was dropped, B = 0 and ``features`` is ``[0, 0, 0]``: check ``len(batch["ids"])``.

    Raises:
        BagDataError: bags in the batch have different feature dimensions.
    """
    skipped = []
    kept = []
    for item in items:
        if item is None:
            skipped.append({"id": None, "reason": "item is None"})
        elif SKIPPED_KEY in item:
            skipped.append({"id": item.get("id"), "reason": item[SKIPPED_KEY]})
        else:
            kept.append(item)

    batch: dict[str, Any] = {
        "ids": [item["id"] for item in kept],
        "reports": [item.get("report") or "" for item in kept],
        "skipped": skipped,
    }
    if not kept:
        batch.update(
            features=torch.zeros(0, 0, 0),
            mask=torch.zeros(0, 0, dtype=torch.bool),
            num_patches=torch.zeros(0, dtype=torch.long),
            coords=None,
            report_ids=None,
            report_mask=None,
        )
        return batch

    dims = {int(item["features"].shape[1]) for item in kept}
    if len(dims) > 1:
        detail = ", ".join(f"{item['id']}: {int(item['features'].shape[1])}" for item in kept)
        raise BagDataError(f"bags in one batch have different feature dimensions ({detail})")
    (dim,) = dims
    layouts = [_row_layout(item) for item in kept]
    sizes = [length for _, _, length, _ in layouts]
    batch_size, max_patches = len(kept), max(sizes)

    features = torch.zeros(batch_size, max_patches, dim, dtype=torch.float32)
    mask = torch.zeros(batch_size, max_patches, dtype=torch.bool)
    has_coords = all(item.get("coords") is not None for item in kept)
    coords = torch.full((batch_size, max_patches, 2), COORD_PAD, dtype=torch.long) if has_coords else None
    for row, (item, (positions, sources, length, bounds)) in enumerate(zip(kept, layouts)):
        features[row, positions] = item["features"][sources]
        mask[row, :length] = True
        if coords is not None:
            real = positions if bounds is None else torch.cat([torch.arange(a, b) for a, b in bounds.tolist()])
            coords[row, real] = item["coords"]  # filler rows keep COORD_PAD: they are no patch of their own
    batch.update(features=features, mask=mask, num_patches=torch.tensor(sizes, dtype=torch.long), coords=coords)
    if any("case_bounds" in item for item in kept):
        batch["case_bounds"] = [bounds for _, _, _, bounds in layouts]
        batch["case_slides"] = [item.get("case_slides") for item in kept]

    if all(item.get("report_ids") is not None for item in kept):
        lengths = [int(item["report_ids"].shape[0]) for item in kept]
        report_ids = torch.zeros(batch_size, max(lengths), dtype=torch.long)
        report_mask = torch.zeros(batch_size, max(lengths), dtype=torch.float32)
        for row, (item, length) in enumerate(zip(kept, lengths)):
            report_ids[row, :length] = item["report_ids"]
            report_mask[row, :length] = 1.0
        batch.update(report_ids=report_ids, report_mask=report_mask)
    else:
        batch.update(report_ids=None, report_mask=None)
    return batch
