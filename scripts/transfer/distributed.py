"""Coordination of ranks in a ``torchrun`` run: rank 0 writes shared files first, the others then read them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def distributed() -> bool:
    """True inside an initialised ``torch.distributed`` process group."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def is_rank0() -> bool:
    """True for rank 0 of a distributed run, and for a plain run."""
    return not distributed() or torch.distributed.get_rank() == 0


@contextlib.contextmanager
def rank0_first() -> Iterator[None]:
    """Run the block on rank 0 first; the other ranks run it after rank 0 is done (then they reuse its files)."""
    if not distributed():
        yield
        return
    if not is_rank0():
        torch.distributed.barrier()
    yield
    if is_rank0():
        torch.distributed.barrier()
