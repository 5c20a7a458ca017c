"""Progress bars (tqdm through Ignite) for training epochs and decoding."""

from __future__ import annotations

from typing import Any

from ignite.engine import Engine
from ignite.handlers import ProgressBar


def engine_loss(output: Any) -> float | None:
    """The loss in a trainer output, decollated (a list of per-item dicts) or not."""
    if isinstance(output, list) and output and isinstance(output[0], dict):
        output = output[0]
    loss = output.get("loss") if isinstance(output, dict) else None
    if loss is None:
        return None
    return float(loss.detach()) if hasattr(loss, "detach") else float(loss)


def _loss_of(output: Any) -> dict[str, float]:
    loss = engine_loss(output)
    return {} if loss is None else {"loss": loss}


class EngineProgressBar:
    """A tqdm bar over an engine's iterations; shows the loss for trainers.

    Args:
        description: label in front of the bar.
        show_loss: display the running loss.
    """

    def __init__(self, description: str = "", show_loss: bool = True) -> None:
        self.description = description
        self.show_loss = show_loss

    def attach(self, engine: Engine) -> None:
        bar = ProgressBar(persist=False, desc=self.description or None)
        bar.attach(engine, output_transform=_loss_of if self.show_loss else None)
