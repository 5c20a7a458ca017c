"""The SYNTHETIC demo as a dataset producer: it writes a dataset folder that the workflows read like a user's.

A bundle config declares the producer as a component and hands it to its data step, which calls it only when
the user gives no data:

- report bundle (``configs/train.json``, ``evaluate.json``): ``"demo_producer": "$scripts.demo.DemoProducer(@demo)"``
  -> ``<output_dir>/demo_data`` (``source: slides``: slides, truth, features, ``annotation.json``) or
  ``<output_dir>/demo_bags[_shuffled]`` (``source: feature_bags``);
- transfer bundles: ``DemoProducer(@demo, task='subtyping', report_demo_dir=@report_demo_dir)`` -> the label
  table ``<output_dir>/demo_data/subtyping.csv`` (or ``survival.csv``) over the report bundle's demo slides.

The same folder can be written ahead of a run with ``python -m scripts.demo --output_dir DIR`` and then given
as ``--dataset_dir DIR/demo_data/features --annotation_file DIR/demo_data/annotation.json``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .label_tables import make_subtyping_demo, make_survival_demo
from .sources import DEMO_SOURCES

if TYPE_CHECKING:
    from scripts.data import ProducedDataset

__all__ = ["DEMO_FOLDER", "DEMO_TASKS", "DemoProducer"]

#: Folder (under the run's ``output_dir``) of the demo's dataset.
DEMO_FOLDER = "demo_data"
#: task -> builder of its label table over the demo slides (``None``: the report annotation itself).
_TABLE_BUILDERS = {"subtyping": make_subtyping_demo, "survival": make_survival_demo}
DEMO_TASKS: tuple[str, ...] = ("report", *_TABLE_BUILDERS)


class DemoProducer:
    """Writes (or reuses) the SYNTHETIC demo dataset under a run folder; see the module docstring.

    Args:
        options: the bundle's ``demo`` setting: ``source`` (``"slides"``, default, or ``"feature_bags"``), the
            builder's arguments (:class:`scripts.demo.SlideDemoParams` fields, ``shuffle_pairs``, ``workers``...)
            and, for the transfer tasks, the table's own options (``pair_fraction``, ``table_seed``...).
        task: ``"report"`` (annotation JSON), ``"subtyping"`` or ``"survival"`` (label CSV); another task name
            (one without a demo) is refused when the producer is called, naming the task.
        report_demo_dir: transfer tasks: the report bundle's slide demo, reused when it has the same parameters.
    """

    def __init__(self, options: dict[str, Any] | None = None, task: str = "report",
                 report_demo_dir: str | os.PathLike[str] | None = None) -> None:
        self.options = dict(options or {})
        source = self.options.get("source", "slides")
        if source not in DEMO_SOURCES:
            raise ValueError(f"demo source must be one of {DEMO_SOURCES}, got {source!r}")
        self.task, self.report_demo_dir = task, report_demo_dir

    def __repr__(self) -> str:
        return f"DemoProducer({self.options!r}, task={self.task!r})"

    def __call__(self, output_dir: str | os.PathLike[str]) -> ProducedDataset:
        """Write (or reuse) the demo under ``output_dir`` and say where its files are."""
        from scripts.data import ProducedDataset  # imports torch: not at module level (see the package)

        if self.task not in DEMO_TASKS:  # checked here: a task without a demo still declares the producer
            raise ValueError(f"the {self.task} task has no SYNTHETIC demo (demos exist for {', '.join(DEMO_TASKS)}): "
                             "give csv_file (labels) and dataset_dir (feature files)")
        output_dir = Path(output_dir)
        if self.task in _TABLE_BUILDERS:
            table = _TABLE_BUILDERS[self.task](output_dir / DEMO_FOLDER, dict(self.options), self.report_demo_dir)
            return ProducedDataset(table.dataset_dir, label_file=table.csv_file, synthetic=True,
                                   description=f"generated labels; {table.description}")
        options = dict(self.options)
        source = options.pop("source", "slides")
        if source == "feature_bags":
            from .feature_bags import make_demo_dataset

            name = "demo_bags_shuffled" if options.get("shuffle_pairs") else "demo_bags"
            bags = make_demo_dataset(output_dir / name, **options)
            return ProducedDataset(bags.dataset_dir, bags.annotation_file, synthetic=True,
                                   description="generated feature bags")
        from .slide_dataset import make_slide_demo_dataset

        built = make_slide_demo_dataset(output_dir / DEMO_FOLDER, **options)
        return ProducedDataset(built.dataset_dir, built.annotation_file, synthetic=True,
                               description="synthetic slides through the feature extractor")
