"""Model selection skips the first epochs: the best-model saver and early stopping start at `selection_start_epoch`."""

from __future__ import annotations

import json

import pytest
from ignite.engine import Engine, Events

from scripts.engines import BestModelSaver, SelectionEarlyStop, metric_score, selection_start_epoch
from scripts.networks import HistGen, HistGenConfig
from scripts.text import Vocabulary

TINY = dict(in_dim=16, d_vf=16, d_model=32, d_ff=32, num_heads=4, num_layers=1, topk=4, cmm_size=8, cmm_dim=32,
            region_size=4, prototype_num=4, vocab_size=12, max_seq_length=8)


@pytest.mark.parametrize(("max_epochs", "fraction", "first"), [
    (40, 0.25, 11), (2, 0.25, 1), (4, 0.25, 2), (8, 0.25, 3), (40, 0.0, 1), (1, 0.9, 1), (10, 0.5, 6),
])
def test_selection_start_epoch(max_epochs, fraction, first):
    assert selection_start_epoch(max_epochs, fraction) == first


@pytest.mark.parametrize(("max_epochs", "fraction"), [(40, 1.0), (40, -0.1), (0, 0.25), (40, float("nan"))])
def test_selection_start_epoch_refuses_bad_settings(max_epochs, fraction):
    with pytest.raises(ValueError, match="max_epochs|selection_warmup"):
        selection_start_epoch(max_epochs, fraction)


def _validator(scores: list[float]) -> Engine:
    """An engine whose epoch ``e`` ends with ``metrics["score"] = scores[e - 1]`` (as a validation run does)."""
    engine = Engine(lambda e, b: None)

    @engine.on(Events.EPOCH_COMPLETED)
    def _set(e: Engine) -> None:
        e.state.metrics = {"score": scores[e.state.epoch - 1]}

    return engine


def _saver(tmp_path, first_epoch: int) -> BestModelSaver:
    network = HistGen(HistGenConfig(**TINY))
    vocab = Vocabulary(["<unk>", *(f"w{i}" for i in range(10))])
    return BestModelSaver(network, vocab, tmp_path / "models", tmp_path / "best.json", metric="score",
                          first_epoch=first_epoch)


def test_saver_never_keeps_a_warm_up_epoch(tmp_path, caplog):
    engine = _validator([0.9, 0.8, 0.5, 0.6, 0.55])
    saved_at: list[int] = []
    saver = _saver(tmp_path, first_epoch=3)
    saver.attach(engine)
    engine.add_event_handler(Events.EPOCH_COMPLETED,
                             lambda e: saved_at.append(e.state.epoch) if (tmp_path / "models" / "model.pt").is_file()
                             else None)
    with caplog.at_level("INFO", logger="histgen.train"):
        engine.run([0], max_epochs=5)
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["epoch"] == 4 and best["score"] == pytest.approx(0.6)
    assert saved_at[0] == 3, "no model may exist before the first selectable epoch"
    assert "model selection on score starts at epoch 3" in caplog.text


def test_saver_without_warm_up_keeps_the_first_peak(tmp_path):
    engine = _validator([0.9, 0.8, 0.5, 0.6, 0.55])
    _saver(tmp_path, first_epoch=1).attach(engine)
    engine.run([0], max_epochs=5)
    assert json.loads((tmp_path / "best.json").read_text())["epoch"] == 1


def _stopped_at(scores: list[float], first_epoch: int, patience: int = 2) -> int:
    """The trainer epoch at which early stopping ends a run whose validation after epoch ``e`` scores
    ``scores[e - 1]`` (the validator's epoch is the trainer's, as MONAI's ValidationHandler sets it)."""
    validator = Engine(lambda e, b: None)
    trainer = Engine(lambda e, b: None)
    stop = SelectionEarlyStop(patience=patience, score_function=metric_score("score"), first_epoch=first_epoch)
    stop.set_trainer(trainer)
    stop.attach(validator)

    def validate(e: Engine) -> None:
        validator.state.epoch = e.state.epoch
        validator.state.metrics = {"score": scores[e.state.epoch - 1]}
        validator.fire_event(Events.EPOCH_COMPLETED)

    trainer.add_event_handler(Events.EPOCH_COMPLETED, validate)
    trainer.run([0], max_epochs=len(scores))
    return trainer.state.epoch


def test_early_stop_counts_patience_from_the_first_selectable_epoch():
    falling = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
    assert _stopped_at(falling, first_epoch=1) == 3  # best at 1, two epochs without improvement
    assert _stopped_at(falling, first_epoch=4) == 6  # best at 4 (the first that counts), then 5 and 6
    rising = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    assert _stopped_at(rising, first_epoch=4) == len(rising)
