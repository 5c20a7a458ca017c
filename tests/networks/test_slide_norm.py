"""Slide normalisation: each patch standardised within its own slide, instead of or beside the input norm."""

from __future__ import annotations

import warnings

import pytest
import torch

from scripts.engines import load_report_model, save_report_model
from scripts.networks import HistGen, HistGenConfig
from scripts.networks.input_norm import slide_standardise
from scripts.text import Vocabulary

SMALL = dict(in_dim=6, d_vf=16, d_model=16, d_ff=16, num_heads=2, num_layers=1, topk=4, cmm_size=8, cmm_dim=16,
             region_size=4, prototype_num=3, vocab_size=5, max_seq_length=6, beam_size=2, dropout=0.0,
             drop_prob_lm=0.0)


def _padded_pair() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    features = torch.randn(2, 12, 6, generator=gen)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 7:] = False
    features[1, 7:] = 0.0
    return features, mask


def test_slide_wide_offset_and_scale_cancel_and_padding_stays_zero():
    features, mask = _padded_pair()
    scale = torch.tensor([1e-2, 0.5, 1.0, 3.0, 20.0, 1.0])
    offset = torch.tensor([5.0, -2.0, 0.0, 100.0, 1.0, 0.3])
    shifted = (features * scale + offset) * mask[..., None]
    standardised = slide_standardise(features, mask)
    torch.testing.assert_close(slide_standardise(shifted, mask), standardised, atol=1e-4, rtol=1e-4)
    assert bool((standardised[1, 7:] == 0).all())
    real = standardised[1, :7]
    torch.testing.assert_close(real.mean(0), torch.zeros(6), atol=1e-5, rtol=0)
    torch.testing.assert_close(real.std(0, unbiased=False), torch.ones(6), atol=1e-4, rtol=0)


def test_a_dimension_constant_within_a_slide_becomes_zero_not_infinite():
    features = torch.randn(1, 5, 3)
    features[..., 1] = 7.0
    out = slide_standardise(features, torch.ones(1, 5, dtype=torch.bool))
    assert bool(torch.isfinite(out).all())
    assert bool((out[..., 1] == 0).all())


def _model_and_batch(mode: str) -> tuple[HistGen, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A seeded model with ``slide_norm=mode`` (eval mode), the padded pair, its mask and two target reports."""
    torch.manual_seed(0)
    model = HistGen(HistGenConfig(**SMALL, slide_norm=mode)).eval()
    features, mask = _padded_pair()
    return model, features, mask, torch.tensor([[0, 1, 2, 3], [0, 2, 2, 3]])


def _site_shifted(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The same slides with a slide-wide scale and offset on every dimension (padding stays zero)."""
    return (features * 2.5 + 4.0) * mask[..., None]


def test_slide_mode_is_blind_to_a_slide_wide_shift():
    model, features, mask, ids = _model_and_batch("slide")
    assert model.projection.in_features == 6
    shifted = _site_shifted(features, mask)
    torch.testing.assert_close(model.score(shifted, ids, mask=mask), model.score(features, ids, mask=mask),
                               atol=1e-4, rtol=1e-4)


def test_both_mode_reads_both_views_and_is_blind_to_a_shift_only_in_the_second():
    model, features, mask, ids = _model_and_batch("both")
    assert model.projection.in_features == 12
    shifted = _site_shifted(features, mask)
    reference = model.score(features, ids, mask=mask)
    assert not torch.allclose(model.score(shifted, ids, mask=mask), reference, atol=1e-3)  # the first half sees it
    with torch.no_grad():
        model.projection.weight[:, :6] = 0.0  # stop reading the first half: the shift then changes nothing
    blind = model.score(features, ids, mask=mask)
    torch.testing.assert_close(model.score(shifted, ids, mask=mask), blind, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(blind, reference)


def test_heads_mode_keeps_the_encoder_and_gives_the_heads_the_standardised_view():
    torch.manual_seed(0)
    classes = {"diagnosis": 3, "margin": 2}
    heads_model = HistGen(HistGenConfig(**SMALL, slide_norm="heads", finding_classes=classes)).eval()
    plain = HistGen(HistGenConfig(**SMALL, finding_classes=classes)).eval()
    state = heads_model.state_dict()
    assert {k for k in state if k.startswith("finding_view.")} == {"finding_view.weight", "finding_view.bias"}
    plain.load_state_dict({k: v for k, v in state.items() if not k.startswith("finding_view.")})
    features, mask = _padded_pair()
    # a new model's view is zero: its heads start as the plain model's and training decides what the view adds
    torch.testing.assert_close(heads_model.predict_findings(features, mask), plain.predict_findings(features, mask))
    with torch.no_grad():
        torch.nn.init.normal_(heads_model.finding_view.weight)
    assert heads_model.projection.in_features == 6
    got, want = heads_model.encode(features, mask), plain.encode(features, mask)
    torch.testing.assert_close(got.region_tokens, want.region_tokens)  # the report's encoder is the plain one
    torch.testing.assert_close(got.patch_tokens, want.patch_tokens)
    assert want.finding_tokens is want.patch_tokens
    view = heads_model.finding_view(slide_standardise(features, mask))
    torch.testing.assert_close(got.finding_tokens, got.patch_tokens + view)
    # the heads read the view: with the patch tokens' part fixed, a slide-wide shift changes nothing there
    shifted = _site_shifted(features, mask)
    moved = heads_model.encode(shifted, mask)
    torch.testing.assert_close(moved.finding_tokens - moved.patch_tokens, view, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(heads_model.predict_findings(features, mask), plain.predict_findings(features, mask))


def test_a_low_rank_view_starts_at_zero_reads_the_standardised_patch_and_survives_saving(tmp_path):
    torch.manual_seed(0)
    classes = {"diagnosis": 3}
    model = HistGen(HistGenConfig(**SMALL, slide_norm="heads", finding_view_rank=2, finding_classes=classes)).eval()
    plain = HistGen(HistGenConfig(**SMALL, finding_classes=classes)).eval()
    state = model.state_dict()
    shapes = {k: tuple(v.shape) for k, v in state.items() if k.startswith("finding_view.")}
    assert shapes == {"finding_view.0.weight": (2, 6), "finding_view.0.bias": (2,),
                      "finding_view.1.weight": (16, 2), "finding_view.1.bias": (16,)}
    assert float(state["finding_view.0.weight"].abs().sum()) > 0  # the way in is random, the way out zero
    plain.load_state_dict({k: v for k, v in state.items() if not k.startswith("finding_view.")})
    features, mask = _padded_pair()
    torch.testing.assert_close(model.predict_findings(features, mask), plain.predict_findings(features, mask))
    with torch.no_grad():
        torch.nn.init.normal_(model.finding_view[1].weight)
    encoding = model.encode(features, mask)
    first, second = model.finding_view
    view = second(first(slide_standardise(features, mask)))
    torch.testing.assert_close(encoding.finding_tokens, encoding.patch_tokens + view)
    save_report_model(tmp_path, model, Vocabulary(["<unk>", "b", "c", "d", "e"]))
    loaded, _ = load_report_model(tmp_path)
    assert loaded.config.finding_view_rank == 2
    torch.testing.assert_close(loaded.predict_findings(features, mask), model.predict_findings(features, mask))


def test_a_config_without_the_rank_key_builds_the_full_view_of_the_first_version():
    values = HistGenConfig(**SMALL, slide_norm="heads", finding_classes={"diagnosis": 2}).to_dict()
    del values["finding_view_rank"]  # a model_config.json written before the key existed
    model = HistGen(HistGenConfig.from_dict(values))
    assert isinstance(model.finding_view, torch.nn.Linear) and model.finding_view.weight.shape == (16, 6)
    # no finding heads, no view: DistributedDataParallel refuses parameters that never get a gradient
    assert HistGen(HistGenConfig(**SMALL, slide_norm="heads", finding_view_rank=4)).finding_view is None
    with pytest.raises(ValueError, match="finding_view_rank must be >= 0"):
        HistGenConfig(**SMALL, slide_norm="heads", finding_view_rank=-1)


@pytest.mark.parametrize("rank", ["wide", 2.5, True, None, "3x"])
def test_a_rank_that_is_not_a_whole_number_is_named(rank):
    with pytest.raises(ValueError, match=r"finding_view_rank must be a whole number, got"):
        HistGenConfig(**SMALL, slide_norm="heads", finding_view_rank=rank)


@pytest.mark.parametrize(("rank", "expected"), [("32", 32), (32.0, 32), (" 8 ", 8)])
def test_a_rank_given_as_text_or_float_reads_as_its_number(rank, expected):
    # a command-line override (--network_def#config#finding_view_rank 32) or a JSON float
    assert HistGenConfig(**SMALL, slide_norm="heads", finding_view_rank=rank).finding_view_rank == expected


@pytest.mark.parametrize("mode", ["slide", "both", "heads"])
def test_a_padded_bag_scores_as_it_does_alone(mode: str):
    model, features, mask, ids = _model_and_batch(mode)
    batched = model.score(features, ids, mask=mask)
    alone = model.score(features[1:, :7], ids[1:])
    torch.testing.assert_close(batched[1:], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["both", "heads"])
def test_saved_model_keeps_the_flag_and_scripts(tmp_path, mode: str):
    torch.manual_seed(0)
    model = HistGen(HistGenConfig(**SMALL, slide_norm=mode, input_norm=True, finding_classes={"dx": 3})).eval()
    save_report_model(tmp_path, model, Vocabulary(["<unk>", "b", "c", "d", "e"]))
    loaded, _ = load_report_model(tmp_path)
    assert loaded.config.slide_norm == mode
    torch.testing.assert_close(loaded.predict_findings(*_padded_pair()), model.predict_findings(*_padded_pair()))
    bag = _padded_pair()[0][:1]
    torch.testing.assert_close(loaded.generate(bag), model.generate(bag))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(model)
    torch.testing.assert_close(scripted.generate(bag), model.generate(bag))


def test_choices_and_the_reference_network():
    assert HistGenConfig(**SMALL).slide_norm == "none"
    assert HistGenConfig(**SMALL, slide_norm=False).slide_norm == "none"
    assert HistGenConfig(**SMALL, slide_norm="off").slide_norm == "none"
    assert HistGenConfig(**SMALL, slide_norm="Slide").slide_norm == "slide"
    assert HistGenConfig(**SMALL, slide_norm="heads").slide_norm == "heads"
    with pytest.raises(ValueError, match="slide_norm must be one of"):
        HistGenConfig(**SMALL, slide_norm="true")  # which of the two? the user says
    with pytest.raises(ValueError, match="slide_norm is not part of the reference"):
        HistGenConfig(**SMALL, compat="histgen-v1", slide_norm="slide")
