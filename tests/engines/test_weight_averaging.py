"""The moving average of the weights: its arithmetic, the swap around validation, and its resume state."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine, Events

from scripts.engines import TrainingCheckpoint, WeightAveraging, read_checkpoint


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))


DATA = list(torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(1)))  # 4 steps per epoch


def _trainer(net: torch.nn.Module, lr: float = 0.1) -> Engine:
    optimiser = torch.optim.SGD(net.parameters(), lr=lr)

    def step(_engine: Engine, batch: torch.Tensor) -> float:
        optimiser.zero_grad()
        loss = net(batch).pow(2).sum()
        loss.backward()
        optimiser.step()
        return float(loss.detach())

    return Engine(step)


def test_the_average_follows_the_half_life_and_validation_sees_it():
    net = _net()
    seen: list[torch.Tensor] = []
    evaluator = Engine(lambda _e, _b: seen.append(net[0].weight.detach().clone()))
    trainer = _trainer(net)
    averaging = WeightAveraging(net, evaluator, half_life=0.5)
    averaging.attach(trainer)
    expected: torch.Tensor | None = None
    n = 0

    def follow(engine: Engine) -> None:  # the same average computed by hand, after the handler's update
        nonlocal expected, n
        live = net[0].weight.detach()
        if expected is None:
            expected = live.clone()
        else:
            decay = min(0.5 ** (1 / (0.5 * engine.state.epoch_length)), (1 + n) / (10 + n))
            expected = decay * expected + (1 - decay) * live
        n += 1

    trainer.add_event_handler(Events.ITERATION_COMPLETED, follow)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda _e: evaluator.run([0]))
    raw_after: list[torch.Tensor] = []
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda _e: raw_after.append(net[0].weight.detach().clone()))
    trainer.run(DATA, max_epochs=3)

    assert averaging.num_updates == 12
    assert torch.allclose(seen[-1], expected, atol=1e-6)  # the validator ran on the average
    assert not torch.allclose(seen[-1], raw_after[-1])  # ... which is not the raw weights
    assert torch.equal(net[0].weight.detach(), raw_after[-1])  # and training continues from the raw weights
    assert averaging.decay(4) == pytest.approx(13 / 22)  # early on, the cap (1 + n) / (10 + n) holds
    averaging.num_updates = 10_000
    assert averaging.decay(4) == pytest.approx(0.5 ** 0.5)  # later, half the weight is 2 steps old


def test_half_life_zero_changes_nothing():
    net = _net()
    evaluator = Engine(lambda _e, _b: None)
    trainer = _trainer(net)
    averaging = WeightAveraging(net, evaluator, half_life=0)
    averaging.attach(trainer)
    trainer.run(DATA, max_epochs=1)
    evaluator.run([0])
    assert averaging.num_updates == 0 and not averaging.enabled
    with pytest.raises(ValueError, match="half_life"):
        WeightAveraging(net, evaluator, half_life=-1.0)


def test_a_failing_validation_leaves_the_raw_weights_in_place():
    net = _net()
    trainer = _trainer(net)

    def boom(_e: Engine, _b: object) -> None:
        raise RuntimeError("validation broke")

    evaluator = Engine(boom)
    averaging = WeightAveraging(net, evaluator, half_life=1.0)
    averaging.attach(trainer)
    trainer.run(DATA, max_epochs=2)
    raw = net[0].weight.detach().clone()
    with pytest.raises(RuntimeError, match="validation broke"):
        evaluator.run([0])
    assert torch.equal(net[0].weight.detach(), raw)


def test_the_average_is_resumed_from_the_checkpoint_and_an_older_checkpoint_still_loads(tmp_path):
    net = _net()
    evaluator = Engine(lambda _e, _b: None)
    trainer = _trainer(net)
    averaging = WeightAveraging(net, evaluator, half_life=1.0)
    averaging.attach(trainer)
    save = tmp_path / "last.pt"
    TrainingCheckpoint(save, {"model": net, "weight_averaging": averaging}, resume=False).attach(trainer)
    trainer.run(DATA, max_epochs=2)
    state = read_checkpoint(save, required=("trainer", "model", "weight_averaging"))  # weights_only load
    assert state["weight_averaging"]["num_updates"] == 8

    again = WeightAveraging(_net(), evaluator, half_life=1.0)
    again.load_state_dict(state["weight_averaging"])
    for key, tensor in averaging.state_dict()["average"].items():
        assert torch.equal(again.state_dict()["average"][key], tensor)

    # a checkpoint written before weight averaging existed: the run resumes and the average restarts
    del state["weight_averaging"]
    torch.save(state, save)
    fresh = WeightAveraging(_net(), evaluator, half_life=1.0)
    model = _net()
    resumed = _trainer(model)
    resumed.state.max_epochs = 4
    TrainingCheckpoint(save, {"model": model, "weight_averaging": fresh}, resume=True).load(resumed)
    assert resumed.state.epoch == 2 and fresh.num_updates == 0
    assert torch.equal(model[0].weight, net[0].weight)
