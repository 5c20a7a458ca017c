"""Share a run's slides among ``torch.distributed`` ranks (initialised by the config overlay).

Rank ``r`` of ``world_size`` takes slides ``i`` with ``i % world_size == r``. Without an initialised
process group the run is a single rank.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import torch.distributed as dist

T = TypeVar("T")


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised process group, else ``(0, 1)``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """Items ``i`` with ``i % world_size == rank``."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside world_size {world_size}")
    return [item for i, item in enumerate(items) if i % world_size == rank]


def barrier() -> None:
    """Wait for all ranks (no-op without a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
