"""A whole slide -> one feature bag, extracted exactly as ``configs/inference.json --slide`` extracts it.

The serving apps (MONAI Label, MONAI Deploy) answer a whole-slide request with the extractor that slide
inference builds from the model's ``feature_extraction.json``
(:func:`scripts.engines.slide_inference.slide_feature_extractor`): same encoder, patch size, resolution and
slide-level tissue mask, so the same slide gives the same patches and the same report.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from scripts.data import read_feature_file
from scripts.wsi import SlideSource

__all__ = ["SlideBag", "slide_feature_bag"]


@dataclass
class SlideBag:
    """Features of one slide's tissue patches.

    Attributes:
        feats: ``[N, D]`` float32.
        coords: ``[N, 2]`` int64 level-0 ``(x, y)`` of each patch's top-left corner.
        patch_size_level0: patch side in level-0 pixels.
    """

    feats: torch.Tensor
    coords: torch.Tensor
    patch_size_level0: int


def slide_feature_bag(extractor: Any, slide_path: str | os.PathLike[str], slide_id: str | None = None) -> SlideBag:
    """Extract one slide with ``extractor`` (a :class:`scripts.wsi.FeatureExtractor`) and read its ``.h5`` back.

    A current ``.h5`` in the extractor's folder is reused, as in slide inference.

    Raises:
        RuntimeError: the slide could not be read or holds no tissue (the extractor's reason).
    """
    slide_id = slide_id or Path(slide_path).stem
    row = extractor.extract_slide(SlideSource(slide_id, str(slide_path)))
    if row.status == "failed":
        raise RuntimeError(f"{slide_path}: {row.error}")
    path = Path(extractor.output_dir) / f"{slide_id}.h5"
    bag = read_feature_file(path, slide_id=slide_id)
    return SlideBag(bag.feats, bag.coords, int((bag.attrs or {}).get("patch_size_level0", 0)))
