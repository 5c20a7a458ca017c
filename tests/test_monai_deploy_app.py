"""MONAI Deploy: apps/monai_deploy run by the App SDK on a slide and a feature file, with the exported model.ts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from bundle_runs import REPO_ROOT, bundle_env

from scripts.demo.synthetic_slides import write_synthetic_slide
from scripts.encoders import build_encoder
from scripts.engines import save_report_model
from scripts.networks import HistGen, HistGenConfig
from scripts.serving import export_torchscript
from scripts.serving.region_features import region_feature_bag
from scripts.serving.report_predictor import ReportPredictor
from scripts.text import Vocabulary

SDK_ENV = REPO_ROOT / "build" / "monai_deploy_env"
TOKENS = ["<unk>", ".", "tissue", "carcinoma", "tumour", "of", "the", "shows", "stroma", "necrosis", "grade", "high"]


def _sdk_available() -> bool:
    if (SDK_ENV / "monai" / "deploy" / "__init__.py").is_file():
        return True
    probe = subprocess.run([sys.executable, "-c", "import monai.deploy.core"], capture_output=True, timeout=120)
    return probe.returncode == 0


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
    model_dir = save_report_model(tmp_path / "models", HistGen(config), Vocabulary(TOKENS)).parent
    model_ts = export_torchscript(model_dir)
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
    predictor = ReportPredictor(model_dir, device="cpu")
    region = region_feature_bag(inputs / "slide_b.svs", build_encoder("builtin-small"))
    expected = predictor.predict_bags([bag, region.feats], ["bag_c", "slide_b"])
    for item in expected:
        assert reports[item.slide_id]["report"] == item.report and item.report.strip()
        assert (out / f"{item.slide_id}.txt").read_text() == item.report + "\n"
    assert reports["slide_b"]["num_patches"] == region.feats.shape[0]
    assert json.loads((out / "bag_c.json").read_text())["num_patches"] == 25
