"""The slides of a transfer task, read from a CSV of labels and checked against the feature files.

Subtyping CSV (``case_id`` optional, one case per slide without it)::

    slide_id,label,case_id
    TCGA-05-4244-01Z-00-DX1,LUAD,TCGA-05-4244
    TCGA-18-3406-01Z-00-DX1,LUSC,TCGA-18-3406

Survival CSV (``time`` >= 0 in any unit, ``event`` 1 = death/progression observed, 0 = censored; slides of one
case share the case's time and event)::

    slide_id,case_id,time,event
    TCGA-05-4244-01Z-00-DX1,TCGA-05-4244,34.2,1

Other columns are ignored. The task (:class:`scripts.transfer.TransferTask`) names its columns and parses its
outcome fields; this module does what every task shares.

Every slide needs ``<dataset_dir>/<slide_id>.h5`` or ``.pt``. Bad rows raise one
:class:`SlideTableError` that lists them by CSV line number; slides whose feature file is missing or unreadable
raise too, or with ``on_missing="skip"`` are dropped with a warning that counts and names them
(``table.skipped``).
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from scripts.data import BagDataError, find_feature_file, read_feature_header

from .errors import SlideTableError

if TYPE_CHECKING:
    from .tasks import TransferTask

__all__ = ["OnMissing", "SlideRecord", "SlideTable", "problem_list", "read_slide_table"]

logger = logging.getLogger("histgen.transfer")

OnMissing = Literal["raise", "skip"]
_MAX_LISTED = 20


@dataclasses.dataclass(frozen=True)
class SlideRecord:
    """One usable slide.

    Attributes:
        index: position in the table (stable ids for batches and metrics).
        slide_id: the CSV's ``slide_id``; the feature file is ``<slide_id>.h5``/``.pt``.
        case_id: the patient/case (the slide id when the CSV has no ``case_id``).
        line: line number in the CSV (1 = header).
        path: the feature file.
        num_patches: N of the bag.
        label: class index (subtyping), else None.
        time: follow-up time (survival), else None.
        event: 1 observed, 0 censored (survival), else None.
    """

    index: int
    slide_id: str
    case_id: str
    line: int
    path: Path
    num_patches: int
    label: int | None = None
    time: float | None = None
    event: int | None = None


@dataclasses.dataclass
class SlideTable:
    """The checked slides of one CSV.

    Attributes:
        task: the task (:class:`scripts.transfer.TransferTask`; ``task.name`` is ``"subtyping"``...).
        records: usable slides, in CSV order (``records[i].index == i``).
        classes: class names, index = class id (subtyping), else ``[]``.
        csv_file, dataset_dir: where they came from.
        feature_dim: D of every feature file.
        skipped: ``[{"slide_id", "line", "reason"}]`` dropped with ``on_missing="skip"``.
        synthetic: True for the embedded demo.
    """

    task: TransferTask
    records: list[SlideRecord]
    classes: list[str]
    csv_file: Path
    dataset_dir: Path
    feature_dim: int
    skipped: list[dict[str, object]] = dataclasses.field(default_factory=list)
    synthetic: bool = False

    def __len__(self) -> int:
        return len(self.records)

    @property
    def slide_ids(self) -> list[str]:
        return [r.slide_id for r in self.records]

    @property
    def case_ids(self) -> list[str]:
        return [r.case_id for r in self.records]

    def by_id(self) -> dict[str, SlideRecord]:
        return {r.slide_id: r for r in self.records}

    def where(self, slide_id: str) -> str:
        """``"labels.csv line 7 (slide 'S1')"`` for messages."""
        record = self.by_id().get(slide_id)
        line = f" line {record.line}" if record is not None else ""
        return f"{self.csv_file.name}{line} (slide {slide_id!r})"


def problem_list(csv_file: Path, problems: list[tuple[int, str, str]], what: str) -> str:
    shown = [f"line {line} (slide {sid!r}): {reason}" if sid else f"line {line}: {reason}"
             for line, sid, reason in problems[:_MAX_LISTED]]
    more = len(problems) - len(shown)
    tail = f"\n  ... and {more} more" if more > 0 else ""
    return f"{csv_file}: {len(problems)} {what}:\n  " + "\n  ".join(shown) + tail


def _read_rows(csv_file: Path, task: TransferTask) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    if not csv_file.is_file():
        raise SlideTableError(f"{csv_file}: label CSV not found")
    try:
        with csv_file.open("r", encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            rows = []
            for row in reader:
                if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                    continue  # blank line
                rows.append((reader.line_num, {(k or "").strip(): (v or "").strip() if isinstance(v, str) else ""
                                               for k, v in row.items()}))
    except UnicodeDecodeError as err:
        raise SlideTableError(f"{csv_file}: not UTF-8 text at byte {err.start}") from err
    except csv.Error as err:
        raise SlideTableError(f"{csv_file}: not a readable CSV ({err})") from err
    missing = [c for c in task.required_columns if c not in columns]
    if missing:
        raise SlideTableError(f"{csv_file}: {task.name} CSV needs column(s) {missing}; found {columns or 'no header'}")
    if not rows:
        raise SlideTableError(f"{csv_file}: no rows after the header")
    return columns, rows


def read_slide_table(
    task: str | TransferTask,
    csv_file: str | os.PathLike[str],
    dataset_dir: str | os.PathLike[str],
    classes: Sequence[str] | None = None,
    on_missing: OnMissing = "raise",
    feature_dim: int | None = None,
) -> SlideTable:
    """Read and check a label CSV.

    Args:
        task: the task, or its name (``"subtyping"``, ``"survival"``...).
        csv_file: the CSV (layouts in the module docstring).
        dataset_dir: folder of ``<slide_id>.h5`` / ``.pt`` feature files.
        classes: allowed class names in class-id order (tasks with classes); None = the task's own.
        on_missing: slides without a usable feature file: ``"raise"`` or ``"skip"`` (logged, counted).
        feature_dim: expected D, or None to take the first file's.

    Returns:
        A :class:`SlideTable`.

    Raises:
        SlideTableError: missing file/columns, bad rows (all listed with line numbers), duplicate slide ids,
            a case whose slides disagree on time/event, no usable slide, no observed event (survival).
    """
    from .tasks import as_task

    task = as_task(task, classes=classes)
    if on_missing not in ("raise", "skip"):
        raise ValueError(f"on_missing must be 'raise' or 'skip', got {on_missing!r}")
    csv_file, dataset_dir = Path(csv_file), Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise SlideTableError(f"dataset_dir {dataset_dir}: feature folder not found")
    columns, rows = _read_rows(csv_file, task)
    has_case = "case_id" in columns

    problems: list[tuple[int, str, str]] = []
    parsed: list[dict[str, object]] = []
    first_line: dict[str, int] = {}
    for line, row in rows:
        slide_id = row.get("slide_id", "")
        if not slide_id:
            problems.append((line, "", "empty slide_id"))
            continue
        if slide_id in first_line:
            problems.append((line, slide_id, f"duplicate slide_id (first on line {first_line[slide_id]})"))
            continue
        first_line[slide_id] = line
        case_id = row.get("case_id", "") if has_case else slide_id
        if not case_id:
            problems.append((line, slide_id, "empty case_id"))
            continue
        item: dict[str, object] = {"line": line, "slide_id": slide_id, "case_id": case_id}
        try:
            item.update(task.parse_row(row))
        except ValueError as err:
            problems.append((line, slide_id, str(err)))
            continue
        parsed.append(item)
    if problems:
        raise SlideTableError(problem_list(csv_file, problems, "bad row(s)"))

    task.check_rows(csv_file, parsed)
    class_names = task.class_names(parsed)

    records, skipped, dim = _attach_feature_files(csv_file, dataset_dir, parsed, on_missing, feature_dim)
    if not records:
        raise SlideTableError(f"{csv_file}: no slide left with a usable feature file in {dataset_dir}")
    table_records = []
    for index, (item, path, num_patches) in enumerate(records):
        table_records.append(SlideRecord(
            index=index, slide_id=str(item["slide_id"]), case_id=str(item["case_id"]), line=int(item["line"]),
            path=path, num_patches=num_patches, **task.record_fields(item, class_names)))
    table = SlideTable(task, table_records, class_names, csv_file, dataset_dir, dim, skipped)
    task.check_table(table)
    return table


def _attach_feature_files(
    csv_file: Path, dataset_dir: Path, parsed: list[dict[str, object]], on_missing: OnMissing,
    feature_dim: int | None,
) -> tuple[list[tuple[dict[str, object], Path, int]], list[dict[str, object]], int]:
    usable = []
    problems: list[tuple[int, str, str]] = []
    dim = feature_dim
    for item in parsed:
        slide_id = str(item["slide_id"])
        try:
            path = find_feature_file(dataset_dir, slide_id)
            info = read_feature_header(path, slide_id=slide_id, feature_dim=dim)
        except BagDataError as err:
            problems.append((int(item["line"]), slide_id, str(err)))
            continue
        dim = info.feature_dim if dim is None else dim
        usable.append((item, path, info.num_patches))
    skipped = [{"slide_id": sid, "line": line, "reason": reason} for line, sid, reason in problems]
    if problems and on_missing == "raise":
        raise SlideTableError(
            problem_list(csv_file, problems, "slide(s) without a usable feature file")
            + "\n(set on_missing='skip' to train without them)"
        )
    if problems:
        logger.warning("%s", problem_list(csv_file, problems, "slide(s) SKIPPED (on_missing='skip')"))
    if dim is None:
        dim = 0
    return usable, skipped, dim
