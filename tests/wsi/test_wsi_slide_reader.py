"""Opening slides: backend choice, resolution metadata, region reads, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from scripts.wsi import (
    MissingMppError,
    Slide,
    SlideOpenError,
    SlideReadError,
    choose_backend,
)
from scripts.wsi.cucim_decode_errors import watch_cucim_decode_errors
from tests.support.slide_files import cmu_rgb, shared_path, write_pyramid_tiff


@pytest.fixture(scope="module")
def tissue_image() -> np.ndarray:
    return np.ascontiguousarray(cmu_rgb()[:1024, :1536])


def test_auto_picks_cucim_for_aperio_and_generic_jpeg_tiffs(tmp_path, tissue_image):
    cmu = shared_path("fixtures", "slides", "CMU-1-Small-Region.svs")
    assert choose_backend(cmu).backend == "cucim"
    generic = write_pyramid_tiff(tmp_path / "g.tif", tissue_image, aperio=False)
    assert choose_backend(generic).backend == "cucim"


def test_auto_sends_other_formats_and_codecs_to_openslide(tmp_path, tissue_image):
    # DICOM is not a cuCIM format; deflate tiles crash some cuCIM builds; unknown compression too.
    assert choose_backend(shared_path("fixtures", "openslide", "boxes_0.dcm")).backend == "openslide"
    boxes = choose_backend(shared_path("fixtures", "openslide", "boxes.tiff"))
    assert boxes.backend == "openslide" and "compression 8" in boxes.reason
    assert choose_backend(shared_path("fixtures", "openslide", "unopenable.tiff")).backend == "openslide"
    deflate = write_pyramid_tiff(tmp_path / "z.tif", tissue_image, aperio=False, compression="zlib")
    assert choose_backend(deflate).backend == "openslide"
    # a forced backend is honoured whatever the file
    assert choose_backend(deflate, "cucim").backend == "cucim"


def test_dicom_slide_opens_through_openslide():
    with Slide(shared_path("fixtures", "openslide", "boxes_0.dcm")) as slide:
        assert (slide.backend, slide.level_dimensions) == ("openslide", [(16, 16)])
        assert slide.mpp == pytest.approx(0.499)
        dicom = slide.read_region((0, 0), (16, 16), 0)
    with Slide(shared_path("fixtures", "openslide", "small.svs"), "openslide") as slide:
        svs = slide.read_region((0, 0), (16, 16), 0)
    assert np.array_equal(dicom, svs)  # the fixtures hold the same pixels in both formats


def test_backend_errors_name_the_file(tmp_path, tissue_image):
    with pytest.raises(SlideOpenError, match=r"missing\.svs: file not found"):
        choose_backend(tmp_path / "missing.svs")
    with pytest.raises(ValueError, match="wsi_backend must be one of"):
        choose_backend(shared_path("fixtures", "slides", "CMU-1-Small-Region.svs"), "tiffslide")
    full = write_pyramid_tiff(tmp_path / "full.svs", tissue_image)
    cut = tmp_path / "cut.svs"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(SlideOpenError, match=r"cut\.svs: truncated file: tile data of page 0 ends at byte"):
        choose_backend(cut)


@pytest.mark.parametrize("backend", ["cucim", "openslide"])
def test_cmu_slide_metadata_and_pixels(backend):
    path = shared_path("fixtures", "slides", "CMU-1-Small-Region.svs")
    with Slide(path, backend) as slide:
        assert slide.backend == backend
        assert slide.mpp == pytest.approx(0.499)
        assert slide.level_dimensions == [(2220, 2967)]
        assert slide.level_downsamples == [1.0]
        patch = slide.read_region((1000, 1200), (256, 128), level=0)
    assert patch.shape == (128, 256, 3) and patch.dtype == np.uint8
    assert np.array_equal(patch, cmu_rgb()[1200:1328, 1000:1256])


def test_backends_agree_on_geometry_of_an_odd_sized_pyramid(tmp_path, tissue_image):
    path = write_pyramid_tiff(tmp_path / "odd.svs", np.ascontiguousarray(tissue_image[:1001, :1533]), levels=3)
    cu, osr = Slide(path, "cucim"), Slide(path, "openslide")
    assert cu.level_dimensions == osr.level_dimensions == [(1533, 1001), (766, 500), (383, 250)]
    assert cu.level_downsamples == osr.level_downsamples  # computed from sizes, not backend floats
    assert cu.level_downsamples[2] == pytest.approx((1533 / 383 + 1001 / 250) / 2)
    assert cu.mpp == osr.mpp == pytest.approx(0.5)


def test_resolution_from_tiff_tags_and_missing_resolution(tmp_path, tissue_image):
    tagged = write_pyramid_tiff(tmp_path / "tagged.tif", tissue_image, mpp=0.25, aperio=False)
    for backend in ("cucim", "openslide"):
        assert Slide(tagged, backend).mpp == pytest.approx(0.25)
    bare = write_pyramid_tiff(tmp_path / "bare.tif", tissue_image, mpp=None, aperio=False)
    for backend in ("cucim", "openslide"):  # cuCIM reports spacing 1.0 without a unit: not an mpp
        with pytest.raises(MissingMppError, match=r"bare\.tif: no microns-per-pixel metadata.*assume_mpp"):
            Slide(bare, backend)
        assumed = Slide(bare, backend, assume_mpp=0.5)
        assert assumed.mpp == 0.5 and assumed.metadata_mpp is None
    # metadata wins over assume_mpp
    assert Slide(tagged, assume_mpp=0.5).mpp == pytest.approx(0.25)


def test_unopenable_and_unreadable_openslide_fixtures():
    with pytest.raises(SlideOpenError, match=r"unopenable\.tiff: openslide cannot open it"):
        Slide(shared_path("fixtures", "openslide", "unopenable.tiff"))
    unreadable = shared_path("fixtures", "openslide", "unreadable.svs")
    with Slide(unreadable, "openslide") as slide:
        with pytest.raises(SlideReadError, match=r"unreadable\.svs: cannot read 16x16 at \(0, 0\) level 0"):
            slide.read_region((0, 0), (16, 16), 0)
    # cuCIM prints the JPEG error and returns pixels anyway; the watch turns it into an error
    with Slide(unreadable, "cucim") as slide:
        with pytest.raises(SlideReadError, match=r"unreadable\.svs: cuCIM reported 1 tile decode error"):
            with watch_cucim_decode_errors(slide.name):
                slide.read_region((0, 0), (16, 16), 0)


def test_decode_watch_passes_other_output_through(capfd):
    with watch_cucim_decode_errors("x.svs"):
        print("hello from inside", flush=True)
    assert "hello from inside" in capfd.readouterr().out
