"""Patch preprocessing as a MONAI transform chain, with MONAI's stain normalisation one key away.

Real pieces: the builtin-small encoder, MONAI's NormalizeHEStains, the feature extractor on a real H&E crop
(pixels of the CMU slide) written as a pyramid, h5 files on disk, and the extract_features config.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.transforms import Compose
from torchvision.transforms import InterpolationMode, v2

from scripts.data import read_feature_file
from scripts.encoders import PatchPreprocessing, build_encoder, describe_preprocessing, make_patch_transform
from scripts.wsi import FeatureExtractor, stale_reasons
from scripts.wsi.feature_outputs import extraction_record, read_h5_attrs
from tests.wsi.test_wsi_slide_files import cmu_rgb, write_pyramid_tiff

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def encoder():
    return build_encoder("builtin-small")


@pytest.fixture(scope="module")
def slides_dir(tmp_path_factory) -> Path:
    """One small real H&E slide (the 1024 x 768 crop of the CMU slide with most tissue, 0.5 um/px, 2 levels)."""
    folder = tmp_path_factory.mktemp("he")
    rgb = cmu_rgb()
    corners = [(y, x) for y in range(0, rgb.shape[0] - 767, 256) for x in range(0, rgb.shape[1] - 1023, 256)]
    y, x = min(corners, key=lambda c: float(rgb[c[0]:c[0] + 768, c[1]:c[1] + 1024].mean()))
    write_pyramid_tiff(folder / "he.svs", np.ascontiguousarray(rgb[y:y + 768, x:x + 1024]), mpp=0.5, levels=2)
    return folder


def _torchvision_reference(size: int, crop_pct: float = 1.0) -> v2.Compose:
    """The torchvision chain the encoders built before their steps became a MONAI chain."""
    resized = int(round(size / crop_pct))
    steps = [v2.Resize((resized, resized), interpolation=InterpolationMode.BICUBIC, antialias=True)]
    if resized != size:
        steps.append(v2.CenterCrop(size))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Lambda(lambda x: x.clamp(0.0, 1.0)),
              v2.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])]
    return v2.Compose(steps)


@pytest.mark.parametrize("crop_pct", [1.0, 224 / 256])
def test_encoder_steps_are_a_monai_chain_with_the_same_output(crop_pct):
    patches = torch.randint(0, 256, (6, 3, 256, 256), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    chain = make_patch_transform(224, crop_pct=crop_pct)
    assert isinstance(chain, Compose)
    assert torch.equal(chain(patches), _torchvision_reference(224, crop_pct)(patches))


def test_stain_normalisation_changes_patches_and_keeps_blank_ones(encoder):
    rgb = cmu_rgb()
    tiles = [rgb[y:y + 256, x:x + 256] for y in range(0, rgb.shape[0] - 255, 256)
             for x in range(0, rgb.shape[1] - 255, 256)]
    tissue = sorted(tiles, key=lambda tile: float(tile.mean()))[:2]  # the two darkest: stained tissue
    blank = np.full((256, 256, 3), 240, dtype=np.uint8)
    batch = torch.from_numpy(np.stack([*tissue, blank])).permute(0, 3, 1, 2).contiguous()
    plain, stained = PatchPreprocessing(encoder), PatchPreprocessing(encoder, "macenko")
    out_plain, out_stained = plain(batch), stained(batch)
    assert out_stained.shape == out_plain.shape == (3, 3, encoder.input_size, encoder.input_size)
    for index in (0, 1):  # tissue patches are normalised
        assert (out_stained[index] - out_plain[index]).abs().mean() > 0.02
    assert torch.equal(out_stained[2], out_plain[2])  # glass has no stain to estimate: kept as it was
    assert stained.pop_unchanged() == 1 and stained.pop_unchanged() == 0
    with pytest.raises(ValueError, match="stain_normalization must be one of"):
        PatchPreprocessing(encoder, "reinhard")


def test_stain_normalisation_is_one_key_and_recorded_in_the_feature_files(tmp_path, slides_dir, encoder):
    out = tmp_path / "out"

    def run(**kwargs) -> dict[str, str]:
        extractor = FeatureExtractor(out, encoder, slides_dir=slides_dir, progress=False, **kwargs)
        return {row.slide_id: row.status for row in extractor.run()}

    assert run() == {"he": "done"}
    plain = read_feature_file(out / "he.h5")
    assert (plain.attrs["stain_normalization"], plain.attrs["preprocessing"]) == ("none", "encoder")
    assert run(stain_normalization="macenko") == {"he": "done"}  # other setting: recomputed
    stained = read_feature_file(out / "he.h5")
    assert stained.attrs["stain_normalization"] == "macenko" and torch.equal(stained.coords, plain.coords)
    assert not torch.allclose(stained.feats, plain.feats, atol=1e-3)
    record = extraction_record(out / "he.h5")
    assert (record["stain_normalization"], record["preprocessing"]) == ("macenko", "encoder")
    assert run(stain_normalization="macenko") == {"he": "skipped"}


def test_files_from_before_the_setting_count_as_unnormalised(tmp_path, slides_dir, encoder):
    import h5py

    extractor = FeatureExtractor(tmp_path, encoder, slides_dir=slides_dir, progress=False)
    extractor.run()
    with h5py.File(tmp_path / "he.h5", "a") as handle:
        del handle.attrs["stain_normalization"], handle.attrs["preprocessing"]
    expected = extractor.expected_attrs(slides_dir / "he.svs")
    assert stale_reasons(read_h5_attrs(tmp_path / "he.h5"), expected) == []
    assert extraction_record(tmp_path / "he.h5")["stain_normalization"] == "none"
    stained = FeatureExtractor(tmp_path, encoder, stain_normalization="macenko", progress=False)
    assert stale_reasons(read_h5_attrs(tmp_path / "he.h5"), stained.expected_attrs(slides_dir / "he.svs")) == [
        "stain_normalization 'none' -> 'macenko'"
    ]


def test_a_custom_chain_is_recorded_by_its_transform_names(encoder):
    from monai.transforms import ScaleIntensityRange

    custom = Compose([v2.Resize(64, antialias=True), ScaleIntensityRange(0, 255, 0, 1)])
    assert describe_preprocessing(custom) == "custom: Resize, ScaleIntensityRange"
    assert describe_preprocessing(PatchPreprocessing(encoder, "macenko")) == "encoder"
    extractor = FeatureExtractor(".", encoder, preprocessing=custom)
    assert extractor.preprocessing is custom
    with pytest.raises(ValueError, match="give the same value to both"):
        FeatureExtractor(".", encoder, preprocessing=PatchPreprocessing(encoder, "macenko"))


def test_config_declares_the_chain_and_the_key(encoder):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(REPO / "configs" / "extract_features.json"))
    assert parser["stain_normalization"] == "none"
    assert parser["preprocessing"]["_target_"] == "scripts.encoders.PatchPreprocessing"
    parser["stain_normalization"] = "macenko"
    extractor = parser.get_parsed_content("extractor")
    assert extractor.stain_normalization == "macenko" and extractor.preprocessing.stain is not None


def test_slide_inference_applies_the_models_stain_setting(tmp_path):
    from scripts.engines.slide_inference import slide_feature_extractor

    settings = {"encoder_name": "builtin-small", "target_mpp": 0.5, "patch_size": 128,
                "stain_normalization": "macenko", "preprocessing": "encoder"}
    extractor = slide_feature_extractor(settings, tmp_path, device="cpu")
    assert extractor.stain_normalization == "macenko" and extractor.patch_size == 128
    with pytest.raises(ValueError, match="custom: Resize"):
        slide_feature_extractor({**settings, "preprocessing": "custom: Resize"}, tmp_path, device="cpu")
