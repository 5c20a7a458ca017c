"""The fast training kernels of ``compat="default"`` compute the same network as the reference kernels.

Dropout draws its masks differently (so only their statistics can match), the fused layer norm matches the
reference formula to float rounding, and gradient checkpointing recomputes exactly the masks of the first pass.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scripts.networks import HistGen, HistGenConfig
from scripts.networks.fast_dropout import MIN_ELEMENTS, FastDropout, fast_dropout
from scripts.networks.layers import MultiHeadAttention, ReferenceLayerNorm

SMALL = dict(in_dim=24, d_vf=40, d_model=32, d_ff=48, num_heads=4, num_layers=1, topk=8, cmm_size=16, cmm_dim=32,
             region_size=8, prototype_num=6, vocab_size=30, max_seq_length=16, dropout=0.1)
TARGET = torch.tensor([[0, 4, 5, 6, 7, 0]])


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_fast_dropout_keeps_one_minus_p_and_the_mean(p):
    torch.manual_seed(0)
    y = fast_dropout(torch.ones(1000, 1000), p, True)
    assert (y > 0).float().mean().item() == pytest.approx(1 - p, abs=3e-3)
    assert y.mean().item() == pytest.approx(1.0, abs=5e-3)
    dropped, kept = torch.unique(y).tolist()
    assert dropped == 0.0 and kept == pytest.approx(1 / (1 - p), rel=1e-4)


def test_fast_dropout_gradient_is_the_mask_and_the_seed_fixes_the_mask():
    x = torch.randn(400, 400, requires_grad=True)
    torch.manual_seed(3)
    y = fast_dropout(x, 0.2, True)
    y.sum().backward()
    kept = y.detach() != 0
    assert torch.equal(x.grad != 0, kept)
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / 0.8))
    torch.manual_seed(3)
    assert torch.equal(fast_dropout(x.detach(), 0.2, True), y.detach())


def test_fast_dropout_module_is_identity_in_eval_and_plain_dropout_on_small_tensors():
    module = FastDropout(0.4)
    big = torch.randn(MIN_ELEMENTS + 1)
    assert torch.equal(module.eval()(big), big)
    module.train()
    small = torch.randn(100)
    torch.manual_seed(1)
    ours = module(small)
    torch.manual_seed(1)
    assert torch.equal(ours, F.dropout(small, 0.4, True))


def test_fused_layer_norm_matches_the_reference_formula_forwards_and_backwards():
    torch.manual_seed(0)
    norm = ReferenceLayerNorm(64)
    norm.weight.data.normal_()
    norm.bias.data.normal_()
    x = (torch.randn(5, 30, 64) * 3 + 1).requires_grad_()
    plain = norm(x)
    (plain * torch.arange(64.0)).sum().backward()
    grads = [x.grad.clone(), norm.weight.grad.clone(), norm.bias.grad.clone()]
    x.grad = None
    norm.zero_grad()
    norm.fused = True
    fused = norm(x)
    (fused * torch.arange(64.0)).sum().backward()
    assert torch.allclose(fused, plain, rtol=1e-5, atol=1e-5)
    for before, after in zip(grads, [x.grad, norm.weight.grad, norm.bias.grad]):
        assert (after - before).norm() <= 1e-4 * before.norm()
    assert torch.equal(norm(torch.zeros(2, 64)), norm.bias.expand(2, 64))  # a constant row: bias, no NaN


def test_attention_with_fast_dropout_is_the_fused_attention_when_nothing_is_dropped():
    torch.manual_seed(0)
    attention = MultiHeadAttention(4, 32, dropout=1e-9)  # rounds to "keep every probability"
    attention.fast_dropout = True
    q, kv = torch.randn(3, 70, 32), torch.randn(3, 70, 32)
    mask = torch.ones(3, 1, 1, 70, dtype=torch.bool)
    mask[1, ..., 40:] = False
    mask[2] = False  # a bag with no key at all: zeros, never NaN
    explicit = attention.train()(q, kv, kv, mask)
    fused = attention.eval()(q, kv, kv, mask)
    assert torch.isfinite(explicit).all()
    assert torch.allclose(explicit[:2], fused[:2], atol=1e-5)
    assert torch.allclose(explicit[2], attention.out_proj.bias.expand(70, 32), atol=1e-6)


def test_default_model_uses_the_fast_kernels_and_the_reference_mode_does_not():
    default = HistGen(HistGenConfig(**SMALL))
    reference = HistGen(HistGenConfig(**SMALL, compat="histgen-v1"))
    assert not any(type(m) is torch.nn.Dropout for m in default.modules())
    assert all(m.fused for m in default.modules() if isinstance(m, ReferenceLayerNorm))
    assert all(m.fast_dropout for m in default.modules() if isinstance(m, MultiHeadAttention))
    assert not any(isinstance(m, FastDropout) for m in reference.modules())
    assert not any(m.fused for m in reference.modules() if isinstance(m, ReferenceLayerNorm))
    assert default.state_dict().keys() == HistGen(HistGenConfig(**SMALL)).state_dict().keys()


def _loss_and_grads(checkpointing: bool, feats: torch.Tensor) -> tuple[float, list[torch.Tensor]]:
    torch.manual_seed(5)
    model = HistGen(HistGenConfig(**SMALL, gradient_checkpointing=checkpointing, patch_precision="fp32")).train()
    torch.manual_seed(7)
    loss = -model(feats, TARGET).logprobs.gather(2, TARGET[:, 1:, None]).mean()
    loss.backward()
    return loss.item(), [p.grad for p in model.parameters() if p.grad is not None]


def test_checkpointing_recomputes_the_same_fast_dropout_masks():
    feats = torch.randn(1, 3000, SMALL["in_dim"])  # [1, 3000, 32] activations: the fast path's size
    assert feats.shape[1] * SMALL["d_model"] >= MIN_ELEMENTS
    loss_plain, grads_plain = _loss_and_grads(False, feats)
    loss_ckpt, grads_ckpt = _loss_and_grads(True, feats)
    assert loss_ckpt == pytest.approx(loss_plain, rel=1e-5)
    for plain, ckpt in zip(grads_plain, grads_ckpt):
        assert torch.allclose(plain, ckpt, rtol=1e-3, atol=1e-5)
