"""Synthetic pyramidal slides: what a user runs (write a slide, open it with every reader) and what it holds."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from scripts.demo.synthetic_slides import (
    MANIFEST_COLUMNS,
    SyntheticSlide,
    make_demo_slides,
    read_manifest,
    write_synthetic_slide,
)
from scripts.demo.tissue_classes import COMPONENT_IDS, COMPONENTS, DIAGNOSES, DIAGNOSIS_CLASSES, PEN_COLOURS

openslide = pytest.importorskip("openslide")

REPO_ROOT = Path(__file__).resolve().parents[2]


def _cucim():
    try:
        from cucim import CuImage
    except ImportError as err:  # pragma: no cover - depends on the environment
        pytest.skip(f"cuCIM is not installed ({err})")
    return CuImage


@pytest.fixture(scope="module")
def slide_4k(tmp_path_factory) -> tuple:
    """One 4096 x 4096 adenocarcinoma slide with pen marks, written once, and its write time."""
    path = tmp_path_factory.mktemp("slides") / "adeno.svs"
    start = time.perf_counter()
    info = write_synthetic_slide(path, "adenocarcinoma", seed=5, size=(4096, 4096), tumour_fraction=0.5)
    return info, time.perf_counter() - start


def test_tissue_classes_are_consistent():
    assert DIAGNOSIS_CLASSES == ("adenocarcinoma", "squamous cell carcinoma", "lymphoma", "normal")
    assert set(DIAGNOSES) == set(DIAGNOSIS_CLASSES)
    for name in (*DIAGNOSIS_CLASSES, "background", "stroma", "necrosis"):
        assert COMPONENTS[name].name == name and name in COMPONENT_IDS
    assert COMPONENT_IDS["background"] == 0
    assert all(len(rgb) == 3 for rgb in PEN_COLOURS.values())


def test_generation_is_fast_and_pyramidal(slide_4k):
    info, seconds = slide_4k
    print(f"4096 x 4096 slide: {seconds:.1f} s, {info.file_bytes / 1e6:.1f} MB")
    assert seconds < 30
    assert info.level_dimensions == ((4096, 4096), (1024, 1024), (256, 256))
    assert info.level_downsamples == (1.0, 4.0, 16.0)
    assert 0.05 < info.tissue_fraction < 0.8
    assert info.lesion_fraction == pytest.approx(0.5, abs=0.03)
    assert 0 < info.necrosis_fraction < info.lesion_fraction
    assert info.pen_fraction > 0


def test_openslide_and_cucim_read_the_same_slide(slide_4k):
    CuImage = _cucim()
    info, _ = slide_4k
    osl = openslide.OpenSlide(str(info.path))
    cu = CuImage(str(info.path))
    assert osl.properties["openslide.vendor"] == "aperio"
    assert float(osl.properties["openslide.mpp-x"]) == float(osl.properties["openslide.mpp-y"]) == 0.5
    assert osl.properties["openslide.objective-power"] == "20"
    assert osl.level_dimensions == info.level_dimensions
    resolutions = cu.resolutions
    assert resolutions["level_count"] == osl.level_count == 3
    assert tuple(tuple(d) for d in resolutions["level_dimensions"]) == osl.level_dimensions
    assert tuple(resolutions["level_downsamples"]) == pytest.approx(osl.level_downsamples)
    assert cu.spacing()[:2] == [0.5, 0.5]
    assert float(cu.metadata["aperio"]["MPP"]) == 0.5
    regions = [(0, (1500, 1700), (300, 200)), (1, (2048, 1024), (128, 160)), (2, (0, 0), (256, 256))]
    for level, location, size in regions:
        a = np.asarray(osl.read_region(location, level, size).convert("RGB"))
        b = np.asarray(cu.read_region(location, size, level))
        assert a.shape == b.shape == (size[1], size[0], 3)
        assert np.array_equal(a, b)


def test_monai_wsireader_backends_agree(slide_4k):
    _cucim()
    from monai.data import WSIReader

    info, _ = slide_4k
    seen = {}
    for backend in ("cucim", "openslide"):
        reader = WSIReader(backend=backend)
        wsi = reader.read(str(info.path))
        levels = reader.get_level_count(wsi)
        patch, _ = reader.get_data(wsi, location=(2000, 1800), size=(224, 224), level=0)
        seen[backend] = (
            levels,
            [tuple(reader.get_size(wsi, lv)) for lv in range(levels)],
            [tuple(reader.get_mpp(wsi, lv)) for lv in range(levels)],
            np.asarray(patch),
        )
    cucim, osl = seen["cucim"], seen["openslide"]
    assert cucim[0] == osl[0] == 3
    assert cucim[1] == osl[1] == [(4096, 4096), (1024, 1024), (256, 256)]  # (height, width)
    assert cucim[2] == osl[2] == [(0.5, 0.5), (2.0, 2.0), (8.0, 8.0)]
    assert cucim[3].shape == (3, 224, 224) and np.array_equal(cucim[3], osl[3])


def test_label_map_is_ground_truth_for_the_pixels(slide_4k):
    """Layout cells labelled background are glass; tissue cells are stained; the lesion shows its texture."""
    info, _ = slide_4k
    osl = openslide.OpenSlide(str(info.path))
    level = 2
    thumb = np.asarray(osl.read_region((0, 0), level, osl.level_dimensions[level]).convert("RGB")).astype(int)
    scale = info.label_scale / osl.level_downsamples[level]
    rows = ((np.arange(thumb.shape[0]) + 0.5) / scale).astype(int)
    cols = ((np.arange(thumb.shape[1]) + 0.5) / scale).astype(int)
    grid = np.ix_(np.minimum(rows, info.label_map.shape[0] - 1), np.minimum(cols, info.label_map.shape[1] - 1))
    labels, ink = info.label_map[grid], info.pen_mask[grid]
    interior = ~ink  # keep pixels whose 5x5 neighbourhood has a single label and no ink
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            interior &= (np.roll(labels, (dy, dx), axis=(0, 1)) == labels) & ~np.roll(ink, (dy, dx), axis=(0, 1))
    saturation = thumb.max(-1) - thumb.min(-1)
    glass = interior & (labels == COMPONENT_IDS["background"])
    tissue = interior & (labels != COMPONENT_IDS["background"])
    assert glass.sum() > 1000 and tissue.sum() > 1000
    assert np.median(saturation[glass]) < 10 and np.median(thumb[glass].mean(-1)) > 230
    assert np.median(saturation[tissue]) > 25
    lesion = interior & (labels == COMPONENT_IDS["adenocarcinoma"])
    stroma = interior & (labels == COMPONENT_IDS["stroma"])
    # glands carry haematoxylin-dark nuclei: the lesion is darker than the stroma around it
    assert thumb[lesion].mean() < thumb[stroma].mean() - 5


def test_blank_slide_has_no_tissue_coloured_pixels(tmp_path):
    info = write_synthetic_slide(tmp_path / "blank.svs", "lymphoma", seed=1, size=(2048, 1536), blank=True)
    assert info.tissue_fraction == 0 and info.pen_fraction == 0 and not info.pen_marks
    assert not info.label_map.any() and not info.pen_mask.any()
    osl = openslide.OpenSlide(str(info.path))
    assert osl.dimensions == (2048, 1536)
    for level in range(osl.level_count):
        rgb = np.asarray(osl.read_region((0, 0), level, osl.level_dimensions[level]).convert("RGB")).astype(int)
        assert (rgb.max(-1) - rgb.min(-1)).max() < 15  # no stain colour anywhere
        assert rgb.min() > 215  # no dark pixel anywhere


def test_same_arguments_give_the_same_file(tmp_path):
    def digest(path):
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()

    a = write_synthetic_slide(tmp_path / "a.svs", "lymphoma", seed=3, size=(1024, 1024))
    b = write_synthetic_slide(tmp_path / "b.svs", "lymphoma", seed=3, size=(1024, 1024))
    c = write_synthetic_slide(tmp_path / "c.svs", "lymphoma", seed=4, size=(1024, 1024))
    assert digest(a.path) != digest(c.path)
    # the file name is stored in the description; compare pixels and layout instead of bytes
    oa, ob = openslide.OpenSlide(str(a.path)), openslide.OpenSlide(str(b.path))
    for level in range(oa.level_count):
        size = oa.level_dimensions[level]
        pixels_a, pixels_b = oa.read_region((0, 0), level, size), ob.read_region((0, 0), level, size)
        assert np.array_equal(np.asarray(pixels_a), np.asarray(pixels_b))
    assert np.array_equal(a.label_map, b.label_map)


def test_levels_downsample_mpp_and_tile_options(tmp_path):
    info = write_synthetic_slide(
        tmp_path / "x.tif", "normal", seed=0, size=(2000, 1200), tile=128, mpp=0.25, levels=3, downsample=2
    )
    osl = openslide.OpenSlide(str(info.path))
    assert osl.level_dimensions == ((2000, 1200), (1000, 600), (500, 300))
    assert float(osl.properties["openslide.mpp-x"]) == 0.25
    assert osl.properties["openslide.objective-power"] == "40"
    assert osl.properties["openslide.level[0].tile-width"] == "128"
    slide = SyntheticSlide("normal", 0, (2000, 1200), levels="auto", downsample=4)
    assert slide.level_dimensions == ((2000, 1200), (500, 300))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"diagnosis": "sarcoma"}, "unknown diagnosis 'sarcoma'"),
        ({"tumour_fraction": 1.5}, r"tumour_fraction must be in \[0, 1\]"),
        ({"tile": 100}, "x.svs: tile must be a positive multiple of 16"),
        ({"levels": 9}, "9 levels at downsample 4 do not fit a 1024x1024 slide"),
        ({"size": (8, 8)}, "too small"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kwargs, message):
    args = {"path": tmp_path / "x.svs", "diagnosis": "normal", "seed": 0, "size": (1024, 1024), **kwargs}
    with pytest.raises(ValueError, match=message):
        write_synthetic_slide(**args)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_make_demo_slides_writes_slides_and_a_manifest(tmp_path):
    rows = make_demo_slides(tmp_path / "demo", n_per_class=1, seed=0, size=(1024, 1024))
    assert [r["diagnosis"] for r in rows] == list(DIAGNOSIS_CLASSES)
    manifest = tmp_path / "demo" / "manifest.csv"
    with open(manifest, newline="") as fh:
        raw = list(csv.DictReader(fh))
    assert tuple(raw[0]) == MANIFEST_COLUMNS
    assert all(not Path(r["slide_path"]).is_absolute() for r in raw)  # portable: relative to the manifest
    again = read_manifest(manifest)
    for row, returned in zip(again, rows):
        assert Path(row["slide_path"]) == Path(returned["slide_path"]).resolve()
        low, high = DIAGNOSES[row["diagnosis"]].tumour_fraction_range
        assert low <= float(row["tumour_fraction"]) <= high
        assert openslide.OpenSlide(row["slide_path"]).dimensions == (1024, 1024)
    assert len({r["seed"] for r in rows}) == len(rows)
    assert not list((tmp_path / "demo").glob(".*tmp"))


_LARGE_SCRIPT = """
import json, re, sys, time
from pathlib import Path
from scripts.demo.synthetic_slides import write_synthetic_slide
start = time.perf_counter()
info = write_synthetic_slide(sys.argv[1], "squamous cell carcinoma", seed=11, size=(20000, 20000))
# VmHWM: this process's peak RSS (ru_maxrss would carry over the forking parent's peak)
peak_kb = int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))
stats = {"seconds": time.perf_counter() - start, "rss_mb": peak_kb / 1024, "mb": info.file_bytes / 1e6}
print(json.dumps({**stats, "levels": info.level_dimensions}))
"""


def test_large_slide_is_memory_light(tmp_path):
    """20,000 x 20,000 px (1.2 GB of RGB) is written tile by tile: peak memory stays about 200 MB."""
    out = subprocess.run(
        [sys.executable, "-c", _LARGE_SCRIPT, str(tmp_path / "big.svs")],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=600,
    )
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"20000 x 20000 slide: {stats['seconds']:.1f} s, peak RSS {stats['rss_mb']:.0f} MB, {stats['mb']:.0f} MB")
    assert stats["rss_mb"] < 450
    assert [tuple(d) for d in stats["levels"]] == [(20000, 20000), (5000, 5000), (1250, 1250), (312, 312)]
    osl = openslide.OpenSlide(str(tmp_path / "big.svs"))
    assert osl.dimensions == (20000, 20000)
    assert np.asarray(osl.read_region((10000, 10000), 0, (256, 256))).shape == (256, 256, 4)


@pytest.mark.parametrize(("size", "downsample"), [((1000, 600), 2), ((1100, 900), 4)])
def test_small_slides_area_average_level_zero_for_their_intermediate_levels(size, downsample):
    from scripts.demo.synthetic_slides import _pyramid_tiles

    slide = SyntheticSlide("adenocarcinoma", 3, size, downsample=downsample, levels=3)
    tile = 128
    levels = [list(tiles) for tiles in _pyramid_tiles(slide, tile)]
    assert len(levels) == 3

    def assemble(tiles, width, height):
        cols = -(-width // tile)
        rows = [np.concatenate(tiles[r * cols : (r + 1) * cols], axis=1) for r in range(len(tiles) // cols)]
        return np.concatenate(rows, axis=0)[:height, :width]

    width, height = size
    level0 = assemble(levels[0], width, height)
    assert np.array_equal(level0, assemble(list(slide.iter_tiles(0, tile)), width, height))  # level 0 as rendered
    # level 1 is the rounded area average of level 0, over the blocks that fit
    lw, lh = slide.level_dimensions[1]
    blocks = level0[: lh * downsample, : lw * downsample].astype(np.float64)
    expected = np.floor(blocks.reshape(lh, downsample, lw, downsample, 3).mean((1, 3)) + 0.5).astype(np.uint8)
    assert np.array_equal(assemble(levels[1], lw, lh), expected)
    assert not np.array_equal(assemble(levels[1], lw, lh), assemble(list(slide.iter_tiles(1, tile)), lw, lh))
    # the coarsest level, which tissue detection reads, is rendered from the model as before
    assert all(np.array_equal(a, b) for a, b in zip(levels[2], slide.iter_tiles(2, tile), strict=True))


def test_slides_over_the_in_memory_limit_render_every_level(monkeypatch):
    from scripts.demo import synthetic_slides

    slide = SyntheticSlide("normal", 1, (600, 520), downsample=2, levels=2)
    monkeypatch.setattr(synthetic_slides, "PYRAMID_IN_MEMORY_BYTES", 600 * 520 * 3 - 1)
    rendered = [list(t) for t in synthetic_slides._pyramid_tiles(slide, 256)]
    assert all(np.array_equal(a, b) for a, b in zip(rendered[1], slide.iter_tiles(1, 256)))  # straight from the model
