"""Reading HistGen annotation files.

A HistGen annotation is one JSON object with a list of items per split::

    {"train": [{"id": "TCGA-XX-0001-01Z-00-DX1", "report": "Lung, resection: ...",
                "image_path": ["..."], "split": "train"}, ...],
     "val":   [...],
     "test":  [...]}

Only ``id`` (a non-empty string) and ``report`` (a string) are needed; other keys are kept as they are.

A *case* with several slides lists them all in ``image_path`` (two or more entries: slide files such as
``"CASE-7/A.svs"`` or feature files such as ``"CASE-7-A.h5"``); its slides' features are found by each entry's
file name without the suffix (``A``, ``CASE-7-A``) in the dataset folder, and the case trains, evaluates and is
reported as one item (see :mod:`scripts.data.bag_datasets`). With one entry (HistGen's layout) or none, the
features are found by ``id`` as before.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path, PurePath
from typing import Any, Literal

from scripts.text import ReportTextError, Vocabulary

from .errors import AnnotationError

__all__ = ["HISTGEN_SPLITS", "case_slide_ids", "load_annotation", "require_slides_in"]

logger = logging.getLogger(__name__)

HISTGEN_SPLITS = ("train", "val", "test")

DuplicatePolicy = Literal["raise", "keep", "first"]


def load_annotation(
    path: str | os.PathLike[str],
    required_splits: Sequence[str] = HISTGEN_SPLITS,
    require_report: bool = True,
    on_duplicate: DuplicatePolicy = "raise",
    only: Sequence[str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Read and check a HistGen annotation JSON (the one reader of the format: training data, evaluation and the
    vocabulary's :func:`vocabulary_from_annotation` all go through it).

    Args:
        path: the annotation file.
        required_splits: splits that must be present (as lists); other list-valued keys are returned too.
        require_report: every item needs a ``report`` string (set False for inference-only files).
        on_duplicate: what to do when an id appears twice in one split: ``"raise"`` (default), ``"keep"``
            every row (what the reference code does; a warning names the ids) or keep the ``"first"`` row
            (a warning names the dropped rows).
        only: read and check only these splits (e.g. ``("train",)`` for the vocabulary); default every list.

    Returns:
        ``{split: [item, ...]}`` with items as dicts (copies of the file's items).

    Raises:
        AnnotationError: missing file, invalid JSON, a required split missing or not a list, an item that
            is not an object or lacks ``id``/``report``, a duplicate id (with ``on_duplicate="raise"``).
    """
    if on_duplicate not in ("raise", "keep", "first"):
        raise ValueError(f"on_duplicate must be 'raise', 'keep' or 'first', got {on_duplicate!r}")
    path = Path(path)
    try:
        with path.open("r", encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError as err:
        raise AnnotationError(f"{path}: annotation file not found") from err
    except json.JSONDecodeError as err:
        raise AnnotationError(f"{path}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}") from err
    except UnicodeDecodeError as err:
        raise AnnotationError(f"{path}: not UTF-8 at byte {err.start}") from err
    except OSError as err:
        raise AnnotationError(f"{path}: cannot read annotation file ({err.strerror or err})") from err
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: expected a JSON object of splits, found {type(data).__name__}")

    for split in required_splits:
        if split not in data:
            raise AnnotationError(f"{path}: split {split!r} is missing (found {sorted(data)})")
        if not isinstance(data[split], list):
            raise AnnotationError(f"{path}: split {split!r} must be a list, found {type(data[split]).__name__}")

    result: dict[str, list[dict[str, Any]]] = {}
    for split, items in data.items():
        if not isinstance(items, list) or (only is not None and split not in only):
            continue
        result[split] = _checked_items(path, split, items, require_report, on_duplicate)
    return result


def case_slide_ids(item: dict[str, Any]) -> list[str] | None:
    """The slide ids of a multi-slide case: the file names (without suffix) of an ``image_path`` list of two or
    more entries, in the order given; None for a one-slide item (its features are named by ``id``).

    Raises:
        AnnotationError: an entry is not a non-empty string, or two entries name the same slide.
    """
    paths = item.get("image_path")
    if not isinstance(paths, list) or len(paths) < 2:
        return None
    ids = []
    for entry in paths:
        if not isinstance(entry, str) or not entry.strip():
            raise AnnotationError(f"case {item.get('id')!r}: image_path entries must be file names, got {entry!r}")
        ids.append(PurePath(entry.strip()).stem)
    repeated = sorted({slide_id for slide_id in ids if ids.count(slide_id) > 1})
    if repeated:
        raise AnnotationError(f"case {item.get('id')!r}: image_path names slide(s) {repeated} more than once")
    return ids


def _checked_items(
    path: Path, split: str, items: list[Any], require_report: bool, on_duplicate: DuplicatePolicy
) -> list[dict[str, Any]]:
    checked = []
    for position, item in enumerate(items):
        where = f"{path}: {split}[{position}]"
        if not isinstance(item, dict):
            raise AnnotationError(f"{where}: expected an object with 'id' and 'report', found {type(item).__name__}")
        slide_id = item.get("id")
        if not isinstance(slide_id, str) or not slide_id.strip():
            raise AnnotationError(f"{where}: missing or empty 'id'")
        if require_report and not isinstance(item.get("report"), str):
            raise AnnotationError(f"{where} (id {slide_id!r}): missing 'report' text")
        try:
            case_slide_ids(item)
        except AnnotationError as err:
            raise AnnotationError(f"{where}: {err}") from None
        checked.append(dict(item))

    counts = Counter(item["id"] for item in checked)
    duplicates = sorted(slide_id for slide_id, count in counts.items() if count > 1)
    if not duplicates:
        return checked
    shown = ", ".join(repr(d) for d in duplicates[:5]) + (" ..." if len(duplicates) > 5 else "")
    if on_duplicate == "raise":
        raise AnnotationError(
            f"{path}: split {split!r} has {len(duplicates)} duplicate id(s): {shown} "
            "(pass on_duplicate='keep' or 'first' to accept them)"
        )
    if on_duplicate == "keep":
        logger.warning("%s: split %r keeps %d duplicate id(s): %s", path, split, len(duplicates), shown)
        return checked
    seen: set[str] = set()
    first_rows = []
    for item in checked:
        if item["id"] not in seen:
            seen.add(item["id"])
            first_rows.append(item)
    logger.warning(
        "%s: split %r drops %d later row(s) of duplicate id(s): %s",
        path,
        split,
        len(checked) - len(first_rows),
        shown,
    )
    return first_rows


def require_slides_in(
    annotation_file: str | os.PathLike[str], splits: Sequence[str], workflow: str = "training"
) -> None:
    """Fail before a workflow starts when one of ``splits`` of the annotation is missing or empty.

    Training needs slides to learn from (``train``) and slides to choose the best model on (``val``):
    with an empty ``val`` split no model would ever be saved.

    Raises:
        AnnotationError: naming the file, the split and what the workflow needs it for.
    """
    annotation = load_annotation(annotation_file, required_splits=tuple(splits), require_report=False,
                                 on_duplicate="keep")
    purpose = {"train": "the slides to learn from", "val": "the slides that choose the best model",
               "test": "the slides to evaluate on"}
    for split in splits:
        if not annotation[split]:
            raise AnnotationError(
                f"{annotation_file}: split {split!r} is empty; {workflow} needs it ({purpose.get(split, 'its slides')})"
            )


def vocabulary_from_annotation(
    annotation_path: str | os.PathLike[str], threshold: int = 10, split: str = "train"
) -> Vocabulary:
    """The vocabulary of the ``split`` (default ``train``) reports of a HistGen annotation JSON (HistGen's rule).

    The file looks like ``{"train": [{"id": ..., "report": ...}, ...], "val": [...], "test": [...]}``; it is
    read by :func:`load_annotation` (the one annotation reader), checking only ``split``.

    Raises:
        ReportTextError: the file is missing, not JSON, or its ``split`` is absent or malformed.
    """
    try:
        annotation = load_annotation(annotation_path, required_splits=(split,), on_duplicate="keep", only=(split,))
    except AnnotationError as err:
        raise ReportTextError(str(err)) from err
    return Vocabulary.build([item["report"] for item in annotation[split]], threshold)
