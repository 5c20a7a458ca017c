"""Whole-slide images to patch features: reading, tissue masks, patch grids, batched patch reading.

One module per step:

- :mod:`.backend_choice`: cuCIM or OpenSlide for a file (``wsi_backend="auto" | "cucim" | "openslide"``);
- :mod:`.slide_reader`: :class:`Slide`, a file opened through MONAI's ``WSIReader``;
- :mod:`.slide_mpp`: microns per pixel from metadata (no silent defaults);
- :mod:`.read_plan`: read level and size for a target microns per pixel;
- :mod:`.tissue_mask`: low-resolution tissue mask (HSV saturation, Otsu, morphology);
- :mod:`.patch_grid`: patch grid filtered by tissue fraction;
- :mod:`.patch_reader`: batched reads (cuCIM multi-location reads or a DataLoader);
- :mod:`.feature_extractor`: the ``extract_features`` workflow (h5/pt outputs, manifest, thumbnails).

This package knows nothing about reports or text.
"""

from scripts import quiet_cucim  # noqa: F401  (first: cuCIM's start-up lines stay quiet)

from .backend_choice import BackendChoice, choose_backend
from .feature_extractor import FeatureExtractor, NothingExtractedError, resize_patches
from .feature_outputs import RUN_KEYS, read_h5_attrs, stale_reasons
from .patch_grid import PatchGrid, box_fractions, build_patch_grid, grid_positions
from .patch_reader import PatchBatchReader, SlidePatchDataset
from .read_plan import ReadPlan, plan_patch_reading
from .run_manifest import (
    ManifestRow,
    OutputFolderBusyError,
    OutputFolderLock,
    merge_rank_manifests,
    read_manifest,
    write_manifest,
)
from .slide_errors import (
    MissingMppError,
    NoTissueError,
    ResolutionError,
    SlideError,
    SlideOpenError,
    SlideReadError,
)
from .slide_reader import Slide, open_slide
from .slide_sources import SlideSource, list_slides, read_slides_csv, scan_slides_dir
from .slide_thumbnail import render_thumbnail
from .tissue_mask import TissueMask, TissueMaskParams, compute_tissue_mask, hsv_saturation, slide_tissue_mask

__all__ = [
    "RUN_KEYS",
    "BackendChoice",
    "FeatureExtractor",
    "ManifestRow",
    "MissingMppError",
    "NoTissueError",
    "NothingExtractedError",
    "OutputFolderBusyError",
    "OutputFolderLock",
    "PatchBatchReader",
    "PatchGrid",
    "ReadPlan",
    "ResolutionError",
    "Slide",
    "SlideError",
    "SlideOpenError",
    "SlidePatchDataset",
    "SlideReadError",
    "SlideSource",
    "TissueMask",
    "TissueMaskParams",
    "box_fractions",
    "build_patch_grid",
    "choose_backend",
    "compute_tissue_mask",
    "grid_positions",
    "hsv_saturation",
    "list_slides",
    "merge_rank_manifests",
    "open_slide",
    "plan_patch_reading",
    "read_h5_attrs",
    "read_manifest",
    "read_slides_csv",
    "render_thumbnail",
    "resize_patches",
    "scan_slides_dir",
    "slide_tissue_mask",
    "stale_reasons",
    "write_manifest",
]
