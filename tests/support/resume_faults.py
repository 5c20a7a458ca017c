"""Fault injection for the resume tests, loaded into a real training subprocess by a config overlay.

``HISTGEN_TEST_KILL=<point>:<n>`` ends the process with ``os._exit`` (no clean-up, as ``kill -9``) at:

- ``iteration:<n>``: after training iteration n (counted over the whole run);
- ``validation:<n>``: after the first validation batch of epoch n;
- ``checkpoint:<n>``: half-way through writing epoch n's checkpoint (a truncated temporary file);
- ``rotated:<n>``: after epoch n's checkpoint write moved the old ``last.pt`` aside, before the new one is
  in place.
"""

from __future__ import annotations

import os
import sys

import torch
from ignite.engine import Engine, Events

KILLED = 137


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(KILLED)


def install(trainer: Engine, evaluator: Engine) -> None:
    """Arm the fault named by ``HISTGEN_TEST_KILL`` (nothing when unset)."""
    spec = os.environ.get("HISTGEN_TEST_KILL")
    if not spec:
        return
    point, n = spec.split(":")
    at = int(n)
    if point == "iteration":
        trainer.add_event_handler(Events.ITERATION_COMPLETED(once=at), _die)
    elif point == "validation":
        evaluator.add_event_handler(Events.ITERATION_COMPLETED,
                                    lambda e: _die() if trainer.state.epoch == at else None)
    elif point == "checkpoint":
        real_save = torch.save

        def save(obj, f, *args, **kwargs):
            if isinstance(obj, dict) and obj.get("trainer", {}).get("epoch") == at:
                real_save(obj, f, *args, **kwargs)
                size = os.path.getsize(f)
                with open(f, "r+b") as handle:
                    handle.truncate(size // 2)
                _die()
            return real_save(obj, f, *args, **kwargs)

        torch.save = save
    elif point == "rotated":
        real_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            real_replace(src, dst, *args, **kwargs)
            if str(dst).endswith("last.prev.pt") and trainer.state.epoch == at:
                _die()

        os.replace = replace
    else:
        raise ValueError(f"HISTGEN_TEST_KILL: unknown point {point!r}")
