"""extract_features fails when nothing was extracted, and two runs never share an output folder."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scripts.wsi import FeatureExtractor, NothingExtractedError, OutputFolderBusyError, read_manifest
from tests.support.extraction_runs import ENV, REPO, extract_command, write_slides_csv


def test_every_slide_failing_is_an_error_and_the_manifest_lists_each(tmp_path, slides, encoder):  # noqa: F811
    rows = [("unreadable", str(slides["unreadable"])), ("gone", str(tmp_path / "gone.svs"))]
    out = tmp_path / "out"
    with pytest.raises(NothingExtractedError, match=r"no slide was extracted: 2 of 2 slide\(s\) failed"):
        FeatureExtractor(out, encoder, slides_csv=write_slides_csv(tmp_path / "s.csv", rows), progress=False).run()
    manifest = read_manifest(out / "manifest.csv")
    assert [(r.slide_id, r.status) for r in manifest] == [("unreadable", "failed"), ("gone", "failed")]
    assert all(r.error for r in manifest)


def test_an_empty_slide_folder_fails_from_the_command_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run(extract_command(empty, tmp_path / "out", "--progress", "false"), cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    last = [line for line in proc.stderr.splitlines() if line.strip()][-2]
    assert last == f"ERROR: NothingExtractedError: {empty}: no slide found, nothing extracted (manifest: " \
                   f"{tmp_path / 'out' / 'manifest.csv'})"
    assert read_manifest(tmp_path / "out" / "manifest.csv") == []


def test_a_second_extraction_into_a_busy_folder_is_refused(tmp_path, slides, encoder):  # noqa: F811
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom scripts.wsi import OutputFolderLock\n"
         f"with OutputFolderLock({str(out)!r}):\n    print('locked', flush=True)\n    time.sleep(120)"],
        cwd=REPO, env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        lines = iter(holder.stdout.readline, "")
        assert any(line.strip() == "locked" for line in lines), "the lock holder did not start"
        csv_path = write_slides_csv(tmp_path / "s.csv", [("cmu", str(slides["cmu"]))])
        with pytest.raises(OutputFolderBusyError, match=rf"{out}: another feature extraction is writing here "
                                                        rf"\(pid {holder.pid}, started"):
            FeatureExtractor(out, encoder, slides_csv=csv_path, progress=False).run()
        assert not (out / "manifest.csv").exists() and not (out / "cmu.h5").exists()  # nothing touched
    finally:
        holder.kill()  # like kill -9: the kernel drops the lock
        holder.wait()
    (row,) = FeatureExtractor(out, encoder, slides_csv=csv_path, progress=False).run()
    assert row.status == "done" and [r.status for r in read_manifest(out / "manifest.csv")] == ["done"]
