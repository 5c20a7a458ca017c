"""Rule-based clinical findings: hand-written reports in real-report styles, raw and HistGen-cleaned."""

from __future__ import annotations

import dataclasses
import doctest
import json
from pathlib import Path

import pytest

import scripts.metrics.findings_rules
import scripts.metrics.findings_text
from scripts.metrics import CATEGORICAL_FINDINGS, FindingsVocabulary, ReportFindings, extract_findings
from scripts.text import clean_report
from tests.support.findings_report_styles import HELD_OUT_STYLES, REPORT_STYLES

FIELDS = [field.name for field in dataclasses.fields(ReportFindings)]
ALL_STYLES = REPORT_STYLES + HELD_OUT_STYLES


def _expected(case: dict, cleaned: bool) -> dict:
    expected = {name: case["expected"].get(name) for name in FIELDS}
    if cleaned:
        expected.update(case.get("cleaned", {}))
    return expected


def _text(case: dict, cleaned: bool) -> str:
    return clean_report(case["text"]) if cleaned else case["text"]


def per_finding_accuracy(cases: list[dict]) -> dict[str, float]:
    """Share of (case, raw|cleaned) pairs where each field is exactly as expected."""
    correct = dict.fromkeys(FIELDS, 0)
    total = 0
    for case in cases:
        for cleaned in (False, True):
            found = extract_findings(_text(case, cleaned)).to_dict()
            expected = _expected(case, cleaned)
            total += 1
            for name in FIELDS:
                correct[name] += found[name] == expected[name]
    return {name: correct[name] / total for name in FIELDS}


@pytest.mark.parametrize("cleaned", [False, True], ids=["raw", "cleaned"])
@pytest.mark.parametrize("case", ALL_STYLES, ids=[c["name"] for c in ALL_STYLES])
def test_report_style(case: dict, cleaned: bool) -> None:
    found = extract_findings(_text(case, cleaned)).to_dict()
    expected = _expected(case, cleaned)
    wrong = {name: (found[name], expected[name]) for name in FIELDS if found[name] != expected[name]}
    assert not wrong, f"{case['name']}: (found, expected) {wrong}"


def test_per_finding_accuracy_on_the_report_styles() -> None:
    assert len(ALL_STYLES) >= 35
    organs = {case["name"].split("_")[0] for case in ALL_STYLES}
    assert {"breast", "kidney", "prostate", "lung", "colon"} <= organs
    accuracy = per_finding_accuracy(ALL_STYLES)
    print("per-finding accuracy:", json.dumps(accuracy, indent=1))
    assert all(value >= 0.95 for value in accuracy.values()), accuracy
    # the findings must vary over the set, or accuracy would say little
    for name in CATEGORICAL_FINDINGS:
        values = {extract_findings(case["text"]).categorical()[name] for case in ALL_STYLES}
        assert len(values - {None}) >= 2, (name, values)


@pytest.mark.parametrize(
    ("text", "lvi", "pni"),
    [
        ("No LVI or PNI.", "absent", "absent"),
        ("Lymphovascular invasion: not identified. Perineural invasion: present.", "absent", "present"),
        ("lymphovascular invasion not identified perineural invasion present", "absent", "present"),
        ("perineural invasion no lymphovascular invasion yes", "present", "absent"),
        ("Negative for lymphovascular and perineural invasion.", "absent", "absent"),
        ("Tumour shows perineural invasion; no lymphovascular invasion is identified.", "absent", "present"),
        ("margins negative lymphovascular invasion present", "present", None),
        ("Lymphovascular invasion: indeterminate.", None, None),
        ("Without angiolymphatic invasion. PNI: absent", "absent", "absent"),
        ("Invasive carcinoma with focal lymphovascular invasion.", "present", None),
    ],
)
def test_invasion_negation(text: str, lvi: str | None, pni: str | None) -> None:
    findings = extract_findings(text)
    assert (findings.lymphovascular_invasion, findings.perineural_invasion) == (lvi, pni)


@pytest.mark.parametrize(
    ("text", "margin"),
    [
        ("Margins: uninvolved by carcinoma.", "negative"),
        ("Surgical margins are free of tumour.", "negative"),
        ("Margins not involved.", "negative"),
        ("The deep margin is involved by carcinoma.", "positive"),
        ("Carcinoma is present at the inked margin.", "positive"),
        ("Tumour extends to the radial margin.", "positive"),
        ("Margins negative, closest margin 2 mm.", "negative"),
        ("Carcinoma is close to the deep margin (0.5 mm).", "close"),
        ("no tumour at the margins", "negative"),
        # "at" before the margin opens distance statements too: a measured distance or a "free" word wins
        ("Margins negative for carcinoma closest margin at the closest margin at 7 mm", "negative"),
        ("Margins: free of tumour, closest margin at the inked surgical margins free of 4 mm.", "negative"),
        ("Tumour at the deep margin.", "positive"),
        ("Invasive carcinoma is present at the posterior margin, 0 mm.", "positive"),
        ("Invasive ductal carcinoma.", None),
    ],
)
def test_margin_status(text: str, margin: str | None) -> None:
    assert extract_findings(text).margin == margin
    assert extract_findings(clean_report(text)).margin == margin


@pytest.mark.parametrize(
    ("text", "positive", "examined", "status"),
    [
        ("Lymph nodes: 2/15 positive.", 2, 15, "positive"),
        ("lymph nodes 215 positive", 2, 15, "positive"),
        ("Metastatic carcinoma in three of twenty-one lymph nodes.", 3, 21, "positive"),
        ("Twelve lymph nodes, negative for carcinoma (0/12).", 0, 12, "negative"),
        ("lymph nodes negative for carcinoma 012", 0, 12, "negative"),
        ("Lymph nodes: left axillary (0/3), level II (1/5).", 1, 8, "positive"),
        ("No lymph node metastasis.", None, None, "negative"),
        ("grade 2 of 3 lymph nodes 012", 0, 12, "negative"),  # synoptic lines run together after cleaning
        ("pT2 pN1 (see comment)", None, None, "positive"),
        ("Invasive ductal carcinoma.", None, None, None),
    ],
)
def test_lymph_nodes(text: str, positive: int | None, examined: int | None, status: str | None) -> None:
    findings = extract_findings(text)
    assert (findings.lymph_nodes_positive, findings.lymph_nodes_examined, findings.lymph_node_status) == (
        positive, examined, status)


@pytest.mark.parametrize(
    ("text", "positive", "examined", "status"),
    [
        # the examined count of "N of M" is not read again as a merged "2/4"
        ("0 of 24 lymph nodes involved.", 0, 24, "negative"),
        ("Regional lymph nodes: 1 of 11 involved.", 1, 11, "positive"),
        ("Metastatic carcinoma in 0 of 11 lymph nodes.", 0, 11, "negative"),
        ("Twenty-one of 22 lymph nodes contain metastatic carcinoma.", 21, 22, "positive"),
        ("Lymph nodes: 1 positive of 12 examined.", 1, 12, "positive"),
        # a count of nodes said to be free of tumour is the examined count, with none positive
        ("No metastatic carcinoma in 20 lymph nodes.", 0, 20, "negative"),
        ("5. No metastatic carcinoma in 13 lymph nodes examined.", 0, 13, "negative"),
        ("Twenty lymph nodes, negative for metastatic carcinoma.", 0, 20, "negative"),
        ("Lymph nodes (0/7) negative.", 0, 7, "negative"),
        ("No tumour in 3 lymph nodes.", 0, 3, "negative"),
        ("All 14 lymph nodes are free of tumour.", 0, 14, "negative"),
        # a negation about something else does not make positive nodes negative
        ("Metastatic carcinoma in 2 lymph nodes, no extranodal extension.", 2, None, "positive"),
    ],
)
def test_lymph_node_counts_raw_and_cleaned(text: str, positive: int | None, examined: int | None,
                                           status: str | None) -> None:
    for version in (text, clean_report(text)):
        findings = extract_findings(version)
        assert (findings.lymph_nodes_positive, findings.lymph_nodes_examined, findings.lymph_node_status) == (
            positive, examined, status), version


@pytest.mark.parametrize(
    ("text", "diagnosis"),
    [
        ("DIAGNOSIS: Renal cell carcinoma, clear cell type. Fuhrman grade 2.", "clear cell renal cell carcinoma"),
        ("Renal cell carcinoma, papillary type.", "papillary renal cell carcinoma"),
        ("Adenocarcinoma, mucinous type.", "mucinous adenocarcinoma"),
        ("Invasive carcinoma, lobular type.", "invasive lobular carcinoma"),
        ("Carcinoma, ductal type.", "ductal carcinoma"),
        ("Ductal carcinoma in situ, cribriform variant.", "cribriform ductal carcinoma in situ"),
        ("Colloid carcinoma of the breast.", "mucinous carcinoma"),
        # no subtype: a default variant, a growth pattern, a subtype the phrase already names
        ("Invasive lobular carcinoma, classic type.", "invasive lobular carcinoma"),
        ("Hepatocellular carcinoma, trabecular type.", "hepatocellular carcinoma"),
        ("Invasive ductal carcinoma, ductal type.", "invasive ductal carcinoma"),
    ],
)
def test_diagnosis_subtype_after_comma(text: str, diagnosis: str) -> None:
    assert extract_findings(text).diagnosis == diagnosis
    assert extract_findings(clean_report(text)).diagnosis == diagnosis


def test_subtype_wordings_share_a_vocabulary_class() -> None:
    reports = ["Renal cell carcinoma, clear cell type. Fuhrman grade 2 of 4."] * 3 + [
        "Clear cell renal cell carcinoma, Fuhrman grade 3 of 4."] * 3 + [
        "Renal cell carcinoma, papillary type."] * 2 + ["Papillary renal cell carcinoma."] * 2
    vocabulary = FindingsVocabulary.from_reports(reports)
    assert set(vocabulary.diagnoses) == {"clear cell renal cell carcinoma", "papillary renal cell carcinoma"}
    # a vocabulary that also knows the bare phrase still reads the "<diagnosis>, <subtype> type" wording whole
    wider = dataclasses.replace(vocabulary, diagnoses=(*vocabulary.diagnoses, "renal cell carcinoma"))
    for voc in (vocabulary, wider):
        for pair in (reports[0::3][:2], reports[6::2][:2]):
            labels = {voc.labels(extract_findings(text, voc))["diagnosis"] for text in pair}
            labels |= {voc.labels(extract_findings(clean_report(text), voc))["diagnosis"] for text in pair}
            assert len(labels) == 1 and labels != {-1}, (pair, labels)


@pytest.mark.parametrize("cleaned", [False, True], ids=["raw", "cleaned"])
def test_lymph_node_sentence_is_not_the_diagnosis(cleaned: bool) -> None:
    texts = [
        ("2 of 15 lymph nodes are positive for metastatic carcinoma. DIAGNOSIS: Papillary renal cell carcinoma.",
         "papillary renal cell carcinoma"),
        ("Sections show carcinoma. 2 of 15 lymph nodes are positive for metastatic carcinoma.", "carcinoma"),
        ("LN: 2/15 metastatic ductal carcinoma. Adenocarcinoma, mucinous type.", "mucinous adenocarcinoma"),
        ("Metastatic carcinoma in 2 of 15 lymph nodes.", "metastatic carcinoma"),  # nothing else: still used
    ]
    for text, diagnosis in texts:
        assert extract_findings(clean_report(text) if cleaned else text).diagnosis == diagnosis, text


@pytest.mark.parametrize(
    ("text", "grade"),
    [
        ("Gleason score 3+4=7", "gleason 7"),
        ("gleason score 347", "gleason 7"),
        ("Gleason 4 + 5 = 9 (grade group 5)", "gleason 9"),
        ("Grade group 2", "isup 2"),
        ("WHO/ISUP grade 3", "isup 3"),
        ("Fuhrman nuclear grade II", "fuhrman 2"),
        ("Fuhrman grade 4/4", "fuhrman 4"),
        ("Gleason's score: 7 (4+3)", "gleason 7"),
        ("nuclear grade 3 (Fuhrman)", "fuhrman 3"),
        ("Nottingham score 8/9", "grade 3"),
        ("Modified Bloom-Richardson grade 1", "grade 1"),
        ("adenocarcinoma, G2", "grade 2"),
        ("moderately to poorly differentiated adenocarcinoma", "moderately to poorly differentiated"),
        ("well-differentiated", "well differentiated"),
        ("Undifferentiated carcinoma", "undifferentiated"),
        ("high-grade serous carcinoma", "high grade"),
        ("grade . margins negative", None),
    ],
)
def test_grades(text: str, grade: str | None) -> None:
    assert extract_findings(text).grade == grade


@pytest.mark.parametrize(
    ("text", "pt", "pn"),
    [("pT2 pN1a", "pt2", "pn1"), ("pT2N0M0", "pt2", "pn0"), ("AJCC pathologic stage: T2 N1 M0", "pt2", "pn1"),
     ("ypT3 ypN2", "pt3", "pn2"), ("pTis pNX", "ptis", "pnx"), ("pt1c pn0sn", "pt1", "pn0"),
     ("T2-weighted", None, None)],
)
def test_stages(text: str, pt: str | None, pn: str | None) -> None:
    findings = extract_findings(text)
    assert (findings.pt_stage, findings.pn_stage) == (pt, pn)
    assert (extract_findings(clean_report(text)).pt_stage, extract_findings(clean_report(text)).pn_stage) == (pt, pn)


def test_generated_text_style() -> None:
    """Decoded model output: cleaned words, sentences joined by " . ", no punctuation."""
    generated = ("invasive ductal carcinoma nottingham grade 2 of 3 . tumor size 23 cm . no lymphovascular "
                 "invasion . margins are free of carcinoma . metastatic carcinoma in 2 of 15 lymph nodes 215 . "
                 "pt2 pn1a .")
    findings = extract_findings(generated)
    assert findings.categorical() == {
        "diagnosis": "invasive ductal carcinoma", "grade": "grade 2", "margin": "negative",
        "lymph_node_status": "positive", "lymphovascular_invasion": "absent", "perineural_invasion": None,
        "pt_stage": "pt2", "pn_stage": "pn1"}
    assert (findings.lymph_nodes_positive, findings.lymph_nodes_examined) == (2, 15)
    assert findings.tumour_size_mm == 230.0  # the decimal point was lost in cleaning


def test_diagnosis_choice() -> None:
    # a specific phrase beats a generic head; a negated diagnosis is not the diagnosis
    assert extract_findings("Carcinoma. Histologic type: clear cell renal cell carcinoma.").diagnosis == (
        "clear cell renal cell carcinoma")
    assert extract_findings("Negative for carcinoma. Benign prostatic hyperplasia.").diagnosis == "hyperplasia"
    assert extract_findings("No residual carcinoma identified.").diagnosis == "benign"
    assert extract_findings("Benign tissue, negative for malignancy.").diagnosis == "benign"
    assert extract_findings("Margins negative for carcinoma.").diagnosis is None
    # the DIAGNOSIS section wins over the clinical history
    text = "CLINICAL HISTORY: history of squamous cell carcinoma.\nDIAGNOSIS: Adenocarcinoma, acinar type."
    assert extract_findings(text).diagnosis == "acinar adenocarcinoma"
    # the candidate never crosses a sentence end
    assert extract_findings("Specimen is ductal. Carcinoma present.").diagnosis == "carcinoma"
    assert extract_findings("").diagnosis is None


def test_findings_container() -> None:
    findings = extract_findings("Invasive lobular carcinoma, grade 2 of 3. Margins negative. pT1c pN0.")
    assert list(findings.categorical()) == list(CATEGORICAL_FINDINGS)
    data = findings.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert set(data) == set(FIELDS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        findings.grade = "grade 3"  # type: ignore[misc]
    with pytest.raises(TypeError):
        extract_findings(None)  # type: ignore[arg-type]


TRAIN_REPORTS = [
    "DIAGNOSIS: Infiltrating ductal carcinoma, grade 2 of 3. pT2 pN0.",
    "Invasive ductal carcinoma, Nottingham grade 3 of 3. pT1 pN1.",
    "INVASIVE DUCTAL CARCINOMA, GRADE 2 OF 3. pT2 pN0.",
    "Invasive lobular carcinoma, grade 2 of 3. pT2 pN1.",
    "Infiltrating lobular carcinoma, grade 1 of 3. pT3 pN0.",
    "Carcinoma, grade 2 of 3.",
    "Carcinoma, grade 2 of 3.",
    "Mucinous carcinoma, grade 1 of 3. pT1 pN0.",
]


def test_vocabulary_from_reports() -> None:
    vocab = FindingsVocabulary.from_reports(TRAIN_REPORTS, min_count=2)
    # synonyms merged, most frequent first; the generic head and the single mucinous report left out
    assert vocab.diagnoses == ("invasive ductal carcinoma", "invasive lobular carcinoma")
    assert vocab.grades == ("grade 1", "grade 2")  # grade 3 is seen once
    assert vocab.pt_stages == ("pt1", "pt2")
    assert vocab.pn_stages == ("pn0", "pn1")
    assert vocab.num_reports == len(TRAIN_REPORTS)
    assert FindingsVocabulary.from_reports(TRAIN_REPORTS, min_count=1).diagnoses[-1] == "mucinous carcinoma"
    with pytest.raises(ValueError, match="min_count"):
        FindingsVocabulary.from_reports(TRAIN_REPORTS, min_count=0)

    classes = vocab.classes()
    assert list(classes) == list(CATEGORICAL_FINDINGS)
    assert classes["margin"] == ("negative", "close", "positive")
    assert classes["lymphovascular_invasion"] == ("absent", "present")

    labels = vocab.labels(extract_findings("Infiltrating lobular carcinoma, grade 3 of 3. No LVI. pT2 pN1."))
    assert labels == {"diagnosis": 1, "grade": -1, "margin": -1, "lymph_node_status": 1,
                      "lymphovascular_invasion": 0, "perineural_invasion": -1, "pt_stage": 1, "pn_stage": 1}
    unknown = vocab.labels(extract_findings("Mucinous carcinoma, grade 2 of 3. pT4."))
    assert (unknown["diagnosis"], unknown["grade"], unknown["pt_stage"]) == (-1, 1, -1)


def test_vocabulary_guides_diagnosis() -> None:
    vocab = FindingsVocabulary(diagnoses=("ductal carcinoma", "lobular carcinoma"))
    text = "Sections show infiltrating pleomorphic lobular carcinoma."
    assert extract_findings(text).diagnosis == "invasive pleomorphic lobular carcinoma"
    assert extract_findings(text, vocab).diagnosis == "lobular carcinoma"
    assert extract_findings(clean_report(text), vocab).diagnosis == "lobular carcinoma"
    # no known phrase: the rule-based phrase is still returned (labels() maps it to -1)
    assert extract_findings("Seminoma.", vocab).diagnosis == "seminoma"
    assert vocab.labels(extract_findings("Seminoma.", vocab))["diagnosis"] == -1


def test_vocabulary_files(tmp_path: Path) -> None:
    annotation = {split: [{"id": f"{split}{i}", "report": report} for i, report in enumerate(TRAIN_REPORTS)]
                  for split in ("train", "val", "test")}
    annotation["val"] = [{"id": "v0", "report": "Seminoma."}]
    path = tmp_path / "annotation.json"
    path.write_text(json.dumps(annotation), encoding="utf-8")
    vocab = FindingsVocabulary.from_annotation(path)
    assert vocab == FindingsVocabulary.from_reports(TRAIN_REPORTS)
    assert FindingsVocabulary.from_annotation(path, split="val", min_count=1).diagnoses == ("seminoma",)

    saved = vocab.save(tmp_path / "models" / "findings_vocabulary.json")
    assert [p.name for p in saved.parent.iterdir()] == ["findings_vocabulary.json"]
    assert FindingsVocabulary.load(saved) == vocab
    assert FindingsVocabulary.from_dict(json.loads(saved.read_text())) == vocab

    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.json"):
        FindingsVocabulary.load(bad)
    bad.write_text(json.dumps({"diagnoses": ["x"]}), encoding="utf-8")
    with pytest.raises(ValueError, match="not a findings vocabulary"):
        FindingsVocabulary.load(bad)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        FindingsVocabulary.load(tmp_path / "missing.json")


@pytest.mark.parametrize("module", [scripts.metrics.findings_rules, scripts.metrics.findings_text])
def test_docstring_examples(module) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_vocabulary_counts_a_phrase_with_only_redundant_words_as_the_shorter_phrase() -> None:
    reports = ["Adenocarcinoma of the lung.", "Adenocarcinoma.", "Invasive adenocarcinoma.",
               "Invasive adenocarcinoma, acinar.", "Keratinizing squamous cell carcinoma.",
               "Keratinizing squamous cell carcinoma.", "Squamous cell carcinoma.", "Squamous cell carcinoma.",
               "Invasive lobular carcinoma.", "Invasive lobular carcinoma."]
    vocab = FindingsVocabulary.from_reports(reports, min_count=2)
    # "invasive" names no subtype: one class; "keratinizing" does: its own; "lobular carcinoma" never occurs
    assert vocab.diagnoses == ("adenocarcinoma", "invasive lobular carcinoma", "keratinizing squamous cell carcinoma",
                               "squamous cell carcinoma")
    assert extract_findings("Invasive adenocarcinoma, grade 2 of 3.", vocab).diagnosis == "adenocarcinoma"
