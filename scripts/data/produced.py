"""The contract between a dataset producer (e.g. the SYNTHETIC demo) and the workflows that read its folder.

A producer is any callable ``producer(output_dir) -> ProducedDataset`` that writes (or reuses) a dataset folder
under ``output_dir``. A bundle config declares one as a component (the report bundle's ``demo_producer``:
``$scripts.demo.DemoProducer(@demo)``) and hands it to the workflow's data step, which calls it only when the
user gave no data of their own; the workflow then reads the folder exactly as it reads a user's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

__all__ = ["DatasetProducer", "ProducedDataset"]


@dataclasses.dataclass(frozen=True)
class ProducedDataset:
    """A dataset folder that a producer wrote.

    Attributes:
        dataset_dir: folder of ``<slide_id>.h5`` / ``.pt`` feature files.
        annotation_file: HistGen annotation JSON (report generation), or None.
        label_file: label CSV (the transfer bundles: ``slide_id,label[,case_id]`` or survival columns), or None.
        synthetic: True when the data are generated, not patients'.
        description: one line for the log: what the data are and where they come from.
    """

    dataset_dir: Path
    annotation_file: Path | None = None
    label_file: Path | None = None
    synthetic: bool = False
    description: str = ""


#: ``producer(output_dir) -> ProducedDataset``.
DatasetProducer = Callable[[Path], ProducedDataset]
