"""Tissue masks: saturation + Otsu + morphology on a low level, never the whole of level 0."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from scripts.wsi import (
    Slide,
    TissueMaskParams,
    build_patch_grid,
    compute_tissue_mask,
    hsv_saturation,
    plan_patch_reading,
    slide_tissue_mask,
)
from scripts.wsi.tissue_mask import read_mask_image
from tests.support.slide_files import cmu_rgb, shared_path, write_pyramid_tiff

PINK = (200, 120, 170)  # H&E-like eosin pink, saturation 102


def _background(h: int, w: int, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(-4, 5, size=(h, w, 3))
    return np.clip(238 + noise, 0, 255).astype(np.uint8)


def test_hsv_saturation_matches_the_definition():
    rgb = np.array([[[255, 0, 0], [128, 128, 128], [200, 120, 170], [0, 0, 0], [20, 5, 10]]], dtype=np.uint8)
    assert hsv_saturation(rgb).tolist() == [[255, 0, 102, 0, 191]]
    assert hsv_saturation(rgb, min_value=30).tolist() == [[255, 0, 102, 0, 0]]  # dark pixel dropped


def test_mask_finds_a_tissue_blob_fills_its_hole_and_drops_specks():
    image = _background(200, 300)
    image[50:150, 60:200] = PINK  # 100 x 140 px tissue (at 8 um/px: 0.9 mm^2)
    image[95:100, 120:125] = 238  # a 5 x 5 px hole (1600 um^2): filled
    image[10:13, 250:253] = PINK  # a 3 x 3 px speck (576 um^2): removed
    mask, threshold = compute_tissue_mask(image, TissueMaskParams(), mpp=8.0)
    assert 15 <= threshold < 102
    expected = np.zeros((200, 300), dtype=bool)
    expected[50:150, 60:200] = True
    # the median filter rounds the blob's four corners; nothing else differs
    rows, cols = np.nonzero(mask != expected)
    assert len(rows) > 0 and all(
        min(abs(r - 50), abs(r - 149)) <= 3 and min(abs(c - 60), abs(c - 199)) <= 3 for r, c in zip(rows, cols)
    )
    assert mask[97, 122] and not mask[11, 251]


def test_blank_slide_noise_is_not_tissue_even_with_otsu():
    image = _background(200, 300, seed=1)
    mask, threshold = compute_tissue_mask(image, TissueMaskParams(), mpp=8.0)
    assert not mask.any() and threshold == 15.0  # Otsu splits the noise; the floor keeps it out


def test_fixed_threshold_key_is_used():
    image = _background(100, 100)
    image[20:80, 20:80] = (200, 150, 180)  # saturation 63
    params_low = TissueMaskParams(saturation_threshold=40)
    params_high = TissueMaskParams(saturation_threshold=80)
    assert compute_tissue_mask(image, params_low, 8.0)[0][50, 50]
    assert not compute_tissue_mask(image, params_high, 8.0)[0].any()


def test_cmu_mask_covers_the_tissue_with_both_backends():
    path = shared_path("fixtures", "slides", "CMU-1-Small-Region.svs")
    masks = []
    for backend in ("cucim", "openslide"):
        with Slide(path, backend) as slide:
            tissue = slide_tissue_mask(slide, TissueMaskParams())
        assert (tissue.level, tissue.factor) == (0, 16)  # one level: block-averaged strips of level 0
        assert tissue.mask.shape == (2967 // 16, 2220 // 16)
        masks.append(tissue.mask)
    assert np.array_equal(masks[0], masks[1])
    # against a direct saturation check of the real pixels: tissue pixels are where the mask is
    rgb = cmu_rgb()[: 185 * 16, : 138 * 16].reshape(185, 16, 138, 16, 3).mean(axis=(1, 3)).astype(np.uint8)
    saturation = hsv_saturation(rgb)
    assert 0.2 < masks[0].mean() < 0.6
    # nearly all clearly stained pixels are covered (the median filter drops strands < 4 px thick) ...
    assert (masks[0] & (saturation > 60)).sum() >= 0.9 * (saturation > 60).sum()
    # ... and little of the mask is bare glass (filled holes only)
    assert (masks[0] & (saturation < 15)).sum() <= 0.05 * masks[0].sum()


def _write_wide_slide(path, width: int, height: int, tissue_x: tuple[int, int]) -> None:
    """Three-level JPEG TIFF, ``width`` px wide at 0.5 um/px, white but for a pink band at ``tissue_x``."""
    tile = 512

    def tiles(w: int, h: int, x0: int, x1: int):
        for _row in range(0, h, tile):
            for tx in range(0, w, tile):
                block = np.full((tile, tile, 3), 240, dtype=np.uint8)
                lo, hi = max(x0 - tx, 0), min(x1 - tx, tile)
                if hi > lo:
                    block[:, lo:hi] = PINK
                yield block

    with tifffile.TiffWriter(path, bigtiff=True) as writer:
        for level, ds in enumerate((1, 8, 64)):
            w, h = width // ds, height // ds
            per_cm = 1e4 / (0.5 * ds)
            writer.write(
                tiles(w, h, tissue_x[0] // ds, tissue_x[1] // ds),
                shape=(h, w, 3),
                dtype=np.uint8,
                tile=(tile, tile),
                photometric="rgb",
                compression="jpeg",
                metadata=None,
                subfiletype=0 if level == 0 else 1,
                resolution=(per_cm, per_cm),
                resolutionunit="CENTIMETER",
            )


def test_slide_wider_than_65535_px_masks_at_a_low_level(tmp_path):
    path = tmp_path / "wide.tif"
    _write_wide_slide(path, width=70_144, height=1_536, tissue_x=(66_048, 67_584))
    for backend in ("cucim", "openslide"):
        with Slide(path, backend) as slide:
            assert slide.dimensions == (70_144, 1_536)
            tissue = slide_tissue_mask(slide, TissueMaskParams())
            plan = plan_patch_reading(slide.name, slide.level_downsamples, slide.mpp, 0.5, 256)
            grid = build_patch_grid(tissue, slide.dimensions, slide.level_dimensions[0], plan, 0.5)
        assert tissue.level == 1 and tissue.factor == 2  # 4 um/px level, halved to 8 um/px
        assert tissue.mask.shape == (1_536 // 16, 70_144 // 16)
        xs = np.unique(grid.coords[:, 0])
        assert xs.min() == 66_048 and xs.max() + 256 == 67_584  # exactly the pink band
        assert len(grid) == len(xs) * (1_536 // 256)


def test_strip_reading_equals_a_whole_level_read(tmp_path):
    image = np.ascontiguousarray(cmu_rgb()[:1000, :1200])
    path = write_pyramid_tiff(tmp_path / "one.svs", image, levels=1)
    with Slide(path) as slide:
        # strips of 16 rows (at most 20,000 pixels) instead of one read of the level
        mask_image, level, factor = read_mask_image(slide, mask_mpp=4.0, strip_pixels=20_000)
        whole = slide.read_region((0, 0), slide.dimensions, 0)
    assert (level, factor) == (0, 8)
    expected = whole[: 125 * 8, : 150 * 8].reshape(125, 8, 150, 8, 3).mean(axis=(1, 3))
    assert mask_image.shape == (125, 150, 3)
    assert np.abs(mask_image.astype(float) - expected).max() <= 0.5  # rounding only


@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.9])
def test_patch_grid_keeps_patches_by_tissue_fraction(fraction):
    path = shared_path("fixtures", "slides", "CMU-1-Small-Region.svs")
    with Slide(path) as slide:
        tissue = slide_tissue_mask(slide, TissueMaskParams())
        plan = plan_patch_reading(slide.name, slide.level_downsamples, slide.mpp, 0.5, 256)
        grid = build_patch_grid(tissue, slide.dimensions, slide.level_dimensions[0], plan, fraction)
    assert grid.candidates == (2220 // 256) * (2967 // 256)
    assert len(grid) > 0 and (grid.tissue_fractions >= fraction).all()
    # brute force on the mask: fraction of mask pixels inside each kept box
    sx = tissue.scale[0]
    for (x, y), frac in zip(grid.coords, grid.tissue_fractions):
        box = tissue.mask[int(y / sx) : int((y + 256) / sx), int(x / sx) : int((x + 256) / sx)]
        assert abs(box.mean() - frac) < 0.12  # box edges fall mid-pixel (256 / 16 = 16 px exactly here)
