"""Grounded report generation: finding heads, their labels and loss, and decoding that cannot return nothing."""

from __future__ import annotations

import json

import pytest
import torch

from scripts.engines import GroundedReportLoss, ReportNLLLoss, TeacherForcingBatches, finding_labeler
from scripts.engines.grounding import ReportFindingLabeler
from scripts.metrics import FindingsVocabulary
from scripts.networks import HistGen, HistGenConfig
from scripts.networks.finding_heads import SlideFindingHeads

SMALL = dict(
    in_dim=24, d_vf=40, d_model=32, d_ff=48, num_heads=4, num_layers=2, topk=8, cmm_size=16, cmm_dim=32,
    region_size=8, prototype_num=6, vocab_size=30, max_seq_length=12, dropout=0.1,
)
FINDINGS = {"diagnosis": 4, "grade": 3, "margin": 2}
REPORTS = {
    "a": "DIAGNOSIS: Invasive ductal carcinoma. Nottingham grade 2 of 3. Margins are free of carcinoma.",
    "b": "DIAGNOSIS: Invasive lobular carcinoma. Nottingham grade 3 of 3. Margins are involved by carcinoma.",
    "c": "Final diagnosis: mucinous carcinoma. Nottingham grade 1 of 3. Margins negative.",
}


def grounded_model(seed: int = 0, **overrides) -> HistGen:
    torch.manual_seed(seed)
    return HistGen(HistGenConfig(**{**SMALL, **overrides}, finding_classes=FINDINGS)).eval()


def test_heads_pool_real_patches_only_and_give_one_token_per_finding():
    heads = SlideFindingHeads(32, [4, 3, 2]).eval()
    tokens = torch.randn(2, 10, 32)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 6:] = False
    out = heads(tokens, mask)
    assert out.logits.shape == (2, 9) and out.tokens.shape == (2, 3, 32) and out.attention.shape == (2, 3, 10)
    assert torch.allclose(out.attention.sum(-1), torch.ones(2, 3))
    assert float(out.attention[1, :, 6:].abs().max()) == 0.0
    # padding content does not change a bag's result
    changed = tokens.clone()
    changed[1, 6:] = 100.0
    assert torch.allclose(heads(changed, mask).logits[1], out.logits[1], atol=1e-6)


def test_heads_refuse_a_finding_with_one_class():
    with pytest.raises(ValueError, match=">= 2 classes"):
        SlideFindingHeads(32, [4, 1])
    with pytest.raises(ValueError, match=">= 2 classes"):
        HistGenConfig(**SMALL, finding_classes={"diagnosis": 1})
    with pytest.raises(ValueError, match="not part of the reference"):
        HistGenConfig(**SMALL, compat="histgen-v1", finding_classes=FINDINGS)


def test_finding_tokens_follow_the_region_tokens_in_the_decoder_memory():
    model = grounded_model()
    feats = torch.randn(2, 20, SMALL["in_dim"])
    encoding = model.encode(feats)
    memory, memory_mask = model.decoder_memory(encoding)
    regions = encoding.region_tokens.shape[1]
    assert memory.shape[1] == regions + len(FINDINGS)
    assert torch.equal(memory[:, :regions], encoding.region_tokens)
    assert memory_mask is not None and bool(memory_mask[:, regions:].all())
    probs = model.predict_findings(feats)
    assert probs.shape == (2, sum(FINDINGS.values()))
    assert torch.allclose(probs[:, :4].sum(-1), torch.ones(2), atol=1e-5)


def test_forward_returns_logprobs_and_finding_logits_and_score_agrees():
    model = grounded_model()
    feats = torch.randn(2, 15, SMALL["in_dim"])
    target = torch.tensor([[0, 5, 6, 7, 0], [0, 8, 9, 0, 0]])
    out = model(feats, target)
    assert out.finding_logits.shape == (2, 9)
    assert torch.allclose(out.logprobs, model.score(feats, target), atol=1e-6)
    plain = HistGen(HistGenConfig(**SMALL)).eval()
    assert plain(feats, target).finding_logits.shape == (2, 0)
    assert not any(k.startswith("findings.") for k in plain.state_dict())


def test_scripted_model_with_heads_generates_the_eager_ids():
    model = grounded_model()
    scripted = torch.jit.script(model)
    feats = torch.randn(2, 17, SMALL["in_dim"])
    eager = model.generate(feats, beam_size=3, max_len=10)
    assert torch.equal(scripted.generate(feats, beam_size=3, max_len=10), eager)
    assert torch.allclose(scripted.predict_findings(feats), model.predict_findings(feats), atol=1e-6)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_decoding_never_returns_an_empty_report_in_the_default_variant(beam_size):
    feats = torch.randn(1, 12, SMALL["in_dim"])
    for compat, empty in (("default", False), ("histgen-v1", True)):
        torch.manual_seed(0)
        model = HistGen(HistGenConfig(**SMALL, compat=compat)).eval()
        with torch.no_grad():
            model.decoder.logit.bias[0] = 50.0  # the end token dominates every step
        ids = model.generate(feats, beam_size=beam_size, max_len=8)
        assert (int(ids[0, 0]) == 0) is empty, compat


def test_grounded_loss_is_the_nll_plus_the_heads_cross_entropy():
    torch.manual_seed(0)
    logprobs = torch.log_softmax(torch.randn(2, 4, 11), dim=-1)
    ids = torch.tensor([[0, 3, 4, 5, 0], [0, 6, 7, 0, 0]])
    report_mask = (ids > 0).long()
    report_mask[:, 0] = 1
    logits = torch.randn(2, 5)  # heads of 3 and 2 classes
    labels = torch.tensor([[2, -1], [0, 1]])
    nll = ReportNLLLoss()(logprobs, (ids, report_mask))
    loss = GroundedReportLoss([3, 2], finding_weight=0.5)
    expected = nll + 0.5 * (
        torch.nn.functional.cross_entropy(logits[:, :3], labels[:, 0])
        + torch.nn.functional.cross_entropy(logits[1:, 3:], labels[1:, 1])
    ) / 2
    assert torch.allclose(loss((logprobs, logits), (ids, report_mask, labels)), expected)
    # no labels, or no heads: the NLL alone
    assert torch.allclose(loss((logprobs, logits), (ids, report_mask)), nll)
    assert torch.allclose(GroundedReportLoss()((logprobs, logits[:, :0]), (ids, report_mask)), nll)
    unlabelled = torch.full_like(labels, -1)
    assert torch.allclose(loss((logprobs, logits), (ids, report_mask, unlabelled)), nll)


def _annotation(tmp_path, reports: list[str]):
    items = [{"id": f"s{i}", "report": r} for i, r in enumerate(reports)]
    path = tmp_path / "annotation.json"
    path.write_text(json.dumps({"train": items, "val": items[:1], "test": items[:1]}), encoding="utf-8")
    return path


def test_labeler_keeps_findings_stated_with_two_classes_and_reads_labels(tmp_path):
    path = _annotation(tmp_path, [REPORTS["a"]] * 3 + [REPORTS["b"]] * 3 + [REPORTS["c"]])
    vocabulary = FindingsVocabulary.from_annotation(path)
    labeler = finding_labeler(vocabulary, path, True, min_count=3)
    # mucinous carcinoma and grade 1 occur once: below min_count, not classes
    assert labeler.num_classes == {"diagnosis": 2, "grade": 2, "margin": 2}
    labels = labeler.labels([REPORTS["b"], REPORTS["c"], "No findings stated."])
    d, g, m = (labeler.classes[n] for n in ("diagnosis", "grade", "margin"))
    assert labels[0].tolist() == [d.index("invasive lobular carcinoma"), g.index("grade 3"), m.index("positive")]
    assert labels[1].tolist() == [-1, -1, m.index("negative")]
    assert labels[2].tolist() == [-1, -1, -1]
    off = finding_labeler(vocabulary, path, "false")
    assert off.names == [] and off.num_classes == {}


def test_teacher_forcing_batches_hide_input_words_not_targets():
    labeler = ReportFindingLabeler(["margin"], {"margin": ["negative", "positive"]},
                                   lambda t: {"margin": "positive" if "involved" in t else "negative"})
    ids = torch.tensor([[0, 3, 4, 5, 6, 7, 8, 0], [0, 9, 10, 11, 0, 0, 0, 0]])
    batch = {"features": torch.randn(2, 5, 4), "mask": torch.ones(2, 5, dtype=torch.bool), "report_ids": ids,
             "report_mask": (ids > 0).long(), "reports": [REPORTS["b"], REPORTS["a"]], "ids": ["x", "y"]}
    torch.manual_seed(0)
    feats, targets, args, kwargs = TeacherForcingBatches(labeler, word_dropout=0.5, unk_id=2)(batch)
    assert torch.equal(targets[0], ids) and targets[2].tolist() == [[1], [0]]
    inputs = args[0]
    hidden = inputs != ids
    assert bool(hidden.any()) and bool((inputs[hidden] == 2).all())
    assert not bool(hidden[:, 0].any()) and not bool(hidden[ids == 0].any())
    plain = TeacherForcingBatches(None)(batch)
    assert torch.equal(plain[2][0], ids) and len(plain[1]) == 2
    with pytest.raises(ValueError, match="unk_id"):
        TeacherForcingBatches(labeler, word_dropout=0.1)


def test_heads_learn_a_finding_that_only_a_few_patches_carry():
    """A needle-in-a-haystack diagnosis (3 of 200 patches): the heads' accuracy, trained with the grounded loss."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    background = torch.randn(8, SMALL["in_dim"], generator=gen)
    needles = torch.randn(3, SMALL["in_dim"], generator=gen) * 2

    def bags(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, 3, (n,), generator=gen)
        x = background[torch.randint(0, 8, (n, 200), generator=gen)] + 0.3 * torch.randn(n, 200, SMALL["in_dim"],
                                                                                         generator=gen)
        x[:, :3] = needles[labels][:, None] + 0.3 * torch.randn(n, 3, SMALL["in_dim"], generator=gen)
        return x[:, torch.randperm(200, generator=gen)], labels

    model = HistGen(HistGenConfig(**SMALL, finding_classes={"diagnosis": 3})).train()
    loss_fn = GroundedReportLoss([3])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    target = torch.tensor([[0, 5, 6, 0]]).repeat(16, 1)
    report_mask = torch.ones_like(target)
    for _ in range(60):
        x, y = bags(16)
        optimizer.zero_grad()
        loss_fn(model(x, target), (target, report_mask, y[:, None])).backward()
        optimizer.step()
    x, y = bags(60)
    accuracy = float((model.eval().predict_findings(x).argmax(-1) == y).float().mean())
    assert accuracy >= 0.9, accuracy


def test_clinical_bleu_selects_on_findings_and_falls_back_to_bleu_without_them():
    from scripts.metrics.clinical_scoring import clinical_scores
    from scripts.text import clean_report

    plain = clinical_scores(["the specimen was received ."], ["the specimen was received ."], {"BLEU_4": 0.4}, None)
    assert plain["clinical_bleu"] == 0.4
    reference = clean_report(REPORTS["a"])
    right = clinical_scores([reference], [reference], {"BLEU_4": 0.4}, None)
    wrong = clinical_scores([clean_report(REPORTS["b"])], [reference], {"BLEU_4": 0.4}, None)
    assert right["clinical_bleu"] == pytest.approx((1.0 + 0.4) / 2)
    assert wrong["clinical_bleu"] < right["clinical_bleu"]


def test_finding_tokens_carry_the_reports_findings_while_training_and_the_heads_decision_after():
    heads = SlideFindingHeads(32, [4, 3]).eval()
    tokens = torch.randn(2, 10, 32)
    mask = torch.ones(2, 10, dtype=torch.bool)
    decided = heads(tokens, mask)
    chosen = torch.stack([decided.logits[:, :4].argmax(-1), decided.logits[:, 4:].argmax(-1)], dim=1)
    assert torch.allclose(heads(tokens, mask, chosen).tokens, decided.tokens, atol=1e-6)
    other = (chosen + 1) % torch.tensor([4, 3])
    forced = heads(tokens, mask, other).tokens
    for f in range(2):
        assert not torch.allclose(forced[:, f], decided.tokens[:, f])
    unknown = torch.full_like(other, -1)
    assert torch.allclose(heads(tokens, mask, unknown).tokens, decided.tokens, atol=1e-6)
    batch_prep = TeacherForcingBatches(ReportFindingLabeler(["margin"], {"margin": ["negative", "positive"]},
                                                            lambda t: {"margin": "negative"}))
    ids = torch.tensor([[0, 3, 0]])
    _, targets, _, kwargs = batch_prep({"features": torch.randn(1, 4, 4), "mask": torch.ones(1, 4, dtype=torch.bool),
                                        "report_ids": ids, "report_mask": torch.ones_like(ids), "reports": ["x"]})
    assert torch.equal(kwargs["finding_labels"], targets[2])


def test_a_finding_token_says_its_class_and_nothing_else_about_the_slide():
    """Two slides with the same classes get the same finding tokens; another class, another token."""
    heads = SlideFindingHeads(16, [3, 2]).eval()
    mask = torch.ones(2, 12, dtype=torch.bool)
    labels = torch.tensor([[1, 0], [1, 0]])
    out = heads(torch.randn(2, 12, 16), mask, labels)
    assert torch.allclose(out.tokens[0], out.tokens[1], atol=1e-6)
    other = heads(torch.randn(2, 12, 16), mask, torch.tensor([[2, 0], [1, 1]])).tokens
    assert not torch.allclose(other[0, 0], out.tokens[0, 0])
    assert torch.allclose(other[0, 1], out.tokens[0, 1], atol=1e-6)
    assert not torch.allclose(other[1, 1], out.tokens[1, 1])


def test_grade_head_classes_are_tiers_whatever_system_or_wording_a_report_uses(tmp_path):
    reports = (["Invasive ductal carcinoma, well differentiated. Margins negative."] * 2
               + ["Invasive ductal carcinoma, grade 1 of 3. Margins negative."] * 2
               + ["Invasive ductal carcinoma, poorly differentiated. Margins negative."] * 2
               + ["Invasive ductal carcinoma, Nottingham grade 3 of 3. Margins positive."] * 2)
    path = _annotation(tmp_path, reports)
    vocabulary = FindingsVocabulary.from_annotation(path)
    # the vocabulary keeps what the reports wrote; the head gets one class per tier
    assert set(vocabulary.grades) == {"grade 1", "grade 3", "well differentiated", "poorly differentiated"}
    labeler = finding_labeler(vocabulary, path, True, min_count=3)
    assert labeler.classes["grade"] == ["grade 1", "grade 3"]
    g = labeler.classes["grade"]
    labels = labeler.labels([reports[0], reports[2], reports[4], reports[6]])
    assert labels[:, labeler.names.index("grade")].tolist() == [g.index("grade 1"), g.index("grade 1"),
                                                               g.index("grade 3"), g.index("grade 3")]
