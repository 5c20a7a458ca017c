"""Where a transfer bundle's slides come from: the user's CSV and feature folder, or the folder a producer (the
SYNTHETIC demo, declared in the config) writes."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from scripts.data import DatasetProducer

from .distributed import rank0_first
from .slide_table import OnMissing, SlideTable, read_slide_table
from .tasks import TransferTask, as_task

__all__ = ["resolve_slide_table"]

logger = logging.getLogger("histgen.transfer")


def resolve_slide_table(
    task: str | TransferTask,
    csv_file: str | os.PathLike[str] | None,
    dataset_dir: str | os.PathLike[str] | None,
    output_dir: str | os.PathLike[str],
    classes: Sequence[str] | None = None,
    on_missing: OnMissing = "raise",
    demo: DatasetProducer | None = None,
) -> SlideTable:
    """Read the user's CSV, or the label table and features that ``demo`` writes when neither path is given.

    Args:
        task: the task, or its name (``"subtyping"``, ``"survival"``...).
        csv_file: the label CSV, or None.
        dataset_dir: folder of ``<slide_id>.h5``/``.pt`` feature files, or None.
        output_dir: the run folder.
        classes: allowed class names (tasks with classes), None for the task's own.
        on_missing: slides without a usable feature file: ``"raise"`` or ``"skip"``.
        demo: a dataset producer (:class:`scripts.data.ProducedDataset` with a ``label_file``); the configs declare
            the SYNTHETIC demo, ``$scripts.demo.DemoProducer(@demo, task=..., report_demo_dir=...)``, which writes
            ``<output_dir>/demo_data/<task>.csv``. Its files are then read like a user's.
    """
    synthetic = False
    task = as_task(task, classes=classes)
    if csv_file is None and dataset_dir is None:
        if demo is None:
            raise ValueError("give csv_file (labels) and dataset_dir (feature files)")
        with rank0_first():
            built = demo(Path(output_dir))
        if built.label_file is None:
            raise ValueError(f"{demo!r} wrote no label table ({task.name} needs one)")
        if built.synthetic:
            logger.warning("no csv_file/dataset_dir given: using the SYNTHETIC %s demo %s (%s, not patient data)",
                           task.name, built.label_file, built.description)
        csv_file, dataset_dir, synthetic = built.label_file, built.dataset_dir, built.synthetic
    elif csv_file is None or dataset_dir is None:
        raise ValueError("give both csv_file (labels) and dataset_dir (feature files), or neither for the demo; "
                         f"got csv_file={csv_file!r}, dataset_dir={dataset_dir!r}")
    table = read_slide_table(task, csv_file, dataset_dir, on_missing=on_missing)
    table.synthetic = synthetic
    cases = len(set(table.case_ids))
    detail = task.describe_table(table)
    skipped = f", {len(table.skipped)} skipped" if table.skipped else ""
    logger.info("%s: %d slides of %d cases (D=%d), %s%s", table.csv_file, len(table), cases, table.feature_dim,
                detail, skipped)
    return table
