"""Training and evaluating the report bundle as a user does: ``python -m monai.bundle run ...`` subprocesses.

Every run starts from scratch (its ``models``, ``checkpoints`` and ``eval`` folders are removed first, since the
bundle resumes from ``checkpoints/last.pt``); the demo data a demo run writes inside its folder is kept, so a
rerun does not rebuild the demo's slides. stdout/stderr go to ``<run_dir>/bundle.log``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from scripts.atomic_io import atomic_write_json
from scripts.packaging.checksums import sha256_file

__all__ = ["BUNDLE_ROOT", "RECORD_NAME", "BundleRun", "BundleRunError", "config_digest", "effective_seed",
           "evaluate_bundle", "finished_run", "train_bundle"]

#: The report bundle's root (this repository), where the subprocesses run.
BUNDLE_ROOT = Path(__file__).resolve().parents[2]
_FRESH = ("models", "checkpoints", "eval")
#: What a finished run records in its folder (times, epochs, metrics), for ``--reuse-runs``.
RECORD_NAME = "bench_run.json"


class BundleRunError(RuntimeError):
    """A bundle subprocess failed; the message names the command and the log's last lines."""


@dataclass
class BundleRun:
    """One training + evaluation.

    Attributes:
        run_dir: the bundle's ``--output_dir``.
        train_seconds, eval_seconds: wall time of the two subprocesses.
        metrics: ``eval/metrics.json``'s ``metrics`` (``BLEU_4``, ``ROUGE_L`` ...).
        reports_csv: ``eval/reports.csv`` (``id, generated, reference``).
        best_epoch: the epoch whose model was kept (``checkpoints/best.json``), or None.
        epochs_run: epochs trained (early stopping included), or None when unknown.
        config_digest: SHA-256 of the training config file's text when it was trained (a finished run is
            reused only with the same config).
        seed: the ``--seed`` the training ran with, or None for the config's own (a finished run is reused only
            with the same seed).
        training_digest: SHA-256 of the training annotation file (``--annotation_file``) it was trained on, or
            None when it was not given one (the demos); a finished run is reused only with the same bytes.
    """

    run_dir: Path
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    metrics: dict[str, float] | None = None
    reports_csv: Path | None = None
    best_epoch: int | None = None
    epochs_run: int | None = None
    config_digest: str | None = None
    seed: int | None = None
    training_digest: str | None = None


def _run(command: list[str], log: Path) -> float:
    start = time.perf_counter()
    with log.open("a", encoding="utf-8") as handle:
        handle.write("$ " + " ".join(command) + "\n")
        handle.flush()
        code = subprocess.run(command, cwd=BUNDLE_ROOT, stdout=handle, stderr=subprocess.STDOUT,
                              env=os.environ.copy(), check=False).returncode
    if code != 0:
        tail = "".join(log.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-25:])
        raise BundleRunError(f"exit code {code}: {' '.join(command)}\n(last lines of {log}):\n{tail}")
    return time.perf_counter() - start


def effective_seed(seed: int | None, extra_args: Sequence[str]) -> int | None:
    """The ``--seed`` a training gets from ``seed``: None (the user's own, or the config's) when the user's
    ``extra_args`` already set one."""
    return None if "--seed" in extra_args else seed


def training_digest(data_args: list[str]) -> str | None:
    """SHA-256 of the ``--annotation_file`` named in ``data_args``, or None when there is none."""
    if "--annotation_file" not in data_args:
        return None
    return sha256_file(data_args[data_args.index("--annotation_file") + 1])


def config_digest(config_file: str) -> str:
    """SHA-256 of a (repository-relative) bundle config file's bytes."""
    return sha256_file(BUNDLE_ROOT / config_file)


def _epochs_run(checkpoint: Path) -> int | None:
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        return int(state["trainer"]["epoch"])
    except Exception:  # noqa: BLE001 - an unreadable checkpoint only loses the epoch count
        return None


def train_bundle(run_dir: Path, data_args: list[str], extra_args: list[str], config_file: str = "configs/train.json",
                 seed: int | None = None) -> BundleRun:
    """Run ``training`` into a fresh ``run_dir`` with ``data_args`` (``--dataset_dir ...`` or ``--demo#...``) and
    the user's ``extra_args`` (overrides such as ``--max_epochs 2``); with ``seed``, ``--seed seed`` as well
    (the user's own ``--seed`` in ``extra_args`` wins: then ``seed`` is not passed)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in _FRESH:
        shutil.rmtree(run_dir / name, ignore_errors=True)
    (run_dir / RECORD_NAME).unlink(missing_ok=True)
    log = run_dir / "bundle.log"
    log.unlink(missing_ok=True)
    seed = effective_seed(seed, extra_args)
    seed_args = [] if seed is None else ["--seed", str(seed)]
    command = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", config_file,
               *data_args, "--output_dir", str(run_dir), *seed_args, *extra_args]
    digest = training_digest(data_args)
    run = BundleRun(run_dir=run_dir, train_seconds=_run(command, log), config_digest=config_digest(config_file),
                    seed=seed, training_digest=digest)
    best = run_dir / "checkpoints" / "best.json"
    if best.is_file():
        run.best_epoch = json.loads(best.read_text(encoding="utf-8")).get("epoch")
    run.epochs_run = _epochs_run(run_dir / "checkpoints" / "last.pt")
    return run


def evaluate_bundle(run: BundleRun, dataset_dir: Path, annotation_file: Path,
                    config_file: str = "configs/evaluate.json") -> BundleRun:
    """Run ``evaluating`` of ``run``'s model on the test split of the given (true-pair) dataset."""
    command = [sys.executable, "-m", "monai.bundle", "run", "evaluating", "--config_file", config_file,
               "--dataset_dir", str(dataset_dir), "--annotation_file", str(annotation_file),
               "--output_dir", str(run.run_dir)]
    run.eval_seconds = _run(command, run.run_dir / "bundle.log")
    payload: dict[str, Any] = json.loads((run.run_dir / "eval" / "metrics.json").read_text(encoding="utf-8"))
    run.metrics = {k: float(v) for k, v in payload.get("metrics", {}).items()}
    run.reports_csv = run.run_dir / "eval" / "reports.csv"
    record = {"train_seconds": run.train_seconds, "eval_seconds": run.eval_seconds, "metrics": run.metrics,
              "best_epoch": run.best_epoch, "epochs_run": run.epochs_run, "config_digest": run.config_digest,
              "data": [str(dataset_dir), str(annotation_file)], "seed": run.seed,
              "training_digest": run.training_digest}
    atomic_write_json(run.run_dir / RECORD_NAME, record)
    return run


def finished_run(run_dir: Path, dataset_dir: Path, annotation_file: Path, config_file: str = "configs/train.json",
                 seed: int | None = None, data_args: list[str] | None = None) -> BundleRun | None:
    """The run recorded in ``run_dir`` if it finished with the same training config (same bytes) and ``seed``
    (None: the config's own; a record from before seeds were recorded ran with the config's own), was trained on
    the same annotation bytes as ``data_args`` names (when given; a record without that digest is not reused
    then) and was evaluated on the same data, else None."""
    try:
        record = json.loads((run_dir / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    reports = run_dir / "eval" / "reports.csv"
    if record.get("data") != [str(dataset_dir), str(annotation_file)] or not reports.is_file():
        return None
    if record.get("config_digest") != config_digest(config_file) or record.get("seed") != seed:
        return None
    digest = None if data_args is None else training_digest(data_args)
    if digest is not None and record.get("training_digest") != digest:
        return None
    return BundleRun(run_dir=run_dir, train_seconds=record["train_seconds"], eval_seconds=record["eval_seconds"],
                     metrics=record["metrics"], reports_csv=reports, best_epoch=record["best_epoch"],
                     epochs_run=record["epochs_run"], config_digest=record["config_digest"], seed=seed,
                     training_digest=record.get("training_digest"))
