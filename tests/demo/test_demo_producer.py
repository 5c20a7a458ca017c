"""The demo as a data producer: its CLI writes a dataset folder; the fast slide writer's bank and progress."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from scripts.demo.__main__ import main
from scripts.demo.slide_dataset import _Progress
from scripts.demo.synthetic_slides import EDGE_NOISE, SyntheticSlide


def test_cli_writes_a_dataset_folder_that_declares_its_key_phrases(tmp_path, capsys):
    """``python -m scripts.demo`` (its ``main``, in this process: a subprocess would only add imports)."""
    demo = {"source": "feature_bags", "n_train": 4, "n_val": 2, "n_test": 2, "feature_dim": 8, "n_patches": [4, 8]}
    assert main(["--output_dir", str(tmp_path), "--demo", json.dumps(demo)]) == 0
    out = capsys.readouterr().out
    produced = json.loads(out[out.index("{"):])
    assert produced["synthetic"] is True and produced["label_file"] is None
    annotation = json.loads(Path(produced["annotation_file"]).read_text())
    assert set(annotation["key_phrases"]) == {"diagnosis", "tumour_share"}
    ids = [item["id"] for split in ("train", "val", "test") for item in annotation[split]]
    assert sorted(p.stem for p in Path(produced["dataset_dir"]).glob("*.pt")) == sorted(ids)


def test_bank_slides_share_swatches_but_each_shifts_them(tmp_path):
    slides = [SyntheticSlide("lymphoma", seed, (512, 512), downsample=2, period=256, texture_variants=1,
                             texture_cache=tmp_path, layout_side=64) for seed in (1, 2)]
    assert slides[0]._texture("stroma", 0) is slides[1]._texture("stroma", 0)  # rendered once per process
    assert len(list(tmp_path.glob("*.npy"))) == 2  # stroma and the edge noise, kept for other processes
    offsets = [s._bank["stroma"][1:] for s in slides]
    assert offsets[0] != offsets[1]
    unit = 2 ** (len(slides[0].level_dimensions) - 1)
    assert all(v % unit == 0 for pair in offsets for v in pair)  # every level shows the same shifted texture
    windows = [s._take("stroma", 0, 0, 0, 64, 64) for s in slides]
    assert not np.array_equal(windows[0], windows[1])
    for slide in slides:
        assert slide._take(EDGE_NOISE, 1, 0, 0, 8, 8).shape == (8, 8)
        region = slide.render(0, 0, 0, 256, 256)
        assert region.shape == (256, 256, 3) and region.dtype == np.uint8


def test_progress_is_logged_with_the_time_left(caplog):
    progress = _Progress("slides", 4, every=0.0)
    with caplog.at_level(logging.INFO, logger="scripts.demo.slide_dataset"):
        for _ in range(4):
            progress.step()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4 and lines[0].startswith("slides 1/4 (25 %)") and "s left" in lines[0]
    assert lines[-1].startswith("slides 4/4 (100 %)")
