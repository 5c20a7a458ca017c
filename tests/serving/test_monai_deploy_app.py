"""MONAI Deploy: apps/monai_deploy run by the App SDK on a slide and a feature file, with the exported model.ts.

The slide's report must be the one ``configs/inference.json --slide`` writes for it: the app reads the model's
``feature_extraction.json`` (here: patch size 128, not the extractor's default 256) from ``model.ts``.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scripts.demo.synthetic_slides import write_synthetic_slide
from scripts.encoders import build_encoder
from scripts.engines import save_report_model
from scripts.engines.model_provenance import RESEARCH_NOTICE, SYNTHETIC_WARNING, load_provenance
from scripts.engines.report_outputs import report_file_text
from scripts.networks import HistGen, HistGenConfig
from scripts.serving import export_torchscript
from scripts.serving.report_predictor import ReportPredictor
from scripts.text import Vocabulary
from scripts.wsi import FeatureExtractor, SlideSource
from scripts.wsi.feature_outputs import extraction_record
from tests.support.bundle_runs import REPO_ROOT, bundle_env, path_of, run_bundle

SDK_ENV = REPO_ROOT / "build" / "monai_deploy_env"
TOKENS = ["<unk>", ".", "tissue", "carcinoma", "tumour", "of", "the", "shows", "stroma", "necrosis", "grade", "high"]


def _sdk_available() -> bool:
    if (SDK_ENV / "monai" / "deploy" / "__init__.py").is_file():
        return True
    probe = subprocess.run([sys.executable, "-c", "import monai.deploy.core"], capture_output=True, timeout=120)
    return probe.returncode == 0


def save_model_trained_at_patch_128(root: Path, config: HistGenConfig) -> Path:
    """A report model whose ``feature_extraction.json`` is the record training writes for features extracted at
    patch size 128 (the slide demo's setting), taken from a real extractor ``.h5``."""
    write_synthetic_slide(root / "train" / "t.svs", "adenocarcinoma", seed=3, size=(1024, 1024))
    extractor = FeatureExtractor(root / "train_features", build_encoder("builtin-small"), device="cpu",
                                 patch_size=128, num_workers=0, save_thumbnails=False, progress=False)
    assert extractor.extract_slide(SlideSource("t", str(root / "train" / "t.svs"))).status == "done"
    record = extraction_record(root / "train_features" / "t.h5")
    assert record is not None and record["patch_size"] == 128
    provenance = {"dataset": "HistGen demo (synthetic slides)", "synthetic": True, "slides": {"train": 1}}
    return save_report_model(root / "models", HistGen(config), Vocabulary(TOKENS), extraction=record,
                             provenance=provenance).parent


def slide_inference_rows(output_dir: Path, slide: Path, reports_dir: Path) -> dict[str, dict[str, str]]:
    """``python -m monai.bundle run inference --config_file configs/inference.json --slide <slide>``'s table."""
    run_bundle("inference", "inference.json", output_dir=path_of(output_dir), slide=path_of(slide),
               reports_dir=path_of(reports_dir), heatmaps=False, progress=False)
    with open(reports_dir / "reports.csv", encoding="utf-8-sig", newline="") as handle:
        return {row["id"]: row for row in csv.DictReader(handle)}


def test_the_sdk_stays_out_of_monai_for_everyone_else():
    """The side-folder install must not change what `import monai` does in this environment."""
    proc = subprocess.run([sys.executable, "-c", "import monai, sys; print('monai.deploy' in sys.modules)"],
                          cwd=REPO_ROOT, env=bundle_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.slow
def test_deploy_app_writes_reports_for_a_slide_and_a_feature_file(tmp_path):
    if not _sdk_available():
        pytest.skip("MONAI Deploy App SDK not installed: run `bash apps/monai_deploy/install.sh` "
                    "(see docs/share_and_serve/monai_deploy.md)")
    torch.manual_seed(7)
    config = HistGenConfig(in_dim=128, d_vf=64, d_model=32, d_ff=64, num_heads=4, num_layers=2, topk=8, cmm_size=16,
                           cmm_dim=32, region_size=8, prototype_num=4, vocab_size=len(TOKENS), max_seq_length=16,
                           beam_size=2)
    model_dir = save_model_trained_at_patch_128(tmp_path, config)
    model_ts = export_torchscript(model_dir, tmp_path / "served" / "model.ts")  # no model folder beside it
    inputs = tmp_path / "input"
    inputs.mkdir()
    write_synthetic_slide(inputs / "slide_b.svs", "squamous cell carcinoma", seed=2, size=(1536, 1536))
    bag = torch.randn(25, 128, generator=torch.Generator().manual_seed(4))
    torch.save(bag, inputs / "bag_c.pt")

    out = tmp_path / "output"
    cmd = [sys.executable, str(REPO_ROOT / "apps" / "monai_deploy" / "app.py"), "-i", str(inputs), "-o", str(out),
           "-m", str(model_ts)]
    env = {k: v for k, v in bundle_env().items() if k != "PYTHONPATH"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "ReportWriterOperator" in proc.stdout + proc.stderr, "the SDK's executor ran the operators"

    reports = {row["slide_id"]: row for row in json.loads((out / "reports.json").read_text())["reports"]}
    assert set(reports) == {"slide_b", "bag_c"}
    # the slide: the report and patches of the bundle's slide inference on the same slide
    workflow = slide_inference_rows(tmp_path, inputs / "slide_b.svs", tmp_path / "workflow")["slide_b"]
    assert workflow["status"] == "done" and workflow["report"].strip(), workflow
    assert reports["slide_b"]["num_patches"] == int(workflow["n_patches"])
    assert reports["slide_b"]["report"] == workflow["report_tokens"]  # the app writes the model's tokens
    # every output carries the model's notice (model.ts carries its provenance.json): the bundle's report file
    text = (out / "slide_b.txt").read_text()
    assert text == report_file_text(workflow["report_tokens"], load_provenance(model_dir))
    assert text.startswith(SYNTHETIC_WARNING) and RESEARCH_NOTICE in text
    assert reports["slide_b"]["notice"] == workflow["notice"]  # the bundle's reports.csv notice
    assert json.loads((out / "reports.json").read_text())["notice"].startswith(SYNTHETIC_WARNING)
    # the feature file: the report of the bundle's predictor, with the model's beam size (2)
    (expected,) = ReportPredictor(model_dir, device="cpu").predict_bags([bag], ["bag_c"])
    assert reports["bag_c"]["report"] == expected.report and expected.report.strip()
    assert json.loads((out / "bag_c.json").read_text())["num_patches"] == 25
