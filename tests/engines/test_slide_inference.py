"""Slide inference: a raw slide in, a report, a heatmap and a table row out, with the model's extraction settings.

Fast tests check the pieces in-process (attention weights, heatmap drawing, the extraction record). The slow
tests train a small model on a tiny slide demo with ``python -m monai.bundle run training`` and run the
``inference`` workflow on slides, the way a user does.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from scripts.engines import (
    EXTRACTION_FILE,
    RESEARCH_NOTICE,
    SYNTHETIC_WARNING,
    load_feature_extraction,
    patch_attention,
    save_report_model,
)
from scripts.engines.patch_attention import decoder_cross_attention
from scripts.engines.report_outputs import FINDING_COLUMNS
from scripts.engines.slide_inference import SLIDE_TABLE_COLUMNS
from scripts.metrics import FindingsVocabulary, extract_findings
from scripts.networks import HistGen, HistGenConfig
from scripts.text import Vocabulary
from scripts.text.prose import report_prose
from scripts.wsi import TissueMask
from scripts.wsi.attention_heatmap import render_value_heatmap
from scripts.wsi.slide_thumbnail import render_thumbnail
from tests.support.bundle_runs import REPO_ROOT, bundle_command, bundle_env, path_of, run_bundle

UNREADABLE = REPO_ROOT.parent / "shared" / "fixtures" / "openslide" / "unreadable.svs"
TINY_CONFIG = dict(in_dim=16, d_vf=16, d_model=32, d_ff=32, num_heads=4, num_layers=2, topk=4, cmm_size=8,
                   cmm_dim=32, region_size=4, prototype_num=3, vocab_size=12, dropout=0.0, drop_prob_lm=0.0)


def _read_table(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


# ---------------------------------------------------------------------------- fast: attention
def test_patch_attention_is_normalised_per_region_and_slide_and_ignores_padding():
    torch.manual_seed(0)
    model = HistGen(HistGenConfig(**TINY_CONFIG)).eval()
    short, long = torch.randn(1, 7, 16), torch.randn(1, 10, 16)  # regions of 3 patches: 3+3+1 and 3+3+3+1
    batch = torch.zeros(2, 10, 16)
    batch[0, :7], batch[1] = short[0], long[0]
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[0, :7], mask[1] = True, True
    report = model.generate(batch, mask=mask, beam_size=2, max_len=6)

    att = patch_attention(model, batch, mask, report)
    alone = patch_attention(model, short, None, report[:1])
    torch.testing.assert_close(att.relative[0, :7], alone.relative[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(att.share[0, :7], alone.share[0], atol=1e-6, rtol=1e-4)
    assert torch.all(att.share[0, 7:] == 0) and torch.all(att.relative[0, 7:] == 0)
    torch.testing.assert_close(att.share.sum(dim=1), torch.ones(2))
    torch.testing.assert_close(att.region_weights.sum(dim=1), torch.ones(2))
    assert att.region_weights[0, 3] == 0  # the short bag has no 4th region
    for row, n in ((0, 7), (1, 10)):
        sums = torch.zeros(4).index_add_(0, att.regions[:n], att.within_region[row, :n])
        torch.testing.assert_close(sums[: (n + 2) // 3], torch.ones((n + 2) // 3))
    # a region of one patch hands it its whole region weight in ``share`` but is not inflated in ``relative``
    last = att.region_weights[0, 2] / att.region_weights[0, :3].mean()
    torch.testing.assert_close(att.relative[0, 6], last)
    # without a report every real region weighs the same
    flat = patch_attention(model, batch, mask)
    torch.testing.assert_close(flat.region_weights[1], torch.full((4,), 0.25))


def test_decoder_cross_attention_reproduces_the_decoders_attention_output():
    torch.manual_seed(1)
    model = HistGen(HistGenConfig(**TINY_CONFIG)).eval()
    features = torch.randn(2, 11, 16)
    encoded = model.encode(features)
    ids = torch.tensor([[3, 5, 7, 0], [2, 2, 9, 4]])
    seen: dict[int, dict[str, torch.Tensor]] = {}
    hooks = []
    for i, layer in enumerate(model.decoder.layers):
        slot = seen.setdefault(i, {})
        attn = layer.cross_attn
        hooks.append(attn.out_proj.register_forward_hook(lambda m, a, o, s=slot: s.__setitem__("out", a[0])))
        hooks.append(attn.v_proj.register_forward_hook(lambda m, a, o, s=slot: s.__setitem__("v", o)))
    try:
        probs = decoder_cross_attention(model, encoded.region_tokens, encoded.region_mask, ids)
    finally:
        for hook in hooks:
            hook.remove()
    assert probs.shape == (2, 2, 4, 5, encoded.region_tokens.shape[1])
    torch.testing.assert_close(probs.sum(dim=-1), torch.ones(2, 2, 4, 5))
    for i, layer in enumerate(model.decoder.layers):
        v = layer.cross_attn.split_heads(seen[i]["v"])  # [B, H, R, dh]
        mixed = (probs[i] @ v).transpose(1, 2).reshape(2, 5, -1)
        torch.testing.assert_close(mixed, seen[i]["out"], atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------------------- fast: heatmap drawing
def _tissue() -> TissueMask:
    """A 1024 x 1024 px slide at 0.5 um/px seen through a 64 x 64 mask (16 level-0 px per mask px)."""
    mask = np.zeros((64, 64), bool)
    mask[8:40, 8:56] = True
    image = np.full((64, 64, 3), 242, np.uint8)
    image[mask] = (214, 160, 200)
    return TissueMask(mask=mask, image=image, level=0, factor=16, scale=(16.0, 16.0), mpp=8.0, threshold=20.0)


def test_heatmap_colours_each_patch_by_its_value_at_the_thumbnail_size():
    tissue = _tissue()
    coords = np.array([[128 * i, 128 * j] for j in (1, 2) for i in (1, 2, 3, 4, 5)])  # 10 patches of 128 px
    values = np.ones(10)
    values[2], values[7] = 4.0, 0.25
    image = render_value_heatmap(tissue, coords, 128, values, label="relative attention", scale="ratio")
    assert image.size == render_thumbnail(tissue, coords, 128).size == (512, 512)
    rgb = np.asarray(image).astype(int)

    def centre(index: int) -> np.ndarray:
        x, y = coords[index] // 2 + 32  # 2 level-0 px per thumbnail px, patch centre at +64 level-0 px
        return rgb[y, x]

    high, low, average = centre(2), centre(7), centre(0)
    assert high[0] > high[2] + 40 and high[0] > high[1] + 60, high  # far above average: red
    assert low[2] > low[0] + 40 and low[2] > low[1] + 30, low  # far below: blue
    assert np.abs(average - np.array([214, 160, 200])).max() < 40, average  # average: the tissue shows through
    # the colour bar goes to the corner with the least tissue (tissue fills the top rows): bottom right
    assert (rgb[-30:, -60:] != 242).any(axis=-1).mean() > 0.3
    linear = np.asarray(render_value_heatmap(tissue, coords, 128, np.arange(10.0), scale="linear")).astype(int)
    brightness = [linear[y // 2 + 32, x // 2 + 32].sum() for x, y in coords]
    assert brightness[:5] == sorted(brightness[:5])  # inferno: larger values are brighter


# ---------------------------------------------------------------------------- fast: the extraction record
def test_model_files_carry_the_extraction_record_only_when_known(tmp_path):
    model = HistGen(HistGenConfig(**TINY_CONFIG))
    vocab = Vocabulary(["<unk>", *(f"w{i}" for i in range(11))])
    record = {"encoder_name": "builtin-small", "target_mpp": 0.5, "patch_size": 128}
    save_report_model(tmp_path, model, vocab, extraction=record)
    assert load_feature_extraction(tmp_path) == record
    save_report_model(tmp_path, model, vocab)  # retrained on features of unknown origin: no stale record
    assert not (tmp_path / EXTRACTION_FILE).exists() and load_feature_extraction(tmp_path) is None


def test_the_model_folder_is_the_source_of_decoding_and_extraction_defaults(tmp_path, caplog):
    from scripts.engines import DEFAULT_EXTRACTION, decoding_settings, extraction_settings
    from scripts.serving.report_predictor import ReportPredictor

    record = {"encoder_name": "builtin-small", "target_mpp": 0.5, "patch_size": 128, "tissue_fraction": 0.4}
    config = HistGenConfig(**{**TINY_CONFIG, "beam_size": 2, "max_seq_length": 7})
    save_report_model(tmp_path, HistGen(config), Vocabulary(["<unk>", *(f"w{i}" for i in range(11))]),
                      extraction=record)
    with caplog.at_level("INFO", logger="scripts.engines.model_files"):
        assert decoding_settings(tmp_path) == (2, 7) and not caplog.records
        assert decoding_settings(tmp_path, beam_size=4, max_len=-1) == (4, 7)
        assert "beam_size 4 overrides the model's 2" in caplog.text
        caplog.clear()
        assert extraction_settings(tmp_path, {"target_mpp": None}) == record and not caplog.records
        assert extraction_settings(tmp_path, {"patch_size": 256})["patch_size"] == 256
        assert "patch_size=256 differs from the 128 the model was trained with" in caplog.text
    assert ReportPredictor(tmp_path, device="cpu").beam_size == 2  # the pyfunc model and the apps' predictor
    (tmp_path / EXTRACTION_FILE).unlink()
    assert extraction_settings(tmp_path, fallback=True) == DEFAULT_EXTRACTION
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / EXTRACTION_FILE}: not found"):
        extraction_settings(tmp_path)


def test_slides_need_the_models_extraction_settings(tmp_path):
    model_dir = tmp_path / "models"
    vocab = Vocabulary(["<unk>", *(f"w{i}" for i in range(11))])
    save_report_model(model_dir, HistGen(HistGenConfig(**TINY_CONFIG)), vocab)
    cmd = bundle_command("inference", ("inference.json",), {
        "output_dir": path_of(tmp_path), "slide": path_of(UNREADABLE), "reports_dir": path_of(tmp_path / "r")})
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=bundle_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert f"{model_dir / EXTRACTION_FILE}: not found" in proc.stdout + proc.stderr


# ---------------------------------------------------------------------------- slow: the workflows
TRAIN_DEMO = {"source": "slides", "n_train": 12, "n_val": 4, "n_test": 4, "slide_size": 1024, "seed": 11}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small model trained by the training workflow on a tiny slide demo (its default data source)."""
    out = tmp_path_factory.mktemp("trained")
    demo = "{" + ", ".join(f"'{k}': {v!r}" for k, v in TRAIN_DEMO.items()) + "}"
    run_bundle("training", "train.json", output_dir=path_of(out), demo=demo, max_epochs=10, batch_size=4,
               val_batch_size=4, beam_size=2)
    return out


@pytest.fixture(scope="module")
def slide_run(trained, tmp_path_factory):
    """Slide inference on a folder holding two test slides of the demo and OpenSlide's unreadable.svs."""
    if not UNREADABLE.is_file():
        pytest.skip(f"OpenSlide fixture not found at {UNREADABLE} (needs ../shared beside the checkout)")
    folder = tmp_path_factory.mktemp("slides")
    for name in ("SYNTH-test-0000.svs", "SYNTH-test-0001.svs"):
        shutil.copy2(trained / "demo_data" / "slides" / name, folder / name)
    shutil.copy(UNREADABLE, folder / "unreadable.svs")
    # README's form: a new output_dir for the reports, the model named by model_dir
    out = tmp_path_factory.mktemp("runs") / "demo"
    run_bundle("inference", "inference.json", slides_dir=path_of(folder), model_dir=path_of(trained / "models"),
               output_dir=path_of(out), beam_size=2, progress=False)
    return folder, out / "reports"


@pytest.mark.slow
def test_training_on_the_slide_demo_records_the_extraction_settings(trained):
    record = json.loads((trained / "models" / EXTRACTION_FILE).read_text())
    with h5py.File(trained / "demo_data" / "features" / "SYNTH-train-0000.h5", "r") as handle:
        attrs = dict(handle.attrs)
    for key in ("encoder_name", "encoder_checksum", "target_mpp", "patch_size", "step", "tissue_fraction"):
        assert record[key] == attrs[key], key
    assert record["tissue_params"] == json.loads(attrs["tissue_params"])
    assert record["checked_files"] == TRAIN_DEMO["n_train"] and record["feature_dim"] == 128
    provenance = json.loads((trained / "models" / "provenance.json").read_text())
    assert provenance["synthetic"] is True and provenance["extraction"] == record
    assert provenance["slides"] == {"train": TRAIN_DEMO["n_train"], "val": TRAIN_DEMO["n_val"],
                                    "test": TRAIN_DEMO["n_test"]}


@pytest.mark.slow
def test_slide_inference_writes_reports_heatmaps_and_lists_the_bad_slide(trained, slide_run):
    folder, reports = slide_run
    rows = {r["id"]: r for r in _read_table(reports / "reports.csv")}
    assert list(rows) == ["SYNTH-test-0000", "SYNTH-test-0001", "unreadable"]  # scan order, failures included
    bad = rows["unreadable"]
    assert bad["status"] == "failed" and bad["report"] == "" and bad["heatmap"] == ""
    assert "unreadable.svs" in bad["error"] and "Bogus marker length" in bad["error"], bad["error"]
    for slide_id in ("SYNTH-test-0000", "SYNTH-test-0001"):
        row = rows[slide_id]
        assert row["status"] == "done" and row["error"] == "" and int(row["n_patches"]) > 5
        text = (reports / f"{slide_id}.txt").read_text(encoding="utf-8").splitlines()
        # the demo model saw only synthetic slides: the warning first, then the report as prose, then its tokens
        assert text[0].startswith(SYNTHETIC_WARNING) and text[1] == row["report"] != ""
        # a 10-epoch model on 12 slides: its wording depends on which early epoch 4 validation slides pick
        # ("diagnosis invasive ..." or "diagnosis . diagnosis invasive ..."), so the test reads the diagnosis
        # sentence wherever it is, not the first words
        assert "diagnosis" in row["report_tokens"].split() and "Diagnosis: " in row["report"]
        assert row["report"] == report_prose(row["report_tokens"]) and f"Tokens (the form the metrics score): " \
            f"{row['report_tokens']}" in text
        assert row["notice"].startswith(SYNTHETIC_WARNING) and RESEARCH_NOTICE in row["notice"]
        with Image.open(reports / row["heatmap"]) as heatmap, \
                Image.open(reports / "features" / f"{slide_id}_thumb.png") as thumb:
            heatmap.load()
            assert heatmap.format == "PNG" and heatmap.size == thumb.size and heatmap.mode == "RGB"
    assert not (reports / "unreadable.txt").exists()
    assert not list(reports.rglob("*.tmp"))
    # the findings of each report: a JSON beside it and one column per finding (empty for the failed slide)
    vocab = FindingsVocabulary.load(trained / "models" / "findings_vocabulary.json")
    for slide_id in ("SYNTH-test-0000", "SYNTH-test-0001"):
        saved = json.loads((reports / f"{slide_id}.findings.json").read_text(encoding="utf-8"))
        expected = extract_findings(rows[slide_id]["report_tokens"], vocab).to_dict()
        assert saved == {"id": slide_id, "findings": expected}
        assert {c: rows[slide_id][c] for c in FINDING_COLUMNS} == {
            c: "" if v is None else str(v) for c, v in expected.items()}
    assert list(rows["unreadable"]) == SLIDE_TABLE_COLUMNS + FINDING_COLUMNS
    assert all(rows["unreadable"][c] == "" for c in FINDING_COLUMNS)
    assert not (reports / "unreadable.findings.json").exists()


@pytest.mark.slow
def test_slide_inference_gives_the_reports_of_extract_features_then_feature_inference(trained, slide_run, tmp_path):
    folder, reports = slide_run
    record = json.loads((trained / "models" / EXTRACTION_FILE).read_text())
    listing = tmp_path / "slides.csv"
    listing.write_text("path\n" + "".join(f"{folder / n}\n" for n in ("SYNTH-test-0000.svs", "SYNTH-test-0001.svs")))
    run_bundle("extract_features", "extract_features.json", slides_csv=path_of(listing),
               output_dir=path_of(tmp_path / "features"), progress=False,
               **{k: record[k] for k in ("target_mpp", "patch_size", "step", "tissue_fraction", "mpp_tolerance")})
    run_bundle("inference", "inference.json", output_dir=path_of(trained), dataset_dir=path_of(tmp_path / "features"),
               reports_dir=path_of(tmp_path / "reports"), beam_size=2)

    two_step = {r["id"]: r["report"] for r in _read_table(tmp_path / "reports" / "reports.csv")}
    one_step = {r["id"]: r["report"] for r in _read_table(reports / "reports.csv") if r["status"] == "done"}
    assert two_step == one_step
    for slide_id in one_step:
        with h5py.File(tmp_path / "features" / f"{slide_id}.h5", "r") as a, \
                h5py.File(reports / "features" / f"{slide_id}.h5", "r") as b:
            np.testing.assert_array_equal(a["feats"][()], b["feats"][()])
            np.testing.assert_array_equal(a["coords"][()], b["coords"][()])


@pytest.mark.slow
def test_one_slide_by_path_and_a_run_where_every_slide_fails(trained, slide_run, tmp_path):
    folder, reports = slide_run
    single = tmp_path / "single"
    run_bundle("inference", "inference.json", output_dir=path_of(trained),
               slide=path_of(folder / "SYNTH-test-0001.svs"), reports_dir=path_of(single), beam_size=2, heatmaps=False)
    (row,) = _read_table(single / "reports.csv")
    assert row["id"] == "SYNTH-test-0001" and row["status"] == "done" and row["heatmap"] == ""
    assert (reports / "SYNTH-test-0001.txt").read_text(encoding="utf-8") == (
        single / "SYNTH-test-0001.txt").read_text(encoding="utf-8")
    assert row["report"] == (single / "SYNTH-test-0001.txt").read_text(encoding="utf-8").splitlines()[1]
    assert (single / "SYNTH-test-0001.findings.json").read_bytes() == (
        reports / "SYNTH-test-0001.findings.json").read_bytes()

    cmd = bundle_command("inference", ("inference.json",), {
        "output_dir": path_of(trained), "slide": f"['{path_of(folder / 'unreadable.svs')}']",
        "reports_dir": path_of(tmp_path / "none")})
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=bundle_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "none of the 1 slide(s) could be processed" in proc.stdout + proc.stderr
    (failed,) = _read_table(tmp_path / "none" / "reports.csv")
    assert failed["id"] == "unreadable" and failed["status"] == "failed" and "Bogus marker" in failed["error"]
    assert failed["notice"].startswith(SYNTHETIC_WARNING)


@pytest.mark.slow
def test_a_case_of_three_slides_gets_one_report(trained, tmp_path):
    """``--case_csv``: three demo slides as one case and one slide alone; one report and one row per case."""
    slides = trained / "demo_data" / "slides"
    table = tmp_path / "cases.csv"
    table.write_text("case_id,path\n" + "".join(f"CASE-3,{slides / f'SYNTH-test-000{i}.svs'}\n" for i in range(3))
                     + f"SOLO,{slides / 'SYNTH-test-0003.svs'}\n")
    reports = tmp_path / "reports"
    run_bundle("inference", "inference.json", output_dir=path_of(trained), case_csv=path_of(table),
               reports_dir=path_of(reports), beam_size=2, progress=False)
    rows = {r["id"]: r for r in _read_table(reports / "reports.csv")}
    assert list(rows) == ["CASE-3", "SOLO"]
    case = rows["CASE-3"]
    assert case["status"] == "done" and case["report"] != "" and len(case["slide"].split(";")) == 3
    assert case["report"] in (reports / "CASE-3.txt").read_text(encoding="utf-8")
    assert case["report_tokens"] and case["notice"].startswith(SYNTHETIC_WARNING)  # as every slide row
    assert case["heatmap"].split(";") == [f"SYNTH-test-000{i}_heatmap.png" for i in range(3)]
    patches = 0
    for i in range(3):
        with h5py.File(reports / "features" / f"SYNTH-test-000{i}.h5", "r") as handle:
            patches += handle["feats"].shape[0]
    assert int(case["n_patches"]) == patches
    assert not (reports / "SYNTH-test-0000.txt").exists()  # no per-slide report for a case's slides


def test_slide_inference_refuses_an_encoder_other_than_the_one_the_model_was_trained_with(tmp_path):
    """The encoder is rebuilt from the model's record: other weights (a different checksum) stop the run."""
    from scripts.encoders import build_encoder
    from scripts.engines.slide_inference import slide_feature_extractor

    record = {"encoder_name": "builtin-small", "encoder_checksum": "ab" * 32, "patch_size": 128, "target_mpp": 0.5}
    actual = build_encoder("builtin-small", device="cpu").checksum
    with pytest.raises(ValueError, match=(
            f"encoder builtin-small: checksum {actual} differs from the {'ab' * 32} of the encoder the model was "
            r"trained with \(models/feature_extraction.json\); give the same weights as --encoder_checkpoint")):
        slide_feature_extractor(record, tmp_path, device="cpu", record_path="models/feature_extraction.json")
    extractor = slide_feature_extractor(dict(record, encoder_checksum=actual), tmp_path, device="cpu")
    assert extractor is not None
