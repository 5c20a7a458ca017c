"""Finding-consistent decoding: the generated text states the class the finding heads chose."""

from __future__ import annotations

import json

import pytest
import torch

from scripts.engines import build_phrase_rules, finding_labeler, finding_phrase_rules, with_finding_phrases
from scripts.engines.finding_phrases import fallback_sentences, required_findings
from scripts.metrics import FindingsVocabulary
from scripts.networks import HistGen, HistGenConfig
from scripts.networks.finding_phrases import PhraseRules
from scripts.text import Vocabulary

SMALL = dict(
    in_dim=24, d_vf=40, d_model=32, d_ff=48, num_heads=4, num_layers=2, topk=8, cmm_size=16, cmm_dim=32,
    region_size=8, prototype_num=6, vocab_size=30, max_seq_length=12, dropout=0.1,
)
FINDINGS = {"diagnosis": 3, "lymphovascular_invasion": 2}
END = 9  # the sentence end's id in the hand-made rules


def grounded_model(seed: int = 0) -> HistGen:
    torch.manual_seed(seed)
    return HistGen(HistGenConfig(**SMALL, finding_classes=FINDINGS)).eval()


def rules_of(*rows: tuple[list[int], int, int, int]) -> PhraseRules:
    """``(context, word, finding, class)`` rows -> :class:`PhraseRules`."""
    return PhraseRules(
        torch.tensor([c + [-1] * (4 - len(c)) for c, _, _, _ in rows], dtype=torch.long),
        torch.tensor([len(c) for c, _, _, _ in rows]),
        torch.tensor([w for _, w, _, _ in rows]),
        torch.tensor([f for _, _, f, _ in rows]),
        torch.tensor([k for _, _, _, k in rows]),
        torch.tensor([END]),
        torch.zeros(0, dtype=torch.long),
        torch.full([0, 1], -1, dtype=torch.long),
        torch.full([0, 1], -1, dtype=torch.long),
        *(torch.zeros(0, dtype=torch.long) for _ in range(8)),
    )


def test_a_rule_sits_where_the_training_sentences_commit_to_one_class():
    # finding 1 (LVI): [5 6 7] present, [5 6 8 7] absent, [5 6 8 3] absent; finding 0 not stated
    sentences = [([5, 6, 7], [-1, 1]), ([5, 6, 8, 7], [-1, 0]), ([5, 6, 8, 3], [-1, 0]), ([2, 4], [0, -1]),
                 ([2, 3], [2, -1])]
    rules = build_phrase_rules(sentences, 2, END)
    rows = sorted((int(f), tuple(rules.context[k, : int(rules.length[k])].tolist()), int(rules.word[k]), int(c))
                  for k, (f, c) in enumerate(zip(rules.finding, rules.label, strict=True)))
    # "5 6" is shared by both LVI classes: the rules sit at the next word; "5 6 8 7" adds no rule below "8"
    assert rows == [(0, (2,), 3, 2), (0, (2,), 4, 0), (1, (5, 6), 7, 1), (1, (5, 6), 8, 0)]
    assert rules.context.shape[1] == 3 and bool((rules.context[:, -1] == -1).all())
    assert int(rules.sentence_end) == END


def with_gate(rules: PhraseRules, context: list[int], finding: int, words: list[int], may_end: bool = False
              ) -> PhraseRules:
    """``rules`` plus one gate: after ``context`` the sentence names ``finding``, whose training words are ``words``."""
    return rules._replace(
        gate_context=torch.tensor([context + [-1]]), gate_length=torch.tensor([len(context)]),
        gate_finding=torch.tensor([finding]), gate_end=torch.tensor([int(may_end)]),
        word_finding=torch.full([len(words)], finding), word_id=torch.tensor(words), gate_strict=torch.tensor([0]))


def test_gates_sit_where_a_sentence_has_named_a_finding_but_not_its_class():
    # LVI (finding 1): "5 6 7" present, "5 6 8 7" absent; "5 3" states nothing; diagnosis (0): "2 4", "2 3"
    sentences = [([5, 6, 7], [-1, 1]), ([5, 6, 8, 7], [-1, 0]), ([5, 3], [-1, -1]), ([2, 4], [0, -1]),
                 ([2, 3], [2, -1])]
    rules = build_phrase_rules(sentences, 2, END)
    gates = sorted((tuple(rules.gate_context[g, : int(rules.gate_length[g])].tolist()), int(rules.gate_finding[g]),
                    int(rules.gate_end[g])) for g in range(rules.gate_finding.shape[0]))
    # "5" also starts a sentence that states no finding: not a gate; "5 6" names LVI with both classes ahead;
    # "5 6 8" has committed (absent): not a gate
    assert gates == [((2,), 0, 0), ((5, 6), 1, 0)]
    words = sorted(zip(rules.word_finding.tolist(), rules.word_id.tolist(), strict=True))
    assert words == [(0, 2), (0, 3), (0, 4), (1, 5), (1, 6), (1, 7), (1, 8)]
    # a training sentence that ends at the gate's context lets the sentence end there
    ended = build_phrase_rules([*sentences, ([5, 6], [-1, 1])], 2, END)
    at = [g for g in range(ended.gate_finding.shape[0]) if int(ended.gate_length[g]) == 2]
    assert [int(ended.gate_end[g]) for g in at] == [1]


@pytest.mark.parametrize("beam_size", [1, 3])
def test_at_a_gate_only_the_findings_words_may_follow(beam_size):
    model = grounded_model()
    feats = torch.randn(2, 20, SMALL["in_dim"])
    inert = rules_of(([0], 1, 1, 0))  # holds rules, never fires (no sentence starts with the report's end)
    with_finding_phrases(model, inert)
    free = model.generate(feats, beam_size=beam_size, max_len=8)
    first, second = int(free[0, 0]), int(free[0, 1])
    others = [w for w in range(1, SMALL["vocab_size"]) if w not in (first, second)]
    allowed = others[:3]
    with_finding_phrases(model, with_gate(inert, [first], 1, allowed))
    gated = model.generate(feats, beam_size=beam_size, max_len=8)
    for row in range(gated.shape[0]):
        words = gated[row].tolist()
        for t in range(1, len(words)):
            sentence_start = t == 1 or words[t - 2] == END
            if words[t - 1] == first and sentence_start:
                assert words[t] in allowed, (row, words)
    if beam_size == 1:
        assert int(gated[0, 0]) == first and int(gated[0, 1]) in allowed
    # the sentence end is a finding's word only where a training sentence ended at the gate
    with_finding_phrases(model, with_gate(inert._replace(sentence_end=torch.tensor([second])), [first], 1, allowed,
                                          may_end=True))
    if beam_size == 1:
        assert torch.equal(model.generate(feats, beam_size=1, max_len=8)[0, :2], free[0, :2])
    assert torch.equal(torch.jit.script(model).generate(feats, beam_size=beam_size, max_len=8),
                       model.generate(feats, beam_size=beam_size, max_len=8))
    # rules saved before the gates existed load without gates and decode as before
    with_finding_phrases(model, with_gate(inert, [first], 1, allowed))
    old = {k: v for k, v in model.state_dict().items() if ".phrase_gate" not in k and ".phrase_word_" not in k}
    built = grounded_model(seed=2)
    built.load_state_dict(old)
    assert built.findings.phrase_rules().gate_finding.shape == (0,)
    assert torch.equal(built.generate(feats, beam_size=beam_size, max_len=8), free)


def test_a_start_committed_to_a_class_its_words_do_not_state_yet_is_a_strict_gate():
    # LVI (finding 1): "5 6 7" present, "5 8 9" and "5 8 4 9" absent; a reader understands a start only once it
    # holds 7 (present) or 9 (absent)
    sentences = [([5, 6, 7], [-1, 1]), ([5, 8, 9], [-1, 0]), ([5, 8, 4, 9], [-1, 0]), ([2, 3], [-1, -1])]

    def reads(words):
        return [-1, 1 if 7 in words else 0 if 9 in words else -1]

    rules = build_phrase_rules(sentences, 2, END, reads=reads)
    gates = {tuple(rules.gate_context[g, : int(rules.gate_length[g])].tolist()): int(rules.gate_strict[g])
             for g in range(rules.gate_finding.shape[0])}
    # "5": both classes ahead (loose); "5 6", "5 8", "5 8 4": committed, not yet said (strict); "5 6 7" says it
    assert gates == {(5,): 0, (5, 6): 1, (5, 8): 1, (5, 8, 4): 1}
    order = list(gates)
    allowed = sorted((order[g], w) for g, w in zip(rules.strict_gate.tolist(), rules.strict_word.tolist(),
                                                      strict=True))
    assert allowed == [((5, 6), 7), ((5, 8), 4), ((5, 8), 9), ((5, 8, 4), 9)]
    # without a reader there are no strict gates
    assert int(build_phrase_rules(sentences, 2, END).gate_strict.sum()) == 0


@pytest.mark.parametrize("beam_size", [1, 3])
def test_at_a_strict_gate_only_the_training_continuations_may_follow(beam_size):
    model = grounded_model()
    feats = torch.randn(2, 20, SMALL["in_dim"])
    inert = rules_of(([0], 1, 1, 0))
    with_finding_phrases(model, inert)
    free = model.generate(feats, beam_size=beam_size, max_len=8)
    first, second = int(free[0, 0]), int(free[0, 1])
    finding_words = [w for w in range(1, SMALL["vocab_size"]) if w != first]  # second among them
    following = [w for w in finding_words if w != second][:1]
    strict = with_gate(inert, [first], 1, finding_words)._replace(
        gate_strict=torch.tensor([1]), strict_gate=torch.tensor([0]), strict_word=torch.tensor(following))
    with_finding_phrases(model, strict)
    out = model.generate(feats, beam_size=beam_size, max_len=8)
    for row in range(out.shape[0]):
        words = out[row].tolist()
        for t in range(1, len(words)):
            if words[t - 1] == first and (t == 1 or words[t - 2] == END):
                assert words[t] == following[0], (row, words)
    if beam_size == 1:
        assert out[0, :2].tolist() == [first, following[0]]
    # the same gate, not strict: the finding's words (``second`` among them) may follow
    with_finding_phrases(model, strict._replace(gate_strict=torch.tensor([0])))
    if beam_size == 1:
        assert torch.equal(model.generate(feats, beam_size=1, max_len=8)[0, :2], free[0, :2])
    with pytest.raises(ValueError, match="strict_gate names a gate outside"):
        with_finding_phrases(model, strict._replace(strict_gate=torch.tensor([1])))


def test_bad_gates_are_refused():
    model = grounded_model()
    inert = rules_of(([0], 1, 1, 0))
    with pytest.raises(ValueError, match="gate_finding names a finding outside"):
        with_finding_phrases(model, with_gate(inert, [3], 2, [4]))
    with pytest.raises(ValueError, match="one row per gate"):
        with_finding_phrases(model, with_gate(inert, [3], 1, [4])._replace(gate_end=torch.tensor([0, 1])))
    with pytest.raises(ValueError, match="at least one word"):
        with_finding_phrases(model, with_gate(inert, [], 1, [4]))
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        model.findings.check_phrase_rules(with_gate(inert, [3], 1, [SMALL["vocab_size"] + 5]), SMALL["vocab_size"])


@pytest.mark.parametrize("beam_size", [1, 3])
def test_decoding_never_writes_a_word_that_states_a_class_the_heads_did_not_choose(beam_size):
    model = grounded_model()
    feats = torch.randn(3, 20, SMALL["in_dim"])
    # with rules held, beam search also bans within-sentence trigram repeats: compare with an inert rule
    with_finding_phrases(model, rules_of(([0], 1, 1, 0)))  # no sentence starts with the end token
    free = model.generate(feats, beam_size=beam_size, max_len=8)
    decisions = model.finding_decisions(model.encode(feats))
    first, second = int(free[0, 0]), int(free[0, 1])
    # the first word commits the sentence to an LVI class the heads did not choose for slide 0
    wrong = 1 - int(decisions[0, 1])
    with_finding_phrases(model, rules_of(([], first, 1, wrong)))
    banned = model.generate(feats, beam_size=beam_size, max_len=8)
    assert int(banned[0, 0]) != first
    # a rule for the class the heads chose changes nothing; nor does one whose context is not followed
    other = first % (SMALL["vocab_size"] - 1) + 1  # a word id that is not ``first``
    with_finding_phrases(model, rules_of(([], first, 1, 1 - wrong), ([other], second, 1, wrong)))
    assert torch.equal(model.generate(feats, beam_size=beam_size, max_len=8)[0], free[0])
    # a rule with a context applies after that context only
    with_finding_phrases(model, rules_of(([first], second, 1, wrong)))
    after = model.generate(feats, beam_size=beam_size, max_len=8)
    assert (int(after[0, 0]), int(after[0, 1])) != (first, second)
    if beam_size == 1:
        assert int(after[0, 0]) == first


def test_rules_apply_again_after_each_sentence_end():
    model = grounded_model()
    feats = torch.randn(1, 20, SMALL["in_dim"])
    free = model.generate(feats, beam_size=1, max_len=8)
    decisions = model.finding_decisions(model.encode(feats))
    wrong = 1 - int(decisions[0, 1])
    # the second generated word ends a sentence: the third word is a sentence's first word again
    first, second, third = (int(v) for v in free[0, :3])
    assert third != first  # (seeded) else the rule would change the first word too
    rules = rules_of(([], third, 1, wrong))._replace(sentence_end=torch.tensor([second]))
    with_finding_phrases(model, rules)
    out = model.generate(feats, beam_size=1, max_len=8)
    assert int(out[0, 0]) == first and int(out[0, 1]) == second and int(out[0, 2]) != third
    # without the sentence end the third word is not a sentence's first word: kept
    with_finding_phrases(model, rules._replace(sentence_end=torch.tensor([-1])))
    assert torch.equal(model.generate(feats, beam_size=1, max_len=8), free)


def test_rules_travel_with_the_weights_and_the_scripted_model():
    model = grounded_model()
    feats = torch.randn(2, 20, SMALL["in_dim"])
    first = int(model.generate(feats, beam_size=3, max_len=8)[0, 0])
    with_finding_phrases(model, rules_of(([], first, 0, 0), ([], first, 0, 1), ([], first, 0, 2)))
    constrained = model.generate(feats, beam_size=3, max_len=8)
    assert int(constrained[0, 0]) != first and int(constrained[1, 0]) != first
    fresh = grounded_model(seed=1)
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh.generate(feats, beam_size=3, max_len=8), constrained)
    assert torch.equal(torch.jit.script(model).generate(feats, beam_size=3, max_len=8), constrained)
    # a model saved before the rules existed loads with none
    old = {k: v for k, v in model.state_dict().items() if ".phrase_" not in k}
    built = grounded_model(seed=2)
    built.load_state_dict(old)
    assert built.findings.phrase_rules().word.shape == (0,)
    unconstrained = grounded_model().generate(feats, beam_size=3, max_len=8)
    assert torch.equal(built.generate(feats, beam_size=3, max_len=8), unconstrained)


def test_bad_rules_are_refused():
    model = grounded_model()
    with pytest.raises(ValueError, match="class outside"):
        with_finding_phrases(model, rules_of(([], 3, 1, 2)))
    with pytest.raises(ValueError, match="finding outside"):
        with_finding_phrases(model, rules_of(([], 3, 2, 0)))


def test_rules_read_from_a_model_file_are_checked_and_the_file_named(tmp_path):
    """A ``model.pt`` whose saved rules name a word the decoder cannot write is refused at load, not mid-decoding."""
    from scripts.engines.model_files import load_report_model, save_report_model

    model = grounded_model()
    vocab = Vocabulary(["<unk>", *(f"w{i}" for i in range(SMALL["vocab_size"] - 1))])
    with_finding_phrases(model, rules_of(([], 3, 0, 1)))
    save_report_model(tmp_path / "ok", model, vocab)
    loaded, _ = load_report_model(tmp_path / "ok")
    assert torch.equal(loaded.findings.phrase_rules().word, torch.tensor([3]))

    state = model.state_dict()
    state["findings.phrase_word"] = torch.tensor([SMALL["vocab_size"] + 5])
    save_report_model(tmp_path / "bad_word", model, vocab)
    torch.save(state, tmp_path / "bad_word" / "model.pt")
    with pytest.raises(ValueError, match=r"bad_word/model.pt: phrase rules name word ids outside"):
        load_report_model(tmp_path / "bad_word")

    state = model.state_dict()
    state["findings.phrase_finding"] = torch.tensor([7])
    save_report_model(tmp_path / "bad_finding", model, vocab)
    torch.save(state, tmp_path / "bad_finding" / "model.pt")
    with pytest.raises(ValueError, match=r"bad_finding/model.pt: phrase rules name a finding outside"):
        load_report_model(tmp_path / "bad_finding")


def _training_rules(tmp_path, reports: list[str]):
    """The vocabulary, labeler and phrase rules of a training annotation holding ``reports``."""
    items = [{"id": f"s{i}", "report": r} for i, r in enumerate(reports)]
    path = tmp_path / "annotation.json"
    path.write_text(json.dumps({"train": items, "val": items[:1], "test": items[:1]}), encoding="utf-8")
    vocab = Vocabulary.build(reports, threshold=1)
    labeler = finding_labeler(FindingsVocabulary.from_annotation(path), path, True)
    return vocab, labeler, finding_phrase_rules(labeler, vocab, path), path


def _readable_rules(rules, labeler, vocab, name: str) -> set[tuple[str, str, str]]:
    """``(context, word, class)`` of the rules of finding ``name``, as text."""
    f = labeler.names.index(name)
    found = set()
    for k in range(rules.word.shape[0]):
        if int(rules.finding[k]) == f:
            context = " ".join(vocab.id_to_token(i) for i in rules.context[k, : int(rules.length[k])].tolist())
            found.add((context, vocab.id_to_token(int(rules.word[k])), labeler.classes[name][int(rules.label[k])]))
    return found


def test_rules_of_a_training_annotation_name_the_words_that_state_lvi(tmp_path):
    reports = (["Invasive ductal carcinoma. Lymphovascular invasion present. Margins negative."] * 3
               + ["Invasive lobular carcinoma. Lymphovascular invasion not identified. Margins negative."] * 3
               + ["Invasive lobular carcinoma. Lymphovascular invasion absent. Margins positive."] * 3)
    vocab, labeler, rules, path = _training_rules(tmp_path, reports)
    lvi = labeler.names.index("lymphovascular_invasion")
    assert _readable_rules(rules, labeler, vocab, "lymphovascular_invasion") == {
        ("lymphovascular invasion", "present", "present"), ("lymphovascular invasion", "not", "absent"),
        ("lymphovascular invasion", "absent", "absent")}
    assert int(rules.sentence_end) == vocab.token_to_id(".")
    # every report states LVI and the margin: both required; each class's fallback is its training sentence
    required = dict(zip(labeler.names, rules.required.tolist(), strict=True))
    assert required["lymphovascular_invasion"] == 1 and required["margin"] == 1
    offset = sum(len(labeler.classes[n]) for n in labeler.names[:lvi])
    texts = {c: " ".join(vocab.id_to_token(i) for i in rules.fallback[offset + k].tolist() if i >= 0)
             for k, c in enumerate(labeler.classes["lymphovascular_invasion"])}
    assert texts == {"present": "lymphovascular invasion present .", "absent": "lymphovascular invasion absent ."}
    assert finding_phrase_rules(labeler, vocab, path, "false") is None


def test_gates_of_a_training_annotation_hold_a_finding_sentence_until_it_says_its_class(tmp_path):
    free, involved = "The carcinoma is clear of all margins.", "Tumour is present at the inked margin."
    reports = ([f"Clear cell carcinoma. Lymphovascular invasion is identified. {free}"] * 3
               + [f"Papillary carcinoma. Lymphovascular invasion is not seen. {involved}"] * 3
               + [f"Clear cell carcinoma. No lymphovascular invasion. {free}"] * 3)
    vocab, labeler, rules, _ = _training_rules(tmp_path, reports)

    def text(g: int) -> str:
        return " ".join(vocab.id_to_token(i) for i in rules.gate_context[g, : int(rules.gate_length[g])].tolist())

    gates = {text(g): (labeler.names[int(rules.gate_finding[g])], int(rules.gate_strict[g]))
             for g in range(rules.gate_finding.shape[0])}
    # named, both classes ahead: only LVI's words may follow
    assert gates["lymphovascular invasion is"] == ("lymphovascular_invasion", 0)
    # committed to a free margin ("clear") before saying "margins": only the training words may follow
    assert gates["the carcinoma is clear"] == ("margin", 1)
    assert gates["the carcinoma is clear of all"] == ("margin", 1)
    assert "the carcinoma is clear of all margins" not in gates  # said: the sentence is free again
    following = {(text(int(g)), vocab.id_to_token(int(w)))
                 for g, w in zip(rules.strict_gate, rules.strict_word, strict=True)}
    assert ("the carcinoma is clear", "of") in following
    assert not any(context == "the carcinoma is clear" and word != "of" for context, word in following)
    lvi_words = {vocab.id_to_token(int(w)) for f, w in zip(rules.word_finding, rules.word_id, strict=True)
                 if labeler.names[int(f)] == "lymphovascular_invasion"}
    assert lvi_words == {"lymphovascular", "invasion", "is", "identified", "not", "seen", "no"}


def test_grade_rules_commit_at_the_tier_whatever_system_the_sentence_names(tmp_path):
    """One grade class per tier: "fuhrman 2" and "isup 2" are the same head class, so a head that chose tier 2
    never bans "ii" after "isup nucleolar grade" (with one class per system it banned every tier there)."""
    reports = []
    for tier, roman in ((1, "I"), (2, "II"), (3, "III")):
        reports += [f"Clear cell renal cell carcinoma, ISUP nucleolar grade {roman}. Margins negative.",
                    f"Clear cell renal cell carcinoma, Fuhrman nuclear grade {tier} of 4. Margins negative.",
                    f"Papillary renal cell carcinoma, ISUP nucleolar grade {roman}. Margins positive."]
    vocab, labeler, rules, _ = _training_rules(tmp_path, reports)
    assert labeler.classes["grade"] == ["grade 1", "grade 2", "grade 3"]
    found = {(context.split()[-1], word, label)
             for context, word, label in _readable_rules(rules, labeler, vocab, "grade")}
    # the commit words are the tier's numerals, in both systems' sentences
    assert ("grade", "ii", "grade 2") in found and ("grade", "iii", "grade 3") in found
    assert {label for _, _, label in found} == {"grade 1", "grade 2", "grade 3"}
    assert not any(word in {"isup", "fuhrman", "nucleolar", "nuclear"} for _, word, _ in found)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_a_report_that_leaves_out_a_required_finding_gets_the_fallback_sentence_of_the_heads_class(beam_size):
    model = grounded_model()
    with torch.no_grad():
        model.decoder.logit.bias[0] += 8.0  # the reports end after their first word
    feats = torch.randn(2, 20, SMALL["in_dim"])
    free = model.generate(feats, beam_size=beam_size, max_len=12)
    assert int((free > 0).sum(dim=1).max()) <= 3
    decisions = model.finding_decisions(model.encode(feats))
    written = set(free.reshape(-1).tolist())
    never = [w for w in range(1, SMALL["vocab_size"]) if w not in written and w != END]
    word = never[0]  # a word the free reports never write: no report states LVI through the rule
    # fallback rows: diagnosis classes 0-2, then LVI absent (3) and present (4)
    fallback = torch.full([5, 4], -1, dtype=torch.long)
    fallback[3, :3] = torch.tensor([never[1], never[2], END])
    fallback[4, :3] = torch.tensor([never[3], never[4], END])
    rules = rules_of(([], word, 1, 0), ([], never[5], 1, 1))._replace(fallback=fallback)
    with_finding_phrases(model, rules._replace(required=torch.tensor([0, 0])))
    assert torch.equal(model.generate(feats, beam_size=beam_size, max_len=12), free)  # not required: no change
    with_finding_phrases(model, rules._replace(required=torch.tensor([0, 1])))
    out = model.generate(feats, beam_size=beam_size, max_len=12)
    for b in range(2):
        ids = [v for v in free[b].tolist() if v]
        ids += [] if ids[-1] == END else [END]  # the report's last sentence is closed first
        appended = fallback[3 + int(decisions[b, 1]), :3].tolist()
        assert out[b].tolist() == ids + appended + [0] * (12 - len(ids) - 3)
    assert torch.equal(torch.jit.script(model).generate(feats, beam_size=beam_size, max_len=12), out)
    # a report that states LVI through a rule word keeps its text
    stated = free.clone()
    stated[0, 0] = word
    from scripts.networks.finding_phrases import complete_reports, stated_findings

    assert stated_findings(model.findings.phrase_rules(), stated)[:, 1].tolist() == [True, False]
    completed = complete_reports(model.findings.phrase_rules(), model.findings.offsets, decisions, stated)
    assert torch.equal(completed[0], stated[0]) and not torch.equal(completed[1], stated[1])
    # a model saved before required findings existed loads with none required and no fallback
    old = {k: v for k, v in model.state_dict().items() if not k.endswith(("phrase_required", "phrase_fallback"))}
    built = grounded_model(seed=2)
    built.load_state_dict(old)
    assert built.findings.phrase_rules().required.shape == (0,)
    assert built.findings.phrase_rules().fallback.shape == (0, 1)
    with pytest.raises(ValueError, match="required must have one entry per finding"):
        with_finding_phrases(model, rules._replace(required=torch.tensor([1])))
    with pytest.raises(ValueError, match="fallback must have one row per class"):
        with_finding_phrases(model, rules._replace(fallback=fallback[:4]))


def test_fallback_sentences_are_the_most_frequent_sentence_stating_the_class_alone():
    sentences = [([1, 2, 3], [0, -1]), ([1, 2, 3], [0, -1]), ([4, 5], [0, 1]), ([4, 5], [0, 1]), ([4, 5], [0, 1]),
                 ([6, 7], [-1, 1]), ([8], [-1, 0]), ([9, 10], [1, 0]), ([9, 10], [1, 0])]
    table = fallback_sentences(sentences, [2, 2], END)
    rows = [[w for w in row if w >= 0] for row in table.tolist()]
    # finding 0 class 0: [1 2 3] states it alone (the more frequent [4 5] also states finding 1); finding 0
    # class 1 is only stated beside finding 1 ([9 10]): no sentence, it would state finding 1's value too
    assert rows == [[1, 2, 3, END], [], [8, END], [6, 7, END]]


def test_required_findings_are_those_nearly_every_report_states_through_a_rule_word():
    # finding 0 rule at [2] -> 3, finding 1 rule at [5 6] -> 7 / 8
    sentences = [([5, 6, 7], [-1, 1]), ([5, 6, 8], [-1, 0]), ([2, 4], [0, -1]), ([2, 3], [2, -1])]
    rules = build_phrase_rules(sentences, 2, END)
    assert rules.required.tolist() == [0, 0]
    reports = [[[2, 4], [5, 6, 7]]] * 19 + [[[2, 3]]]  # 19 of 20 state finding 1; all 20 state finding 0
    assert required_findings(rules, reports).tolist() == [1, 1]
    assert required_findings(rules, reports, share=0.96).tolist() == [1, 0]
    assert required_findings(rules, []).tolist() == [0, 0]


def test_the_repeats_found_are_those_of_the_current_sentence_only():
    from scripts.networks.finding_phrases import sentence_trigram_repeats

    seqs = torch.tensor([[[5, 6, 7, 5, 6],  # "5 6" was followed by 7 in this sentence: 7 is banned
                          [5, 6, END, 5, 6],  # the earlier "5 6" was in the sentence before
                          [4, 5, 6, 7, END]]])  # the sentence just ended: nothing to repeat yet
    repeats = sentence_trigram_repeats(seqs, END, 30)
    assert repeats.shape == (1, 3, 30)
    assert repeats[0, 0].nonzero().flatten().tolist() == [7]
    assert not bool(repeats[0, 1:].any())


def _has_sentence_trigram_repeat(ids: list[int]) -> bool:
    sentence: list[int] = []
    for word in ids:
        if word in (0, END):
            trigrams = [tuple(sentence[i : i + 3]) for i in range(len(sentence) - 2)]
            if len(trigrams) != len(set(trigrams)):
                return True
            sentence = []
        else:
            sentence.append(word)
    trigrams = [tuple(sentence[i : i + 3]) for i in range(len(sentence) - 2)]
    return len(trigrams) != len(set(trigrams))


def test_beam_search_with_finding_rules_never_repeats_a_trigram_within_a_sentence():
    model = grounded_model()
    with torch.no_grad():  # a decoder stuck on two words: "11 12 11 12 ..." whatever the slide
        model.decoder.logit.weight.zero_()
        model.decoder.logit.bias.fill_(-5.0)
        model.decoder.logit.bias[11] = 5.0
        model.decoder.logit.bias[12] = 4.0
    feats = torch.randn(2, 20, SMALL["in_dim"])
    stuck = model.generate(feats, beam_size=3, max_len=10)
    assert _has_sentence_trigram_repeat(stuck[0].tolist())  # no rules, no sentence end: reference semantics
    model.findings.set_phrase_rules(rules_of(([20], 21, 0, 1)))
    ids = model.generate(feats, beam_size=3, max_len=10)
    for row in ids.tolist():
        assert not _has_sentence_trigram_repeat(row), row
