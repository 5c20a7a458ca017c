"""Read-level choice for a target microns per pixel."""

from __future__ import annotations

import pytest

from scripts.wsi import ResolutionError, plan_patch_reading


def test_20x_slide_reads_level0_without_resizing():
    plan = plan_patch_reading("cmu.svs", [1.0], mpp=0.499, target_mpp=0.5, patch_size=256)
    assert (plan.level, plan.read_size, plan.resized) == (0, 256, False)
    assert (plan.patch_size_level0, plan.step_level0) == (256, 256)


def test_40x_slide_without_2x_level_reads_level0_and_downscales():
    plan = plan_patch_reading("40x.svs", [1.0, 4.0, 16.0], mpp=0.25, target_mpp=0.5, patch_size=256, step=128)
    assert (plan.level, plan.read_size, plan.resized) == (0, 512, True)
    assert (plan.patch_size_level0, plan.step_level0) == (512, 256)


def test_matching_coarser_level_is_used_within_tolerance():
    # 40x slide with a 2x level of downsample 2.0003 -> 0.50008 um/px matches 0.5
    plan = plan_patch_reading("40x.svs", [1.0, 2.0003, 8.001], mpp=0.25, target_mpp=0.5, patch_size=224)
    assert (plan.level, plan.read_size, plan.resized) == (1, 224, False)
    assert plan.patch_size_level0 == round(224 * 2.0003)


def test_no_matching_level_uses_the_next_finer_one():
    # levels at 0.25, 1.0, 4.0 um/px; target 2.0 -> read level 1 (1.0 um/px) twice as large
    plan = plan_patch_reading("s.svs", [1.0, 4.0, 16.0], mpp=0.25, target_mpp=2.0, patch_size=256)
    assert (plan.level, plan.read_size, plan.resized) == (1, 512, True)
    assert plan.patch_size_level0 == 2048 and plan.step_level0 == 2048


def test_tolerance_is_relative_and_configurable():
    # 0.55 um/px is 10% off 0.5: matches at 10% tolerance, not at 5%
    assert not plan_patch_reading("s", [1.0], 0.55, 0.5, 256, mpp_tolerance=0.1).resized
    with pytest.raises(ResolutionError, match=r"s: target_mpp 0.5 is finer than level 0 \(0.5500 um/px"):
        plan_patch_reading("s", [1.0], 0.55, 0.5, 256, mpp_tolerance=0.05)


def test_invalid_sizes_are_rejected():
    with pytest.raises(ValueError, match="patch_size and target_mpp must be positive"):
        plan_patch_reading("s", [1.0], 0.5, 0.5, 0)
    with pytest.raises(ValueError, match="step must be positive"):
        plan_patch_reading("s", [1.0], 0.5, 0.5, 256, step=0)
