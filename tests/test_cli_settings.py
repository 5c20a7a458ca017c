"""Discoverable settings: the key listing of every bundle config, ``--help`` that runs nothing, typos refused."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from scripts.config_checks import SettingsError, check_overrides
from scripts.settings import format_settings, list_settings, main, with_shared_base
from tests.support.bundle_runs import bundle_env
from tests.support.shared_fixtures import REPO_ROOT

#: every config a user runs (alone, or after its base config), for the report bundle and both siblings
CONFIGS = [
    *(f"configs/{n}.json" for n in ("train", "evaluate", "inference", "extract_features", "export")),
    *(f"bundle/{b}/configs/{n}.json" for b in ("subtyping", "survival")
      for n in ("train", "evaluate", "inference", "export")),
    *(f"bundle/grade/configs/{n}.json" for n in ("train", "evaluate", "inference")),  # listed with the shared base
]
PATCHES = [("configs/train.json", "configs/multi_gpu_train.json"),
           ("configs/extract_features.json", "configs/multi_gpu_extract.json"),
           ("bundle/subtyping/configs/train.json", "scripts/transfer/configs/transfer_train.json",
            "scripts/transfer/configs/transfer_multi_gpu_train.json"),
           ("bundle/survival/configs/train.json", "scripts/transfer/configs/transfer_train.json",
            "scripts/transfer/configs/transfer_multi_gpu_train.json")]


@pytest.mark.parametrize("files", [(c,) for c in CONFIGS] + PATCHES, ids=lambda f: "+".join(f))
def test_every_key_of_every_config_has_a_description(files):
    paths = [str(REPO_ROOT / f) for f in files]
    settings = list_settings(paths)
    merged = {}
    for path in with_shared_base(paths):
        merged.update({k: v for k, v in json.loads(open(path).read()).items() if "#" not in k})
    listed = {s.key for s in settings}
    assert listed == set(merged) - {"imports"}, "a key of the config is missing from the listing"
    missing = [s.key for s in settings if s.kind != "object" and not s.description]
    assert not missing, f"add a description to scripts/settings_descriptions.py for {missing} ({files})"
    assert any(s.kind == "workflow" for s in settings)


def test_the_listing_shows_defaults_from_the_config_and_nested_keys():
    text = format_settings(str(REPO_ROOT / "configs/train.json"))
    train = json.loads((REPO_ROOT / "configs/train.json").read_text())
    line = next(row for row in text.splitlines() if row.strip().startswith("--max_epochs "))
    assert str(train["max_epochs"]) in line.split() and "epochs" in line
    assert any(row.strip().startswith("--demo#source ") and train["demo"]["source"] in row for row in text.splitlines())
    assert "workflows" in text and "training" in text.split("workflows")[1]
    assert "network_def" in text.split("objects")[1].splitlines()[0]
    sibling = format_settings(str(REPO_ROOT / "bundle/survival/configs/train.json"))
    assert "(bundle: survival)" in sibling and "c_index" in sibling


def test_the_settings_command_prints_and_refuses_a_patch_file_alone(capsys):
    assert main([str(REPO_ROOT / "bundle/subtyping/configs/train.json")]) == 0
    assert "--num_folds" in capsys.readouterr().out
    assert main([str(REPO_ROOT / "configs/multi_gpu_train.json")]) == 2
    assert "only adds to a base config" in capsys.readouterr().err


def test_a_misspelt_key_is_refused_with_the_close_match():
    declared = json.loads((REPO_ROOT / "configs/inference.json").read_text())
    with pytest.raises(SettingsError, match=r"unknown setting --beam_sise .*did you mean --beam_size"):
        check_overrides(declared, {"beam_sise": 1})


def test_help_lists_the_settings_and_runs_nothing(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", "configs/train.json",
           "--output_dir", str(out), "--help"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=bundle_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--max_epochs" in proc.stdout and "--beam_size" in proc.stdout
    assert "python -m monai.bundle run training --config_file configs/train.json" in proc.stdout
    assert not out.exists()  # no folder, no checkpoint, no demo built
