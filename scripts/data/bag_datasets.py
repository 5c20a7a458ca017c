"""Datasets of slide feature bags, with or without report targets.

Items are dicts::

    {"id": "TCGA-...-DX1",
     "features": Tensor [N, D] float32,
     "coords": Tensor [N, 2] int64 or None,
     "report": str (raw text, "" when the annotation has none),
     "report_ids": LongTensor [T] ([0] + ids + [0], truncated to max_seq_length) or None without a vocabulary}

Bad slides (``on_error``):

- ``"raise"`` (default): construction checks every slide and raises one :class:`BagDataError` listing the
  problems; a bag that turns out bad when loaded (NaN/Inf, corrupt data) raises at ``__getitem__``.
- ``"skip"``: construction drops slides that fail the cheap checks (report text, file present, shape and
  dimension from the h5 header or a memory-mapped ``.pt``), logs a warning naming each and records them in
  ``dataset.skipped`` (``[{"id", "reason"}]``). A bag found bad only when loaded (NaN/Inf, unreadable data)
  is logged and returned as a *skip marker* ``{"id": ..., "skipped": reason}``: :func:`collate_bags` drops
  it and lists it in ``batch["skipped"]`` (``dataset.skipped`` only sees it when loading happens in this
  process, i.e. ``num_workers=0``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import Dataset

from scripts.text import ReportTextError, Vocabulary

from .annotation import load_annotation
from .errors import BagDataError
from .feature_files import FEATURE_SUFFIXES, find_feature_file, read_feature_file, read_feature_header

__all__ = ["FeatureBagDataset", "ReportBagDataset", "SKIPPED_KEY"]

logger = logging.getLogger(__name__)

OnError = Literal["raise", "skip"]

#: Key of a skip marker item (see the module docstring).
SKIPPED_KEY = "skipped"
_MAX_LISTED_PROBLEMS = 10


def _check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")


def _raise_problems(problems: list[dict[str, str]], what: str) -> None:
    lines = [f"{p['id']}: {p['reason']}" for p in problems[:_MAX_LISTED_PROBLEMS]]
    more = len(problems) - len(lines)
    tail = f"\n  ... and {more} more" if more > 0 else ""
    raise BagDataError(
        f"{what}: {len(problems)} unusable slide(s) (use on_error='skip' to drop them):\n  " + "\n  ".join(lines) + tail
    )


class _BagDatasetBase(Dataset):
    """Shared loading, subsampling and error handling. Subclasses fill ``self.records``."""

    def __init__(self, feature_dim: int | None, on_error: OnError, max_patches: int | None, seed: int | None) -> None:
        _check_on_error(on_error)
        if max_patches is not None and max_patches < 1:
            raise ValueError(f"max_patches must be >= 1 or None, got {max_patches}")
        self.feature_dim = feature_dim
        self.on_error = on_error
        self.max_patches = max_patches
        self.seed = seed
        self.epoch = 0
        self.records: list[dict[str, Any]] = []
        self.skipped: list[dict[str, str]] = []
        self._sampled: set[str] = set()

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Change the patch subsample drawn with a ``seed`` (takes effect in workers started after the call)."""
        self.epoch = int(epoch)

    def _skip(self, slide_id: str, reason: str) -> None:
        logger.warning("skipped: %s", reason)
        entry = {"id": slide_id, "reason": reason}
        if entry not in self.skipped:  # a bag found bad at load time is met again every epoch
            self.skipped.append(entry)

    def _check_file(self, slide_id: str, path: Path) -> int:
        """Cheap header check; returns N."""
        return read_feature_header(path, slide_id=slide_id, feature_dim=self.feature_dim).num_patches

    def _subsample_rows(self, num_patches: int, index: int) -> torch.Tensor | None:
        """Sorted row indices of a random subsample (scan order kept), or None to keep every patch."""
        if self.max_patches is None or num_patches <= self.max_patches:
            return None
        slide_id = self.records[index]["id"]
        if slide_id not in self._sampled:  # once per slide, not every epoch
            self._sampled.add(slide_id)
            logger.warning("%s: %d patches, over max_patches=%d: using a random subset of %d (scan order kept%s)",
                           slide_id, num_patches, self.max_patches, self.max_patches,
                           ", seeded" if self.seed is not None else "")
        generator = None
        if self.seed is not None:
            mixed = ((self.seed * 1_000_003 + self.epoch) * 1_000_033 + index) % (2**63 - 1)
            generator = torch.Generator().manual_seed(mixed)
        return torch.randperm(num_patches, generator=generator)[: self.max_patches].sort().values

    def _load(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        try:
            bag = read_feature_file(record["path"], slide_id=record["id"], feature_dim=self.feature_dim)
        except BagDataError as err:
            if self.on_error == "raise":
                raise
            self._skip(record["id"], str(err))
            return {"id": record["id"], SKIPPED_KEY: str(err)}
        feats, coords = bag.feats, bag.coords
        rows = self._subsample_rows(bag.num_patches, index)
        if rows is not None:
            feats = feats[rows]
            coords = coords[rows] if coords is not None else None
        return {"id": record["id"], "features": feats, "coords": coords}


class ReportBagDataset(_BagDatasetBase):
    """Slides of one split of a HistGen annotation, with their features and encoded reports.

    Args:
        annotation_file: HistGen annotation JSON (see :func:`scripts.data.load_annotation`).
        dataset_dir: folder of ``<id>.h5`` / ``<id>.pt`` feature files.
        split: ``"train"``, ``"val"`` or ``"test"`` (any list in the file).
        vocab: encodes the reports; None for inference (``report_ids`` is then None and reports may be absent).
        max_seq_length: ids kept per report (BOS/EOS included; HistGen uses 100).
        feature_dim: expected D, or None to accept any (bags in a batch must still agree).
        on_error: ``"raise"`` or ``"skip"`` bad slides (see the module docstring).
        max_patches: if set, a bag with more patches is cut to a random subset of this many, kept in scan
            order (HistGen's regions follow patch order). Without ``seed`` the draw uses torch's global RNG
            (in DataLoader workers torch seeds each worker); with ``seed`` it depends only on
            ``(seed, epoch, index)``, so it is reproducible and changes with :meth:`set_epoch`.
        seed: see ``max_patches``.
        on_duplicate: duplicate ids in the split: ``"raise"``, ``"keep"`` or ``"first"``.
    """

    def __init__(
        self,
        annotation_file: str | os.PathLike[str],
        dataset_dir: str | os.PathLike[str],
        split: str,
        vocab: Vocabulary | None,
        max_seq_length: int = 100,
        feature_dim: int | None = None,
        on_error: OnError = "raise",
        max_patches: int | None = None,
        seed: int | None = None,
        on_duplicate: Literal["raise", "keep", "first"] = "raise",
    ) -> None:
        super().__init__(feature_dim, on_error, max_patches, seed)
        self.annotation_file = Path(annotation_file)
        self.dataset_dir = Path(dataset_dir)
        self.split = split
        self.vocab = vocab
        self.max_seq_length = max_seq_length
        annotation = load_annotation(
            annotation_file, required_splits=(split,), require_report=vocab is not None, on_duplicate=on_duplicate
        )
        problems: list[dict[str, str]] = []
        for item in annotation[split]:
            slide_id = item["id"]
            report = item.get("report") or ""
            try:
                report_ids = None
                if vocab is not None:
                    try:
                        report_ids = vocab.encode(report, max_seq_length, report_id=slide_id)
                    except ReportTextError as err:
                        raise BagDataError(str(err)) from err
                path = find_feature_file(self.dataset_dir, slide_id)
                num_patches = self._check_file(slide_id, path)
            except BagDataError as err:
                problems.append({"id": slide_id, "reason": str(err)})
                continue
            self.records.append(
                {"id": slide_id, "path": path, "num_patches": num_patches, "report": report, "report_ids": report_ids}
            )
        if problems and on_error == "raise":
            _raise_problems(problems, f"{self.annotation_file} split {split!r}")
        for problem in problems:
            self._skip(problem["id"], problem["reason"])
        if not self.records:
            skipped = f" ({len(problems)} skipped as unusable)" if problems else ""
            raise BagDataError(f"{self.annotation_file}: split {split!r} has no usable slides{skipped}")

    @property
    def ids(self) -> list[str]:
        return [record["id"] for record in self.records]

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self._load(index)
        if SKIPPED_KEY in item:
            return item
        record = self.records[index]
        item["report"] = record["report"]
        ids = record["report_ids"]
        item["report_ids"] = torch.tensor(ids, dtype=torch.long) if ids is not None else None
        return item


class FeatureBagDataset(_BagDatasetBase):
    """Feature files without reports, for inference.

    Args:
        paths: feature files (``.h5`` or ``.pt``); the slide id is the file name without its suffix.
        feature_dim, on_error, max_patches, seed: as in :class:`ReportBagDataset`.
        ids: slide ids to use instead of the file names (same length as ``paths``).

    Items: ``{"id", "features", "coords", "report": "", "report_ids": None}``.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        feature_dim: int | None = None,
        on_error: OnError = "raise",
        max_patches: int | None = None,
        seed: int | None = None,
        ids: Sequence[str] | None = None,
    ) -> None:
        super().__init__(feature_dim, on_error, max_patches, seed)
        paths = [Path(p) for p in paths]
        if ids is not None and len(ids) != len(paths):
            raise ValueError(f"ids has {len(ids)} entries but paths has {len(paths)}")
        slide_ids = list(ids) if ids is not None else [p.stem for p in paths]
        problems: list[dict[str, str]] = []
        for slide_id, path in zip(slide_ids, paths):
            try:
                num_patches = self._check_file(slide_id, path)
            except BagDataError as err:
                problems.append({"id": slide_id, "reason": str(err)})
                continue
            self.records.append({"id": slide_id, "path": path, "num_patches": num_patches})
        if problems and on_error == "raise":
            _raise_problems(problems, "feature files")
        for problem in problems:
            self._skip(problem["id"], problem["reason"])

    @classmethod
    def from_dir(cls, dataset_dir: str | os.PathLike[str], **kwargs: Any) -> FeatureBagDataset:
        """Every ``*.h5`` and ``*.pt`` in a folder, sorted by name (the ``.h5`` wins if both exist)."""
        folder = Path(dataset_dir)
        if not folder.is_dir():
            raise BagDataError(f"{folder}: feature folder not found")
        chosen: dict[str, Path] = {}
        for suffix in reversed(FEATURE_SUFFIXES):  # later suffixes in FEATURE_SUFFIXES lose
            for path in folder.glob(f"*{suffix}"):
                chosen[path.stem] = path
        return cls([chosen[k] for k in sorted(chosen)], **kwargs)

    @property
    def ids(self) -> list[str]:
        return [record["id"] for record in self.records]

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self._load(index)
        if SKIPPED_KEY not in item:
            item["report"] = ""
            item["report_ids"] = None
        return item
