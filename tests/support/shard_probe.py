"""Records which slides each rank trains on, per iteration (loaded into a bundle run by a config overlay).

Writes ``<output_dir>/seen.rank<r>.json``: ``[[epoch, [slide ids of the batch]], ...]``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ignite.engine import Engine, Events


def install(trainer: Engine, output_dir: str) -> None:
    rank = int(os.environ.get("RANK", "0"))
    seen: list[list] = []
    trainer.add_event_handler(Events.ITERATION_STARTED,
                              lambda e: seen.append([e.state.epoch, [str(i) for i in e.state.batch["ids"]]]))
    trainer.add_event_handler(Events.COMPLETED,
                              lambda e: Path(output_dir, f"seen.rank{rank}.json").write_text(json.dumps(seen)))
