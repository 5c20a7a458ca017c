"""Ignite handlers of the report training workflow (attached from ``configs/train.json``)."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.engines.utils import IterationEvents
from monai.handlers import EarlyStopHandler

from scripts.atomic_io import atomic_path, atomic_write_json, remove_stale_temporaries
from scripts.flags import as_flag
from scripts.metrics import FindingsVocabulary, selection_score
from scripts.safe_load import UnsafeFileError, load_plain
from scripts.text import Vocabulary

from .mlflow_extras import skip_mlflow_run
from .model_files import CONFIG_FILE, EXTRACTION_FILE, FINDINGS_VOCAB_FILE, MODEL_FILE, VOCAB_FILE, save_report_model
from .progress import engine_loss

logger = logging.getLogger("histgen.train")

MODEL_FILES = (MODEL_FILE, VOCAB_FILE, CONFIG_FILE, EXTRACTION_FILE)


def metric_score(name: str) -> Callable[[Engine], float]:
    """A score function reading ``engine.state.metrics[name]`` (for early stopping).

    ``name`` is a metric key or a combination of :data:`scripts.metrics.COMBINED_SCORES` (``clinical_bleu``);
    NaN reads as -inf (see :func:`scripts.metrics.selection_score`).
    """

    def score(engine: Engine) -> float:
        return selection_score(engine.state.metrics, name)

    return score


def selection_start_epoch(max_epochs: int, warmup_fraction: float = 0.25) -> int:
    """The first epoch whose model may be selected: the first ``warmup_fraction`` of the epochs are validated and
    logged but never kept as the best model (see :class:`BestModelSaver`).

    Args:
        max_epochs: epochs the run trains.
        warmup_fraction: share of the epochs, counted from the start, that selection skips (0 selects from epoch 1).

    Returns:
        ``floor(warmup_fraction * max_epochs) + 1``, at most ``max_epochs`` (a run always has a selectable epoch).

    Raises:
        ValueError: ``max_epochs`` below 1, or ``warmup_fraction`` outside ``[0, 1)``.
    """
    epochs, fraction = int(max_epochs), float(warmup_fraction)
    if epochs < 1:
        raise ValueError(f"max_epochs must be at least 1, got {max_epochs!r}")
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"selection_warmup must be in [0, 1), got {warmup_fraction!r}")
    return min(epochs, math.floor(fraction * epochs) + 1)


class SelectionEarlyStop(EarlyStopHandler):
    """MONAI's early stopping whose patience starts counting at the first selectable epoch.

    Validation scores of the warm-up epochs (before ``first_epoch``) are not seen, so that a score reached while
    the model still writes template text cannot stop the run before a selectable model exists.

    Args:
        patience: validations without improvement, counted from ``first_epoch``, before training stops.
        score_function: the validation score (higher is better), e.g. :func:`metric_score`.
        first_epoch: first trainer epoch whose score counts (see :func:`selection_start_epoch`).
        **kwargs: the other arguments of :class:`monai.handlers.EarlyStopHandler`.
    """

    def __init__(self, patience: int, score_function: Callable[[Engine], float], first_epoch: int = 1,
                 **kwargs: Any) -> None:
        super().__init__(patience=patience, score_function=score_function, **kwargs)
        self.first_epoch = int(first_epoch)

    def __call__(self, engine: Engine) -> None:
        if engine.state.epoch < self.first_epoch:
            return
        super().__call__(engine)


class GradientClipping:
    """Clip gradients after ``loss.backward()`` and before ``optimizer.step()``.

    Args:
        network: the trained module.
        clip_value: clip each gradient element to ``[-v, v]`` (the reference uses 0.1); None to skip.
        max_norm: clip the global gradient norm; None to skip.
    """

    def __init__(self, network: torch.nn.Module, clip_value: float | None = 0.1, max_norm: float | None = None) -> None:
        self.network = network
        self.clip_value = clip_value
        self.max_norm = max_norm

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(IterationEvents.BACKWARD_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        params = [p for p in self.network.parameters() if p.grad is not None]
        if self.clip_value is not None:
            torch.nn.utils.clip_grad_value_(params, self.clip_value)
        if self.max_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, self.max_norm)


class BestModelSaver:
    """Keep the model with the best validation score as ``model_dir/model.pt`` (+ ``vocab.json``).

    The best score so far is stored in ``state_file`` so that a resumed run keeps comparing against
    it. Selection only ever sees the validation split.

    Args:
        network: the trained module.
        vocab: its vocabulary.
        model_dir: where ``model.pt``, ``vocab.json``, ``model_config.json`` go.
        state_file: JSON with the best score and epoch.
        metric: key of ``engine.state.metrics`` to maximise.
        extraction: feature-extraction settings of the training data, saved as ``feature_extraction.json``
            (see :func:`scripts.engines.save_report_model`).
        findings_vocabulary: the training reports' finding classes, saved as ``findings_vocabulary.json``.
        provenance: what the model is trained on (:func:`scripts.engines.training_provenance`), saved as
            ``provenance.json``.
        first_epoch: validations of epochs before this one are logged but never selected (a warm-up: on small
            validation splits the n-gram score can peak while the reports are still template text; see
            :func:`selection_start_epoch` and docs/grounding.md).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        vocab: Vocabulary,
        model_dir: str | os.PathLike[str],
        state_file: str | os.PathLike[str],
        metric: str = "BLEU_4",
        extraction: dict[str, Any] | None = None,
        findings_vocabulary: FindingsVocabulary | None = None,
        provenance: dict[str, Any] | None = None,
        first_epoch: int = 1,
    ) -> None:
        self.network = network
        self.vocab = vocab
        self.provenance = provenance
        self.first_epoch = int(first_epoch)
        self.extraction = extraction
        self.findings_vocabulary = findings_vocabulary
        self.model_dir = Path(model_dir)
        self.state_file = Path(state_file)
        self.metric = metric

    def best(self) -> dict[str, Any]:
        if self.state_file.is_file():
            return json.loads(self.state_file.read_text(encoding="utf-8"))
        return {"metric": self.metric, "score": -math.inf, "epoch": None}

    def attach(self, engine: Engine) -> None:
        for name in (MODEL_FILE, VOCAB_FILE, CONFIG_FILE, FINDINGS_VOCAB_FILE):
            remove_stale_temporaries(self.model_dir / name)
        remove_stale_temporaries(self.state_file)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        best = self.best()
        engine.state.best_metric = best["score"]
        if engine.state.epoch < self.first_epoch:
            if engine.state.epoch == 1:
                logger.info("model selection on %s starts at epoch %d (earlier epochs are validated, not kept)",
                            self.metric, self.first_epoch)
            return
        score = selection_score(engine.state.metrics, self.metric)
        if not score > best["score"]:
            if score == -math.inf and best["epoch"] is None:
                logger.warning("val_metric %s is NaN at epoch %d (no validation reference states it?): "
                               "no model saved yet", self.metric, engine.state.epoch)
            return
        path = save_report_model(self.model_dir, self.network, self.vocab, self.extraction,
                                 self.findings_vocabulary, self.provenance)
        record = {"metric": self.metric, "score": score, "epoch": engine.state.epoch, "model": str(path),
                  "val_metrics": {k: v for k, v in engine.state.metrics.items() if isinstance(v, (int, float))}}
        atomic_write_json(self.state_file, record)
        engine.state.best_metric = score
        engine.state.best_metric_epoch = engine.state.epoch
        logger.info("new best %s %.4f at epoch %d: saved %s", self.metric, score, engine.state.epoch, path)


class CheckpointError(RuntimeError):
    """A resume checkpoint that cannot be read (truncated, corrupt, or missing keys)."""


def _capture_rng_state() -> dict[str, Any]:
    """The process's random-number generators as plain tensors and numbers (loads with ``weights_only=True``).

    Covers torch (CPU and, when present, CUDA; the DataLoader's shuffle draws its seed from the torch
    CPU generator), numpy and Python's ``random``.
    """
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(np_kind), "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "python": {"version": int(py_version), "internal": torch.tensor(py_internal, dtype=torch.int64),
                   "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng_state(state: dict[str, Any]) -> None:
    """Put back what :func:`_capture_rng_state` recorded."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state((np_state["kind"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["gauss"]))
    py_state = state["python"]
    random.setstate((py_state["version"], tuple(int(v) for v in py_state["internal"].tolist()), py_state["gauss"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _stateful(obj: Any) -> Any:
    """The object whose ``state_dict`` is saved: a DDP wrapper's module, an early-stop handler's ignite handler."""
    if hasattr(obj, "module") and isinstance(obj, torch.nn.Module):
        return obj.module
    if not hasattr(obj, "state_dict") and getattr(obj, "_handler", None) is not None:
        return obj._handler  # monai.handlers.EarlyStopHandler wraps ignite's EarlyStopping (counter, best score)
    return obj


def previous_checkpoint_path(save_path: str | os.PathLike[str]) -> Path:
    """Where the checkpoint before ``save_path`` is kept (``last.pt`` -> ``last.prev.pt``)."""
    path = Path(save_path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def read_checkpoint(path: str | os.PathLike[str], required: tuple[str, ...] = ("trainer",)) -> dict[str, Any]:
    """A resume checkpoint's content, loaded without unpickling code (``weights_only=True``).

    Raises:
        UnsafeFileError: the file names Python objects beyond tensors and plain values (it could run code).
        CheckpointError: the file is truncated, corrupt, not a checkpoint dict, or lacks ``required`` keys.
    """
    path = Path(path)
    try:
        checkpoint = load_plain(path, what="resume checkpoint")  # tensors and plain values only
    except (FileNotFoundError, UnsafeFileError):
        raise  # a file that would run code is refused, never skipped for the previous checkpoint
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, zipfile errors ...
        size = path.stat().st_size if path.exists() else 0
        raise CheckpointError(f"{path}: unreadable checkpoint ({size} bytes; truncated or corrupt): "
                              f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: expected a checkpoint dict, found {type(checkpoint).__name__}")
    missing = [key for key in required if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: not a training checkpoint (missing {missing})")
    return checkpoint


class TrainingCheckpoint:
    """Save and restore everything needed to resume a run so that it ends as an uninterrupted one would.

    The checkpoint is written at the end of every epoch, *after* every other end-of-epoch handler
    (validation, best-model saving, the learning-rate step, early stopping), so it holds a complete
    epoch: the objects' state dicts (network, optimiser, scheduler, early stopping), the trainer's
    epoch and iteration, the random-number generators (torch, numpy, Python; the DataLoader's shuffle
    draws from torch's) and the best-model record. Writes are atomic and the checkpoint before is kept
    as ``last.prev.pt``: a kill at any moment leaves a whole checkpoint, and a ``last.pt`` that cannot be
    read is reported (:class:`CheckpointError`) and the previous one used.

    A run that does not resume from a checkpoint (``resume`` false, or no checkpoint yet) starts from a
    clean state of its own: the earlier run's checkpoints, ``best.json`` and model files are removed
    (and logged), so an old score never becomes the bar and an old model never passes for a new one.
    When training ends, a missing ``model_dir/model.pt`` is an error: a run never reports success
    without a model.

    Args:
        save_path: the checkpoint file (``<output_dir>/checkpoints/last.pt``).
        save_dict: objects with ``state_dict``/``load_state_dict`` (network, optimiser, scheduler,
            ``EarlyStopHandler``, ``WeightAveraging``). An object whose ``optional_in_checkpoint`` is true may be
            missing from a checkpoint (one written before it existed) and then keeps its fresh state.
        resume: load ``save_path`` at start when it exists (a bool or a word such as ``"false"``).
        saver_disabled: do not write or remove files (ranks other than 0 in a distributed run still load).
        best_state_file: the best-model record of :class:`BestModelSaver`, kept in step with the checkpoint.
        model_dir: the best model's folder (cleared for a fresh run, checked at the end).
    """

    def __init__(
        self,
        save_path: str | os.PathLike[str],
        save_dict: dict[str, Any],
        resume: bool | str = True,
        saver_disabled: bool = False,
        best_state_file: str | os.PathLike[str] | None = None,
        model_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.save_path = Path(save_path)
        self.prev_path = previous_checkpoint_path(self.save_path)
        self.save_dict = save_dict
        self.resume = as_flag(resume, "resume")
        self.saver_disabled = as_flag(saver_disabled, "saver_disabled")
        self.best_state_file = Path(best_state_file) if best_state_file is not None else None
        self.model_dir = Path(model_dir) if model_dir is not None else None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.load)
        if not self.saver_disabled:
            # a kill during the previous run's atomic write can leave its temporary file behind
            for path in (self.save_path, self.prev_path):
                for stale in remove_stale_temporaries(path):
                    logger.info("removed %s, left by an interrupted write", stale)
        # registered when the run starts, so that the save and the final check come after every
        # end-of-epoch handler attached by then (validation, LR step, early stopping)
        engine.add_event_handler(Events.STARTED, self._attach_late)

    def _attach_late(self, engine: Engine) -> None:
        if self.saver_disabled:
            return
        if not engine.has_event_handler(self, Events.EPOCH_COMPLETED):
            engine.add_event_handler(Events.EPOCH_COMPLETED, self)
        if self.model_dir is not None and not engine.has_event_handler(self.check_model_written, Events.COMPLETED):
            engine.add_event_handler(Events.COMPLETED, self.check_model_written)

    def _read_latest(self) -> tuple[Path, dict[str, Any]] | None:
        """The newest readable checkpoint: ``last.pt``, else ``last.prev.pt``; None when there is none."""
        errors: list[str] = []
        required = [k for k, v in self.save_dict.items() if not getattr(v, "optional_in_checkpoint", False)]
        for path in (self.save_path, self.prev_path):
            if not path.is_file():
                continue
            try:
                return path, read_checkpoint(path, required=("trainer", *required))
            except CheckpointError as err:
                errors.append(str(err))
                logger.error("CheckpointError: %s", err)
        if errors:
            raise CheckpointError("no usable checkpoint to resume from: " + "; ".join(errors)
                                  + " (remove them, or run with --resume false to start afresh)")
        return None

    def load(self, engine: Engine) -> None:
        found = self._read_latest() if self.resume else None
        if found is None:
            self._start_fresh()
            return
        path, checkpoint = found
        if path == self.prev_path:
            logger.warning("resuming from the previous checkpoint %s", path)
        for name, obj in self.save_dict.items():
            if name not in checkpoint:  # an object marked optional_in_checkpoint, added after this checkpoint
                logger.info("%s holds no %r state: it starts afresh", path, name)
                continue
            _stateful(obj).load_state_dict(checkpoint[name])
        engine.state.epoch = checkpoint["trainer"]["epoch"]
        engine.state.iteration = checkpoint["trainer"]["iteration"]
        if "rng" in checkpoint:
            _restore_rng_state(checkpoint["rng"])
        if not self.saver_disabled:
            self._restore_best_record(checkpoint.get("best"))
        logger.info("resumed from %s at epoch %d", path, engine.state.epoch)
        if engine.state.epoch >= engine.state.max_epochs:
            logger.info("the checkpoint already finished max_epochs=%d: nothing to train", engine.state.max_epochs)
            skip_mlflow_run(engine, f"{path} already finished max_epochs={engine.state.max_epochs}, nothing trained")
            engine.terminate()

    def _earlier_run_files(self) -> list[Path]:
        files = [self.save_path, self.prev_path]
        if self.best_state_file is not None:
            files.append(self.best_state_file)
        if self.model_dir is not None:
            files += [self.model_dir / name for name in MODEL_FILES]
        return [path for path in files if path.is_file()]

    def _start_fresh(self) -> None:
        """Remove what an earlier run left in this output folder, so that this run stands on its own."""
        if self.saver_disabled:
            return
        old = self._earlier_run_files()
        if old:
            why = "resume is false" if not self.resume else "there is no checkpoint to resume from"
            logger.warning("fresh run (%s): removing the earlier run's files in %s: %s", why,
                           os.path.commonpath([str(p.parent) for p in old]),
                           ", ".join(str(p) for p in old))
            for path in old:
                path.unlink(missing_ok=True)
        else:
            logger.info("fresh run: no earlier checkpoint in %s", self.save_path.parent)

    def _restore_best_record(self, record: dict[str, Any] | None) -> None:
        """Make ``best.json`` the record that belongs to the checkpoint (a later epoch may have been killed)."""
        if self.best_state_file is None:
            return
        if record is None:
            self.best_state_file.unlink(missing_ok=True)
            if self.model_dir is not None:
                for name in MODEL_FILES:
                    (self.model_dir / name).unlink(missing_ok=True)
        else:
            atomic_write_json(self.best_state_file, record)

    def _best_record(self) -> dict[str, Any] | None:
        if self.best_state_file is None or not self.best_state_file.is_file():
            return None
        return json.loads(self.best_state_file.read_text(encoding="utf-8"))

    def __call__(self, engine: Engine) -> None:
        state: dict[str, Any] = {}
        for name, obj in self.save_dict.items():
            target = _stateful(obj)
            state[name] = dict(target.state_dict()) if not isinstance(target, torch.nn.Module) else target.state_dict()
        state["trainer"] = {"epoch": engine.state.epoch, "iteration": engine.state.iteration}
        state["rng"] = _capture_rng_state()
        state["best"] = self._best_record()
        with atomic_path(self.save_path) as tmp:
            torch.save(state, tmp)
            if self.save_path.is_file():
                os.replace(self.save_path, self.prev_path)  # keep one good checkpoint back

    def check_model_written(self, engine: Engine) -> None:
        """At the end of training: fail unless the best model was saved."""
        model = self.model_dir / MODEL_FILE if self.model_dir is not None else None
        if model is not None and not model.is_file():
            raise RuntimeError(
                f"training ended without saving a model in {self.model_dir}: validation never ran or never gave "
                f"a usable score (check val_interval, max_epochs and the validation split)"
            )


class EpochSummary:
    """One line per epoch: mean training loss, learning rate, time and the latest validation scores."""

    def __init__(self, evaluator: Engine | None = None, optimizer: torch.optim.Optimizer | None = None,
                 metrics: tuple[str, ...] = ("BLEU_4", "diagnosis_accuracy", "ROUGE_L")) -> None:
        self.evaluator = evaluator
        self.optimizer = optimizer
        self.metrics = metrics
        self._losses: list[float] = []
        self._start = time.perf_counter()
        self._last_val_epoch: int | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _epoch_started(self, engine: Engine) -> None:
        self._losses = []
        self._start = time.perf_counter()

    def _iteration_completed(self, engine: Engine) -> None:
        loss = engine_loss(engine.state.output)
        if loss is not None:
            self._losses.append(loss)

    def __call__(self, engine: Engine) -> None:
        parts = [f"epoch {engine.state.epoch}/{engine.state.max_epochs}"]
        if self._losses:
            parts.append(f"loss {sum(self._losses) / len(self._losses):.4f}")
        if self.optimizer is not None:
            parts.append(f"lr {self.optimizer.param_groups[0]['lr']:.2e}")
        parts.append(f"{time.perf_counter() - self._start:.1f} s")
        if self.evaluator is not None and self.evaluator.state.epoch == engine.state.epoch:
            scores = self.evaluator.state.metrics
            shown = [f"{k} {scores[k]:.4f}" for k in self.metrics if isinstance(scores.get(k), (int, float))]
            if shown:
                parts.append("val " + " ".join(shown))
        logger.info(" | ".join(parts))
