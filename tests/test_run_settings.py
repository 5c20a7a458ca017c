"""Command-line settings are checked once at start, and a failed run ends in a line a person can read."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scripts.config_checks import SettingsError, check_overrides
from scripts.error_messages import user_facing_error
from tests.support.bundle_runs import REPO_ROOT, bundle_env, path_of

DECLARED = {"max_epochs": 20, "learning_rate": 0.001, "resume": True, "run_name": None, "val_metric": "BLEU_4",
            "output_dir": "$@bundle_root", "train": {"dataset": {"max_patches": 4096}}, "metrics": ["BLEU_4"]}


def test_unknown_key_names_the_close_match():
    with pytest.raises(SettingsError, match=r"unknown setting --max_epoch .*did you mean --max_epochs\?"):
        check_overrides(DECLARED, {"max_epoch": 1})
    with pytest.raises(SettingsError, match=r"did you mean --train#dataset#max_patches"):
        check_overrides(DECLARED, {"train#dataset#max_patchs": 10})


def test_wrong_types_name_the_key_and_the_value():
    with pytest.raises(SettingsError, match=r"--max_epochs must be a whole number .*got 'abc'"):
        check_overrides(DECLARED, {"max_epochs": "abc"})
    with pytest.raises(SettingsError, match=r"--learning_rate must be a number .*got 'fast'"):
        check_overrides(DECLARED, {"learning_rate": "fast"})
    with pytest.raises(SettingsError, match=r"--max_epochs must be a whole number .*got 1.5"):
        check_overrides(DECLARED, {"max_epochs": 1.5})
    with pytest.raises(SettingsError) as err:  # every problem at once, one per line
        check_overrides(DECLARED, {"max_epochs": "x", "resume": "perhaps", "max_epoc": 2})
    assert len(str(err.value).splitlines()) == 3


@pytest.mark.parametrize("word,expected", [("true", True), ("FALSE", False), ("1", True), (0, False), ("Yes", True),
                                           ("no", False), (False, False), ("on", True)])
def test_booleans_parse_the_same_everywhere(word, expected):
    assert check_overrides(DECLARED, {"resume": word}) == {"resume": expected}


def test_null_is_none_where_a_setting_can_be_off():
    assert check_overrides({**DECLARED, "max_patches": 8192}, {"max_patches": "null", "run_name": "None"}) == \
        {"max_patches": None, "run_name": None}
    with pytest.raises(SettingsError, match="--max_epochs must be a whole number"):
        check_overrides(DECLARED, {"max_epochs": "null"})


def test_accepted_values_keep_their_meaning():
    checked = check_overrides(DECLARED, {"learning_rate": 1, "val_metric": 5, "run_name": "x",
                                         "output_dir": "/tmp/o", "max_epochs": "$2 + 1", "metrics": ["CIDEr"]})
    assert checked == {"learning_rate": 1, "val_metric": "5", "run_name": "x", "output_dir": "/tmp/o",
                       "max_epochs": "$2 + 1", "metrics": ["CIDEr"]}


def test_the_shown_error_skips_monai_wrappers():
    try:
        try:
            raise FileNotFoundError("annotation_file /x.json: not found")
        except FileNotFoundError as inner:
            raise RuntimeError("Failed to evaluate ConfigExpression: $f(@x)") from inner
    except RuntimeError as outer:
        assert str(user_facing_error(outer)) == "annotation_file /x.json: not found"


def _bundle(config: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "monai.bundle", "run", *args[:1], "--config_file", config, *args[1:]]
    return subprocess.run(cmd, cwd=REPO_ROOT, env=bundle_env(), capture_output=True, text=True, timeout=300)


def _last_lines(proc: subprocess.CompletedProcess[str], n: int = 2) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()][-n:]


def test_a_typo_on_the_command_line_stops_the_run(tmp_path):
    proc = _bundle("configs/train.json", "training", "--output_dir", path_of(tmp_path), "--max_epoch", "1",
                   "--resume", "maybe")
    assert proc.returncode != 0
    shown = "\n".join(_last_lines(proc, 3))
    assert "SettingsError: unknown setting --max_epoch" in shown and "did you mean --max_epochs" in shown
    assert "--resume must be true or false, got 'maybe'" in shown
    assert not (tmp_path / "checkpoints").exists()  # nothing ran


def test_a_missing_annotation_file_ends_in_one_readable_line(tmp_path):
    missing = tmp_path / "missing.json"
    out = tmp_path / "out"
    proc = _bundle("configs/train.json", "training", "--output_dir", path_of(out), "--annotation_file",
                   path_of(missing), "--dataset_dir", path_of(tmp_path))
    assert proc.returncode != 0
    error, where = _last_lines(proc)
    assert error.startswith("ERROR: ") and str(missing) in error and "not found" in error, proc.stderr[-2000:]
    log = out / "logs" / "error.log"
    assert where == f"(full traceback: {log})"
    assert "Traceback" in log.read_text() and "Failed to evaluate" in log.read_text()
    assert "Failed to evaluate" not in proc.stderr  # the wrapper stays in the file


def test_sibling_bundles_check_their_settings_too(tmp_path):
    config = "['bundle/subtyping/configs/train.json','scripts/transfer/configs/transfer_train.json']"
    proc = _bundle(config, "training", "--output_dir", path_of(tmp_path),
                   "--num_fold", "2")
    assert proc.returncode != 0
    assert "did you mean --num_folds" in "\n".join(_last_lines(proc, 3)), proc.stderr[-2000:]
