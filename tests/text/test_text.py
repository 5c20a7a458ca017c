"""Report text: HistGen-compatible cleaning, vocabulary, encode/decode, vocab.json, bad input."""

from __future__ import annotations

import doctest
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import scripts.text.report_cleaning
import scripts.text.vocabulary
from scripts.data import vocabulary_from_annotation
from scripts.text import ReportTextError, Vocabulary, clean_report, read_report_text

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
TOKENIZER_FIXTURE = SHARED / "fixtures" / "histgen_official" / "small" / "tokenizer.json"

REPORTS = [
    "DIAGNOSIS: Squamous cell carcinoma; grade 3.\nMargins: free of tumor.",
    "Adenocarcinoma of the colon, moderately differentiated (G2). Margins free of tumor.",
    "Squamous cell carcinoma. Lymph nodes: 0/12 positive.",
]


@pytest.fixture(scope="module")
def reference() -> dict:
    if not TOKENIZER_FIXTURE.is_file():
        pytest.skip(f"HistGen tokenizer fixture not found at {TOKENIZER_FIXTURE} (needs ../shared beside the checkout)")
    return json.loads(TOKENIZER_FIXTURE.read_text(encoding="utf-8"))


# ------------------------------------------------------------------ parity with the reference outputs
def test_cleaning_matches_reference_for_every_fixture_report(reference):
    assert len(reference["reports"]) == 48
    for raw, expected in zip(reference["reports"], reference["cleaned"]):
        assert clean_report(raw) == expected, raw


def test_vocabulary_matches_reference(reference):
    train = reference["reports"][: reference["train_count"]]
    vocab = Vocabulary.build(train, threshold=reference["threshold"])
    assert vocab.tokens == reference["vocab"]
    assert len(vocab) == len(reference["vocab"])
    assert [vocab.token_to_id(t) for t in reference["vocab"]] == list(range(1, len(vocab) + 1))


def test_ids_match_reference(reference):
    vocab = Vocabulary.build(reference["reports"][: reference["train_count"]], threshold=reference["threshold"])
    for raw, expected in zip(reference["reports"], reference["ids"]):
        assert vocab.encode(raw) == expected, raw
    # the held-out reports use <unk> for words below the threshold
    unk = vocab.token_to_id("<unk>")
    assert any(unk in ids for ids in reference["ids"][reference["train_count"] :])


def test_from_reference_annotation_uses_train_split(tmp_path, reference):
    count = reference["train_count"]
    annotation = {
        "train": [{"id": f"s{i}", "report": r} for i, r in enumerate(reference["reports"][:count])],
        "val": [{"id": "v", "report": "zebra zebra zebra zebra"}],
        "test": [],
    }
    path = tmp_path / "annotation.json"
    path.write_text(json.dumps(annotation), encoding="utf-8")
    vocab = vocabulary_from_annotation(path, threshold=reference["threshold"])
    assert vocab.tokens == reference["vocab"]


# ------------------------------------------------------------------ cleaning quirks
def test_cleaning_quirks_of_the_reference():
    # ":-[" is a range: ":;<=>?@[" go, the hyphen stays, decimals and slashes vanish
    assert clean_report("Ki-67 <5%> = high? @x [y] {z}") == "ki-67 5  high x y z ."  # removal leaves two spaces
    assert clean_report("Tumor 1.3 cm, nodes 0/18.") == "tumor 13 cm nodes 018 ."
    # list markers: "1. " is deleted anywhere, " 2. " ends a sentence
    assert clean_report("Findings:\n1. carcinoma\n2. margins free") == "findings carcinoma . margins free ."
    # empty sentences are kept (the reference filter never drops any)
    assert clean_report("a. . b") == "a .  . b ."
    # runs of spaces shrink by exactly six halving passes, as in the reference
    assert clean_report("a" + " " * 100 + "b") == "a  b ."
    assert clean_report("") == " ."
    assert clean_report("!!!") == " ."


def test_cleaning_rejects_non_text():
    with pytest.raises(TypeError):
        clean_report(None)  # type: ignore[arg-type]


# ------------------------------------------------------------------ vocabulary behaviour
@pytest.fixture()
def vocab() -> Vocabulary:
    return Vocabulary.build(REPORTS, threshold=1)


def test_encode_decode_round_trip(vocab):
    for report in REPORTS:
        ids = vocab.encode(report)
        assert ids[0] == 0 and ids[-1] == 0 and 0 not in ids[1:-1]
        assert vocab.decode(ids) == " ".join(clean_report(report).split())
        assert vocab.decode(ids[1:]) == vocab.decode(ids)  # without a leading BOS too


def test_unknown_words_map_to_unk(vocab):
    ids = vocab.encode("Carcinoma of the pancreas.")
    assert vocab.decode(ids) == "carcinoma of the <unk> ."
    assert vocab.token_to_id("pancreas") == vocab.unk_id


def test_truncation_drops_eos_like_the_reference(vocab):
    long_report = " ".join(["carcinoma"] * 300)
    ids = vocab.encode(long_report, max_seq_length=100)
    assert len(ids) == 100
    assert ids[0] == 0 and ids[-1] != 0  # the EOS is cut off
    assert vocab.decode(ids) == " ".join(["carcinoma"] * 99)
    short = vocab.encode("carcinoma.", max_seq_length=100)
    assert short == vocab.encode("carcinoma.")


def test_decode_stops_at_first_end_token_and_accepts_tensors(vocab):
    a, b = vocab.token_to_id("carcinoma"), vocab.token_to_id("margins")
    assert vocab.decode([0, a, b, 0, a, a]) == "carcinoma margins"
    assert vocab.decode([a, 0, b]) == "carcinoma"
    assert vocab.decode([0]) == "" and vocab.decode([]) == ""
    batch = torch.tensor([[0, a, b, 0], [a, a, 0, 0]])
    assert vocab.decode_batch(batch) == ["carcinoma margins", "carcinoma carcinoma"]


def test_id_lookup_and_size(vocab):
    assert vocab.id_to_token(1) == vocab.tokens[0]
    assert len(vocab) == len(vocab.tokens) and "<unk>" in vocab.tokens
    with pytest.raises(ReportTextError, match="outside the vocabulary"):
        vocab.id_to_token(0)
    with pytest.raises(ReportTextError, match="outside the vocabulary"):
        vocab.decode([0, len(vocab) + 1])


def test_threshold_filters_rare_words():
    vocab = Vocabulary.build(REPORTS, threshold=2)
    assert "carcinoma" in vocab.tokens and "squamous" in vocab.tokens
    assert "colon" not in vocab.tokens
    with pytest.raises(ValueError):
        Vocabulary.build(REPORTS, threshold=0)


# ------------------------------------------------------------------ vocab.json
def test_save_load_round_trip(tmp_path, vocab):
    path = vocab.save(tmp_path / "models" / "vocab.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == "histgen-vocab" and data["version"] == 1
    assert data["threshold"] == 1 and data["tokens"] == vocab.tokens
    assert "BOS" in data["special_ids"]["0"]
    loaded = Vocabulary.load(path)
    assert loaded == vocab and loaded.threshold == 1
    assert loaded.encode(REPORTS[0]) == vocab.encode(REPORTS[0])
    assert [p.name for p in path.parent.iterdir()] == ["vocab.json"]  # no temporary file left


def test_failed_save_keeps_old_file_and_leaves_no_temp(tmp_path, vocab):
    """A save over ``vocab.json`` that fails part-way (file-size limit hit in a child) keeps the old file whole."""
    path = Vocabulary(["a", "<unk>"]).save(tmp_path / "vocab.json")
    before = path.read_bytes()
    script = (
        "import resource, signal, sys\n"
        "from scripts.text import Vocabulary\n"
        "vocab = Vocabulary.load(sys.argv[1])\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), resource.RLIM_INFINITY))\n"
        "try:\n"
        "    vocab.save(sys.argv[2])\n"
        "except OSError as err:\n"
        "    sys.exit(f'failed: {err}')\n"
    )
    big = tmp_path / "big.json"
    vocab.save(big)
    assert big.stat().st_size > len(before) + 64
    proc = subprocess.run([sys.executable, "-c", script, str(big), str(path), str(len(before) + 64)],
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "failed: [Errno 27] File too large" in proc.stderr, proc.stderr[-2000:]
    assert path.read_bytes() == before
    big.unlink()
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.json"]


def test_load_errors(tmp_path):
    with pytest.raises(ReportTextError, match="not found"):
        Vocabulary.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ReportTextError, match="cannot read vocabulary JSON"):
        Vocabulary.load(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something-else", "tokens": ["a"]}), encoding="utf-8")
    with pytest.raises(ReportTextError, match="histgen-vocab"):
        Vocabulary.load(other)
    no_unk = tmp_path / "no_unk.json"
    no_unk.write_text(json.dumps({"format": "histgen-vocab", "version": 1, "tokens": ["a", "b"]}), encoding="utf-8")
    with pytest.raises(ReportTextError, match="<unk>"):
        Vocabulary.load(no_unk)


# ------------------------------------------------------------------ bad text
@pytest.mark.parametrize(
    ("report", "reason"),
    [("", "empty report"), ("  \n\t ", "empty report"), ("(!!!) ... ;", "no words left"), (None, "expected text")],
)
def test_unusable_reports_name_the_report(vocab, report, reason):
    with pytest.raises(ReportTextError, match=reason) as info:
        vocab.encode(report, 100, report_id="TCGA-AB-0001")
    assert "TCGA-AB-0001" in str(info.value)


def test_read_report_text(tmp_path):
    assert read_report_text(b"Carcinoma, grade 2.") == "Carcinoma, grade 2."
    assert read_report_text("\ufeffNécrose".encode()) == "Nécrose"  # BOM dropped
    path = tmp_path / "r1.txt"
    path.write_bytes(b"Carcinoma with n\xe9crosis.")  # Latin-1, not UTF-8
    with pytest.raises(ReportTextError, match=r"r1.txt: not UTF-8 at byte 16 \(b'\\xe9'\)"):
        read_report_text(path)
    with pytest.raises(ReportTextError, match="cannot read"):
        read_report_text(tmp_path / "missing.txt")


def test_docstring_examples_run():
    for module in (scripts.text.report_cleaning, scripts.text.vocabulary):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
