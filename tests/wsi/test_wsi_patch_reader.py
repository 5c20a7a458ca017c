"""Batched patch reading: cuCIM multi-location reads and the DataLoader path give the same pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from scripts.wsi import PatchBatchReader, Slide, SlideReadError, plan_patch_reading, resize_patches
from tests.support.slide_files import cmu_rgb, shared_path, write_pyramid_tiff


def _collect(reader: PatchBatchReader) -> tuple[np.ndarray, list[int]]:
    patches, sizes = [], []
    order = []
    for batch, index in reader:
        assert batch.dtype == torch.uint8 and batch.shape[1] == 3
        patches.append(batch.permute(0, 2, 3, 1).numpy())
        sizes.append(len(index))
        order.extend(index.tolist())
    assert order == list(range(sum(sizes)))  # in order, every patch once
    return np.concatenate(patches), sizes


@pytest.fixture(scope="module")
def cmu_coords() -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(0, 2220 - 256, 300), np.arange(0, 2967 - 256, 400))
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.int64)


def test_cucim_batches_equal_single_reads_and_the_real_pixels(cmu_coords):
    path = shared_path("fixtures", "slides", "CMU-1-Small-Region.svs")
    rgb = cmu_rgb()
    with Slide(path, "cucim") as slide:
        plan = plan_patch_reading(slide.name, slide.level_downsamples, slide.mpp, 0.5, 256)
        patches, sizes = _collect(PatchBatchReader(slide, cmu_coords, plan, batch_size=16, num_workers=2))
    assert sizes == [16] * (len(cmu_coords) // 16) + ([len(cmu_coords) % 16] if len(cmu_coords) % 16 else [])
    for (x, y), patch in zip(cmu_coords, patches):
        assert np.array_equal(patch, rgb[y : y + 256, x : x + 256])


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_path_gives_the_same_pixels(cmu_coords, workers):
    path = shared_path("fixtures", "slides", "CMU-1-Small-Region.svs")
    with Slide(path, "cucim") as slide:
        plan = plan_patch_reading(slide.name, slide.level_downsamples, slide.mpp, 0.5, 256)
        reference, _ = _collect(PatchBatchReader(slide, cmu_coords, plan, batch_size=8, num_workers=2))
    with Slide(path, "openslide") as slide:
        patches, _ = _collect(PatchBatchReader(slide, cmu_coords, plan, batch_size=8, num_workers=workers))
    assert np.array_equal(patches, reference)


def test_read_level_and_resize_for_a_40x_slide(tmp_path):
    image = np.ascontiguousarray(cmu_rgb()[:1024, :1536])
    path = write_pyramid_tiff(tmp_path / "x40.svs", image, mpp=0.25, levels=3)  # levels 0.25, 0.5, 1.0
    with Slide(path) as slide:
        plan = plan_patch_reading(slide.name, slide.level_downsamples, slide.mpp, 0.5, 128)
        assert (plan.level, plan.read_size, plan.resized, plan.patch_size_level0) == (1, 128, False, 256)
        coords = np.array([[0, 0], [512, 256]], dtype=np.int64)
        patches, _ = _collect(PatchBatchReader(slide, coords, plan, batch_size=4, num_workers=1))
        level1 = slide.read_region((0, 0), slide.level_dimensions[1], 1)
        # ask for 1.0 um/px with a tight tolerance: read level 1 (0.5) at 256 px and resize to 128
        plan2 = plan_patch_reading(slide.name, [1.0, 2.0], slide.mpp, 1.0, 128, mpp_tolerance=0.01)
        assert (plan2.level, plan2.read_size, plan2.resized) == (1, 256, True)
    assert np.array_equal(patches[1], level1[128:256, 256:384])
    big = np.ascontiguousarray(level1[:256, :256])
    small = resize_patches(torch.from_numpy(big).permute(2, 0, 1)[None], 128)
    assert small.shape == (1, 3, 128, 128) and small.dtype == torch.uint8
    pil = np.asarray(Image.fromarray(big).resize((128, 128), Image.BILINEAR))  # PIL's antialiased bilinear
    assert np.abs(small[0].permute(1, 2, 0).numpy().astype(int) - pil).max() <= 1


def test_worker_read_errors_name_the_slide():
    path = shared_path("fixtures", "openslide", "unreadable.svs")
    with Slide(path, "openslide") as slide:
        plan = plan_patch_reading(slide.name, slide.level_downsamples, slide.mpp, 0.5, 16)
        reader = PatchBatchReader(slide, np.zeros((2, 2), np.int64), plan, batch_size=2, num_workers=1)
        with pytest.raises(SlideReadError, match=r"unreadable\.svs: .*Bogus marker length"):
            list(reader)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned memory needs CUDA")
def test_batches_are_pinned_for_cuda(cmu_coords):
    with Slide(shared_path("fixtures", "slides", "CMU-1-Small-Region.svs")) as slide:
        plan = plan_patch_reading(slide.name, slide.level_downsamples, slide.mpp, 0.5, 256)
        for backend_reader in (
            PatchBatchReader(slide, cmu_coords, plan, 8, 2, pin_memory=True),
            PatchBatchReader(slide, cmu_coords, plan, 8, 2, pin_memory=True, use_dataloader=True),
        ):
            batch, _ = next(iter(backend_reader))
            assert batch.is_pinned()
