"""A region of a whole-slide image -> one feature bag, for interactive serving (MONAI Label, MONAI Deploy).

The batch workflow (``configs/extract_features.json``, :class:`scripts.wsi.FeatureExtractor`) works
on whole slides. A viewer asks about a *region*, so this module reuses its pieces on that region:
the same read plan (level and read size for ``target_mpp``), the same reader (cuCIM or OpenSlide),
the same resizing and the same encoder; tissue is decided per patch (share of pixels whose HSV
saturation reaches ``min_saturation``) instead of from a slide-level mask.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from scripts.wsi import NoTissueError, hsv_saturation, open_slide, plan_patch_reading, resize_patches

__all__ = ["RegionBag", "region_feature_bag"]


@dataclass
class RegionBag:
    """Features of the tissue patches of one region.

    Attributes:
        feats: ``[N, D]`` float32, patches in row-major order.
        coords: ``[N, 2]`` int64 level-0 ``(x, y)`` of each patch's top-left corner.
        patch_size_level0: patch side in level-0 pixels.
        n_candidates: patches in the region before the tissue test.
    """

    feats: torch.Tensor
    coords: torch.Tensor
    patch_size_level0: int
    n_candidates: int


@torch.no_grad()
def region_feature_bag(
    slide_path: str | os.PathLike[str],
    encoder: Any,
    location: tuple[int, int] = (0, 0),
    size: tuple[int, int] | None = None,
    target_mpp: float = 0.5,
    patch_size: int = 256,
    tissue_fraction: float = 0.5,
    min_saturation: int = 15,
    wsi_backend: str = "auto",
    assume_mpp: float | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> RegionBag:
    """Encode the tissue patches of a region.

    Args:
        slide_path: the slide.
        encoder: a ``scripts.encoders`` patch encoder (``transform``, ``__call__``, ``embed_dim``).
        location: ``(x, y)`` of the region's top-left corner, level-0 pixels.
        size: ``(width, height)`` of the region in level-0 pixels; None = to the slide's edge.
        target_mpp, patch_size, tissue_fraction: as in ``configs/extract_features.json``.
        min_saturation: HSV saturation (0-255) a pixel needs to count as tissue.
        wsi_backend, assume_mpp: as in :class:`scripts.wsi.Slide`.
        batch_size: patches per encoder call.
        device: where the encoder runs.

    Raises:
        NoTissueError: no patch of the region passes the tissue test.
    """
    with open_slide(slide_path, wsi_backend=wsi_backend, assume_mpp=assume_mpp) as slide:
        plan = plan_patch_reading(slide.name, slide.level_downsamples, slide.mpp, target_mpp, patch_size)
        width0, height0 = slide.dimensions
        x0, y0 = max(0, int(location[0])), max(0, int(location[1]))
        w = width0 - x0 if size is None else min(int(size[0]), width0 - x0)
        h = height0 - y0 if size is None else min(int(size[1]), height0 - y0)
        side0, step0 = plan.patch_size_level0, plan.step_level0
        xs = range(x0, x0 + w - side0 + 1, step0)
        ys = range(y0, y0 + h - side0 + 1, step0)
        candidates = [(x, y) for y in ys for x in xs]
        kept: list[tuple[int, int]] = []
        patches: list[np.ndarray] = []
        for x, y in candidates:
            rgb = slide.read_region((x, y), (plan.read_size, plan.read_size), plan.level)
            if float((hsv_saturation(rgb) >= min_saturation).mean()) >= tissue_fraction:
                kept.append((x, y))
                patches.append(rgb)
        if not kept:
            raise NoTissueError(
                slide.name,
                f"no tissue in region x={x0} y={y0} w={w} h={h} ({len(candidates)} patches of {side0} px, "
                f"tissue_fraction {tissue_fraction}, saturation >= {min_saturation})",
            )
    feats = []
    for start in range(0, len(patches), batch_size):
        batch = torch.from_numpy(np.stack(patches[start : start + batch_size])).permute(0, 3, 1, 2).contiguous()
        batch = batch.to(device)
        if plan.resized:
            batch = resize_patches(batch, patch_size)
        feats.append(encoder(encoder.transform(batch)).float().cpu())
    return RegionBag(torch.cat(feats), torch.tensor(kept, dtype=torch.int64), side0, len(candidates))
