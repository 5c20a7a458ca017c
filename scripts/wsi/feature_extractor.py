"""Slides in, one feature file per slide out: the ``extract_features`` workflow.

For each slide: open it (cuCIM or OpenSlide), plan the read level for ``target_mpp``, compute the
tissue mask on a low-resolution image, keep grid patches with enough tissue, read them in batches,
apply the patch preprocessing (a MONAI transform chain, by default
:class:`scripts.encoders.PatchPreprocessing`: optional stain normalisation, then the encoder's own resize and
normalisation) on the batch's device and the encoder, and write ``<slide_id>.h5`` (plus ``.pt`` on
request) and ``<slide_id>_thumb.png``. Each slide's outcome goes to ``manifest.csv``; one bad slide
never stops the run.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF
from tqdm.auto import tqdm

from scripts import runtime_threads
from scripts.encoders.patch_preprocessing import STAIN_NORMALIZATIONS, PatchPreprocessing, describe_preprocessing
from scripts.ids import UnsafeIdError, check_file_id

from .cucim_decode_errors import watch_cucim_decode_errors
from .feature_outputs import (
    FORMAT_VERSION,
    h5_path,
    pt_path,
    read_h5_attrs,
    read_h5_feats,
    remove_stale_temporaries,
    stale_reasons,
    thumbnail_path,
    write_features_h5,
    write_features_pt,
)
from .patch_grid import PatchGrid, build_patch_grid
from .patch_reader import PatchBatchReader
from .read_plan import ReadPlan, plan_patch_reading
from .run_manifest import (
    MANIFEST_NAME,
    ManifestRow,
    OutputFolderLock,
    merge_rank_manifests,
    rank_manifest_name,
    read_manifest,
    write_manifest,
)
from .run_sharding import barrier, rank_and_world, shard
from .slide_errors import NoTissueError, SlideError, SlideOpenError
from .slide_reader import Slide
from .slide_sources import SlideSource, list_slides, slide_path_problem
from .slide_thumbnail import render_thumbnail, save_png_atomic
from .tissue_mask import TissueMask, TissueMaskParams, slide_tissue_mask

logger = logging.getLogger(__name__)


class NothingExtractedError(RuntimeError):
    """A feature-extraction run that found no slide, or whose every slide failed (the manifest lists why)."""


def resize_patches(patches: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``uint8 [B, 3, R, R]`` to ``uint8 [B, 3, size, size]`` (bilinear, antialiased)."""
    return TF.resize(patches, [size, size], antialias=True)


class FeatureExtractor:
    """Extract patch features for every slide of a folder or CSV list.

    Args:
        output_dir: folder for ``<slide_id>.h5``, ``.pt``, ``_thumb.png`` and ``manifest.csv``.
        encoder: object with ``name``, ``embed_dim``, ``checksum``, ``transform(uint8 [B, 3, H, W])
            -> float [B, 3, S, S]`` and ``__call__(float [B, 3, S, S]) -> [B, D]``
            (``scripts.encoders.build_encoder(...)``).
        slides_dir: folder scanned recursively for slides (or base folder of relative CSV paths).
        slides_csv: CSV with a ``path`` column and optional ``slide_id`` (wins over ``slides_dir``).
        device: where the encoder runs; default CUDA when available, else CPU.
        wsi_backend: ``"auto"``, ``"cucim"`` or ``"openslide"``.
        target_mpp: microns per pixel of the patches (0.5 ~ 20x).
        assume_mpp: level-0 um/px for slides without resolution metadata (else they fail).
        mpp_tolerance: relative tolerance for a level to match ``target_mpp`` without resizing.
        patch_size: patch side in pixels at ``target_mpp``.
        step: grid step at ``target_mpp`` (default ``patch_size``).
        tissue_fraction: minimum tissue fraction of a kept patch.
        tissue_params: tissue-mask thresholds (:class:`TissueMaskParams` or a dict of its fields).
        batch_size: patches per encoder batch.
        num_workers: cuCIM decode threads or DataLoader workers.
        save_pt: also write HistGen's ``<slide_id>.pt`` (tensor ``[N, D]``).
        save_thumbnails: write ``<slide_id>_thumb.png``.
        progress: show tqdm bars (over the run and per slide).
        torch_threads: torch intra-op threads while patches are encoded on the CPU. None: the
            workflow's :func:`scripts.runtime_threads.apply_thread_choice` if it ran, else
            :func:`scripts.runtime_threads.choose_threads` (``OMP_NUM_THREADS``, else the usable cores
            minus the ``num_workers`` decoding alongside and minus other runnable jobs, at least 1);
            on a 2-core machine two OpenMP threads competing with two decode threads run 2-4x slower.
        stain_normalization: ``"none"`` or ``"macenko"`` (MONAI's ``NormalizeHEStains`` before the encoder's
            steps); recorded in every feature file (``stain_normalization`` attribute).
        preprocessing: the MONAI transform chain ``uint8 [B, 3, H, W] -> float [B, 3, S, S]`` (a config's
            ``preprocessing``); None builds ``PatchPreprocessing(encoder, stain_normalization)``. A chain that
            is not a :class:`scripts.encoders.PatchPreprocessing` is recorded as ``custom: <transform names>``
            in the ``preprocessing`` attribute.

    Note:
        A config runs it with ``"extract_features": "$@extractor.run()"``; in Python:

        .. code-block:: python

            from scripts.encoders import build_encoder
            rows = FeatureExtractor("out/", build_encoder("builtin-small"), slides_dir="slides/").run()
            [(r.slide_id, r.status, r.n_patches) for r in rows]  # [('CMU-1', 'done', 92), ...]
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        encoder: Any,
        slides_dir: str | os.PathLike | None = None,
        slides_csv: str | os.PathLike | None = None,
        device: torch.device | str | None = None,
        wsi_backend: str = "auto",
        target_mpp: float = 0.5,
        assume_mpp: float | None = None,
        mpp_tolerance: float = 0.1,
        patch_size: int = 256,
        step: int | None = None,
        tissue_fraction: float = 0.5,
        tissue_params: TissueMaskParams | dict | None = None,
        batch_size: int = 64,
        num_workers: int = 2,
        save_pt: bool = False,
        save_thumbnails: bool = True,
        progress: bool = True,
        torch_threads: int | None = None,
        stain_normalization: str = "none",
        preprocessing: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        self.output_dir = Path(output_dir)
        self.encoder = encoder
        self.slides_dir = slides_dir
        self.slides_csv = slides_csv
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.wsi_backend = wsi_backend
        self.target_mpp = float(target_mpp)
        self.assume_mpp = None if assume_mpp is None else float(assume_mpp)
        self.mpp_tolerance = float(mpp_tolerance)
        self.patch_size = int(patch_size)
        self.step = self.patch_size if step is None else int(step)
        self.tissue_fraction = float(tissue_fraction)
        if isinstance(tissue_params, dict):
            tissue_params = TissueMaskParams(**tissue_params)
        self.tissue_params = tissue_params or TissueMaskParams()
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.save_pt = bool(save_pt)
        self.save_thumbnails = bool(save_thumbnails)
        self.progress = bool(progress)
        self.torch_threads = torch_threads
        if stain_normalization not in STAIN_NORMALIZATIONS:
            raise ValueError(f"stain_normalization must be one of {STAIN_NORMALIZATIONS}, got {stain_normalization!r}")
        if preprocessing is None:
            preprocessing = PatchPreprocessing(encoder, stain_normalization)
        elif isinstance(preprocessing, PatchPreprocessing) and preprocessing.stain_normalization != stain_normalization:
            raise ValueError(
                f"preprocessing normalises stains with {preprocessing.stain_normalization!r} but "
                f"stain_normalization is {stain_normalization!r}; give the same value to both"
            )
        self.stain_normalization = stain_normalization
        self.preprocessing = preprocessing
        self._encoder_ready = False

    # ------------------------------------------------------------------ run
    def run(self) -> list[ManifestRow]:
        """Process this rank's share of the slides and write the manifest.

        Returns:
            This rank's manifest rows (rank 0 also merges all ranks into ``manifest.csv``).
        """
        sources = list_slides(self.slides_dir, self.slides_csv)
        rank, world = rank_and_world()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with OutputFolderLock(self.output_dir, rank):
            rows = self._run_locked(sources, rank, world)
        if rank == 0:
            self._check_something_succeeded(sources, rows, world)
        return rows

    def _run_locked(self, sources: list[SlideSource], rank: int, world: int) -> list[ManifestRow]:
        mine = shard(sources, rank, world)
        manifest = self.output_dir / (MANIFEST_NAME if world == 1 else rank_manifest_name(rank))
        for stale in self.output_dir.glob(glob.escape(f".{manifest.name}.") + "*.tmp"):
            stale.unlink(missing_ok=True)  # a manifest write cut short by a killed run
        rows: list[ManifestRow] = []
        bar = tqdm(
            mine,
            desc=f"slides (rank {rank}/{world})" if world > 1 else "slides",
            unit="slide",
            disable=not self.progress,
            position=0,
        )
        for source in bar:
            row = self.extract_slide(source)
            rows.append(row)
            write_manifest(manifest, rows)
            bar.set_postfix_str(f"{source.slide_id}: {row.status}")
            if row.status == "failed":
                logger.warning("%s", row.error)
        bar.close()
        if not mine:
            write_manifest(manifest, rows)
        if world > 1:
            barrier()
            if rank == 0:
                merge_rank_manifests(self.output_dir, world, [s.slide_id for s in sources])
            barrier()
        counts = {s: sum(r.status == s for r in rows) for s in ("done", "skipped", "failed")}
        logger.info("rank %d: %s slides done, %s skipped, %s failed", rank, *counts.values())
        return rows

    def _check_something_succeeded(self, sources: list[SlideSource], rows: list[ManifestRow], world: int) -> None:
        """Raise :class:`NothingExtractedError` when the run has no usable feature file to show (rank 0)."""
        where = self.slides_csv if self.slides_csv is not None else self.slides_dir
        if not sources:
            raise NothingExtractedError(f"{where}: no slide found, nothing extracted (manifest: "
                                        f"{self.output_dir / MANIFEST_NAME})")
        if world > 1:
            rows = read_manifest(self.output_dir / MANIFEST_NAME)
        usable = sum(r.status in ("done", "skipped") for r in rows)
        if usable == 0:
            failed = sum(r.status == "failed" for r in rows)
            first = next((r.error for r in rows if r.error), "")
            raise NothingExtractedError(
                f"no slide was extracted: {failed} of {len(sources)} slide(s) failed (first: {first}); every "
                f"failure is listed in {self.output_dir / MANIFEST_NAME}"
            )

    # ------------------------------------------------------------------ one slide
    def expected_attrs(self, path: str | os.PathLike) -> dict[str, Any]:
        """Attributes a current feature file of ``path`` must carry (see ``feature_outputs.RUN_KEYS``)."""
        stat = os.stat(path)
        return {
            "format_version": FORMAT_VERSION,
            "slide_file_size": int(stat.st_size),
            "slide_mtime": float(stat.st_mtime),
            "encoder_name": str(self.encoder.name),
            "encoder_checksum": str(self.encoder.checksum),
            "wsi_backend": self.wsi_backend,
            "target_mpp": self.target_mpp,
            "assume_mpp": self.assume_mpp,
            "mpp_tolerance": self.mpp_tolerance,
            "patch_size": self.patch_size,
            "step": self.step,
            "tissue_fraction": self.tissue_fraction,
            "tissue_params": self.tissue_params.as_dict(),
            "stain_normalization": self.stain_normalization,
            "preprocessing": describe_preprocessing(self.preprocessing),
        }

    def extract_slide(self, source: SlideSource) -> ManifestRow:
        """Process one slide; never raises for a bad slide (the row says ``failed`` and why)."""
        start = time.perf_counter()
        try:
            check_file_id(source.slide_id, "slide id")  # before any file of this slide is named
            remove_stale_temporaries(self.output_dir, source.slide_id)
            problem = slide_path_problem(source.path)
            if problem:
                raise SlideOpenError(Path(source.path).name, f"{problem}: {source.path}")
            expected = self.expected_attrs(source.path)
            out = h5_path(self.output_dir, source.slide_id)
            stored = read_h5_attrs(out)
            reasons = stale_reasons(stored, expected)
            if not reasons:
                if self.save_pt and not pt_path(self.output_dir, source.slide_id).is_file():
                    write_features_pt(pt_path(self.output_dir, source.slide_id), read_h5_feats(out))
                n_done = int(stored["n_patches"]) if stored else 0
                return ManifestRow(source.slide_id, source.path, "skipped", n_done, time.perf_counter() - start)
            if out.exists() or pt_path(self.output_dir, source.slide_id).exists():
                # outdated features must not outlive a failed recomputation
                logger.info("%s: recomputing (%s)", source.slide_id, "; ".join(reasons))
                out.unlink(missing_ok=True)
                pt_path(self.output_dir, source.slide_id).unlink(missing_ok=True)
            n_patches = self._extract(source, expected)
            return ManifestRow(source.slide_id, source.path, "done", n_patches, time.perf_counter() - start)
        except (SlideError, UnsafeIdError) as err:
            return ManifestRow(source.slide_id, source.path, "failed", 0, time.perf_counter() - start, str(err))
        except Exception as err:  # any other failure of one slide must not stop the run
            logger.exception("%s: unexpected error", source.path)
            message = f"{Path(source.path).name}: {type(err).__name__}: {err}"
            return ManifestRow(source.slide_id, source.path, "failed", 0, time.perf_counter() - start, message)

    def _extract(self, source: SlideSource, expected: dict[str, Any]) -> int:
        with Slide(source.path, self.wsi_backend, self.assume_mpp, name=Path(source.path).name) as slide:
            watch = watch_cucim_decode_errors(slide.name) if slide.backend == "cucim" else contextlib.nullcontext()
            with watch:
                plan = plan_patch_reading(
                    slide.name,
                    slide.level_downsamples,
                    slide.mpp,
                    self.target_mpp,
                    self.patch_size,
                    self.step,
                    self.mpp_tolerance,
                )
                tissue = slide_tissue_mask(slide, self.tissue_params)
                grid = build_patch_grid(
                    tissue, slide.dimensions, slide.level_dimensions[plan.level], plan, self.tissue_fraction
                )
                if self.save_thumbnails:
                    thumb = render_thumbnail(tissue, grid.coords, plan.patch_size_level0)
                    save_png_atomic(thumb, thumbnail_path(self.output_dir, source.slide_id))
                self._check_tissue(slide, tissue, grid)
                feats = self.encode_patches(slide, grid.coords, plan)
            attrs = self._attrs(source, slide, plan, tissue, grid, feats, expected)
        write_features_h5(h5_path(self.output_dir, source.slide_id), feats, grid.coords, attrs)
        if self.save_pt:
            write_features_pt(pt_path(self.output_dir, source.slide_id), feats)
        return int(feats.shape[0])

    def _check_tissue(self, slide: Slide, tissue: TissueMask, grid: PatchGrid) -> None:
        where = f"level {tissue.level}"
        if tissue.factor > 1:
            where += f" (/{tissue.factor})"
        if tissue.tissue_pixels == 0:
            raise NoTissueError(
                slide.name,
                f"no tissue found at {where} (saturation threshold {tissue.threshold:.1f}, "
                f"mask {tissue.mask.shape[1]}x{tissue.mask.shape[0]} px at {tissue.mpp:.2f} um/px)",
            )
        if len(grid) == 0:
            raise NoTissueError(
                slide.name,
                f"no tissue found at {where} in any of {grid.candidates} patches "
                f"(tissue_fraction {self.tissue_fraction}, {tissue.tissue_pixels} tissue pixels in the mask)",
            )

    # ------------------------------------------------------------------ encoding
    def _prepare_encoder(self) -> None:
        if self._encoder_ready:
            return
        if hasattr(self.encoder, "to"):
            self.encoder.to(self.device)
        if hasattr(self.encoder, "eval"):
            self.encoder.eval()
        self._encoder_ready = True

    def _encode_threads(self) -> int | None:
        """Intra-op threads for CPU encoding (None: leave torch's setting alone, e.g. on CUDA)."""
        if self.torch_threads is not None:
            return max(1, int(self.torch_threads))
        if self.device.type != "cpu":
            return None
        applied = runtime_threads.applied_choice()  # the workflow's choice, made once per process
        if applied is not None and applied.source != "automatic":  # OMP_NUM_THREADS or num_threads: as given
            return applied.intra_op
        if applied is not None:  # leave room for this extractor's decode workers too
            return max(1, min(applied.intra_op, applied.cores - self.num_workers))
        return runtime_threads.choose_threads(None, None, self.num_workers).intra_op

    def encode_patches(self, slide: Slide, coords: np.ndarray, plan: ReadPlan) -> np.ndarray:
        """Features ``[N, D]`` float32 of the patches at ``coords [N, 2]`` (level-0 x, y)."""
        threads, previous = self._encode_threads(), torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            return self._encode(slide, coords, plan)
        finally:
            if threads is not None:
                torch.set_num_threads(previous)

    @torch.inference_mode()
    def _encode(self, slide: Slide, coords: np.ndarray, plan: ReadPlan) -> np.ndarray:
        self._prepare_encoder()
        feats = np.zeros((len(coords), int(self.encoder.embed_dim)), dtype=np.float32)
        reader = PatchBatchReader(
            slide, coords, plan, self.batch_size, self.num_workers, pin_memory=self.device.type == "cuda"
        )
        with tqdm(
            total=len(coords), desc=slide.name, unit="patch", leave=False, disable=not self.progress, position=1
        ) as bar:
            for patches, index in reader:
                batch = patches.to(self.device, non_blocking=True)
                if plan.resized:
                    batch = resize_patches(batch, plan.patch_size)
                out = self.encoder(self.preprocessing(batch))
                if out.ndim != 2 or out.shape[1] != feats.shape[1]:
                    raise RuntimeError(
                        f"{slide.name}: encoder {self.encoder.name} returned {list(out.shape)}, "
                        f"expected [{len(index)}, {feats.shape[1]}]"
                    )
                feats[index.numpy()] = out.float().cpu().numpy()
                bar.update(len(index))
        unchanged = self.preprocessing.pop_unchanged() if hasattr(self.preprocessing, "pop_unchanged") else 0
        if unchanged:
            logger.warning("%s: stain normalisation kept %d of %d patches as they were (too little stain to "
                           "estimate it)", slide.name, unchanged, len(coords))
        return feats

    def _attrs(
        self,
        source: SlideSource,
        slide: Slide,
        plan: ReadPlan,
        tissue: TissueMask,
        grid: PatchGrid,
        feats: np.ndarray,
        expected: dict[str, Any],
    ) -> dict[str, Any]:
        size0 = slide.dimensions
        return {
            **expected,
            "slide_id": source.slide_id,
            "slide_path": str(Path(source.path).resolve()),
            "backend": slide.backend,
            "backend_reason": slide.choice.reason,
            "mpp": slide.mpp,
            "mpp_source": "metadata" if slide.metadata_mpp is not None else "assume_mpp",
            "level": plan.level,
            "level_mpp": plan.level_mpp,
            "downsample": plan.downsample,
            "patch_size_level": plan.read_size,
            "patch_size_level0": plan.patch_size_level0,
            "step_level0": plan.step_level0,
            "resized": plan.resized,
            "level0_width": size0[0],
            "level0_height": size0[1],
            "mask_level": tissue.level,
            "mask_factor": tissue.factor,
            "mask_mpp_actual": tissue.mpp,
            "mask_threshold": tissue.threshold,
            "n_patches": int(feats.shape[0]),
            "n_candidates": grid.candidates,
            "feature_dim": int(feats.shape[1]),
            "encoder_embed_dim": int(self.encoder.embed_dim),
            "encoder_input_size": int(getattr(self.encoder, "input_size", 0)),
        }
