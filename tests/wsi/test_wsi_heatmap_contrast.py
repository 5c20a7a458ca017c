"""Heatmaps a pathologist can read: per-slide scaling, a legend, tissue visible, and honest failed thumbnails."""

from __future__ import annotations

import numpy as np

from scripts.engines.slide_inference import HEATMAP_ALPHA, HEATMAP_LABEL, HEATMAP_NOTES
from scripts.wsi import TissueMask
from scripts.wsi.attention_heatmap import render_value_heatmap
from scripts.wsi.slide_thumbnail import NO_PATCHES_NOTE, render_thumbnail

TISSUE_RGB = np.array([214, 160, 200])


def _tissue() -> TissueMask:
    """A 1024 x 1024 px slide seen through a 64 x 64 mask (16 level-0 px per mask px); tissue in the top half."""
    mask = np.zeros((64, 64), bool)
    mask[8:40, 8:56] = True
    image = np.full((64, 64, 3), 242, np.uint8)
    image[mask] = TISSUE_RGB
    return TissueMask(mask=mask, image=image, level=0, factor=16, scale=(16.0, 16.0), mpp=8.0, threshold=20.0)


def _patches() -> tuple[np.ndarray, np.ndarray]:
    """96 patches of 64 level-0 px on the tissue and weights like a real attention map's (0.92 to 1.06): the top
    decile 1.04-1.06, the others 0.92-1.0."""
    coords = np.array([[128 + 64 * i, 128 + 64 * j] for j in range(8) for i in range(12)])
    rng = np.random.default_rng(0)
    weights = rng.uniform(0.92, 1.0, len(coords))
    top = rng.choice(len(coords), size=len(coords) // 10, replace=False)
    weights[top] = rng.uniform(1.04, 1.06, len(top))
    return coords, weights


def _centres(image, coords: np.ndarray) -> np.ndarray:
    rgb = np.asarray(image).astype(int)
    return np.array([rgb[y // 2 + 16, x // 2 + 16] for x, y in coords])  # 2 level-0 px per thumbnail px


def test_the_top_decile_of_a_narrow_attention_map_stands_out_and_the_tissue_shows_elsewhere():
    tissue, (coords, weights) = _tissue(), _patches()
    image = render_value_heatmap(tissue, coords, 64, weights, label=HEATMAP_LABEL, scale="percentile",
                                 notes=HEATMAP_NOTES, alpha=HEATMAP_ALPHA)  # as slide inference draws it
    colours = _centres(image, coords)
    top = weights >= 1.04  # the top decile
    assert top.sum() == len(weights) // 10
    middle = np.abs(weights - np.median(weights)) <= np.quantile(np.abs(weights - np.median(weights)), 0.2)
    # the top-decile patches are red and far from every other patch's colour on average
    assert np.all(colours[top, 0] - colours[top, 2] > 40), colours[top]
    contrast = np.linalg.norm(colours[top].mean(axis=0) - colours[~top].mean(axis=0))
    assert contrast > 80, contrast
    # patches near the slide's median weight leave the tissue visible
    assert np.abs(colours[middle] - TISSUE_RGB).max() < 40, colours[middle]
    # the same weights on the old fixed ratio scale (0.5-2) were nearly invisible: the reason for the change
    ratio = _centres(render_value_heatmap(tissue, coords, 64, weights, scale="ratio"), coords)
    assert np.linalg.norm(ratio[top].mean(axis=0) - ratio[~top].mean(axis=0)) < contrast / 3


def test_the_legend_says_what_the_colours_mean_away_from_the_tissue():
    tissue, (coords, weights) = _tissue(), _patches()
    bare = np.asarray(render_value_heatmap(tissue, coords, 64, weights, label=HEATMAP_LABEL, scale="percentile"))
    noted = np.asarray(render_value_heatmap(tissue, coords, 64, weights, label=HEATMAP_LABEL, scale="percentile",
                                            notes=HEATMAP_NOTES))
    changed = np.argwhere((bare != noted).any(axis=-1))
    assert len(changed) > 200  # the notes are written
    assert changed[:, 0].min() >= 320  # ... in the legend box, in the bottom half where there is no tissue


def test_equal_weights_paint_nothing_over_the_tissue():
    tissue, (coords, _) = _tissue(), _patches()
    colours = _centres(render_value_heatmap(tissue, coords, 64, np.ones(len(coords)), scale="percentile"), coords)
    assert (colours == colours[0]).all() and np.abs(colours - TISSUE_RGB).max() < 15


def test_a_thumbnail_without_patches_says_the_slide_was_not_reported():
    tissue = _tissue()
    coords, _ = _patches()
    banner = np.asarray(render_thumbnail(tissue, np.zeros((0, 2)), 64)).astype(int)
    normal = np.asarray(render_thumbnail(tissue, coords, 64)).astype(int)
    red_text = (banner[..., 0] > 120) & (banner[..., 1] < 40) & (banner[..., 2] < 40)
    assert red_text.sum() > 100 and NO_PATCHES_NOTE[0].isupper()
    assert not ((normal[..., 0] > 120) & (normal[..., 1] < 40) & (normal[..., 2] < 40)).any()
    assert render_thumbnail(tissue, np.zeros((0, 2)), 64, empty_note=None).size == normal.shape[1::-1]
