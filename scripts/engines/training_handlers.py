"""Ignite handlers of the report training workflow (attached from ``configs/train.json``)."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.engines.utils import IterationEvents

from scripts.atomic_io import atomic_torch_save, atomic_write_json, remove_stale_temporaries
from scripts.metrics import FindingsVocabulary, selection_score
from scripts.safe_load import load_plain
from scripts.text import Vocabulary

from .model_files import CONFIG_FILE, FINDINGS_VOCAB_FILE, MODEL_FILE, VOCAB_FILE, save_report_model
from .progress import engine_loss

logger = logging.getLogger("histgen.train")


def metric_score(name: str) -> Callable[[Engine], float]:
    """A score function reading ``engine.state.metrics[name]`` (for early stopping).

    ``name`` is a metric key or a combination of :data:`scripts.metrics.COMBINED_SCORES` (``clinical_bleu``);
    NaN reads as -inf (see :func:`scripts.metrics.selection_score`).
    """

    def score(engine: Engine) -> float:
        return selection_score(engine.state.metrics, name)

    return score


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
    ) -> None:
        self.network = network
        self.vocab = vocab
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
        score = selection_score(engine.state.metrics, self.metric)
        best = self.best()
        engine.state.best_metric = best["score"]
        if not score > best["score"]:
            if score == -math.inf and best["epoch"] is None:
                logger.warning("val_metric %s is NaN at epoch %d (no validation reference states it?): "
                               "no model saved yet", self.metric, engine.state.epoch)
            return
        path = save_report_model(self.model_dir, self.network, self.vocab, self.extraction,
                                 self.findings_vocabulary)
        record = {"metric": self.metric, "score": score, "epoch": engine.state.epoch, "model": str(path),
                  "val_metrics": {k: v for k, v in engine.state.metrics.items() if isinstance(v, (int, float))}}
        atomic_write_json(self.state_file, record)
        engine.state.best_metric = score
        engine.state.best_metric_epoch = engine.state.epoch
        logger.info("new best %s %.4f at epoch %d: saved %s", self.metric, score, engine.state.epoch, path)


class TrainingCheckpoint:
    """Save and restore everything needed to resume: objects' state dicts plus the trainer's counters.

    Every epoch the file is replaced atomically, so a kill at any moment leaves the previous epoch's
    checkpoint. At start, if ``resume`` and the file exists, the objects and the trainer's epoch and
    iteration are restored (``max_epochs`` stays as configured, so a run can be extended).

    Args:
        save_path: the checkpoint file (``<output_dir>/checkpoints/last.pt``).
        save_dict: objects with ``state_dict``/``load_state_dict`` (network, optimiser, scheduler).
        resume: load ``save_path`` at start when it exists.
        saver_disabled: do not write (ranks other than 0 in a distributed run still load).
    """

    def __init__(
        self,
        save_path: str | os.PathLike[str],
        save_dict: dict[str, Any],
        resume: bool = True,
        saver_disabled: bool = False,
    ) -> None:
        self.save_path = Path(save_path)
        self.save_dict = save_dict
        self.resume = resume
        self.saver_disabled = saver_disabled

    def attach(self, engine: Engine) -> None:
        if self.resume:
            engine.add_event_handler(Events.STARTED, self.load)
        if not self.saver_disabled:
            # a kill during the previous run's atomic write can leave its temporary file behind
            for stale in remove_stale_temporaries(self.save_path):
                logger.info("removed %s, left by an interrupted write", stale)
            engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def load(self, engine: Engine) -> None:
        if not self.save_path.is_file():
            return
        checkpoint = load_plain(self.save_path, what="resume checkpoint")  # tensors and plain values only
        for name, obj in self.save_dict.items():
            target = obj.module if hasattr(obj, "module") and name == "model" else obj
            target.load_state_dict(checkpoint[name])
        engine.state.epoch = checkpoint["trainer"]["epoch"]
        engine.state.iteration = checkpoint["trainer"]["iteration"]
        logger.info("resumed from %s at epoch %d", self.save_path, engine.state.epoch)
        if engine.state.epoch >= engine.state.max_epochs:
            logger.info("the checkpoint already finished max_epochs=%d: nothing to train", engine.state.max_epochs)
            engine.terminate()

    def __call__(self, engine: Engine) -> None:
        state = {}
        for name, obj in self.save_dict.items():
            target = obj.module if hasattr(obj, "module") and name == "model" else obj
            state[name] = target.state_dict()
        state["trainer"] = {"epoch": engine.state.epoch, "iteration": engine.state.iteration}
        atomic_torch_save(self.save_path, state)


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
