"""Inference-only arithmetic: the same functions as the plain kernels, computed in cache-sized runs or another order."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scripts.networks import HistGen, HistGenConfig
from scripts.networks.layers import Linear, ReferenceLayerNorm

SMALL = dict(
    in_dim=24, d_vf=40, d_model=32, d_ff=48, num_heads=4, num_layers=2, topk=8, cmm_size=16, cmm_dim=32,
    region_size=8, prototype_num=6, vocab_size=30, max_seq_length=16,
)


def _set_runs(model: HistGen, tokens: int) -> None:
    model.inference_chunk_tokens = tokens
    model.encoder.inference_chunk_tokens = tokens


def _encode(model: HistGen, feats: torch.Tensor, mask: torch.Tensor | None, tokens: int):
    _set_runs(model, tokens)
    with torch.no_grad():
        return model.encode(feats, mask)


@pytest.mark.parametrize("compat", ["default", "histgen-v1"])
def test_encoding_in_runs_equals_the_whole_bag_at_once(compat, monkeypatch):
    torch.manual_seed(0)
    model = HistGen(HistGenConfig(**SMALL, compat=compat)).eval()
    if compat == "default":  # a padded batch: runs cut across bags' padding too
        feats = torch.randn(2, 61, SMALL["in_dim"])
        mask = torch.arange(61)[None] < torch.tensor([[61], [23]])
    else:
        feats, mask = torch.randn(1, 61, SMALL["in_dim"]), None
    whole = _encode(model, feats, mask, 0)
    calls = {"region": 0, "attend": 0}
    region_attention, attend = model.encoder._region_attention, model.visual_context_attn.attend

    def counted_region(*args):
        calls["region"] += 1
        return region_attention(*args)

    def counted_attend(*args):
        calls["attend"] += 1
        return attend(*args)

    monkeypatch.setattr(model.encoder, "_region_attention", counted_region)
    monkeypatch.setattr(model.visual_context_attn, "attend", counted_attend)
    # 20 tokens per run: 1 region of 8 tokens per run for a batch of 2, 2 regions for one bag; 9 regions in all
    in_runs = _encode(model, feats, mask, 20)
    assert calls["region"] >= 2 * 5 and calls["attend"] >= 3  # both region layers and the visual context ran in runs
    for name in ("region_tokens", "patch_weights", "patch_tokens", "finding_tokens"):
        torch.testing.assert_close(getattr(in_runs, name), getattr(whole, name), rtol=1e-6, atol=1e-6)
    assert torch.equal(in_runs.region_mask, whole.region_mask)
    _set_runs(model, 20)
    assert torch.equal(model.generate(feats, mask, beam_size=3), _generate_whole(model, feats, mask))


def _generate_whole(model: HistGen, feats: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    _set_runs(model, 0)
    return model.generate(feats, mask, beam_size=3)


def test_training_passes_never_run_in_runs(monkeypatch):
    torch.manual_seed(0)
    model = HistGen(HistGenConfig(**SMALL)).train()
    _set_runs(model, 20)
    monkeypatch.setattr(model.encoder, "_region_attention_in_runs", _refuse)
    monkeypatch.setattr(model, "_visual_context_in_runs", _refuse)
    target = torch.tensor([[0, 4, 5, 6, 0]])
    model(torch.randn(1, 61, SMALL["in_dim"]), target).logprobs.sum().backward()  # autograd keeps every run's
    assert model.encoder.global_token.grad is not None                           # activations: no runs


def _refuse(*args):
    raise AssertionError("a pass under autograd ran in runs")


@pytest.mark.parametrize("shape", [(3, 64), (3, 1, 64), (2, 4, 2, 64), (16, 64), (17, 64), (1, 64)])
@pytest.mark.parametrize("bias", [True, False])
def test_few_rows_linear_is_nn_linear(shape, bias, monkeypatch):
    torch.manual_seed(0)
    layer = Linear(64, 96, bias=bias)
    layer.streams_weight = True  # this small layer takes the few-rows path too
    x = torch.randn(*shape, requires_grad=True)
    out = layer(x)
    expected = F.linear(x, layer.weight, layer.bias)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    out.square().sum().backward()
    grad = x.grad.clone()
    x.grad = None
    expected.square().sum().backward()
    torch.testing.assert_close(grad, x.grad, rtol=1e-4, atol=1e-4)
    assert set(layer.state_dict()) == ({"weight", "bias"} if bias else {"weight"})  # nn.Linear's names


def test_few_rows_linear_takes_its_path_only_for_large_weights(monkeypatch):
    calls = []

    def addmm(bias: torch.Tensor, weight: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        calls.append(weight.shape)
        return F.linear(rows.t(), weight, bias[:, 0]).t()

    monkeypatch.setattr(torch, "addmm", addmm)
    x = torch.randn(3, 512)
    Linear(512, 512)(x)
    assert len(calls) == 1  # 262,144 weights: W @ x^T
    Linear(64, 64)(x[:, :64])
    Linear(512, 512)(torch.randn(17, 512))
    assert len(calls) == 1  # a small weight, or more than 16 rows: F.linear


def test_reference_layer_norm_divides_by_the_unbiased_std_plus_eps():
    torch.manual_seed(0)
    norm = ReferenceLayerNorm(64)
    norm.weight.data.normal_()
    norm.bias.data.normal_()
    x = torch.randn(5, 30, 64, dtype=torch.float64) * 3 + 1
    expected = norm.weight.double() * (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-6)
    expected = expected + norm.bias.double()
    out = norm(x.float())
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(norm(torch.zeros(2, 64)), norm.bias.expand(2, 64))  # a constant row: bias, no NaN
    x = torch.full((1, 64), 2.0, requires_grad=True)
    norm(x).sum().backward()
    assert torch.isfinite(x.grad).all()
