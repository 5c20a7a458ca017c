"""Progress bars (tqdm through Ignite) for training epochs and decoding."""

from __future__ import annotations

from typing import Any

from ignite.engine import Engine
from ignite.handlers import ProgressBar


def _loss_of(output: Any) -> dict[str, float]:
    if isinstance(output, dict) and output.get("loss") is not None:
        return {"loss": float(output["loss"].detach())}
    return {}


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
