"""Sharing the bundle as a zip: export, checksums, safe unzipping, and a run from wherever it is unzipped."""

from __future__ import annotations

import csv
import hashlib
import json
import stat
import subprocess
import sys
import zipfile

import pytest

from scripts.demo.feature_bags import make_demo_dataset
from scripts.packaging import (
    CHECKSUM_FILE,
    BundleVersionError,
    ChecksumError,
    UnsafeArchiveError,
    export_bundle_zip,
    safe_extract,
)
from tests.support.bundle_runs import REPO_ROOT, bundle_env, path_of, run_bundle, run_from_anywhere

VERSION = json.loads((REPO_ROOT / "configs" / "metadata.json").read_text())["version"]
ZIP_NAME = f"histgen_report_v{VERSION}.zip"


def _fake_models(folder):
    folder.mkdir(parents=True)
    for name in ("model.pt", "vocab.json", "model_config.json"):
        (folder / name).write_bytes(f"stand-in for {name}".encode())
    return folder


def _export(model_dir, dist_dir):
    """The documented command (docs/share_and_serve/bundle_zip.md)."""
    cmd = [sys.executable, "-m", "monai.bundle", "run", "export", "--config_file", "configs/export.json",
           "--model_dir", str(model_dir), "--dist_dir", str(dist_dir)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=bundle_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return dist_dir / ZIP_NAME


def test_export_writes_a_versioned_zip_with_a_checksum_for_every_member(tmp_path):
    archive = _export(_fake_models(tmp_path / "models"), tmp_path / "dist")
    assert archive.is_file(), list((tmp_path / "dist").iterdir())
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        tops = {n.split("/")[0] for n in names}
        assert tops == {"histgen_report"}
        inner = {n.split("/", 1)[1] for n in names}
        assert {"LICENSE", "configs/inference.json", "configs/metadata.json", "models/model.pt",
                "models/vocab.json", "models/model_config.json", "scripts/__init__.py",
                "scripts/networks/histgen.py", CHECKSUM_FILE} <= inner
        assert any(n.startswith("docs/") for n in inner)
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in inner)
        checksums = zf.read(f"histgen_report/{CHECKSUM_FILE}").decode()
        listed = dict(line.split("  ")[::-1] for line in checksums.splitlines())
        assert set(listed) == inner - {CHECKSUM_FILE}
        for name, digest in listed.items():
            assert hashlib.sha256(zf.read(f"histgen_report/{name}")).hexdigest() == digest, name
    again = export_bundle_zip(REPO_ROOT, dist_dir=tmp_path / "again", model_dir=tmp_path / "models")
    assert again.read_bytes() == archive.read_bytes(), "the same inputs must give the same archive"


def test_a_version_missing_from_the_changelog_stops_the_export(tmp_path):
    meta = json.loads((REPO_ROOT / "configs" / "metadata.json").read_text())
    meta["version"] = "9.9.9"
    meta_file = tmp_path / "metadata.json"
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(BundleVersionError, match=r"version 9\.9\.9 has no entry in 'changelog'"):
        export_bundle_zip(REPO_ROOT, dist_dir=tmp_path / "dist", meta_file=meta_file)
    assert not (tmp_path / "dist").exists() or not list((tmp_path / "dist").iterdir())


def _zip_with(path, name, data=b"x", mode=0o100644):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("bundle/configs/ok.json", "{}")
        info = zipfile.ZipInfo(name)
        info.external_attr = mode << 16
        zf.writestr(info, data)
    return path


@pytest.mark.parametrize(
    "member,mode",
    [
        ("../evil.txt", 0o100644),
        ("bundle/../../evil.txt", 0o100644),
        ("ABSOLUTE", 0o100644),
        ("..\\evil.txt", 0o100644),
        ("bundle/link", 0o120777),  # a symbolic link pointing outside
        ("bundle/fifo", 0o010644),
    ],
)
def test_safe_extract_refuses_crafted_members_and_writes_nothing(tmp_path, member, mode):
    outside = tmp_path / "evil.txt"
    name = str(outside) if member == "ABSOLUTE" else member
    data = str(outside).encode() if mode == 0o120777 else b"owned"
    archive = _zip_with(tmp_path / "crafted.zip", name, data, mode)
    target = tmp_path / "target" / "inner"
    with pytest.raises(UnsafeArchiveError, match="crafted.zip: member"):
        safe_extract(archive, target)
    assert not outside.exists()
    assert not target.exists(), "nothing may be written when any member is unsafe"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crafted.zip"]


def test_safe_extract_catches_a_tampered_member(tmp_path):
    archive = _export(_fake_models(tmp_path / "models"), tmp_path / "dist")
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("models/vocab.json"):
                data = b"changed on the way"
            dst.writestr(info, data)
    with pytest.raises(ChecksumError, match="differs: models/vocab.json"):
        safe_extract(tampered, tmp_path / "out")
    written = safe_extract(archive, tmp_path / "clean")
    assert all(stat.S_ISREG(p.stat().st_mode) for p in written)


@pytest.mark.slow
def test_unzipped_bundle_runs_from_anywhere_and_writes_the_same_reports(tmp_path):
    demo = make_demo_dataset(tmp_path / "demo", n_train=16, n_val=8, n_test=8, feature_dim=32, n_patches=(20, 60))
    run = tmp_path / "run"
    run_bundle("training", "train.json", dataset_dir=path_of(demo.dataset_dir),
               annotation_file=path_of(demo.annotation_file), output_dir=path_of(run), max_epochs=1,
               batch_size=4, val_batch_size=8, max_seq_length=30, beam_size=2)
    archive = _export(run / "models", tmp_path / "dist")
    unpacked = tmp_path / "unpacked"
    safe_extract(archive, unpacked)
    bundle = unpacked / "histgen_report"
    assert sorted(p.name for p in bundle.iterdir()) == sorted(
        ["configs", "models", "scripts", "docs", "LICENSE", CHECKSUM_FILE])

    files = sorted(demo.dataset_dir.glob("*test*"))[:3]
    listing = "[" + ",".join(f"'{path_of(f)}'" for f in files) + "]"
    run_bundle("inference", "inference.json", feature_files=listing, output_dir=path_of(run),
               reports_dir=path_of(tmp_path / "repo_reports"))

    args = ["run", "inference", "--bundle_root", str(bundle),
            "--config_file", str(bundle / "configs" / "inference.json"), "--feature_files", listing]
    for out in run_from_anywhere(tmp_path, args, "--reports_dir"):
        with open(out / "reports.csv", encoding="utf-8-sig") as a, \
                open(tmp_path / "repo_reports" / "reports.csv", encoding="utf-8-sig") as b:
            assert list(csv.DictReader(a)) == list(csv.DictReader(b))
        assert not (bundle / "reports").exists()
