"""Transfer models: HistGen encoder + pooled head, ABMIL, and starting from a report model's encoder."""

from __future__ import annotations

import json

import pytest
import torch

from scripts.engines import save_report_model
from scripts.networks import HistGen, HistGenConfig
from scripts.text import Vocabulary
from scripts.transfer import (
    ABMIL,
    CrossValidationData,
    EncoderWeightsError,
    HistGenMIL,
    build_mil_network,
    encoder_config,
    fit_fold_input_norm,
    load_pretrained_encoder,
    make_folds,
    make_targets,
    network_spec,
    read_slide_table,
    resolve_pretrained_encoder,
    trainable_parameters,
)

SMALL = {"d_vf": 24, "d_model": 16, "d_ff": 32, "num_heads": 2, "dropout": 0.1, "drop_prob_lm": 0.3, "topk": 4,
         "cmm_size": 8, "cmm_dim": 16, "region_size": 5, "prototype_num": 3}


def save_small_report_model(folder, in_dim=12, seed=0):
    torch.manual_seed(seed)
    model = HistGen(HistGenConfig(in_dim=in_dim, vocab_size=7, num_layers=1, **SMALL))
    vocab = Vocabulary(["tumour", "normal", "cells", "a", "b", "c", "<unk>"])
    return save_report_model(folder, model, vocab), model


def padded(bags):
    n = max(b.shape[0] for b in bags)
    features = torch.zeros(len(bags), n, bags[0].shape[1])
    mask = torch.zeros(len(bags), n, dtype=torch.bool)
    for i, b in enumerate(bags):
        features[i, : b.shape[0]] = b
        mask[i, : b.shape[0]] = True
    return features, mask


@pytest.mark.parametrize("model", ["histgen", "abmil"])
def test_padding_does_not_change_a_slide_s_logits(model):
    torch.manual_seed(0)
    network = build_mil_network(model, 12, 3, histgen=SMALL).eval()
    bags = [torch.randn(n, 12) for n in (7, 23, 11)]
    features, mask = padded(bags)
    together = network(features, mask)
    assert together.shape == (3, 3)
    for i, bag in enumerate(bags):
        alone = network(bag[None])
        assert torch.allclose(alone[0], together[i], atol=1e-5), i


def test_network_spec_rebuilds_the_same_architecture():
    for model in ("histgen", "abmil"):
        network = build_mil_network(model, 12, 4, histgen=SMALL, abmil={"hidden_dim": 20})
        spec = json.loads(json.dumps(network_spec(network)))
        rebuilt = build_mil_network(**spec)
        assert rebuilt.state_dict().keys() == network.state_dict().keys()
        rebuilt.load_state_dict(network.state_dict())
    with pytest.raises(ValueError, match="model must be one of"):
        build_mil_network("clam", 12, 2)
    with pytest.raises(ValueError, match="expects in_dim=8 but the features have D=12"):
        build_mil_network("histgen", 12, 2, histgen={**SMALL, "in_dim": 8})


def test_the_encoder_starts_from_the_report_model_and_can_be_frozen(tmp_path):
    path, report = save_small_report_model(tmp_path / "report" / "models")
    config = encoder_config({"d_model": 999}, path, in_dim=12)  # the report's sizes win over the bundle's
    assert config["d_model"] == 16 and config["vocab_size"] == 7
    torch.manual_seed(1)
    network = build_mil_network("histgen", 12, 3, histgen=config)
    loaded = load_pretrained_encoder(network, path, freeze_encoder=True)
    assert loaded is network and isinstance(network, HistGenMIL)
    report_state = report.state_dict()
    encoder_state = network.encoder.state_dict()
    assert set(encoder_state) == {k for k in report_state if not k.startswith("decoder.")}
    for key, value in encoder_state.items():
        assert torch.equal(value, report_state[key]), key
    assert not any(p.requires_grad for p in network.encoder.parameters())
    network.train()
    assert not network.encoder.training and network.head.training
    trainable = trainable_parameters(network)
    assert {id(p) for p in trainable} == {id(p) for p in [*network.pool.parameters(), *network.head.parameters()]}


def test_an_unfrozen_pretrained_encoder_is_trained(tmp_path):
    path, _ = save_small_report_model(tmp_path / "models")
    network = load_pretrained_encoder(build_mil_network("histgen", 12, 2, histgen=encoder_config(None, path)), path)
    before = network.encoder.projection.weight.detach().clone()
    optimizer = torch.optim.SGD(trainable_parameters(network), lr=0.1)
    features, mask = padded([torch.randn(9, 12), torch.randn(14, 12)])
    torch.nn.functional.cross_entropy(network(features, mask), torch.tensor([0, 1])).backward()
    optimizer.step()
    assert not torch.equal(before, network.encoder.projection.weight)


def test_report_models_that_do_not_fit_are_named(tmp_path):
    path, _ = save_small_report_model(tmp_path / "models", in_dim=12)
    with pytest.raises(EncoderWeightsError, match="trained on features of D=12 but these feature files have D=32"):
        encoder_config(None, path, in_dim=32)
    with pytest.raises(EncoderWeightsError, match="file not found"):
        encoder_config(None, tmp_path / "nothing" / "model.pt")
    other, _ = save_small_report_model(tmp_path / "other", in_dim=12)
    (other.parent / "model_config.json").unlink()
    with pytest.raises(EncoderWeightsError, match="no model_config.json beside it"):
        load_pretrained_encoder(build_mil_network("histgen", 12, 2, histgen=SMALL), other)
    wider = build_mil_network("histgen", 12, 2, histgen={**SMALL, "d_ff": 48})
    with pytest.raises(EncoderWeightsError, match="weights do not fit the encoder"):
        load_pretrained_encoder(wider, path)


def test_abmil_ignores_a_pretrained_encoder_loudly(tmp_path, caplog):
    path, _ = save_small_report_model(tmp_path / "models")
    network = build_mil_network("abmil", 12, 2)
    before = {k: v.clone() for k, v in network.state_dict().items()}
    with caplog.at_level("WARNING", logger="histgen.transfer"):
        assert load_pretrained_encoder(network, path, freeze_encoder=True) is network
    assert isinstance(network, ABMIL) and "is NOT used" in caplog.text
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())


def test_which_report_model_is_used(tmp_path, caplog):
    assert resolve_pretrained_encoder("none", tmp_path) is None
    assert resolve_pretrained_encoder("", tmp_path) is None
    assert resolve_pretrained_encoder(None, tmp_path) is None
    assert resolve_pretrained_encoder("auto", tmp_path) is None  # nothing trained there yet
    path, _ = save_small_report_model(tmp_path / "models")
    assert resolve_pretrained_encoder("auto", tmp_path) == str(path)
    assert resolve_pretrained_encoder("auto", tmp_path, in_dim=12) == str(path)
    with caplog.at_level("WARNING", logger="histgen.transfer"):
        assert resolve_pretrained_encoder("auto", tmp_path, in_dim=64) is None  # trained on other features
    assert "trained on features of D=12, these feature files have D=64: NOT used" in caplog.text
    assert resolve_pretrained_encoder("/x/model.pt", tmp_path) == "/x/model.pt"
    with caplog.at_level("WARNING", logger="histgen.transfer"):
        load_pretrained_encoder(build_mil_network("histgen", 12, 2, histgen=SMALL), None)
    assert "RANDOM initialisation" in caplog.text


def test_yes_no_settings_from_the_command_line():
    from scripts.transfer import as_flag

    assert [as_flag(v) for v in (True, "true", "Yes", 1, "on")] == [True] * 5
    assert [as_flag(v) for v in (False, "false", "NO", 0, None, "")] == [False] * 6
    with pytest.raises(ValueError, match="freeze_encoder must be true or false, got 'maybe'"):
        as_flag("maybe", "freeze_encoder")


# ---------------------------------------------------------------------------- input standardisation
def _cv_data(tmp_path, scales):
    """A subtyping cross-validation over 12 one-slide cases whose features have per-dimension ``scales``."""
    folder = tmp_path / "features"
    folder.mkdir(parents=True)
    rows = []
    for i in range(12):
        torch.save(torch.randn(5 + i, len(scales)) * scales + 3.0, folder / f"S{i}.pt")
        rows.append(f"S{i},{'ab'[i % 2]}")
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text("slide_id,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    table = read_slide_table("subtyping", csv_file, folder)
    return CrossValidationData(table, make_folds(table, num_folds=3, seed=0), make_targets(table))


def _train_statistics(data):
    patches = torch.cat([torch.load(r.path, weights_only=True) for r in data.records("train")]).double()
    return patches.mean(0).float(), patches.std(0, correction=0).float()


def test_abmil_with_input_norm_standardises_each_dimension():
    torch.manual_seed(0)
    plain = build_mil_network("abmil", 4, 2, abmil={"hidden_dim": 8}).eval()
    normed = build_mil_network("abmil", 4, 2, abmil={"hidden_dim": 8, "input_norm": True}).eval()
    normed.load_state_dict({**plain.state_dict(), "input_mean": normed.input_mean, "input_std": normed.input_std})
    scales = torch.tensor([0.001, 0.1, 1.0, 50.0])
    bags = [torch.randn(30, 4) * scales + 2.0 for _ in range(3)]
    normed.fit_input_norm(bags)
    patches = torch.cat(bags).double()
    assert torch.allclose(normed.input_std, patches.std(0, correction=0).float(), rtol=1e-4)
    features, mask = padded(bags)
    standardised = (features - normed.input_mean) / normed.input_std
    assert torch.allclose(normed(features, mask), plain(standardised, mask), atol=1e-5)
    with pytest.raises(ValueError, match="built with input_norm=False"):
        plain.fit_input_norm(bags)
    assert build_mil_network("abmil", 4, 2, abmil={"input_norm": "false"}).input_norm is False  # command line
    histgen = build_mil_network("histgen", 4, 2, histgen={**SMALL, "input_norm": "false"})
    assert histgen.encoder.config.input_norm is False
    spec = network_spec(normed)
    assert spec["abmil"]["input_norm"] is True
    build_mil_network(**spec).load_state_dict(normed.state_dict())  # fold models rebuild with the buffers


def test_each_fold_fits_the_statistics_on_its_own_training_part(tmp_path):
    data = _cv_data(tmp_path, torch.tensor([0.01, 1.0, 30.0]))
    torch.manual_seed(0)
    for network in (build_mil_network("histgen", 3, 2, histgen={**SMALL, "input_norm": True}),
                    build_mil_network("abmil", 3, 2, abmil={"input_norm": True})):
        target = network.encoder if isinstance(network, HistGenMIL) else network
        means = []
        for fold in (0, 1):
            data.set_fold(fold)
            assert fit_fold_input_norm(network, data) is True
            mean, std = _train_statistics(data)
            assert torch.allclose(target.input_mean, mean, atol=1e-5)
            assert torch.allclose(target.input_std, std, rtol=1e-4)
            means.append(target.input_mean.clone())
        assert not torch.equal(means[0], means[1])  # different training parts, different statistics
    assert fit_fold_input_norm(build_mil_network("abmil", 3, 2), data) is False  # input_norm off: nothing to fit


def test_a_report_pretrained_encoder_keeps_the_report_statistics(tmp_path):
    torch.manual_seed(0)
    report = HistGen(HistGenConfig(in_dim=3, vocab_size=7, num_layers=1, input_norm=True, **SMALL))
    report.fit_input_norm([torch.randn(40, 3) * torch.tensor([5.0, 0.5, 0.05])])
    path = save_report_model(tmp_path / "report", report, Vocabulary(["tumour", "normal", "a", "b", "c", "d",
                                                                      "<unk>"]))
    config = encoder_config({**SMALL, "input_norm": False}, path, in_dim=3)
    assert config["input_norm"] is True  # the report model's setting, with its weights
    network = load_pretrained_encoder(build_mil_network("histgen", 3, 2, histgen=config), path)
    data = _cv_data(tmp_path / "cv", torch.tensor([0.01, 1.0, 30.0]))
    assert fit_fold_input_norm(network, data, pretrained_encoder=path) is False
    assert torch.equal(network.encoder.input_std, report.input_std)
    assert torch.equal(network.encoder.input_mean, report.input_mean)


def test_a_report_encoder_with_slide_norm_transfers_with_its_wider_projection(tmp_path):
    torch.manual_seed(0)
    report = HistGen(HistGenConfig(in_dim=3, vocab_size=7, num_layers=1, slide_norm="both", **SMALL))
    path = save_report_model(tmp_path / "report", report, Vocabulary(["tumour", "normal", "a", "b", "c", "d",
                                                                      "<unk>"]))
    config = encoder_config(dict(SMALL), path, in_dim=3)
    assert config["slide_norm"] == "both"  # the report model's setting travels with its weights
    network = load_pretrained_encoder(build_mil_network("histgen", 3, 2, histgen=config), path).eval()
    assert network.encoder.projection.in_features == 6
    assert torch.equal(network.encoder.projection.weight, report.projection.weight)
    bags = [torch.randn(20, 3), torch.randn(9, 3)]
    features, mask = padded(bags)
    torch.testing.assert_close(network(features, mask)[1:], network(bags[1][None])[:1], atol=1e-5, rtol=1e-5)


def test_a_report_encoder_with_heads_slide_norm_transfers_without_its_heads_view(tmp_path):
    torch.manual_seed(0)
    report = HistGen(HistGenConfig(in_dim=3, vocab_size=7, num_layers=1, slide_norm="heads",
                                   finding_classes={"diagnosis": 2}, **SMALL))
    path = save_report_model(tmp_path / "report", report, Vocabulary(["tumour", "normal", "a", "b", "c", "d",
                                                                      "<unk>"]))
    config = encoder_config(dict(SMALL), path, in_dim=3)
    network = load_pretrained_encoder(build_mil_network("histgen", 3, 2, histgen=config), path).eval()
    assert network.encoder.projection.in_features == 3  # the report's encoder reads what "none" reads
    assert report.finding_view is not None and network.encoder.finding_view is None  # the heads' view stays behind
    assert torch.equal(network.encoder.projection.weight, report.projection.weight)
    features, mask = padded([torch.randn(20, 3), torch.randn(9, 3)])
    assert torch.isfinite(network(features, mask)).all()
