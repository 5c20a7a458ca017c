"""The training-speed devices of the slide encoder change the arithmetic, not the model.

Folded input projections, bf16 patch-level products (``patch_precision``) and chunked automatic gradient
checkpointing (``gradient_checkpointing="auto"``) must give the loss and the gradients of the plain float32 pass.
"""

from __future__ import annotations

import pytest
import torch

from scripts.networks import HistGen, HistGenConfig
from scripts.networks.config import CHECKPOINT_MIN_PATCHES
from scripts.networks.slide_encoder import BF16_MIN_PATCHES

TINY = dict(in_dim=24, d_vf=40, d_model=32, d_ff=48, num_heads=4, num_layers=1, topk=8, cmm_size=16, cmm_dim=32,
            region_size=8, prototype_num=6, vocab_size=30, max_seq_length=16, dropout=0.1)
TARGET = torch.tensor([[0, 4, 5, 6, 7, 0]])


def loss_and_grads(config: HistGenConfig, feats: torch.Tensor) -> tuple[float, dict[str, torch.Tensor]]:
    torch.manual_seed(5)
    model = HistGen(config).train()
    torch.manual_seed(7)  # the same dropout masks in every run
    loss = -model(feats, TARGET).logprobs.gather(2, TARGET[:, 1:, None]).mean()
    loss.backward()
    return loss.item(), {n: p.grad for n, p in model.named_parameters()}


def test_folded_projection_gives_the_same_patches_and_gradients():
    torch.manual_seed(0)
    model = HistGen(HistGenConfig(**TINY)).eval()
    feats = torch.randn(1, 500, TINY["in_dim"])  # 500 patches: above the size where the fold pays
    folded = model.project_patches(feats)
    plain = model.visual_embed(model.projection(feats))
    assert torch.allclose(folded, plain, atol=1e-5)
    folded.square().sum().backward()
    fold_grads = [model.projection.weight.grad.clone(), model.visual_embed[0].weight.grad.clone()]
    model.zero_grad()
    plain.square().sum().backward()
    for folded_grad, plain_grad in zip(fold_grads, [model.projection.weight.grad, model.visual_embed[0].weight.grad]):
        assert (folded_grad - plain_grad).norm() <= 1e-5 * plain_grad.norm()  # float rounding only


def test_bf16_patch_products_keep_the_loss_of_float32():
    feats = torch.randn(1, 300, TINY["in_dim"])
    loss32, grads32 = loss_and_grads(HistGenConfig(**TINY, patch_precision="fp32"), feats)
    loss16, grads16 = loss_and_grads(HistGenConfig(**TINY, patch_precision="bf16"), feats)
    assert loss16 == pytest.approx(loss32, rel=1e-2)
    for name in grads32:
        assert grads16[name].dtype == torch.float32 and torch.isfinite(grads16[name]).all(), name
    flat32 = torch.cat([g.flatten() for g in grads32.values()])
    flat16 = torch.cat([grads16[n].flatten() for n in grads32])
    assert torch.nn.functional.cosine_similarity(flat32, flat16, dim=0) > 0.99


def test_auto_precision_keeps_small_bags_and_the_reference_mode_in_float32():
    model = HistGen(HistGenConfig(**TINY)).train()
    assert not model.trains_in_bf16(torch.randn(1, BF16_MIN_PATCHES - 1, TINY["in_dim"]))
    assert not model.trains_in_bf16(torch.randn(2, BF16_MIN_PATCHES, TINY["in_dim"]).double())
    assert HistGenConfig(**TINY, compat="histgen-v1").training_precision == "fp32"
    assert HistGenConfig(**TINY).training_precision == "auto"
    with pytest.raises(ValueError, match="patch_precision must be one of"):
        HistGenConfig(**TINY, patch_precision="fp16")


def test_checkpointing_in_chunks_gives_the_same_loss_and_gradients():
    feats = torch.randn(1, 300, TINY["in_dim"])
    # chunks draw their attention dropout masks chunk by chunk (another draw of the same distribution): compare
    # without transformer dropout, so that both passes compute the same function
    common = dict(**{**TINY, "dropout": 0.0}, patch_precision="fp32")
    loss_plain, grads_plain = loss_and_grads(HistGenConfig(**common, gradient_checkpointing=False), feats)
    torch.manual_seed(5)
    model = HistGen(HistGenConfig(**common, gradient_checkpointing=True)).train()
    model.encoder.checkpoint_chunk_tokens = 64  # 43 regions of 8 tokens: 6 chunks
    torch.manual_seed(7)
    loss = -model(feats, TARGET).logprobs.gather(2, TARGET[:, 1:, None]).mean()
    loss.backward()
    assert float(loss) == pytest.approx(loss_plain, abs=1e-6)
    for name, param in model.named_parameters():
        assert torch.allclose(param.grad, grads_plain[name], atol=1e-6), name


def test_auto_checkpointing_starts_at_the_documented_bag_size():
    assert HistGenConfig(**TINY).checkpoint_min_patches == CHECKPOINT_MIN_PATCHES
    assert HistGenConfig(**TINY, gradient_checkpointing="false").checkpoint_min_patches > 10**12
    assert HistGenConfig(**TINY, gradient_checkpointing=True).checkpoint_min_patches == 0
    model = HistGen(HistGenConfig(**TINY))
    assert model.checkpoint_min_patches == model.encoder.checkpoint_min_patches == CHECKPOINT_MIN_PATCHES


@pytest.mark.parametrize("slide_norm", ["none", "both"])
def test_patch_embedding_checkpointed_in_runs_gives_the_same_loss_and_gradients(slide_norm):
    # the projection and the visual-context attention of a checkpointed bag run a few patches at a time; the
    # prototypes' memory read and the per-slide moments (slide_norm) still see the whole bag
    feats = torch.randn(1, 300, TINY["in_dim"]) * 2 + 1
    common = dict(**{**TINY, "dropout": 0.0}, drop_prob_lm=0.0, patch_precision="fp32", slide_norm=slide_norm)
    loss_plain, grads_plain = loss_and_grads(HistGenConfig(**common, gradient_checkpointing=False), feats)
    torch.manual_seed(5)
    model = HistGen(HistGenConfig(**common, gradient_checkpointing=True)).train()
    model.checkpoint_chunk_tokens = 64  # 300 patches: 5 runs, the last one short
    calls = []
    model.visual_context_attn.register_forward_hook(lambda module, args, out: calls.append(out.shape[1]))
    torch.manual_seed(7)
    loss = -model(feats, TARGET).logprobs.gather(2, TARGET[:, 1:, None]).mean()
    loss.backward()
    assert calls[:5] == [64, 64, 64, 64, 44]  # forward runs (the backward recomputes them)
    assert float(loss) == pytest.approx(loss_plain, abs=1e-6)
    for name, param in model.named_parameters():
        assert torch.allclose(param.grad, grads_plain[name], atol=1e-6), name


def test_large_bags_trim_the_heap_between_chunks_without_changing_the_step(monkeypatch):
    from scripts.networks import heap_trim

    assert heap_trim.release_free_heap() is True  # glibc (Linux): malloc_trim is there
    feats = torch.randn(1, 300, TINY["in_dim"])
    common = dict(**{**TINY, "dropout": 0.0}, drop_prob_lm=0.0, patch_precision="fp32")
    loss_plain, grads_plain = loss_and_grads(HistGenConfig(**common, gradient_checkpointing=False), feats)
    calls = []
    monkeypatch.setattr(heap_trim, "release_free_heap", lambda: calls.append(1) or True)
    monkeypatch.setattr(heap_trim, "HEAP_TRIM_MIN_PATCHES", 0)  # trim at this small size
    torch.manual_seed(5)
    model = HistGen(HistGenConfig(**common, gradient_checkpointing=True)).train()
    model.checkpoint_chunk_tokens = model.encoder.checkpoint_chunk_tokens = 64
    torch.manual_seed(7)
    loss = -model(feats, TARGET).logprobs.gather(2, TARGET[:, 1:, None]).mean()
    forward_calls = len(calls)
    # forward: 5 projection runs + 5 visual-context runs + 6 region chunks x 2 (attention, tail)
    assert forward_calls == 5 + 5 + 6 * 2
    loss.backward()
    # backward: one trim as each chunk input's gradient is ready (5 visual-context runs + 12 region chunks; the
    # projection's input, the bag, needs none). The recomputation stops at the chunk's last saved tensor (torch's
    # non-reentrant checkpoint), before the trim at the end of the chunk function.
    assert len(calls) - forward_calls == 5 + 12
    assert float(loss) == pytest.approx(loss_plain, abs=1e-6)
    for name, param in model.named_parameters():
        assert torch.allclose(param.grad, grads_plain[name], atol=1e-6), name
