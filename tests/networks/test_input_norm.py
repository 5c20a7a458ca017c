"""Input normalisation: per-dimension statistics fitted on the training bags, stored in the model."""

from __future__ import annotations

import pytest
import torch

from scripts.engines import fit_input_norm, load_report_model, save_report_model
from scripts.networks import HistGen, HistGenConfig
from scripts.networks.input_norm import feature_statistics
from scripts.text import Vocabulary

SMALL = dict(in_dim=6, d_vf=16, d_model=16, d_ff=16, num_heads=2, num_layers=1, topk=4, cmm_size=8, cmm_dim=16,
             region_size=4, prototype_num=3, vocab_size=5, max_seq_length=6, beam_size=2)


def _bags() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    scale = torch.tensor([1e-3, 0.1, 1.0, 10.0, 100.0, 0.0])  # the last dimension is constant
    return [torch.randn(n, 6, generator=gen) * scale + 3.0 for n in (5, 17, 40)]


def test_statistics_are_those_of_all_patches_pooled():
    bags = _bags()
    mean, std, count = feature_statistics(bags + [{"id": "skipped"}], dim=6)  # skipped items have no features
    pooled = torch.cat(bags).double()
    assert count == 62
    torch.testing.assert_close(mean, pooled.mean(0).float())
    torch.testing.assert_close(std[:5], pooled.std(0, unbiased=False)[:5].float(), rtol=1e-4, atol=1e-7)
    assert std[5] == 1.0  # a constant dimension is centred, not divided by ~0


def test_fitted_model_sees_standardised_inputs_and_keeps_them_in_its_files(tmp_path):
    model = HistGen(HistGenConfig(**SMALL, input_norm=True))
    items = [{"id": f"s{i}", "features": b} for i, b in enumerate(_bags())]
    assert fit_input_norm(model, items) is model
    normalised = model.normalise_inputs(torch.cat(_bags()))
    torch.testing.assert_close(normalised[:, :5].mean(0), torch.zeros(5), atol=1e-4, rtol=0)
    torch.testing.assert_close(normalised[:, :5].std(0, unbiased=False), torch.ones(5), atol=1e-3, rtol=0)

    save_report_model(tmp_path, model, Vocabulary(["<unk>", "b", "c", "d", "e"]))
    loaded, _ = load_report_model(tmp_path)
    assert loaded.config.input_norm is True
    torch.testing.assert_close(loaded.input_mean, model.input_mean)
    torch.testing.assert_close(loaded.input_std, model.input_std)
    bag = _bags()[1][None]
    torch.testing.assert_close(loaded.generate(bag), model.generate(bag))


def test_scale_of_the_inputs_no_longer_matters_after_fitting():
    torch.manual_seed(1)
    model = HistGen(HistGenConfig(**SMALL, input_norm=True)).eval()
    bags = _bags()
    model.fit_input_norm(bags)
    ids = torch.tensor([[0, 1, 2, 3]])
    reference = model.score(bags[2][None], ids)
    scale = torch.tensor([1e3, 1e-2, 5.0, 1.0, 0.5, 1.0])
    model.fit_input_norm([b * scale for b in bags])  # the same data in other units
    torch.testing.assert_close(model.score(bags[2][None] * scale, ids), reference, atol=1e-4, rtol=1e-4)


def test_models_without_input_norm_are_unchanged_and_say_so():
    model = HistGen(HistGenConfig(**SMALL))
    assert "input_mean" not in model.state_dict()  # old checkpoints and imported reference weights still load
    assert fit_input_norm(model, _bags()) is model  # the workflow step is a no-op for them
    with pytest.raises(ValueError, match="input_norm=False"):
        model.fit_input_norm(_bags())
    with pytest.raises(ValueError, match="input_norm is not part of the reference"):
        HistGenConfig(**SMALL, compat="histgen-v1", input_norm=True)


def test_bad_training_bags_are_reported():
    model = HistGen(HistGenConfig(**SMALL, input_norm=True))
    with pytest.raises(ValueError, match="NaN or Inf"):
        model.fit_input_norm([torch.full((3, 6), float("nan"))])
    with pytest.raises(ValueError, match="empty dataset"):
        model.fit_input_norm([])
    with pytest.raises(ValueError, match="dimension 4, expected 6"):
        model.fit_input_norm([torch.zeros(3, 4)])


def test_command_line_words_are_read_as_flags():
    assert HistGenConfig(**SMALL, input_norm="false").input_norm is False  # --...#input_norm false is a string
    assert HistGenConfig(**SMALL, input_norm="True").input_norm is True
    with pytest.raises(ValueError, match="input_norm must be true or false"):
        HistGenConfig(**SMALL, input_norm="maybe")
