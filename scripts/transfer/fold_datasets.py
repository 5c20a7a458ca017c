"""Datasets over the current fold's slides, padded batches with targets, a fold-aware distributed sampler.

Items::

    {"id": slide id, "index": table index, "features": [N, D] float32, "coords": [N, 2] int64 or None,
     "label": int}                                   # subtyping
     "bin": int, "event": int, "time": float}       # survival

Batches (:func:`collate_labelled_bags`) are :func:`scripts.data.collate_bags` batches (``features [B, Nmax, D]``,
``mask [B, Nmax]``, ``ids``...) plus ``index [B]`` and the target tensors.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset, DistributedSampler

from scripts.data import collate_bags, read_feature_file

from .fold_data import CrossValidationData
from .splits import PARTS

__all__ = ["TARGET_DTYPES", "FoldBagDataset", "FoldDistributedSampler", "collate_labelled_bags",
           "prepare_channel_first_mil_batch", "prepare_mil_batch"]

#: Per-slide values that travel with a batch, and their tensor dtype.
TARGET_DTYPES: dict[str, torch.dtype] = {
    "index": torch.long, "label": torch.long, "bin": torch.long, "event": torch.float32, "time": torch.float32,
}


class FoldBagDataset(Dataset):
    """The current fold's slides of one part, with features and targets.

    Args:
        data: the cross-validation state (its current fold decides the slides).
        part: ``"train"``, ``"val"`` or ``"test"``.
        max_patches: cut bags to a random subset of this many patches (scan order kept), or None.
        seed: with ``max_patches``, the subset depends only on ``(seed, epoch, index)``.
    """

    def __init__(self, data: CrossValidationData, part: str, max_patches: int | None = None,
                 seed: int | None = None) -> None:
        if part not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, got {part!r}")
        if max_patches is not None and max_patches < 1:
            raise ValueError(f"max_patches must be >= 1 or None, got {max_patches}")
        self.data = data
        self.part = part
        self.max_patches = max_patches
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.data.records(self.part)) if self.data.fold is not None else 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, i: int) -> dict[str, Any]:
        record = self.data.records(self.part)[i]
        bag = read_feature_file(record.path, slide_id=record.slide_id, feature_dim=self.data.table.feature_dim)
        feats, coords = bag.feats, bag.coords
        if self.max_patches is not None and bag.num_patches > self.max_patches:
            generator = None
            if self.seed is not None:
                mixed = ((self.seed * 1_000_003 + self.epoch) * 1_000_033 + record.index) % (2**63 - 1)
                generator = torch.Generator().manual_seed(mixed)
            rows = torch.randperm(bag.num_patches, generator=generator)[: self.max_patches].sort().values
            feats = feats[rows]
            coords = coords[rows] if coords is not None else None
        return {"id": record.slide_id, "index": record.index, "features": feats, "coords": coords,
                **self.data.targets.encode(record)}


def collate_labelled_bags(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pad bags into a batch (:func:`scripts.data.collate_bags`) and stack the targets into tensors."""
    batch = collate_bags(items)
    kept = [item for item in items if item is not None and "features" in item]
    for key, dtype in TARGET_DTYPES.items():
        if kept and all(key in item for item in kept):
            batch[key] = torch.tensor([item[key] for item in kept], dtype=dtype)
    return batch


def prepare_mil_batch(
    batchdata: dict[str, Any], device: torch.device | str | None = None, non_blocking: bool = False, **kwargs: Any
) -> tuple[torch.Tensor, dict[str, torch.Tensor], tuple[()], dict[str, torch.Tensor]]:
    """For MONAI engines: ``network(features, mask=mask)``; the label is the dict of target tensors."""
    move = {"device": device, "non_blocking": non_blocking}
    targets = {k: batchdata[k].to(**move) for k in TARGET_DTYPES if isinstance(batchdata.get(k), torch.Tensor)}
    return batchdata["features"].to(**move), targets, (), {"mask": batchdata["mask"].to(**move)}


def prepare_channel_first_mil_batch(
    batchdata: dict[str, Any], device: torch.device | str | None = None, non_blocking: bool = False, **kwargs: Any
) -> tuple[torch.Tensor, dict[str, torch.Tensor], tuple[()], dict[str, torch.Tensor]]:
    """:func:`prepare_mil_batch` for a ``network_def`` with MONAI's interface: ``network(bags [B, D, N], mask=mask)``
    (the features transposed, a view)."""
    features, targets, args, kwargs_ = prepare_mil_batch(batchdata, device, non_blocking)
    return features.transpose(1, 2), targets, args, kwargs_


class FoldDistributedSampler(DistributedSampler):
    """``DistributedSampler`` whose length follows the dataset as folds change (torch's is fixed at creation).

    Each rank gets ``ceil(len / world)`` indices; with ``even_divisible`` the list is padded by repeating
    indices, so every rank runs the same number of steps. A subclass of torch's sampler, so MONAI's trainer
    calls :meth:`set_epoch` every epoch.
    """

    def __init__(self, dataset: Dataset, shuffle: bool = True, seed: int = 0, num_replicas: int | None = None,
                 rank: int | None = None) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)

    def __len__(self) -> int:
        return math.ceil(len(self.dataset) / self.num_replicas)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)  # type: ignore[arg-type]
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            indices = torch.randperm(n, generator=generator).tolist()
        else:
            indices = list(range(n))
        per_rank = math.ceil(n / self.num_replicas)
        total = per_rank * self.num_replicas
        if n:
            indices += (indices * math.ceil(total / n))[: total - n]
        return iter(indices[self.rank : total : self.num_replicas])
