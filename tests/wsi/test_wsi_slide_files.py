"""Both backends (OpenSlide, cuCIM) read the pyramids that tests/support/slide_files.py writes."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.slide_files import cmu_rgb, write_pyramid_tiff


def test_written_pyramid_reads_the_same_with_both_backends(tmp_path):
    import openslide
    from cucim import CuImage

    image = np.tile(cmu_rgb()[:1024, :1024], (1, 2, 1))  # 2048 x 1024 of real tissue
    for name, aperio in (("a.svs", True), ("g.tif", False)):
        path = write_pyramid_tiff(tmp_path / name, image, mpp=0.5, levels=3, aperio=aperio)
        with openslide.OpenSlide(str(path)) as osr:
            assert osr.properties["openslide.vendor"] == ("aperio" if aperio else "generic-tiff")
            assert osr.level_dimensions == ((2048, 1024), (1024, 512), (512, 256))
            assert float(osr.properties["openslide.mpp-x"]) == pytest.approx(0.5)
            ref = np.asarray(osr.read_region((512, 256), 0, (300, 200)).convert("RGB"))
        cu = CuImage(str(path))
        assert cu.resolutions["level_count"] == 3
        assert np.array_equal(np.asarray(cu.read_region((512, 256), (300, 200), 0))[..., :3], ref)
