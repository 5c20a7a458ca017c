"""How many CPU threads a workflow uses: chosen from the cores it may use and the size of its work.

torch starts one intra-op thread per core it sees. On a machine shared with other jobs that is the slow
choice: every parallel region ends in a barrier that waits for the slowest thread, and a thread that has
to share its core with another job makes the whole op wait a scheduler time slice. On a 2-core machine
with a 1-minute load of 6-7 the demo's training epochs took 33-41 s with torch's 2 threads and 1.7 s with
one. The rule (:func:`choose_threads`), in order:

1. ``OMP_NUM_THREADS`` set in the environment wins (the user said so for every program they start);
2. else the config key (``num_threads``; ``null`` = automatic) if given;
3. else automatic: ``min(usable cores - loader workers, cores the other jobs leave free, size cap)``,
   at least 1, where

   - *usable cores* are the CPUs this process may run on (``os.sched_getaffinity``) further limited by a
     cgroup CPU quota (``cpu.max`` of cgroup v2, ``cpu.cfs_quota_us`` of v1) when one is set;
   - *cores the other jobs leave free*: usable cores minus the other runnable tasks right now (median
     of a few samples of ``procs_running`` in ``/proc/stat``; not counted where that file is missing);
   - *size cap*: ``work_size // GRAIN`` (``GRAIN`` = 1e9 multiply-adds per thread per step): below
     that, a second thread gains less than its synchronisation costs on a busy machine. ``None`` (size
     unknown) puts no cap.

Inter-op threads are set to 1 (the bundles run no inter-op parallel work) unless ``OMP_NUM_THREADS`` is
set. DataLoader workers keep an explicit setting; ``None`` chooses 0 on 2 cores or fewer, else up to 4
leaving one core to the main process. The choice is applied once per process and logged once.

    choice = apply_thread_choice(num_threads=None, work_size=training_work(8, 8192, 64))
    choice.intra_op, choice.source  # e.g. 1, "automatic"
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = [
    "GRAIN",
    "ThreadChoice",
    "applied_choice",
    "apply_thread_choice",
    "choose_loader_workers",
    "choose_threads",
    "other_runnable_tasks",
    "training_work",
    "usable_cores",
]

logger = logging.getLogger("histgen.threads")

#: multiply-adds per step below which one more intra-op thread does not pay on a shared machine
GRAIN = 1_000_000_000

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_applied: ThreadChoice | None = None


@dataclass(frozen=True)
class ThreadChoice:
    """Thread counts for one process and why they were chosen.

    Attributes:
        intra_op: ``torch.set_num_threads`` value.
        inter_op: ``torch.set_num_interop_threads`` value (None: left as torch set it).
        loader_workers: DataLoader worker processes.
        source: ``"OMP_NUM_THREADS"``, ``"config"`` or ``"automatic"``.
        cores: usable cores (affinity and cgroup quota).
        busy: other runnable tasks seen when choosing (None: not measured).
    """

    intra_op: int
    inter_op: int | None
    loader_workers: int
    source: str
    cores: int
    busy: int | None = None

    def describe(self) -> str:
        """One log line: the counts and the reason."""
        busy = "" if self.busy is None else f", {self.busy} other runnable task(s)"
        inter = "torch's" if self.inter_op is None else str(self.inter_op)
        return (
            f"torch threads: {self.intra_op} intra-op, {inter} inter-op, {self.loader_workers} DataLoader "
            f"worker(s) ({self.source}; {self.cores} usable core(s){busy})"
        )


def _cgroup_quota(root: Path = _CGROUP_ROOT) -> float | None:
    """CPUs allowed by the cgroup CPU quota of this process (None: no quota found)."""
    try:
        fields = (root / "cpu.max").read_text().split()  # cgroup v2: "<quota|max> <period>"
        if fields and fields[0] != "max":
            return int(fields[0]) / int(fields[1])
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:  # cgroup v1
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def usable_cores(cgroup_root: Path = _CGROUP_ROOT) -> int:
    """Cores this process may use: CPU affinity, limited by a cgroup CPU quota (at least 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_quota(cgroup_root)
    if quota is not None:
        cores = min(cores, max(1, int(quota)))  # a 1.5-CPU quota runs 1 busy thread without throttling
    return max(1, cores)


def other_runnable_tasks(samples: int = 5, interval_s: float = 0.01, stat: Path = Path("/proc/stat")) -> int | None:
    """Runnable tasks of other processes right now (median of ``samples``; None where unknown).

    ``procs_running`` counts the reading thread itself, which is subtracted.
    """
    counts = []
    for i in range(samples):
        try:
            for line in stat.read_text().splitlines():
                if line.startswith("procs_running"):
                    counts.append(int(line.split()[1]))
                    break
        except (OSError, ValueError, IndexError):
            return None
        if i + 1 < samples:
            time.sleep(interval_s)
    if not counts:
        return None
    return max(0, int(statistics.median(counts)) - 1)


def training_work(batch_size: int, patches: int | None, width: int) -> int | None:
    """Multiply-adds of one ``width x width`` linear layer over a step's patches (None: size unknown)."""
    if patches is None:
        return None
    return int(batch_size) * int(patches) * int(width) * int(width)


def choose_loader_workers(requested: int | None, cores: int) -> int:
    """DataLoader workers: an explicit setting as given; None: 0 on <= 2 cores, else up to 4 (one core kept)."""
    if requested is not None:
        return max(0, int(requested))
    return 0 if cores <= 2 else min(4, cores - 1)


def _as_count(value: object, name: str) -> int:
    try:
        count = int(str(value).strip())
    except ValueError:
        raise ValueError(f"{name} must be a whole number of threads >= 1, got {value!r}") from None
    if count < 1:
        raise ValueError(f"{name} must be a whole number of threads >= 1, got {value!r}")
    return count


def choose_threads(
    num_threads: int | None = None,
    work_size: int | None = None,
    loader_workers: int | None = 0,
    environ: dict[str, str] | None = None,
    cores: int | None = None,
    busy: int | None = -1,
) -> ThreadChoice:
    """The thread counts the module docstring's rule gives (nothing is applied).

    Args:
        num_threads: the config key: intra-op threads, or None for automatic.
        work_size: multiply-adds per step (e.g. :func:`training_work`), None when unknown.
        loader_workers: DataLoader workers asked for (None: automatic).
        environ: environment to read ``OMP_NUM_THREADS`` from (default ``os.environ``).
        cores: usable cores (default :func:`usable_cores`).
        busy: other runnable tasks (default -1: measured with :func:`other_runnable_tasks`; None: ignore).
    """
    environ = os.environ if environ is None else environ
    cores = usable_cores() if cores is None else max(1, int(cores))
    workers = choose_loader_workers(loader_workers, cores)
    omp = environ.get("OMP_NUM_THREADS", "").strip()
    if omp:
        return ThreadChoice(_as_count(omp, "OMP_NUM_THREADS"), None, workers, "OMP_NUM_THREADS", cores)
    if num_threads is not None:
        return ThreadChoice(_as_count(num_threads, "num_threads"), 1, workers, "config", cores)
    if busy == -1:
        busy = other_runnable_tasks()
    limit = max(1, cores - workers)
    if busy is not None:
        limit = min(limit, max(1, cores - busy))
    if work_size is not None:
        limit = min(limit, max(1, int(work_size) // GRAIN))
    return ThreadChoice(limit, 1, workers, "automatic", cores, busy)


def applied_choice() -> ThreadChoice | None:
    """The choice :func:`apply_thread_choice` made in this process (None: not made yet)."""
    return _applied


def apply_thread_choice(
    num_threads: int | None = None,
    work_size: int | None = None,
    loader_workers: int | None = 0,
) -> ThreadChoice:
    """Choose (:func:`choose_threads`), set torch's thread counts and log the choice, once per process.

    A second call returns the first choice unchanged (torch's inter-op count cannot change once used).
    """
    global _applied
    if _applied is not None:
        return _applied
    choice = choose_threads(num_threads, work_size, loader_workers)
    torch.set_num_threads(choice.intra_op)
    if choice.inter_op is not None and torch.get_num_interop_threads() != choice.inter_op:
        try:
            torch.set_num_interop_threads(choice.inter_op)
        except RuntimeError:  # inter-op work already ran in this process: keep torch's count
            choice = ThreadChoice(
                choice.intra_op, None, choice.loader_workers, choice.source, choice.cores, choice.busy
            )
    _applied = choice
    logger.info(choice.describe())
    return choice
