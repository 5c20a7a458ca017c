"""Small labelled feature sets for the sibling bundles, and their workflows run as a user runs them."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np

from scripts.data.feature_files import write_feature_file_h5
from tests.support.bundle_runs import REPO_ROOT, bundle_env

CLASSES = ("adeno", "normal", "squamous cell")  # a space in a class name: it becomes a column name
#: a short cross-validation: 2 folds of 1 epoch
FAST = {"num_folds": 2, "max_epochs": 1, "batch_size": 4, "val_batch_size": 8, "pretrained_encoder": "none"}


def make_labelled_bags(folder: Path, task: str, n_slides: int = 40, dim: int = 32, seed: int = 0) -> dict[str, Path]:
    """``<folder>/features/slide-<i>.h5`` (``[N, dim]``, class-dependent mean) and ``<folder>/labels.csv``.

    Two slides per case; the class (and, for survival, an exponential time with a class-dependent scale and an
    event indicator) belongs to the case. Returns ``{"csv_file", "dataset_dir"}``.
    """
    rng = np.random.default_rng(seed)
    features = folder / "features"
    features.mkdir(parents=True, exist_ok=True)
    rows = []
    outcomes: dict[int, tuple[float, int]] = {}
    for i in range(n_slides):
        case = i // 2
        label = case % len(CLASSES)
        bag = rng.normal(0.0, 1.0, (int(rng.integers(20, 60)), dim)).astype(np.float32)
        bag[:, label] += 1.5
        slide_id = f"slide-{i:03d}"
        write_feature_file_h5(features / f"{slide_id}.h5", bag)
        if task == "subtyping":
            rows.append({"slide_id": slide_id, "label": CLASSES[label], "case_id": f"case-{case:03d}"})
        else:
            if case not in outcomes:
                outcomes[case] = (float(rng.exponential((30.0, 12.0, 5.0)[label])) + 0.5, int(rng.random() < 0.75))
            time, event = outcomes[case]
            rows.append({"slide_id": slide_id, "case_id": f"case-{case:03d}", "time": f"{time:.2f}", "event": event})
    csv_file = folder / "labels.csv"
    with open(csv_file, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return {"csv_file": csv_file.resolve(), "dataset_dir": features.resolve()}


#: the sibling bundles' shared configs (``train.json``, ``evaluate.json``, ``inference.json``, ``multi_gpu_train.json``)
BASE_CONFIGS = "scripts/transfer/configs"


def config_files(bundle: str, *names: str, root: Path = REPO_ROOT) -> list[str]:
    """The ``--config_file`` list of a sibling bundle's configs, as the docs give it: for each name the bundle's
    own ``configs/<name>`` then the shared base (``scripts/transfer/configs/transfer_<name>``), where each exists.

    The bundle's file comes first: MONAI reads ``metadata.json`` and ``logging.conf`` beside the first file."""
    candidates = [f"{folder}/{prefix}{name}" for name in names
                  for folder, prefix in ((f"bundle/{bundle}/configs", ""), (BASE_CONFIGS, "transfer_"))]
    files = [f for f in candidates if (root / f).is_file()]
    if not files:
        raise FileNotFoundError(f"no config {names} for bundle {bundle!r}")
    return files


def config_file_arg(files: list[str]) -> str:
    """One ``--config_file`` value: a path, or MONAI's ``"['a.json','b.json']"`` list."""
    return files[0] if len(files) == 1 else "[" + ",".join(f"'{f}'" for f in files) + "]"


def transfer_command(bundle: str, run_id: str, config: str, overrides: dict[str, object]) -> list[str]:
    """``python -m monai.bundle run <run_id> --config_file "['bundle/<bundle>/configs/<config>','<base>']" ...``."""
    cmd = [sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file",
           config_file_arg(config_files(bundle, config))]
    for key, value in overrides.items():
        cmd += [f"--{key}", str(value)]
    return cmd


def run_transfer_workflow(bundle: str, run_id: str, config: str, timeout: float = 900,
                          **overrides: object) -> subprocess.CompletedProcess[str]:
    """Run a sibling bundle's workflow from the repository root; fail with its output if it exits non-zero."""
    cmd = transfer_command(bundle, run_id, config, overrides)
    env = {**bundle_env(), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-6000:]}")
    return proc


def file_list(paths: list[Path]) -> str:
    """A list of paths as a ``--feature_files`` value."""
    return "[" + ",".join(f"'{p.resolve()}'" for p in paths) + "]"


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))
