"""Survival time bins, the discrete-time likelihood, class weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scripts.transfer import (
    ClassTargets,
    ClassWeightedCrossEntropy,
    DiscreteTimeSurvivalLoss,
    SlideRecord,
    SurvivalTargets,
    assign_time_bins,
    discrete_time_nll,
    quantile_time_bins,
    survival_outputs,
)


def record(i, time=None, event=None, label=None):
    return SlideRecord(index=i, slide_id=f"S{i}", case_id=f"C{i}", line=i + 2, path=None, num_patches=1,  # type: ignore[arg-type]
                       label=label, time=time, event=event)


def test_bins_are_quantiles_of_uncensored_times_with_open_ends():
    times = [3.0, 9.0, 1.0, 7.0, 5.0, 11.0, 13.0, 15.0]
    edges = quantile_time_bins(times, 4)
    assert edges[0] == 0.0 and edges[-1] == math.inf
    assert edges[1:-1] == pytest.approx(np.quantile(times, [0.25, 0.5, 0.75]).tolist())
    # left-closed bins; anything past the largest training time falls in the last bin
    assert assign_time_bins([0.0, edges[1] - 1e-9, edges[1], edges[3], 1000.0], edges).tolist() == [0, 0, 1, 3, 3]
    assert quantile_time_bins([4.0], 1) == [0.0, math.inf]


def test_bins_need_enough_distinct_uncensored_times():
    with pytest.raises(ValueError, match="too few for n_bins=4"):
        quantile_time_bins([1.0, 2.0, 3.0], 4)
    with pytest.raises(ValueError, match="tied quantiles"):
        quantile_time_bins([5.0] * 6 + [7.0], 4)
    with pytest.raises(ValueError, match="no uncensored time"):
        quantile_time_bins([], 2)


def test_survival_targets_fit_on_training_events_only():
    train = [record(0, 2.0, 1), record(1, 4.0, 1), record(2, 100.0, 0), record(3, 6.0, 1), record(4, 8.0, 1)]
    targets = SurvivalTargets(n_bins=2)
    targets.fit(train)
    assert targets.bin_edges == [0.0, 5.0, math.inf]  # the censored 100.0 does not move the median
    assert targets.encode(record(9, 5.0, 0)) == {"bin": 1, "event": 0, "time": 5.0}


def reference_nll(logits, bins, events, alpha):
    """The likelihood written out as probabilities, one slide at a time (float64)."""
    losses = []
    for row, y, e in zip(logits.double(), bins.tolist(), events.tolist()):
        h = torch.sigmoid(row)
        survival = torch.cumprod(1 - h, 0)
        alive_before = survival[y - 1] if y > 0 else torch.tensor(1.0, dtype=torch.float64)
        uncensored = -torch.log(alive_before * h[y]) if e else torch.tensor(0.0, dtype=torch.float64)
        censored = torch.tensor(0.0, dtype=torch.float64) if e else -torch.log(survival[y])
        losses.append((1 - alpha) * (censored + uncensored) + alpha * uncensored)
    return torch.stack(losses)


@pytest.mark.parametrize("alpha", [0.0, 0.15, 1.0])
def test_discrete_time_nll_is_the_likelihood(alpha):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(12, 5, generator=generator) * 2
    bins = torch.randint(0, 5, (12,), generator=generator)
    events = torch.tensor([1, 0] * 6)
    ours = discrete_time_nll(logits, bins, events, alpha=alpha, reduction="none")
    assert ours.double() == pytest.approx(reference_nll(logits, bins, events, alpha), rel=1e-5, abs=1e-6)
    assert discrete_time_nll(logits, bins, events, alpha) == pytest.approx(float(ours.mean()), rel=1e-6)
    loss_module = DiscreteTimeSurvivalLoss(alpha)
    assert float(loss_module(logits, {"bin": bins, "event": events})) == pytest.approx(float(ours.mean()), rel=1e-6)


def test_nll_is_finite_for_extreme_logits_and_has_gradients():
    logits = torch.tensor([[40.0, -40.0, 40.0], [-40.0, -40.0, -40.0]], requires_grad=True)
    loss = discrete_time_nll(logits, torch.tensor([2, 0]), torch.tensor([1, 0]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_risk_is_higher_for_earlier_predicted_events():
    early = torch.tensor([[3.0, 0.0, 0.0, 0.0]])  # high hazard in the first bin
    late = torch.tensor([[-3.0, -3.0, -3.0, 3.0]])
    hazards, survival, risk = survival_outputs(torch.cat([early, late]))
    assert hazards.shape == survival.shape == (2, 4) and risk.shape == (2,)
    assert bool((survival[:, 1:] <= survival[:, :-1]).all())
    assert risk[0] > risk[1]


def test_bad_bins_are_rejected():
    with pytest.raises(ValueError, match="bins must lie in"):
        discrete_time_nll(torch.zeros(2, 3), torch.tensor([0, 3]), torch.tensor([1, 1]))


def test_class_weights_are_inverse_frequencies_of_the_training_part():
    targets = ClassTargets(num_classes=2)
    targets.fit([record(i, label=0) for i in range(2)] + [record(i, label=1) for i in range(2, 8)])
    assert targets.class_weights.tolist() == pytest.approx([8 / (2 * 2), 8 / (2 * 6)])
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    labels = torch.tensor([0, 1, 1])
    expected = torch.nn.functional.cross_entropy(logits, labels, weight=targets.class_weights)
    assert float(ClassWeightedCrossEntropy(targets)(logits, {"label": labels})) == pytest.approx(float(expected))
    unweighted = torch.nn.functional.cross_entropy(logits, labels)
    assert float(ClassWeightedCrossEntropy(None)(logits, labels)) == pytest.approx(float(unweighted))
    flat = ClassTargets(num_classes=2, weighted=False)
    flat.fit([record(0, label=0), record(1, label=1), record(2, label=1)])
    assert flat.class_weights.tolist() == [1.0, 1.0]
