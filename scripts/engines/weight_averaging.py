"""An exponential moving average of the trained weights, validated and saved in place of the raw weights.

With 20-24 validation slides the epoch-by-epoch validation score of the raw weights is noisy, so the kept epoch
and early stopping depend on the training seed. The average of the weights over the last epoch or so moves
smoothly, so consecutive epochs' validation scores differ by what the model learned rather than by the last few
optimiser steps. Off by default (``weight_average_half_life`` 0): on the grounding benchmarks it did not help
(docs/benchmarks.md, "Weight averaging, patience and per-slide views against the seed").

The optimiser keeps training the raw weights; the average only replaces them while the validator runs (so the
best-model saver writes the averaged weights) and is swapped out again before the next training step and before
the resume checkpoint is written.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from ignite.engine import Engine, Events

from .model_files import unwrap

__all__ = ["WeightAveraging"]

logger = logging.getLogger("histgen.train")


class WeightAveraging:
    """Keep an exponential moving average (EMA) of the network's floating-point state and validate with it.

    The decay per optimiser step follows from ``half_life`` in epochs and the epoch's length, so the averaging
    window is the same share of training on 40 slides or 4,000: after each step
    ``average <- average + (1 - decay) * (weights - average)`` with ``decay = 0.5 ** (1 / (half_life *
    steps_per_epoch))``. Early on the decay is capped at ``(1 + n) / (10 + n)`` after ``n`` steps, so the
    average is not dominated by the random initialisation.

    Args:
        network: the trained module (a ``DistributedDataParallel`` wrapper is unwrapped).
        evaluator: the validation engine; the average is swapped in when it starts and out when it completes.
        half_life: the averaging half-life in epochs; 0 or None turns averaging off (validation sees the raw
            weights, as before).
    """

    #: A resume checkpoint written before weight averaging existed lacks this state; the average then restarts.
    optional_in_checkpoint = True

    def __init__(self, network: torch.nn.Module, evaluator: Engine | None = None,
                 half_life: float | None = 1.0) -> None:
        if half_life is not None and (not math.isfinite(half_life) or half_life < 0):
            raise ValueError(f"weight_average_half_life must be a number of epochs >= 0 (0 = off), got {half_life}")
        self.network = network
        self.evaluator = evaluator
        self.half_life = float(half_life or 0.0)
        self.num_updates = 0
        self._average: dict[str, torch.Tensor] | None = None
        self._backup: dict[str, torch.Tensor] | None = None

    @property
    def enabled(self) -> bool:
        return self.half_life > 0

    def _live(self) -> dict[str, torch.Tensor]:
        """The network's floating-point parameters and buffers, by state-dict name (sharing their storage)."""
        return {k: v for k, v in unwrap(self.network).state_dict(keep_vars=False).items() if v.is_floating_point()}

    def attach(self, engine: Engine) -> None:
        if not self.enabled:
            return
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.update)
        if self.evaluator is not None:
            self.evaluator.add_event_handler(Events.STARTED, self.swap_in)
            self.evaluator.add_event_handler(Events.COMPLETED, self.swap_out)
            self.evaluator.add_event_handler(Events.EXCEPTION_RAISED, self._swap_out_and_raise)
        logger.info("validating and saving an exponential moving average of the weights (half-life %.3g epochs)",
                    self.half_life)

    def decay(self, steps_per_epoch: int) -> float:
        """The decay of the next update, for an epoch of ``steps_per_epoch`` optimiser steps."""
        full = 0.5 ** (1.0 / (self.half_life * max(1, steps_per_epoch)))
        return min(full, (1.0 + self.num_updates) / (10.0 + self.num_updates))

    @torch.no_grad()
    def update(self, engine: Engine) -> None:
        """Fold the weights after this optimiser step into the average."""
        live = self._live()
        if self._average is None:
            self._average = {k: v.detach().clone() for k, v in live.items()}
        else:
            if self._average.keys() != live.keys():
                raise RuntimeError("the network's state changed shape during training: cannot average its weights")
            weight = 1.0 - self.decay(engine.state.epoch_length or 1)
            keys = list(live)
            torch._foreach_lerp_([self._average[k] for k in keys], [live[k] for k in keys], weight)
        self.num_updates += 1

    @torch.no_grad()
    def swap_in(self, _engine: Engine | None = None) -> None:
        """Put the average into the network, keeping the raw weights aside."""
        if self._average is None or self._backup is not None:
            return
        live = self._live()
        self._backup = {k: v.detach().clone() for k, v in live.items()}
        for key, tensor in live.items():
            tensor.copy_(self._average[key])

    @torch.no_grad()
    def swap_out(self, _engine: Engine | None = None) -> None:
        """Put the raw weights back (training continues from them)."""
        if self._backup is None:
            return
        for key, tensor in self._live().items():
            tensor.copy_(self._backup[key])
        self._backup = None

    def _swap_out_and_raise(self, engine: Engine, error: BaseException) -> None:
        self.swap_out(engine)
        raise error

    def state_dict(self) -> dict[str, Any]:
        """The average and the number of updates (kept in the resume checkpoint)."""
        return {"num_updates": self.num_updates, "average": dict(self._average) if self._average else {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.num_updates = int(state.get("num_updates", 0))
        average = state.get("average") or {}
        self._average = {k: v.detach().clone() for k, v in average.items()} if average else None
        self._backup = None
