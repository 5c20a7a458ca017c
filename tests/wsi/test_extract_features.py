"""The extract_features workflow: slides in, one feature file per slide out, bad slides recorded.

Runs the real pieces end to end: real slides (the CMU H&E slide and pyramids built from its
pixels), the ``builtin-small`` encoder, h5/pt outputs on disk, and ``python -m monai.bundle run``
in a subprocess the way a user runs it.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from scripts.encoders import build_encoder
from scripts.wsi import FeatureExtractor, NothingExtractedError, Slide, read_manifest
from tests.support.extraction_runs import CONFIG, ENV, MULTI_GPU, REPO, extract_command, write_slides_csv
from tests.support.slide_files import cmu_rgb, write_pyramid_tiff


def _h5(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    with h5py.File(path, "r") as handle:
        return handle["feats"][()], handle["coords"][()], dict(handle.attrs)


def test_cmu_slide_gives_identical_coords_and_features_with_both_backends(tmp_path, slides, encoder):
    csv_path = write_slides_csv(tmp_path / "one.csv", [("cmu", str(slides["cmu"]))])
    outputs = {}
    for backend in ("cucim", "openslide"):
        out = tmp_path / backend
        rows = FeatureExtractor(out, encoder, slides_csv=csv_path, wsi_backend=backend, progress=False).run()
        assert [(r.slide_id, r.status) for r in rows] == [("cmu", "done")]
        outputs[backend] = _h5(out / "cmu.h5")
    (f_cu, c_cu, a_cu), (f_os, c_os, a_os) = outputs["cucim"], outputs["openslide"]
    assert (a_cu["backend"], a_os["backend"]) == ("cucim", "openslide")
    assert f_cu.dtype == np.float32 and c_cu.dtype == np.int64
    assert f_cu.shape == (len(c_cu), encoder.embed_dim) and len(c_cu) >= 20
    assert np.array_equal(c_cu, c_os)
    # Both backends decode the CMU JPEG tiles to the same bytes here, so features are identical.
    assert np.array_equal(f_cu, f_os)
    # each row is the feature of the patch at its coordinates (read independently, one at a time)
    with Slide(slides["cmu"], "openslide") as slide:
        for i in (0, len(c_cu) // 2, len(c_cu) - 1):
            x, y = c_cu[i]
            patch = torch.from_numpy(slide.read_region((x, y), (256, 256), 0)).permute(2, 0, 1)[None]
            with torch.inference_mode():
                single = encoder(encoder.transform(patch))[0].numpy()
            np.testing.assert_allclose(f_cu[i], single, rtol=1e-4, atol=1e-5)


def test_bad_slides_are_recorded_and_the_run_goes_on(tmp_path, slides, encoder):
    rows_in = [
        ("unreadable", str(slides["unreadable"])),
        ("cmu", str(slides["cmu"])),
        ("unopenable", str(slides["unopenable"])),
        ("blank", str(slides["blank"])),
        ("missing", str(tmp_path / "gone.svs")),
    ]
    out = tmp_path / "out"
    FeatureExtractor(out, encoder, slides_csv=write_slides_csv(tmp_path / "s.csv", rows_in), progress=False).run()
    manifest = {r.slide_id: r for r in read_manifest(out / "manifest.csv")}
    assert list(manifest) == [r[0] for r in rows_in]  # CSV order kept
    assert manifest["cmu"].status == "done" and manifest["cmu"].n_patches > 0
    expected_errors = {
        "unreadable": r"unreadable\.svs: cuCIM reported 1 tile decode error\(s\): reading JPEG header: Bogus marker",
        "unopenable": r"unopenable\.tiff: openslide cannot open it \(OpenSlideError: Unsupported TIFF compression",
        "blank": r"blank\.svs: no tissue found at level 1 \(/8\) \(saturation threshold 15\.0",
        "missing": r"gone\.svs: file not found",
    }
    import re

    for slide_id, pattern in expected_errors.items():
        row = manifest[slide_id]
        assert row.status == "failed" and row.n_patches == 0 and re.search(pattern, row.error), row.error
        assert not (out / f"{slide_id}.h5").exists()
    assert (out / "cmu.h5").is_file() and (out / "cmu_thumb.png").is_file()
    assert not list(out.glob(".*.tmp"))
    with open(out / "manifest.csv", newline="") as handle:
        assert next(csv.reader(handle)) == ["slide_id", "path", "status", "n_patches", "seconds", "error"]
    # the same corrupt slide read by OpenSlide fails with OpenSlide's own message
    with pytest.raises(NothingExtractedError, match="1 of 1 slide"):  # nothing succeeded: the run fails
        FeatureExtractor(
            tmp_path / "os",
            encoder,
            slides_csv=write_slides_csv(tmp_path / "u.csv", rows_in[:1]),
            wsi_backend="openslide",
            progress=False,
        ).run()
    (forced,) = read_manifest(tmp_path / "os" / "manifest.csv")
    assert forced.status == "failed" and "Bogus marker length" in forced.error


def test_outputs_carry_their_parameters_and_reruns_skip_by_attributes(tmp_path, slides, encoder):
    own = {name: Path(shutil.copy2(slides[name], tmp_path / f"{name}.svs")) for name in ("mirror", "cmu")}
    slides = own  # this test touches a slide's mtime: it works on its own copies, not the module's slides
    csv_path = write_slides_csv(tmp_path / "s.csv", [("mirror", str(slides["mirror"])), ("cmu", str(slides["cmu"]))])
    out = tmp_path / "out"

    def run(**kwargs):
        extractor = FeatureExtractor(out, kwargs.pop("enc", encoder), slides_csv=csv_path, progress=False, **kwargs)
        return {r.slide_id: r.status for r in extractor.run()}

    assert run(save_pt=True) == {"mirror": "done", "cmu": "done"}
    feats, coords, attrs = _h5(out / "mirror.h5")
    stat = slides["mirror"].stat()
    assert attrs["slide_file_size"] == stat.st_size and attrs["slide_mtime"] == stat.st_mtime
    assert (attrs["encoder_name"], attrs["encoder_checksum"]) == ("builtin-small", encoder.checksum)
    assert (attrs["mpp"], attrs["target_mpp"], attrs["patch_size"], attrs["patch_size_level"]) == (0.5, 0.5, 256, 256)
    assert (attrs["level"], attrs["downsample"], attrs["backend"]) == (0, 1.0, "cucim")
    assert json.loads(attrs["tissue_params"])["median_kernel"] == 7
    assert coords.min() >= 0 and (coords % 256 == 0).all() and coords[:, 0].max() + 256 <= 4440
    pt = torch.load(out / "mirror.pt", weights_only=True)
    assert pt.dtype == torch.float32 and torch.equal(pt, torch.from_numpy(feats))

    # same inputs: skipped; a missing .pt is rebuilt from the .h5 without recomputing
    (out / "cmu.pt").unlink()
    before = (out / "cmu.h5").stat().st_mtime_ns
    assert run(save_pt=True) == {"mirror": "skipped", "cmu": "skipped"}
    assert (out / "cmu.pt").is_file() and (out / "cmu.h5").stat().st_mtime_ns == before
    # the slide file changed (mtime): recomputed; only that slide
    os.utime(slides["cmu"], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert run() == {"mirror": "skipped", "cmu": "done"}
    # other patch or tissue parameters, or other encoder weights: recomputed
    assert run(tissue_fraction=0.25) == {"mirror": "done", "cmu": "done"}
    assert run(tissue_fraction=0.25, enc=build_encoder("builtin-small", seed=1)) == {"mirror": "done", "cmu": "done"}
    # a file with the right name but not ours is not trusted
    shutil.copy(out / "cmu.h5", out / "mirror.h5")
    assert run(tissue_fraction=0.25, enc=build_encoder("builtin-small", seed=1))["mirror"] == "done"
    assert _h5(out / "mirror.h5")[2]["slide_id"] == "mirror"


def test_outdated_outputs_do_not_survive_a_failed_recomputation(tmp_path, slides, encoder):
    local = tmp_path / "case.svs"
    shutil.copy(slides["cmu"], local)
    csv_path = write_slides_csv(tmp_path / "s.csv", [("case", str(local))])
    out = tmp_path / "out"
    assert FeatureExtractor(out, encoder, slides_csv=csv_path, save_pt=True, progress=False).run()[0].status == "done"
    local.write_bytes(local.read_bytes()[:200_000])  # the slide is replaced by a truncated download
    with pytest.raises(NothingExtractedError, match="case.svs: truncated file"):  # its only slide failed
        FeatureExtractor(out, encoder, slides_csv=csv_path, save_pt=True, progress=False).run()
    (row,) = read_manifest(out / "manifest.csv")
    assert row.status == "failed" and "case.svs: truncated file: the first TIFF directory is at byte" in row.error
    assert not (out / "case.h5").exists() and not (out / "case.pt").exists()


def test_stale_temporaries_of_a_killed_run_are_removed(tmp_path, slides, encoder):
    out = tmp_path / "out"
    out.mkdir()
    leftovers = [out / ".cmu.h5.ab12cd.tmp", out / ".cmu.pt.x9.tmp", out / ".cmu_thumb.png.q1.tmp"]
    for path in leftovers:
        path.write_bytes(b"half written")
    leftovers.append(out / ".manifest.csv.zz.tmp")
    leftovers[-1].write_bytes(b"slide_id,pa")
    other = out / ".notes.txt.tmp"  # not ours: left alone
    other.write_bytes(b"x")
    csv_path = write_slides_csv(tmp_path / "s.csv", [("cmu", str(slides["cmu"]))])
    FeatureExtractor(out, encoder, slides_csv=csv_path, save_pt=True, progress=False).run()
    assert not any(p.exists() for p in leftovers) and other.exists()


def test_bundle_workflow_runs_from_the_command_line(tmp_path, slides, encoder):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("cmu", "blank"):
        shutil.copy(slides[name], folder / slides[name].name)
    out = tmp_path / "out"
    done = subprocess.run(
        extract_command(folder, out, "--progress", "False", "--save_pt", "True"),
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = {r.slide_id: r for r in read_manifest(out / "manifest.csv")}
    assert manifest["cmu"].status == "done" and manifest["blank"].status == "failed"
    assert "blank.svs: no tissue found" in manifest["blank"].error
    # the same features as the Python API with the same settings
    reference = tmp_path / "ref"
    FeatureExtractor(reference, encoder, slides_dir=folder, progress=False).run()
    got, want = _h5(out / "cmu.h5"), _h5(reference / "cmu.h5")
    assert np.array_equal(got[1], want[1]) and np.array_equal(got[0], want[0])
    assert torch.load(out / "cmu.pt", weights_only=True).shape == (len(got[1]), encoder.embed_dim)


def test_config_declares_the_documented_keys():
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(CONFIG))
    expected = {
        "slides_csv": None,
        "wsi_backend": "auto",
        "target_mpp": 0.5,
        "assume_mpp": None,
        "patch_size": 256,
        "step": "@patch_size",
        "encoder_name": "builtin-small",
        "encoder_checkpoint": None,
        "save_pt": False,
    }
    for key, value in expected.items():
        assert parser[key] == value, key
    for key in (
        "bundle_root",
        "slides_dir",
        "output_dir",
        "device",
        "tissue_fraction",
        "batch_size",
        "num_workers",
        "mask_saturation_threshold",
        "mask_min_saturation",
        "extractor",
    ):
        assert key in parser.config, key
    assert parser["extract_features"] == [
        "$scripts.config_checks.check_settings()",
        "$scripts.runtime_threads.apply_thread_choice(@num_threads, None, @num_workers)",
        "$@extractor.run()",
    ]
    assert parser.get_parsed_content("device").type in ("cpu", "cuda")
    merged = ConfigParser()
    merged.read_config([str(CONFIG), str(MULTI_GPU)])
    assert "init_process_group" in " ".join(merged["initialize"])
    assert merged["extract_features"][-1] == "$@extractor.run()"


@pytest.mark.slow
def test_killed_run_resumes_and_matches_an_uninterrupted_run(tmp_path, encoder):
    rgb = cmu_rgb()
    folder = tmp_path / "in"
    folder.mkdir()
    wide = np.ascontiguousarray(np.concatenate([rgb, rgb[:, ::-1], rgb], axis=1))  # 6660 x 2967
    for i, flip in enumerate((False, True, False, True)):
        image = wide[::-1] if flip else wide
        write_pyramid_tiff(folder / f"s{i}.svs", np.ascontiguousarray(np.roll(image, 300 * i, axis=1)), levels=3)
    out = tmp_path / "out"
    process = subprocess.Popen(
        extract_command(folder, out, "--progress", "False", "--num_workers", "1"),
        cwd=REPO,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while not list(out.glob("*.h5")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    finished = sorted(p.stem for p in out.glob("*.h5"))
    assert 1 <= len(finished) < 4, f"kill did not land mid-run: {finished}"
    first_mtime = {s: (out / f"{s}.h5").stat().st_mtime_ns for s in finished}

    rerun = subprocess.run(
        extract_command(folder, out, "--progress", "False"),
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    statuses = {r.slide_id: r.status for r in read_manifest(out / "manifest.csv")}
    assert statuses == {f"s{i}": ("skipped" if f"s{i}" in finished else "done") for i in range(4)}
    assert all((out / f"{s}.h5").stat().st_mtime_ns == first_mtime[s] for s in finished)
    assert not list(out.glob(".*.tmp"))

    reference = tmp_path / "ref"
    FeatureExtractor(reference, encoder, slides_dir=folder, progress=False).run()
    for i in range(4):
        got, want = _h5(out / f"s{i}.h5"), _h5(reference / f"s{i}.h5")
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


@pytest.mark.slow
def test_two_ranks_share_the_slides_and_rank0_merges_the_manifest(tmp_path, slides, encoder):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("blank", "cmu", "mirror", "unreadable"):
        shutil.copy(slides[name], folder / slides[name].name)
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        "-m",
        "monai.bundle",
        "run",
        "extract_features",
        "--config_file",
        f"['{CONFIG.relative_to(REPO)}','{MULTI_GPU.relative_to(REPO)}']",
        "--slides_dir",
        str(folder),
        "--output_dir",
        str(out),
        "--num_workers",
        "1",
    ]
    done = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_manifest(out / "manifest.csv")
    # sorted slide order: blank, cmu, mirror, unreadable -> rank 0 takes blank+mirror, rank 1 cmu+unreadable
    assert [(r.slide_id, r.status) for r in rows] == [
        ("blank", "failed"),
        ("cmu", "done"),
        ("mirror", "done"),
        ("unreadable", "failed"),
    ]
    assert not list(out.glob("manifest.rank*.csv"))
    reference = tmp_path / "ref"
    FeatureExtractor(reference, encoder, slides_dir=folder, progress=False).run()
    for slide_id in ("cmu", "mirror"):
        got, want = _h5(out / f"{slide_id}.h5"), _h5(reference / f"{slide_id}.h5")
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
