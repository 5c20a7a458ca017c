"""Clinical metrics: findings accuracy/F1 as Ignite metrics, val_metric selection, the REG 2025 score."""

from __future__ import annotations

import importlib.util
import json
import logging
import math
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine

import scripts.metrics.clinical_scoring as clinical_scores_module
from scripts.engines import metric_score
from scripts.metrics import (
    CATEGORICAL_FINDINGS,
    CaptionMetrics,
    FindingsMetric,
    FindingsVocabulary,
    TextEncoder,
    clinical_keywords,
    extract_findings,
    findings_scores,
    keyword_jaccard,
    reg_score,
    selection_score,
)
from scripts.metrics.text_embedding import WORD_EMBEDDING_FORMAT, cosine_similarities, reg_rescale
from scripts.text import clean_report

REFERENCES = [
    "Invasive ductal carcinoma, grade 2 of 3. Margins negative. No lymphovascular invasion.",
    "Invasive lobular carcinoma, grade 1 of 3. Margins: involved. Lymphovascular invasion present.",
    "Invasive ductal carcinoma, grade 3 of 3. Margins negative.",
    "Mucinous carcinoma. Lymph nodes: 0/4.",
]
GENERATED = [
    "invasive ductal carcinoma grade 2 of 3 . margins negative . no lymphovascular invasion .",
    "invasive ductal carcinoma grade 1 of 3 . margins negative . lymphovascular invasion present .",
    "invasive ductal carcinoma grade 2 of 3 .",
    "mucinous carcinoma . lymph nodes 04 .",
]
FAST = ("BLEU", "ROUGE_L")


def test_findings_scores_by_hand() -> None:
    scores = findings_scores(GENERATED, REFERENCES)
    # diagnosis: references idc, ilc, idc, mucinous; generated idc, idc, idc, mucinous -> 3/4
    assert scores["finding_diagnosis_accuracy"] == 0.75
    # per class F1: idc tp 2 fp 1 fn 0 -> 0.8; ilc 0; mucinous 1 -> mean 0.6
    assert scores["finding_diagnosis_f1"] == pytest.approx((0.8 + 0.0 + 1.0) / 3)
    # margin is stated by 3 references; the generated 3rd report does not say -> wrong
    assert scores["finding_margin_eligible"] == 3.0
    assert scores["finding_margin_accuracy"] == pytest.approx(1 / 3)
    assert scores["finding_grade_accuracy"] == pytest.approx(2 / 3)
    assert scores["finding_lymph_node_status_accuracy"] == 1.0
    assert scores["finding_lymphovascular_invasion_accuracy"] == 1.0
    # nobody states PNI or stages: NaN, and left out of the means
    assert math.isnan(scores["finding_perineural_invasion_accuracy"])
    assert scores["finding_perineural_invasion_eligible"] == 0.0
    stated = [scores[f"finding_{n}_accuracy"] for n in CATEGORICAL_FINDINGS if scores[f"finding_{n}_eligible"]]
    assert len(stated) == 5
    assert scores["finding_mean_accuracy"] == pytest.approx(sum(stated) / 5)
    f1s = [scores[f"finding_{n}_f1"] for n in CATEGORICAL_FINDINGS if scores[f"finding_{n}_eligible"]]
    assert scores["finding_macro_f1"] == pytest.approx(sum(f1s) / 5)
    # cleaned references give the same scores as raw ones
    assert findings_scores(GENERATED, [clean_report(r) for r in REFERENCES]) == pytest.approx(scores, nan_ok=True)


def test_grades_are_scored_by_tier_and_shown_as_written() -> None:
    from scripts.metrics import findings_comparison, grade_tier

    references = ["Clear cell renal cell carcinoma, Fuhrman nuclear grade 2 of 4.",
                  "Adenocarcinoma, moderately differentiated.", "Adenocarcinoma, grade 3 of 3.",
                  "Acinar adenocarcinoma, Gleason score 3+4=7."]
    generated = ["clear cell renal cell carcinoma isup nucleolar grade ii .", "adenocarcinoma grade 2 of 3 .",
                 "adenocarcinoma well differentiated .", "acinar adenocarcinoma gleason score 4 + 4 = 8 ."]
    scores = findings_scores(generated, references)
    # same tier in another system: right (2 of 4); another tier, and another Gleason score: wrong
    assert scores["finding_grade_eligible"] == 4.0
    assert scores["finding_grade_accuracy"] == pytest.approx(2 / 4)
    row = findings_comparison(extract_findings(generated[0]), extract_findings(references[0]))
    assert (row["grade_reference"], row["grade_generated"], row["grade_correct"]) == ("fuhrman 2", "isup 2", "yes")
    assert grade_tier("undifferentiated") == "grade 4"
    assert grade_tier("moderately to poorly differentiated") == "moderately to poorly differentiated"
    assert grade_tier("high grade") == "high grade"


def test_keywords_and_jaccard() -> None:
    ref = extract_findings(REFERENCES[0])
    assert clinical_keywords(ref) == {"diagnosis=invasive ductal carcinoma", "grade=grade 2", "margin=negative",
                                      "lymphovascular_invasion=absent", "invasive", "ductal", "carcinoma"}
    gen = extract_findings(GENERATED[2])
    assert keyword_jaccard(clinical_keywords(gen), clinical_keywords(ref)) == pytest.approx(5 / 7)
    assert keyword_jaccard(set(), set()) == 1.0


def _caption_metric(**kwargs) -> CaptionMetrics:
    metric = CaptionMetrics(metrics=FAST, key_phrases={"diagnosis": ["ductal carcinoma", "lobular carcinoma"]},
                            **kwargs)
    metric.reset()
    metric.update((GENERATED[:2], REFERENCES[:2], ["a", "b"]))
    metric.update((GENERATED[2:], REFERENCES[2:], ["c", "d"]))
    return metric


def test_caption_metrics_adds_findings_and_keeps_its_keys(caplog, monkeypatch) -> None:
    monkeypatch.setattr(clinical_scores_module, "_told", set())
    vocab = FindingsVocabulary.from_reports(REFERENCES, min_count=1)
    with caplog.at_level(logging.INFO, logger="scripts.metrics.clinical_scoring"):
        result = _caption_metric(findings_vocabulary=vocab).compute()
    assert {"BLEU_1", "BLEU_4", "ROUGE_L", "diagnosis_accuracy"} <= set(result)
    before = CaptionMetrics(metrics=FAST, key_phrases={"diagnosis": ["ductal carcinoma", "lobular carcinoma"]})
    before.update((GENERATED, REFERENCES))
    plain = before.compute()
    assert not any(key.startswith(("finding_", "reg_", "clinical")) for key in plain)
    assert {k: result[k] for k in plain} == pytest.approx(plain)
    for name in CATEGORICAL_FINDINGS:
        assert f"finding_{name}_accuracy" in result and f"finding_{name}_f1" in result
    assert result["clinical_bleu"] == pytest.approx((result["finding_mean_accuracy"] + result["BLEU_4"]) / 2)
    assert 0 < result["reg_key"] < 1
    # no text encoder: no EMB and no REG score, and a message says so (once per process)
    assert "reg_emb" not in result and "reg_score" not in result
    assert sum("no text_encoder was given" in r.getMessage() for r in caplog.records) == 1


def _plain_encoder(folder: Path, words: list[str], dim: int = 6, seed: int = 0) -> Path:
    folder.mkdir(parents=True)
    (folder / "text_encoder.json").write_text(json.dumps({"format": WORD_EMBEDDING_FORMAT, "words": words}))
    generator = torch.Generator().manual_seed(seed)
    torch.save({"embeddings": torch.randn(len(words), dim, generator=generator)}, folder / "text_encoder.pt")
    return folder


def test_reg_score_with_a_local_plain_encoder(tmp_path: Path) -> None:
    words = sorted({w for text in GENERATED + REFERENCES for w in clean_report(text).split()} - {"."})
    folder = _plain_encoder(tmp_path / "encoder", words)
    encoder = TextEncoder.load(folder)
    assert encoder.kind == "plain" and encoder.dim == 6
    embeddings = encoder.encode(["invasive ductal carcinoma", "zzz unknown"])
    table = torch.load(folder / "text_encoder.pt", weights_only=True)["embeddings"]
    expected = table[[words.index("invasive"), words.index("ductal"), words.index("carcinoma")]].mean(0)
    torch.testing.assert_close(embeddings[0], expected)
    assert torch.all(embeddings[1] == 0)
    assert cosine_similarities(encoder, ["margins negative"], ["Margins: negative."]) == pytest.approx([1.0])
    assert (reg_rescale(0.3), reg_rescale(0.5), reg_rescale(0.8), reg_rescale(1.0)) == pytest.approx(
        (0.0, 0.0, 0.6, 1.0))

    vocab = FindingsVocabulary.from_reports(REFERENCES, min_count=1)
    result = _caption_metric(findings_vocabulary=vocab, text_encoder=str(folder)).compute()
    sims = cosine_similarities(encoder, GENERATED, REFERENCES)
    assert result["reg_emb"] == pytest.approx(sum(reg_rescale(s) for s in sims) / len(sims))
    assert result["reg_score"] == pytest.approx(
        0.15 * (result["ROUGE_L"] + result["BLEU_4"]) + 0.4 * result["reg_key"] + 0.3 * result["reg_emb"])
    assert result["reg_score"] == pytest.approx(reg_score(result))


def test_text_encoder_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a folder"):
        TextEncoder.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="neither text_encoder.json"):
        TextEncoder.load(tmp_path / "empty")
    bad = _plain_encoder(tmp_path / "bad", ["a", "b"])
    torch.save({"embeddings": torch.zeros(3, 2)}, bad / "text_encoder.pt")
    with pytest.raises(ValueError, match=r"tensor \[2, D\]"):
        TextEncoder.load(bad)
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    if importlib.util.find_spec("transformers") is None:  # the Hugging Face format needs it; say so
        with pytest.raises(ImportError, match="transformers package is not installed"):
            TextEncoder.load(hf)


def test_findings_metric_on_an_engine() -> None:
    batches = [(GENERATED[:2], REFERENCES[:2], ["a", "b"]), (GENERATED[2:], REFERENCES[2:], ["c", "d"]),
               (GENERATED[:1], REFERENCES[:1], ["a"])]  # a repeated id (distributed padding) counts once
    engine = Engine(lambda engine, batch: batch)
    FindingsMetric().attach(engine, "findings")
    state = engine.run(batches, max_epochs=1)
    expected = findings_scores(GENERATED, REFERENCES)
    for key, value in expected.items():
        assert state.metrics[key] == pytest.approx(value, nan_ok=True), key
    assert "clinical_bleu" not in state.metrics and "reg_key" in state.metrics


def test_selection_on_findings_and_the_combination() -> None:
    metrics = {"BLEU_4": 0.4, "finding_mean_accuracy": 0.8, "finding_grade_accuracy": math.nan}
    assert selection_score(metrics, "BLEU_4") == 0.4
    assert selection_score(metrics, "clinical_bleu") == pytest.approx(0.6)
    assert selection_score(metrics, "finding_grade_accuracy") == -math.inf
    with pytest.raises(KeyError, match="not among the validation metrics"):
        selection_score(metrics, "finding_margin_f1")
    engine = Engine(lambda engine, batch: None)
    engine.state.metrics = {**metrics, "clinical_bleu": 0.55}
    assert metric_score("clinical_bleu")(engine) == 0.55  # the metric's own value wins
    assert metric_score("finding_mean_accuracy")(engine) == 0.8
