"""HistGen network behaviour: shapes, padding-safe batching, region boundaries, training signal."""

from __future__ import annotations

import pytest
import torch

from scripts.decoding import FullPrefixStepper, beam_search, greedy_search
from scripts.networks import HistGen, HistGenConfig

SMALL = dict(
    in_dim=24, d_vf=40, d_model=32, d_ff=48, num_heads=4, num_layers=2, topk=8, cmm_size=16, cmm_dim=32,
    region_size=8, prototype_num=6, vocab_size=30, max_seq_length=16, dropout=0.1,
)


def make_model(compat: str = "default", seed: int = 0) -> HistGen:
    torch.manual_seed(seed)
    return HistGen(HistGenConfig(**SMALL, compat=compat)).eval()


def pad(bags: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    n = max(b.shape[0] for b in bags)
    feats = torch.zeros(len(bags), n, bags[0].shape[1])
    mask = torch.zeros(len(bags), n, dtype=torch.bool)
    for i, b in enumerate(bags):
        feats[i, : len(b)] = b
        mask[i, : len(b)] = True
    return feats, mask


# region_size 8 holds 7 patches: sizes at multiples of 7 and +-1, plus tiny bags
BOUNDARY_SIZES = [1, 2, 6, 7, 8, 13, 14, 15, 20, 21, 22, 49]


@pytest.mark.parametrize("compat", ["default", "histgen-v1"])
@pytest.mark.parametrize("n", BOUNDARY_SIZES)
def test_region_boundaries(compat, n):
    model = make_model(compat)
    feats = torch.randn(1, n, SMALL["in_dim"])
    encoded = model.encode(feats)
    assert encoded.region_tokens.shape == (1, -(-n // 7), SMALL["d_model"])
    ids = model.generate(feats, beam_size=3)
    assert ids.shape == (1, SMALL["max_seq_length"])
    target = torch.tensor([[0, 3, 4, 5, 0, 0]])
    logprobs = model.score(feats, target)
    assert logprobs.shape == (1, 5, SMALL["vocab_size"] + 1)
    assert torch.isfinite(logprobs).all()


def test_padded_batch_equals_each_bag_alone():
    model = make_model()
    bags = [torch.randn(n, SMALL["in_dim"]) for n in (1, 6, 7, 8, 14, 15, 33)]
    feats, mask = pad(bags)
    target = torch.randint(1, 31, (len(bags), 10))
    target[:, 0] = 0
    target[:, 7:] = 0
    batch_logprobs = model.score(feats, target, mask)
    batch_beam = model.generate(feats, mask, beam_size=3)
    batch_greedy = model.generate(feats, mask, beam_size=1)
    for i, bag in enumerate(bags):
        alone = model.score(bag[None], target[i : i + 1])[0]
        assert (batch_logprobs[i] - alone).abs().max() < 1e-5
        assert batch_beam[i].tolist() == model.generate(bag[None], beam_size=3)[0].tolist()
        assert batch_greedy[i].tolist() == model.generate(bag[None], beam_size=1)[0].tolist()


def test_compat_refuses_padded_batches_and_default_requires_left_aligned_masks():
    feats, mask = pad([torch.randn(5, SMALL["in_dim"]), torch.randn(9, SMALL["in_dim"])])
    with pytest.raises(ValueError, match="histgen-v1"):
        make_model("histgen-v1").encode(feats, mask)
    with pytest.raises(ValueError, match="left-aligned"):
        make_model().encode(feats, mask.flip(1))


def test_default_and_compat_differ_where_the_reference_has_bugs():
    torch.manual_seed(1)
    feats = torch.randn(1, 30, SMALL["in_dim"])
    default, compat = make_model("default"), make_model("histgen-v1")
    compat.load_state_dict(default.state_dict())
    a = default.encode(feats).region_tokens
    b = compat.encode(feats).region_tokens
    assert not torch.allclose(a, b, atol=1e-4)


def test_cached_and_full_prefix_decoding_agree():
    model = make_model()
    feats, mask = pad([torch.randn(n, SMALL["in_dim"]) for n in (9, 23)])
    encoded = model.encode(feats, mask)
    for search, kwargs in ((beam_search, {"beam_size": 3}), (greedy_search, {})):
        cached = search(model, encoded, max_len=12, **kwargs)
        naive = search(model, encoded, max_len=12, stepper=FullPrefixStepper(model, encoded), **kwargs)
        assert cached.tolist() == naive.tolist()


def test_beam_early_stop_returns_the_full_search_result():
    model = make_model(seed=3)
    feats, mask = pad([torch.randn(n, SMALL["in_dim"]) for n in (4, 12, 30)])
    encoded = model.encode(feats, mask)
    fast = beam_search(model, encoded, 4, 16, early_stop=True)
    full = beam_search(model, encoded, 4, 16, early_stop=False)
    assert fast.tolist() == full.tolist()


def test_every_parameter_is_trained_and_no_position_buffers_are_saved():
    model = make_model().train()
    feats, mask = pad([torch.randn(n, SMALL["in_dim"]) for n in (10, 17)])
    target = torch.tensor([[0, 4, 5, 6, 0], [0, 7, 8, 0, 0]])
    logprobs = model(feats, target, mask)
    loss = -logprobs.gather(2, target[:, 1:, None]).mean()
    loss.backward()
    untrained = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert untrained == []
    assert all("table" not in k for k in model.state_dict())


def test_bad_inputs_are_reported():
    model = make_model()
    with pytest.raises(ValueError, match="dimension 10.*in_dim=24"):
        model.generate(torch.randn(1, 5, 10))
    with pytest.raises(ValueError, match="empty bag"):
        model.generate(torch.randn(1, 0, SMALL["in_dim"]))
    with pytest.raises(ValueError, match="beam_size 40 exceeds"):
        model.generate(torch.randn(1, 5, SMALL["in_dim"]), beam_size=40)
    with pytest.raises(ValueError, match="divisible"):
        HistGenConfig(d_model=30, num_heads=4, cmm_dim=30)


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    torch.manual_seed(0)
    feats, mask = pad([torch.randn(n, SMALL["in_dim"]) for n in (12, 30)])
    target = torch.tensor([[0, 4, 5, 6, 0], [0, 7, 8, 0, 0]])
    grads = []
    for flag in (False, True):
        torch.manual_seed(5)
        model = HistGen(HistGenConfig(**SMALL, gradient_checkpointing=flag)).train()
        torch.manual_seed(7)  # same dropout masks in both runs
        loss = -model(feats, target, mask).gather(2, target[:, 1:, None]).mean()
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
