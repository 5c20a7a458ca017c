"""``python -m scripts.demo --output_dir DIR``: write the SYNTHETIC demo dataset folder ahead of a run.

Prints a JSON summary with the paths to give a workflow (``dataset_dir``, ``annotation_file`` or ``label_file``).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence

from .producer import DEMO_TASKS, DemoProducer


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.demo",
        description="Write the SYNTHETIC demo dataset (slides, features, annotation / label table; not patients).",
    )
    parser.add_argument("--output_dir", required=True, help="run folder; the demo goes to <output_dir>/demo_data")
    parser.add_argument("--task", default="report", choices=DEMO_TASKS, help="which labels to write")
    parser.add_argument("--demo", default="{}", help='the bundles\' demo setting as JSON, e.g. \'{"n_train": 24}\'')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    produced = DemoProducer(json.loads(args.demo), task=args.task)(args.output_dir)
    print(json.dumps({
        "dataset_dir": str(produced.dataset_dir),
        "annotation_file": None if produced.annotation_file is None else str(produced.annotation_file),
        "label_file": None if produced.label_file is None else str(produced.label_file),
        "synthetic": produced.synthetic,
        "description": produced.description,
    }, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
