"""Metrics: pycocoevalcap caption scores, METEOR with and without Java, Ignite metric, key phrases."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import ignite.distributed as idist
import pytest
from ignite.engine import Engine, Events

from scripts.metrics import (
    CaptionMetrics,
    CaptionScorer,
    MeteorJar,
    caption_scores,
    find_java,
    find_key_phrases,
    key_phrase_accuracy,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
FAST = ("BLEU", "ROUGE_L", "CIDEr")  # no JVM
needs_java = pytest.mark.skipif(find_java() is None, reason="java is not on PATH (METEOR needs Java 8+)")

REFERENCES = [
    "the tumor is a carcinoma .",
    "margins free of tumor .",
    "grade 3 adenocarcinoma of the colon .",
    "",
    "lymph nodes negative .",
]
HYPOTHESES = [
    "the tumor is carcinoma .",
    "margins involved by tumor .",
    "",
    "adenocarcinoma",
    "lymph nodes negative .",
]
#: METEOR of REFERENCES/HYPOTHESES measured with pycocoevalcap's own Meteor() wrapper (same jar).
PYCOCO_METEOR = 0.3059530450973984


# ------------------------------------------------------------------ BLEU / ROUGE-L / CIDEr
def test_identical_texts_score_one():
    texts = ["squamous cell carcinoma of the lung .", "margins free of tumor ."]
    scores = caption_scores(texts, texts, metrics=FAST)
    assert list(scores) == ["BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "ROUGE_L", "CIDEr"]
    for key in ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "ROUGE_L"):
        assert scores[key] == pytest.approx(1.0, abs=1e-6), key


def test_bleu_by_hand_with_brevity_penalty():
    # hyp 5 words, ref 6: unigrams 5/5, bigrams 3/4 (no "on the", "the mat"), BP = exp(1 - 6/5)
    scores = caption_scores(["the cat sat on the mat"], ["the cat sat on mat"], metrics=("BLEU",))
    brevity = math.exp(1 - 6 / 5)
    assert scores["BLEU_1"] == pytest.approx(brevity * 1.0, abs=1e-6)
    assert scores["BLEU_2"] == pytest.approx(brevity * math.sqrt(3 / 4), abs=1e-6)
    # trigrams 2/3, 4-grams 1/2
    assert scores["BLEU_4"] == pytest.approx(brevity * (1 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25, abs=1e-6)


def test_bleu_uses_the_closest_reference_length():
    # refs of 2 and 5 words; the 4-word hypothesis is closest to 5, so BP = exp(1 - 5/4)
    # ("shortest" or "average" reference lengths would give no brevity penalty)
    scores = caption_scores([["a b", "a b c e f"]], ["a b c d"], metrics=("BLEU",))
    assert scores["BLEU_1"] == pytest.approx(3 / 4 * math.exp(1 - 5 / 4), abs=1e-6)


def test_rouge_l_by_hand():
    # LCS = 5 words; precision 5/5, recall 5/6, F with beta = 1.2
    precision, recall, beta = 1.0, 5 / 6, 1.2
    expected = (1 + beta**2) * precision * recall / (recall + beta**2 * precision)
    scores = caption_scores(["the cat sat on the mat"], ["the cat sat on mat"], metrics=("ROUGE_L",))
    assert scores == {"ROUGE_L": pytest.approx(expected, abs=1e-9)}


def test_cider_edge_cases():
    # document frequencies come from the references: one pair gives idf 0, hence CIDEr 0
    assert caption_scores(["a b c"], ["a b c"], metrics=("CIDEr",))["CIDEr"] == 0.0
    assert caption_scores(["", " "], ["a", "b"], metrics=("CIDEr",))["CIDEr"] == 0.0  # pycocoevalcap would crash
    assert caption_scores(["a b c", "d e f"], ["a b c", "d e f"], metrics=("CIDEr",))["CIDEr"] > 1.0


def test_empty_hypotheses_score_zero_not_crash():
    scores = caption_scores(["a b c d", "e f g h"], ["", ""], metrics=FAST)
    assert all(value == pytest.approx(0.0, abs=1e-6) for value in scores.values())


def test_bad_arguments():
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        caption_scores(["a", "b"], ["a"], metrics=FAST)
    with pytest.raises(ValueError, match="no texts"):
        caption_scores([], [], metrics=FAST)
    with pytest.raises(ValueError, match="unknown caption metric"):
        CaptionScorer(("BLEU", "SPICE"))
    with pytest.raises(TypeError, match="hypothesis 0"):
        caption_scores(["a"], [None], metrics=FAST)  # type: ignore[list-item]


# ------------------------------------------------------------------ METEOR
@needs_java
@pytest.mark.slow  # JVM start and METEOR's paraphrase tables: 9-15 s on 2 cores
def test_meteor_with_java_matches_pycocoevalcap_value_and_reuses_one_jvm():
    with CaptionScorer() as scorer:
        scores = scorer.score(REFERENCES, HYPOTHESES)
        assert scores["METEOR"] == pytest.approx(PYCOCO_METEOR, abs=1e-12)
        process = scorer._meteor._process
        same = scorer.score(["margins free of tumor ."], ["margins free of tumor ."])
        assert same["METEOR"] == pytest.approx(1.0, abs=1e-9)
        assert scorer._meteor._process is process and process.poll() is None  # one JVM for both calls
    assert process.poll() is not None  # closed with the scorer


@needs_java
@pytest.mark.slow  # two JVMs: about 20-30 s on 2 cores
def test_meteor_equals_pycocoevalcap_wrapper_on_fixture_like_reports():
    from pycocoevalcap.meteor.meteor import Meteor

    refs = [r for r in REFERENCES if r] * 3
    hyps = [h + " of the lung ." for h in HYPOTHESES[: len(refs) // 3]] * 3
    pycoco = Meteor()
    expected_corpus, expected_each = pycoco.compute_score(
        {i: [r] for i, r in enumerate(refs)}, {i: [h] for i, h in enumerate(hyps)}
    )
    with MeteorJar() as jar:
        corpus, each = jar.score([[r] for r in refs], hyps)
    assert corpus == expected_corpus and each == expected_each


def _run_scorer_subprocess(env_path: str, java: str = "java") -> subprocess.CompletedProcess:
    code = (
        "import json, logging\n"
        "logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(message)s')\n"
        "from scripts.metrics import caption_scores\n"
        f"refs, hyps = {REFERENCES!r}, {HYPOTHESES!r}\n"
        f"first = caption_scores(refs, hyps, java={java!r})\n"
        f"second = caption_scores(refs, hyps, java={java!r})\n"
        "print(json.dumps([first, second]))\n"
    )
    env = {**os.environ, "PATH": env_path}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_meteor_is_skipped_without_java(tmp_path):
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    done = _run_scorer_subprocess(str(empty_bin))
    assert done.returncode == 0, done.stderr
    first, second = json.loads(done.stdout)
    assert "METEOR" not in first and "METEOR" not in second
    assert first == second == caption_scores(REFERENCES, HYPOTHESES, metrics=FAST)
    assert done.stderr.count("METEOR is skipped") == 1  # warned once per process
    assert "'java' is not on PATH" in done.stderr


def test_meteor_is_skipped_when_the_jvm_fails_to_start(tmp_path):
    broken_java = tmp_path / "java"
    broken_java.write_text("#!/bin/sh\necho 'Error: Could not create the Java Virtual Machine.' >&2\nexit 1\n")
    broken_java.chmod(0o755)
    done = _run_scorer_subprocess(f"{tmp_path}:{os.environ.get('PATH', '')}")
    assert done.returncode == 0, done.stderr
    first, _ = json.loads(done.stdout)
    assert "METEOR" not in first and "BLEU_4" in first
    assert "JVM exited with code 1" in done.stderr and "Could not create the Java Virtual Machine" in done.stderr
    assert done.stderr.count("METEOR is skipped") == 1


# ------------------------------------------------------------------ Ignite
def test_ignite_metric_over_engine_iterations():
    batches = [
        (HYPOTHESES[:2], REFERENCES[:2]),
        (HYPOTHESES[2:], REFERENCES[2:]),
        (["margins free of tumor ."], ["margins free of tumor ."]),
        (["carcinoma of the lung ."], ["adenocarcinoma of the lung ."]),
    ]
    engine = Engine(lambda engine, batch: batch)
    metric = CaptionMetrics(metrics=FAST, key_phrases={"diagnosis": ["carcinoma", "adenocarcinoma"]})
    metric.attach(engine, "caption")
    seen = []
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: seen.append(dict(e.state.metrics)))
    engine.run(batches, max_epochs=2, epoch_length=2)  # epoch 1: batches 0-1, epoch 2: batches 2-3

    first = caption_scores(REFERENCES, HYPOTHESES, metrics=FAST)
    second = caption_scores(
        ["margins free of tumor .", "adenocarcinoma of the lung ."],
        ["margins free of tumor .", "carcinoma of the lung ."],
        metrics=FAST,
    )
    for key, value in first.items():
        assert seen[0][key] == pytest.approx(value), key
    for key, value in second.items():
        assert engine.state.metrics[key] == pytest.approx(value), key  # reset between epochs
    assert engine.state.metrics["caption"]["BLEU_4"] == engine.state.metrics["BLEU_4"]
    assert engine.state.metrics["diagnosis_accuracy"] == 0.0 and engine.state.metrics["diagnosis_eligible"] == 1.0
    assert seen[0]["diagnosis_eligible"] == 2.0


def test_ignite_metric_accepts_mapping_output_and_rejects_mismatch():
    metric = CaptionMetrics(metrics=("BLEU",))
    metric.update({"hypotheses": ["a b c d"], "references": ["a b c d"], "ids": ["s1"]})
    metric.update((["a b c d"], ["a b c d"], ["s1"]))  # the same slide twice (e.g. sampler padding): counted once
    assert metric._gathered() == (["a b c d"], ["a b c d"])
    assert metric.compute()["BLEU_1"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        metric.update((["a", "b"], ["a"]))
    metric.reset()
    with pytest.raises(RuntimeError, match="at least one report"):
        metric.compute()


def _distributed_worker(local_rank: int, results_dir: str) -> None:
    rank = idist.get_rank()
    metric = CaptionMetrics(metrics=FAST)
    # rank 0 holds pairs 0-2, rank 1 pairs 2-4: pair 2 appears twice, as DistributedSampler padding would
    rows = list(range(3)) if rank == 0 else list(range(2, 5))
    metric.update(([HYPOTHESES[i] for i in rows], [REFERENCES[i] for i in rows], [f"s{i}" for i in rows]))
    Path(results_dir, f"rank{rank}.json").write_text(json.dumps(metric.compute()))


def test_ignite_metric_gathers_texts_across_ranks(tmp_path):
    with idist.Parallel(backend="gloo", nproc_per_node=2) as parallel:
        parallel.run(_distributed_worker, str(tmp_path))
    per_rank = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    expected = caption_scores(REFERENCES, HYPOTHESES, metrics=FAST)
    for result in per_rank:
        assert result == pytest.approx(expected)


# ------------------------------------------------------------------ key phrases
DIAGNOSES = {
    "diagnosis": ["squamous cell carcinoma", "adenocarcinoma", "carcinoma", "melanoma"],
    "grade": ["well differentiated", "moderately differentiated", "poorly differentiated"],
}


def test_key_phrase_accuracy_per_group():
    references = [
        "Squamous cell carcinoma, poorly differentiated.",  # diagnosis SCC, grade poor
        "Adenocarcinoma; moderately differentiated.",  # adeno, moderate
        "Melanoma with adenocarcinoma component.",  # two diagnoses: not eligible for accuracy
        "Benign colonic mucosa.",  # no diagnosis phrase
    ]
    generated = [
        "squamous cell carcinoma moderately differentiated .",  # diagnosis right, grade wrong
        "adenocarcinoma , moderately differentiated . melanoma .",  # extra melanoma: diagnosis wrong
        "melanoma and adenocarcinoma .",
        "carcinoma .",
    ]
    result = key_phrase_accuracy(generated, references, DIAGNOSES)
    assert result["diagnosis_eligible"] == 2 and result["diagnosis_correct"] == 1
    assert result["diagnosis_accuracy"] == 0.5
    assert result["diagnosis_set_eligible"] == 3 and result["diagnosis_set_accuracy"] == pytest.approx(2 / 3)
    assert result["grade_eligible"] == 2 and result["grade_correct"] == 1 and result["grade_accuracy"] == 0.5


def test_key_phrase_matching_rules():
    phrases = DIAGNOSES["diagnosis"]
    # longest first: "squamous cell carcinoma" does not also count as "carcinoma"
    assert find_key_phrases("Squamous cell carcinoma of the lung.", phrases) == {"squamous cell carcinoma"}
    # whole words only, after the same cleaning as the reports
    assert find_key_phrases("ADENOCARCINOMAS and carcinomatosis", ["carcinoma", "adenocarcinoma"]) == set()
    assert find_key_phrases("Grade: moderately-differentiated", ["moderately differentiated"]) == set()
    assert find_key_phrases("moderately (differentiated)", ["moderately differentiated"]) == {
        "moderately differentiated"
    }
    # a phrase never spans a sentence end
    assert find_key_phrases("squamous. cell carcinoma", phrases) == {"carcinoma"}


def test_key_phrase_plain_list_and_edge_cases():
    result = key_phrase_accuracy(["carcinoma ."], ["carcinoma"], ["carcinoma", "melanoma"])
    assert result["key_phrase_accuracy"] == 1.0 and result["key_phrase_eligible"] == 1
    none_eligible = key_phrase_accuracy(["x"], ["benign"], {"diagnosis": ["carcinoma"]})
    assert math.isnan(none_eligible["diagnosis_accuracy"]) and none_eligible["diagnosis_eligible"] == 0
    with pytest.raises(ValueError, match="1 generated texts but 2 references"):
        key_phrase_accuracy(["a"], ["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no words after cleaning"):
        key_phrase_accuracy(["a"], ["a"], ["..."])
    with pytest.raises(TypeError):
        key_phrase_accuracy(["a"], ["a"], "carcinoma")


@needs_java
@pytest.mark.slow  # one JVM start
def test_meteor_started_early_is_the_one_that_scores():
    metric = CaptionMetrics(metrics=("METEOR",), start_meteor_early=True)
    jar = metric._scorer._meteor
    assert jar is not None and jar.running  # loading before any report is scored
    metric.update((["margins free of tumor ."], ["margins free of tumor ."]))
    assert metric.compute()["METEOR"] == pytest.approx(1.0, abs=1e-9)
    assert metric._scorer._meteor is jar
    metric.close()
    assert not jar.running


def test_meteor_started_early_without_java_is_skipped_with_the_usual_warning(caplog):
    scorer = CaptionScorer(("BLEU", "METEOR"), java="no-such-java-here")
    with caplog.at_level("WARNING"):
        scorer.start_meteor()
    assert scorer.meteor_available is False
    assert "METEOR" not in scorer.score(["margins free ."], ["margins free ."])
    assert CaptionScorer(("BLEU",)).start_meteor() is None  # no METEOR asked for: nothing starts
