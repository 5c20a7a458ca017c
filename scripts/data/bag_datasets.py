"""Datasets of slide feature bags, with or without report targets.

Items are dicts::

    {"id": "TCGA-...-DX1",
     "features": Tensor [N, D] float32,
     "coords": Tensor [N, 2] int64 or None,
     "report": str (raw text, "" when the annotation has none),
     "report_ids": LongTensor [T] ([0] + ids + [0], truncated to max_seq_length) or None without a vocabulary}

Multi-slide cases: an annotation item whose ``image_path`` lists two or more slides (or a
:class:`FeatureBagDataset` entry ``(case_id, [file, ...])``) is one item: its slides' bags are concatenated in
the order given (*concatenated bags, per-slide region boundaries kept*, chosen over per-slide encoding and
pooling because the model stays HistGen's own network, unchanged). The item adds::

     "case_slides": list[str] (the case's slides, in bag order),
     "case_bounds": LongTensor [S, 2] (start, end) rows of each slide in "features",
     "region_patches": int (region_size - 1, when the dataset was given the model's region_size)

and :func:`scripts.data.collate_bags` fills the last region of each slide but the last with repeats of that
slide's own first patches, so that no region of HistGen's local-global encoder mixes patches of two slides (the
network needs real patches first and padding only at the end of a bag, so the gap cannot be masked padding).
Items hold only real patches (the input normalisation is fitted on them). A case with a bad slide is bad as a
whole.

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

from .annotation import case_slide_ids, load_annotation
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

    def __init__(
        self,
        feature_dim: int | None,
        on_error: OnError,
        max_patches: int | None,
        seed: int | None,
        region_size: int | None = None,
        cache_mb: float | None = None,
    ) -> None:
        _check_on_error(on_error)
        if cache_mb is not None and cache_mb < 0:
            raise ValueError(f"cache_mb must be >= 0 or None, got {cache_mb}")
        if region_size is not None and region_size < 2:
            raise ValueError(f"region_size must be >= 2 or None, got {region_size}")
        self.region_size = region_size
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
        self.cache_bytes = int((cache_mb or 0) * 2**20)
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self._cached_bytes = 0
        self._cache_full_logged = False

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

    def _case_slides(self, case_id: str, slides: Sequence[tuple[str, Path]]) -> list[dict[str, Any]]:
        """Header-check every slide of a case: ``[{"id", "path", "num_patches"}]``; a bad slide fails the case."""
        checked = []
        for slide_id, path in slides:
            try:
                checked.append({"id": slide_id, "path": path, "num_patches": self._check_file(slide_id, path)})
            except BagDataError as err:
                raise BagDataError(f"case {case_id!r}: {err}") from None
        return checked

    def _read_bag(self, path: Path, slide_id: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One slide's checked ``(feats, coords)``, from memory when an earlier epoch kept it (``cache_mb``).

        Bags are kept as read (before any ``max_patches`` subsample) until the budget is spent; the rest are
        read from disk every time. Each DataLoader worker keeps its own copy, so the cache pays with
        ``num_workers=0`` (the default) or ``persistent_workers``.
        """
        key = str(path)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        bag = read_feature_file(path, slide_id=slide_id, feature_dim=self.feature_dim, read_attrs=False)
        if self.cache_bytes:
            size = bag.feats.nbytes + (bag.coords.nbytes if bag.coords is not None else 0)
            if self._cached_bytes + size <= self.cache_bytes:
                self._cache[key] = (bag.feats, bag.coords)
                self._cached_bytes += size
            elif not self._cache_full_logged:
                self._cache_full_logged = True
                logger.info("feature cache full (%d bags, %.0f MB of cache_mb=%.0f): further bags are read from "
                            "disk each epoch", len(self._cache), self._cached_bytes / 2**20, self.cache_bytes / 2**20)
        return bag.feats, bag.coords

    def _read_case(self, record: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The case's slides concatenated: ``feats [N, D]``, ``coords [N, 2]`` or None, ``bounds [S, 2]``."""
        bags = []
        for slide in record["slides"]:
            try:
                bags.append(self._read_bag(slide["path"], slide["id"]))
            except BagDataError as err:
                raise BagDataError(f"case {record['id']!r}: {err}") from None
        sizes = torch.tensor([int(feats.shape[0]) for feats, _ in bags])
        ends = sizes.cumsum(0)
        bounds = torch.stack([ends - sizes, ends], dim=1)
        feats = torch.cat([feats for feats, _ in bags])
        coords = torch.cat([c for _, c in bags]) if all(c is not None for _, c in bags) else None
        return feats, coords, bounds

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
        bounds = None
        try:
            if "slides" in record:
                feats, coords, bounds = self._read_case(record)
            else:
                feats, coords = self._read_bag(record["path"], record["id"])
        except BagDataError as err:
            if self.on_error == "raise":
                raise
            self._skip(record["id"], str(err))
            return {"id": record["id"], SKIPPED_KEY: str(err)}
        rows = self._subsample_rows(int(feats.shape[0]), index)
        if rows is not None:
            feats = feats[rows]
            coords = coords[rows] if coords is not None else None
            if bounds is not None:  # kept rows per slide, as new (start, end)
                kept = torch.searchsorted(rows, bounds.flatten()).view(-1, 2)
                bounds = kept
        item: dict[str, Any] = {"id": record["id"], "features": feats, "coords": coords}
        if bounds is not None:
            item["case_slides"] = [slide["id"] for slide in record["slides"]]
            item["case_bounds"] = bounds
            if self.region_size is not None:
                item["region_patches"] = self.region_size - 1
        return item


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
        region_size: the model's ``region_size``: multi-slide cases are laid out so that no region mixes two
            slides (see the module docstring); None concatenates their bags as they are.
        cache_mb: keep bags read once in memory, up to this many MB, so later epochs skip the disk (None or 0:
            read every time). Bags past the budget are read each time; each DataLoader worker keeps its own.
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
        region_size: int | None = None,
        cache_mb: float | None = None,
    ) -> None:
        super().__init__(feature_dim, on_error, max_patches, seed, region_size, cache_mb)
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
                record: dict[str, Any] = {"id": slide_id, "report": report, "report_ids": report_ids}
                case_slides = case_slide_ids(item)
                if case_slides is None:
                    record["path"] = find_feature_file(self.dataset_dir, slide_id)
                    record["num_patches"] = self._check_file(slide_id, record["path"])
                else:
                    located = [(s, self._case_file(slide_id, s)) for s in case_slides]
                    record["slides"] = self._case_slides(slide_id, located)
                    record["num_patches"] = sum(s["num_patches"] for s in record["slides"])
            except BagDataError as err:
                problems.append({"id": slide_id, "reason": str(err)})
                continue
            self.records.append(record)
        if problems and on_error == "raise":
            _raise_problems(problems, f"{self.annotation_file} split {split!r}")
        for problem in problems:
            self._skip(problem["id"], problem["reason"])
        if not self.records:
            skipped = f" ({len(problems)} skipped as unusable)" if problems else ""
            raise BagDataError(f"{self.annotation_file}: split {split!r} has no usable slides{skipped}")

    def _case_file(self, case_id: str, slide_id: str) -> Path:
        try:
            return find_feature_file(self.dataset_dir, slide_id)
        except BagDataError as err:
            raise BagDataError(f"case {case_id!r}: {err}") from None

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
        paths: feature files (``.h5`` or ``.pt``); the slide id is the file name without its suffix. An entry
            ``(case_id, [file, ...])`` is a multi-slide case (its slides' ids are their file names).
        feature_dim, on_error, max_patches, seed, region_size, cache_mb: as in :class:`ReportBagDataset`.
        ids: slide ids to use instead of the file names (same length as ``paths``).

    Items: ``{"id", "features", "coords", "report": "", "report_ids": None}``.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str] | tuple[str, Sequence[str | os.PathLike[str]]]],
        feature_dim: int | None = None,
        on_error: OnError = "raise",
        max_patches: int | None = None,
        seed: int | None = None,
        ids: Sequence[str] | None = None,
        region_size: int | None = None,
        cache_mb: float | None = None,
    ) -> None:
        super().__init__(feature_dim, on_error, max_patches, seed, region_size, cache_mb)
        entries: list[Path | tuple[str, list[Path]]] = [
            (str(p[0]), [Path(f) for f in p[1]]) if isinstance(p, (tuple, list)) else Path(p) for p in paths
        ]
        if ids is not None and len(ids) != len(entries):
            raise ValueError(f"ids has {len(ids)} entries but paths has {len(entries)}")
        if ids is None:
            ids = [e[0] if isinstance(e, tuple) else e.stem for e in entries]
        problems: list[dict[str, str]] = []
        for slide_id, entry in zip(ids, entries):
            try:
                if isinstance(entry, tuple):
                    slides = self._case_slides(slide_id, [(f.stem, f) for f in entry[1]])
                    record = {"id": slide_id, "slides": slides, "num_patches": sum(s["num_patches"] for s in slides)}
                else:
                    record = {"id": slide_id, "path": entry, "num_patches": self._check_file(slide_id, entry)}
            except BagDataError as err:
                problems.append({"id": slide_id, "reason": str(err)})
                continue
            self.records.append(record)
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
