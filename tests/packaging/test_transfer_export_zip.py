"""The subtyping and survival bundles as zips: the documented export, and a run from wherever they are unzipped."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile

import pytest

from scripts.packaging import CHECKSUM_FILE, collect_bundle_files, safe_extract
from tests.support.bundle_runs import REPO_ROOT, bundle_env, run_from_anywhere
from tests.support.transfer_runs import FAST, file_list, make_labelled_bags, read_rows, run_transfer_workflow

BUNDLES = ("subtyping", "survival")


def _zip_name(bundle: str) -> str:
    meta = json.loads((REPO_ROOT / "bundle" / bundle / "configs" / "metadata.json").read_text())
    return f"histgen_{bundle}_v{meta['version']}.zip"


def _export(bundle: str, output_dir, dist_dir):
    """The documented command (docs/share_and_serve/bundle_zip.md), from the repository root."""
    cmd = [sys.executable, "-m", "monai.bundle", "run", "export", "--config_file",
           f"bundle/{bundle}/configs/export.json", "--output_dir", str(output_dir), "--dist_dir", str(dist_dir)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=bundle_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    archive = dist_dir / _zip_name(bundle)
    assert f"wrote {archive}" in proc.stdout
    return archive


def _fake_fold_models(run_dir):
    for fold in (0, 1):
        folder = run_dir / "models" / f"fold_{fold}"
        folder.mkdir(parents=True)
        for name in ("model.pt", "model_info.json"):
            (folder / name).write_bytes(f"stand-in for fold {fold} {name}".encode())
    (run_dir / "models" / "checkpoints").mkdir()
    (run_dir / "models" / "checkpoints" / "last.pt").write_bytes(b"not shipped")
    (run_dir / "models" / ".gitkeep").write_bytes(b"")
    return run_dir


@pytest.mark.parametrize("bundle", BUNDLES)
def test_export_ships_the_bundle_configs_the_shared_scripts_and_every_fold_model(bundle, tmp_path):
    run_dir = _fake_fold_models(tmp_path / "run")
    archive = _export(bundle, run_dir, tmp_path / "dist")
    top = f"histgen_{bundle}"
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        assert {n.split("/")[0] for n in names} == {top}
        inner = {n.split("/", 1)[1] for n in names}
        assert {"LICENSE", "configs/train.json", "configs/inference.json", "configs/export.json",
                "configs/metadata.json", "docs/README.md", "scripts/__init__.py", "scripts/transfer/__init__.py",
                "scripts/packaging/bundle_zip.py", "models/fold_0/model.pt", "models/fold_0/model_info.json",
                "models/fold_1/model.pt", "models/fold_1/model_info.json", CHECKSUM_FILE} <= inner
        assert not [n for n in inner if n.startswith("models/") and "fold_" not in n], "checkpoints or dot files"
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in inner)
        assert zf.read(f"{top}/configs/train.json") == (REPO_ROOT / "bundle" / bundle / "configs" / "train.json"
                                                        ).read_bytes()
        assert zf.read(f"{top}/LICENSE") == (REPO_ROOT / "LICENSE").read_bytes()
        listed = dict(line.split("  ")[::-1] for line in zf.read(f"{top}/{CHECKSUM_FILE}").decode().splitlines())
        assert set(listed) == inner - {CHECKSUM_FILE}
        for name, digest in listed.items():
            assert hashlib.sha256(zf.read(f"{top}/{name}")).hexdigest() == digest, name


def test_the_report_bundle_still_ships_only_its_top_level_model_files(tmp_path):
    models = tmp_path / "models"
    (models / "fold_0").mkdir(parents=True)
    (models / "model.pt").write_bytes(b"m")
    (models / "fold_0" / "model.pt").write_bytes(b"f")
    files = collect_bundle_files(REPO_ROOT, models)
    assert "models/model.pt" in files and "models/fold_0/model.pt" not in files
    assert files["LICENSE"] == REPO_ROOT / "LICENSE" and files["scripts/__init__.py"].parent == REPO_ROOT / "scripts"


@pytest.mark.parametrize("bundle", BUNDLES)
def test_export_of_an_untrained_bundle_is_refused_and_writes_no_zip(bundle, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "models" / "fold_0").mkdir(parents=True)
    (run_dir / "models" / "fold_0" / "model_info.json").write_text("{}")  # a fold folder without its model
    cmd = [sys.executable, "-m", "monai.bundle", "run", "export", "--config_file",
           f"bundle/{bundle}/configs/export.json", "--output_dir", str(run_dir), "--dist_dir", str(tmp_path / "dist")]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=bundle_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert f"{run_dir / 'models'}: no trained fold model (fold_*/model.pt); train the bundle first" in (
        proc.stdout + proc.stderr)
    assert not (tmp_path / "dist").exists() or not any((tmp_path / "dist").iterdir())


def test_a_sibling_bundle_folder_alone_is_refused_without_its_code_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="bundle root without the scripts/ package"):
        collect_bundle_files(REPO_ROOT / "bundle" / "subtyping", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("bundle", BUNDLES)
def test_unzipped_bundle_runs_from_anywhere_and_predicts_as_the_repository(bundle, tmp_path):
    data = make_labelled_bags(tmp_path / "data", bundle)
    run = tmp_path / "run"
    run_transfer_workflow(bundle, "training", "train.json", output_dir=run, **data, **FAST)
    archive = _export(bundle, run, tmp_path / "dist")
    unpacked = tmp_path / "unpacked"
    safe_extract(archive, unpacked)
    root = unpacked / f"histgen_{bundle}"
    assert sorted(p.name for p in root.iterdir()) == sorted(
        ["configs", "models", "scripts", "docs", "LICENSE", CHECKSUM_FILE])

    files = file_list(sorted(data["dataset_dir"].glob("*.h5"))[:6])
    run_transfer_workflow(bundle, "inference", "inference.json", output_dir=run, feature_files=files,
                          predictions_dir=tmp_path / "repo_predictions")
    expected = read_rows(tmp_path / "repo_predictions" / "predictions.csv")
    assert len(expected) == 6

    args = ["run", "inference", "--bundle_root", str(root), "--config_file",
            f"['{root}/configs/inference.json','{root}/scripts/transfer/configs/transfer_inference.json']",
            "--feature_files", files]
    for out in run_from_anywhere(tmp_path, args, "--predictions_dir"):
        assert read_rows(out / "predictions.csv") == expected
    assert not (root / "predictions").exists(), "inference wrote into the unzipped bundle"
