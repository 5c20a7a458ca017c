"""HistGen network behaviour: shapes, padding-safe batching, region boundaries, training signal."""

from __future__ import annotations

import pytest
import torch

from benchmarks.full_prefix_decoding import FullPrefixHistGen
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
    baseline = FullPrefixHistGen.from_model(model)
    cached = model.beam_search(encoded, beam_size=3, max_len=12)
    naive = baseline.beam_search(encoded, beam_size=3, max_len=12)
    assert cached.tolist() == naive.tolist()
    assert model.greedy_search(encoded, max_len=12).tolist() == baseline.greedy_search(encoded, max_len=12).tolist()


def test_beam_early_stop_returns_the_full_search_result():
    model = make_model(seed=3)
    feats, mask = pad([torch.randn(n, SMALL["in_dim"]) for n in (4, 12, 30)])
    encoded = model.encode(feats, mask)
    fast = model.beam_search(encoded, 4, 16, early_stop=True)
    full = model.beam_search(encoded, 4, 16, early_stop=False)
    assert fast.tolist() == full.tolist()


def test_every_parameter_is_trained_and_no_position_buffers_are_saved():
    model = make_model().train()
    feats, mask = pad([torch.randn(n, SMALL["in_dim"]) for n in (10, 17)])
    target = torch.tensor([[0, 4, 5, 6, 0], [0, 7, 8, 0, 0]])
    logprobs = model(feats, target, mask).logprobs
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
        loss = -model(feats, target, mask).logprobs.gather(2, target[:, 1:, None]).mean()
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def _layer_keys(prefix: str, attentions: tuple[str, ...], norms: int) -> set[str]:
    keys = {f"{prefix}.{a}.{p}.{w}" for a in attentions for p in ("q_proj", "k_proj", "v_proj", "out_proj")
            for w in ("weight", "bias")}
    keys |= {f"{prefix}.feed_forward.{f}.{w}" for f in ("w_1", "w_2") for w in ("weight", "bias")}
    return keys | {f"{prefix}.norm{i}.{w}" for i in range(1, norms + 1) for w in ("weight", "bias")}


def test_state_dict_keys_are_those_of_the_model_files_written_before():
    """model.pt files saved before the model was split into SlideEncoder + ReportDecoder load as they are."""
    model = HistGen(HistGenConfig(**{**SMALL, "num_layers": 1}, input_norm=True))
    expected = {"memory_matrix", "input_mean", "input_std", "projection.weight", "projection.bias",
                "visual_embed.0.weight", "visual_embed.0.bias", "encoder.global_token", "encoder.norm.weight",
                "encoder.norm.bias", "encoder.pool_proj.weight", "encoder.pool_proj.bias", "encoder.pool_score.weight",
                "encoder.pool_dense.weight", "encoder.pool_dense.bias", "decoder.embed.weight", "decoder.norm.weight",
                "decoder.norm.bias", "decoder.logit.weight", "decoder.logit.bias"}
    for name in ("context", "visual_context_attn"):
        expected |= {f"{name}.{p}.{w}" for p in ("q_proj", "k_proj", "v_proj", "out_proj") for w in ("weight", "bias")}
    for prefix in ("encoder.region_layers.0", "encoder.region_layers.1", "encoder.slide_layer"):
        expected |= _layer_keys(prefix, ("self_attn",), 2)
    expected |= _layer_keys("decoder.layers.0", ("self_attn", "cross_attn"), 3)
    assert set(model.state_dict()) == expected
    plain = HistGen(HistGenConfig(**SMALL))
    assert "input_mean" not in plain.state_dict() and "input_std" not in plain.state_dict()


def test_compat_is_read_once_into_named_switches():
    from scripts.networks import NetworkBehaviour

    reference = HistGenConfig(**SMALL, compat="histgen-v1").behaviour
    assert reference == NetworkBehaviour(
        slide_attention_reads_first_patch=True, pooling_masks_padding=False, visual_attention_dropout=True,
        prototypes_over_padded_axis=True, decoder_masks_padded_regions=False, accepts_padded_batches=False,
        blocks_empty_report=False, fast_training_kernels=False)
    assert HistGenConfig(**SMALL).behaviour == NetworkBehaviour()
    model = make_model("histgen-v1")
    assert model.encoder.slide_attention_reads_first_patch and not model.encoder.pooling_masks_padding
    assert model.visual_context_attn.dropout_p == SMALL["dropout"] and make_model().visual_context_attn.dropout_p == 0
    with pytest.raises(ValueError, match="compat must be one of"):
        HistGenConfig(**SMALL, compat="v2")


def test_the_decoder_reads_any_memory_with_its_mask():
    """Extra memory tokens that the mask hides change nothing: the decoder takes a generic memory [B, M, d]."""
    model = make_model()
    feats, mask = pad([torch.randn(n, SMALL["in_dim"]) for n in (9, 23)])
    encoding = model.encode(feats, mask)
    memory, memory_mask = model.decoder_memory(encoding)
    extra = torch.randn(2, 3, SMALL["d_model"])
    wider = torch.cat([memory, extra], dim=1)
    hidden = torch.cat([memory_mask, torch.zeros(2, 3, dtype=torch.bool)], dim=1)
    ids = torch.tensor([[0, 4, 5, 6], [0, 7, 8, 0]])
    k, v = model.context.project_memory(model.memory_matrix)
    words = model.word_states(ids, 0, k, v)
    self_mask = model.decoder.self_attention_mask(ids)
    torch.testing.assert_close(model.decoder(words, self_mask, wider, hidden),
                               model.decoder(words, self_mask, memory, memory_mask))
    probs = model.cross_attention(ids, wider, hidden)  # [layers, B, heads, T, M]
    assert probs.shape == (SMALL["num_layers"], 2, SMALL["num_heads"], 4, memory.shape[1] + 3)
    assert torch.all(probs[..., memory.shape[1]:] == 0)
    cache = model.decoder.start(wider, hidden, k, v)
    logprobs, _ = model.decode_step(torch.zeros(2, dtype=torch.long), cache)
    torch.testing.assert_close(logprobs, model.decode_step(torch.zeros(2, dtype=torch.long),
                                                           model.start_decoding(encoding))[0])


def test_beam_search_keeps_each_bags_memory_without_reselecting_it(monkeypatch):
    """After the first step the beams of a bag share its memory, so the search no longer selects it; ids
    must match a search that selects it at every step, on a padded batch whose bags' memories differ."""
    import scripts.networks.histgen as histgen_module
    from scripts.networks.report_decoder import select_hypotheses

    model = make_model(seed=5)
    feats, mask = pad([torch.randn(n, SMALL["in_dim"]) for n in (5, 17, 30)])
    encoded = model.encode(feats, mask)
    cache = model.start_decoding(encoded)
    kept = select_hypotheses(cache, torch.tensor([2, 1, 0]), memory_too=False)
    assert kept.cross_k[0] is cache.cross_k[0] and kept.cross_mask is cache.cross_mask
    fast = model.beam_search(encoded, 3, 14, early_stop=False)
    monkeypatch.setattr(histgen_module, "select_hypotheses", lambda c, i, memory_too=True: select_hypotheses(c, i))
    always = model.beam_search(encoded, 3, 14, early_stop=False)
    assert fast.tolist() == always.tolist()
    for row, n in enumerate((5, 17, 30)):
        alone = model.beam_search(model.encode(feats[row : row + 1, :n]), 3, 14, early_stop=False)
        assert alone.tolist() == fast[row : row + 1].tolist()
