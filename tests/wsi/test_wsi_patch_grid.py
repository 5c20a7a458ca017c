"""Patch grids: positions in level-0 pixels and exact tissue fractions from a low-resolution mask."""

from __future__ import annotations

import numpy as np

from scripts.wsi import ReadPlan, TissueMask, box_fractions, build_patch_grid, grid_positions


def _plan(patch0: int, step0: int, read: int, ds: float = 1.0, level: int = 0) -> ReadPlan:
    return ReadPlan(level, 0.5 * ds, ds, 0.5, read, read, patch0, step0, False)


def test_box_fractions_are_exact_for_fractional_boxes():
    rng = np.random.default_rng(0)
    mask = rng.random((12, 17)) > 0.5
    boxes = np.array([[0.0, 0.0, 17.0, 12.0], [2.25, 3.5, 7.75, 9.0], [16.5, 11.5, 18.5, 13.5], [3, 3, 4, 4]])
    got = box_fractions(mask, boxes)
    # brute force: upsample the mask 4x (all box edges fall on quarter pixels) and count
    fine = np.kron(mask, np.ones((4, 4)))
    for (x0, y0, x1, y1), value in zip(boxes, got):
        area = (x1 - x0) * (y1 - y0) * 16
        inside = fine[int(y0 * 4) : int(y1 * 4), int(x0 * 4) : int(x1 * 4)].sum()
        assert abs(value - inside / area) < 1e-9
    assert got[0] == mask.mean() and got[3] == float(mask[3, 3])


def test_grid_positions_cover_only_full_patches():
    positions = grid_positions((1000, 600), (1000, 600), _plan(256, 200, 256))
    assert positions[:, 0].max() + 256 <= 1000 and positions[:, 1].max() + 256 <= 600
    assert sorted(set(positions[:, 0])) == [0, 200, 400, 600] and sorted(set(positions[:, 1])) == [0, 200]
    assert positions[:4].tolist() == [[0, 0], [200, 0], [400, 0], [600, 0]]  # row-major


def test_grid_respects_the_read_level_bounds():
    # level 1 of downsample 2.5 is 400 px wide: x0=750 reads [300, 428) at level 1 -> outside
    positions = grid_positions((1000, 1000), (400, 400), _plan(320, 250, 128, ds=2.5, level=1))
    assert all(np.floor(x / 2.5) + 128 <= 400 for x in positions[:, 0])
    assert sorted(set(positions[:, 0])) == [0, 250, 500]


def test_build_patch_grid_filters_by_fraction_through_the_mask_scale():
    mask = np.zeros((10, 20), dtype=bool)
    mask[:, :10] = True  # left half tissue; each mask pixel = 100 level-0 px
    tissue = TissueMask(mask, np.zeros((10, 20, 3), np.uint8), 2, 1, (100.0, 100.0), 50.0, 20.0)
    grid = build_patch_grid(tissue, (2000, 1000), (2000, 1000), _plan(250, 250, 250), tissue_fraction=0.5)
    xs = sorted(set(grid.coords[:, 0].tolist()))
    assert xs == [0, 250, 500, 750] and len(grid) == 4 * 4 and grid.candidates == 8 * 4
    # the patch [900, 1200) straddles the tissue edge at x=1000: fraction exactly 1/3
    half = build_patch_grid(tissue, (2000, 1000), (2000, 1000), _plan(300, 300, 300), 0.5)
    third = build_patch_grid(tissue, (2000, 1000), (2000, 1000), _plan(300, 300, 300), 0.3)
    assert 900 not in half.coords[:, 0] and sorted(set(half.coords[:, 0].tolist())) == [0, 300, 600]
    straddling = third.tissue_fractions[third.coords[:, 0] == 900]
    assert len(straddling) == 3 and np.allclose(straddling, 1 / 3)
