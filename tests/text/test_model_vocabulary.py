"""A model refuses a vocabulary other than the one it was trained with."""

from __future__ import annotations

import json

import pytest

from scripts.engines import VocabularyMismatchError, load_model_vocabulary, load_report_model, save_report_model
from scripts.networks import HistGen, HistGenConfig
from scripts.text import Vocabulary

TOKENS = ["<unk>", "adenocarcinoma", "lung", "normal", "squamous", "tissue"]


@pytest.fixture
def model_dir(tmp_path):
    config = HistGenConfig(in_dim=8, d_vf=16, d_model=16, d_ff=16, num_heads=2, num_layers=1, topk=4, cmm_size=8,
                           cmm_dim=16, region_size=4, prototype_num=4, vocab_size=len(TOKENS), max_seq_length=10)
    save_report_model(tmp_path / "models", HistGen(config), Vocabulary(TOKENS))
    return tmp_path / "models"


def test_model_config_records_the_vocabulary(model_dir):
    record = json.loads((model_dir / "model_config.json").read_text())
    assert record["vocab_tokens"] == len(TOKENS) and record["vocab_sha256"] == Vocabulary(TOKENS).checksum
    assert load_model_vocabulary(model_dir).tokens == TOKENS
    _, vocab = load_report_model(model_dir)
    assert vocab.tokens == TOKENS


@pytest.mark.parametrize("tokens", [TOKENS[::-1], [*TOKENS, "extra"], TOKENS[:-1]], ids=["shuffled", "larger",
                                                                                           "smaller"])
def test_another_vocabulary_is_a_named_error(model_dir, tokens, tmp_path):
    other = Vocabulary(tokens).save(tmp_path / "other.json")
    with pytest.raises(VocabularyMismatchError, match=rf"{other}: not the vocabulary of the model in {model_dir}"):
        load_model_vocabulary(model_dir, other)
    Vocabulary(tokens).save(model_dir / "vocab.json")  # replaced beside the model
    with pytest.raises(VocabularyMismatchError, match=f"{len(tokens)} tokens"):
        load_report_model(model_dir)


def test_models_saved_before_the_checksum_are_checked_by_size(model_dir, tmp_path):
    record = json.loads((model_dir / "model_config.json").read_text())
    del record["vocab_tokens"], record["vocab_sha256"]
    (model_dir / "model_config.json").write_text(json.dumps(record))
    assert load_model_vocabulary(model_dir).tokens == TOKENS
    with pytest.raises(VocabularyMismatchError):
        load_model_vocabulary(model_dir, Vocabulary(TOKENS[:-1]).save(tmp_path / "small.json"))
