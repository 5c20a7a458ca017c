"""Batched patch reading: ``uint8 [B, 3, R, R]`` batches for a list of level-0 coordinates.

Two paths, one interface (:class:`PatchBatchReader`):

- cuCIM: one multi-location ``CuImage.read_region(locations, size, level, num_workers, batch_size)``
  call; cuCIM decodes with ``num_workers`` threads and prefetches batches in the background while
  the caller encodes.
- OpenSlide (or cuCIM when asked): a ``torch.utils.data.DataLoader`` with ``num_workers`` worker
  processes over :class:`SlidePatchDataset`, which reads one patch at a time through MONAI's
  ``WSIReader`` and keeps one opened slide per worker.

Batches are channels-last in memory (``[B, 3, R, R]`` with strides of ``[B, R, R, 3]``), which is
what fast uint8 resizing wants; they are pinned when ``pin_memory`` is set (CUDA devices).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .read_plan import ReadPlan
from .slide_errors import SlideError, SlideReadError
from .slide_reader import Slide


class SlidePatchDataset(Dataset):
    """Patches of one slide, read one by one (for DataLoader workers).

    Args:
        path: slide file.
        coords: ``[N, 2]`` int64 level-0 ``(x, y)`` of the patches.
        level: level to read at.
        read_size: patch side at ``level``.
        backend: ``"cucim"`` or ``"openslide"`` (resolved, not ``"auto"``).
        assume_mpp: passed to :class:`Slide` (only needed to open slides without metadata).

    Returns (per item):
        ``(patch uint8 [3, R, R], index)``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        coords: np.ndarray,
        level: int,
        read_size: int,
        backend: str,
        assume_mpp: float | None = None,
    ):
        self.path = str(path)
        self.coords = np.asarray(coords, dtype=np.int64)
        self.level = int(level)
        self.read_size = int(read_size)
        self.backend = backend
        self.assume_mpp = assume_mpp
        self._slide: Slide | None = None

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    def _opened(self) -> Slide:
        if self._slide is None:  # opened lazily: once per worker process
            # Reading needs no resolution; a placeholder keeps slides without metadata openable.
            mpp = 1.0 if self.assume_mpp is None else self.assume_mpp
            self._slide = Slide(self.path, wsi_backend=self.backend, assume_mpp=mpp)
        return self._slide

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x, y = self.coords[index]
        patch = self._opened().read_region((int(x), int(y)), (self.read_size, self.read_size), self.level)
        return torch.from_numpy(patch).permute(2, 0, 1), int(index)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_slide"] = None  # never ship an opened handle to a worker
        return state


def _collate_channels_last(items: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    patches = torch.stack([p.permute(1, 2, 0) for p, _ in items]).permute(0, 3, 1, 2)
    return patches, torch.tensor([i for _, i in items], dtype=torch.int64)


class PatchBatchReader:
    """Iterate over ``(patches uint8 [B, 3, R, R], indices int64 [B])`` for one slide.

    Args:
        slide: the opened slide (its backend picks the path).
        coords: ``[N, 2]`` int64 level-0 ``(x, y)``.
        plan: read level and read size ``R = plan.read_size``.
        batch_size: patches per batch.
        num_workers: cuCIM decode threads, or DataLoader worker processes (0 = main process).
        pin_memory: pin batches for fast, asynchronous host-to-CUDA copies.
        use_dataloader: force the DataLoader path even for cuCIM slides.

    Note:
        ``indices`` refer to rows of ``coords``; batches come in order.

        .. code-block:: python

            for patches, idx in PatchBatchReader(slide, grid.coords, plan, batch_size=64, num_workers=2):
                feats[idx] = encoder(encoder.transform(patches.to(device)))
    """

    def __init__(
        self,
        slide: Slide,
        coords: np.ndarray,
        plan: ReadPlan,
        batch_size: int = 64,
        num_workers: int = 2,
        pin_memory: bool = False,
        use_dataloader: bool = False,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.slide = slide
        self.coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
        self.plan = plan
        self.batch_size = int(batch_size)
        self.num_workers = max(0, int(num_workers))
        self.pin_memory = bool(pin_memory)
        self.use_dataloader = use_dataloader or slide.backend != "cucim"

    def __len__(self) -> int:
        return (len(self.coords) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if len(self.coords) == 0:
            return iter(())
        return self._iter_dataloader() if self.use_dataloader else self._iter_cucim()

    def _iter_cucim(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        size = self.plan.read_size
        batches = self.slide.native_handle().read_region(
            self.coords.tolist(),
            (size, size),
            self.plan.level,
            num_workers=max(1, self.num_workers),
            batch_size=self.batch_size,
            drop_last=False,
            prefetch_factor=2,
        )
        start = 0
        for batch in batches:
            array = np.asarray(batch)
            if array.ndim == 3:
                array = array[None]
            # Copy now: cuCIM frees or reuses a batch's buffer once the iterator moves on.
            patches = torch.empty(array.shape[:3] + (3,), dtype=torch.uint8, pin_memory=self.pin_memory)
            patches.numpy()[...] = array[..., :3]
            del array, batch
            patches = patches.permute(0, 3, 1, 2)
            stop = start + patches.shape[0]
            yield patches, torch.arange(start, stop, dtype=torch.int64)
            start = stop
        if start != len(self.coords):
            raise RuntimeError(f"{self.slide.name}: cuCIM returned {start} of {len(self.coords)} patches")

    def _iter_dataloader(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        dataset = SlidePatchDataset(
            self.slide.path, self.coords, self.plan.level, self.plan.read_size, self.slide.backend, self.slide.mpp
        )
        loader = DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=_collate_channels_last,
            pin_memory=self.pin_memory,
            prefetch_factor=4 if self.num_workers > 0 else None,
        )
        try:
            yield from loader
        except SlideError:
            raise
        except Exception as err:  # a worker's error comes back as text with the worker's traceback
            lines = str(err).strip().splitlines() or [type(err).__name__]
            problem = lines[-1].split(": ", 1)[-1] if "Error: " in lines[-1] else lines[-1]
            raise SlideReadError(self.slide.name, f"patch reading failed in a DataLoader worker: {problem}") from err
