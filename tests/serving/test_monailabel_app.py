"""MONAI Label: the app in apps/monailabel served by a real ``monailabel start_server``, asked for a report."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import torch

from scripts.demo.synthetic_slides import write_synthetic_slide
from scripts.encoders import build_encoder
from scripts.engines import save_report_model
from scripts.networks import HistGen, HistGenConfig
from scripts.serving.region_features import region_feature_bag
from scripts.serving.report_predictor import ReportPredictor
from scripts.text import Vocabulary
from scripts.wsi import FeatureExtractor, SlideSource
from scripts.wsi.feature_outputs import extraction_record
from tests.support.bundle_runs import REPO_ROOT, bundle_env, path_of, run_bundle
from tests.support.local_servers import free_port, running_server

LABEL_ENV = REPO_ROOT / "build" / "monailabel_env"
TOKENS = ["<unk>", ".", "tissue", "carcinoma", "tumour", "of", "the", "shows", "stroma", "necrosis", "grade", "high"]
MONAI_LABEL_KEYS = ("network_def", "preprocessing", "postprocessing", "inferer", "device")


def _monailabel_path() -> str | None:
    if (LABEL_ENV / "monailabel" / "__init__.py").is_file():
        return str(LABEL_ENV)
    return "" if importlib.util.find_spec("monailabel") else None


def test_inference_config_keeps_the_keys_monai_label_reads():
    config = json.loads((REPO_ROOT / "configs" / "inference.json").read_text())
    missing = [key for key in MONAI_LABEL_KEYS if key not in config]
    assert not missing, f"configs/inference.json lost {missing}"
    assert config["network_def"]["_target_"] == "scripts.networks.HistGenBundleNet"  # HistGen, MONAI's forward


@pytest.fixture(scope="module")
def served_model(tmp_path_factory):
    """A report model on builtin-small features (D = 128) and a synthetic slide in a studies folder."""
    root = tmp_path_factory.mktemp("label")
    torch.manual_seed(5)
    config = HistGenConfig(in_dim=128, d_vf=64, d_model=32, d_ff=64, num_heads=4, num_layers=2, topk=8, cmm_size=16,
                           cmm_dim=32, region_size=8, prototype_num=4, vocab_size=len(TOKENS), max_seq_length=16,
                           beam_size=2)
    model_dir = save_report_model(root / "models", HistGen(config), Vocabulary(TOKENS)).parent
    studies = root / "studies"
    studies.mkdir()
    write_synthetic_slide(studies / "slide_a.svs", "adenocarcinoma", seed=1, size=(2048, 2048))
    return model_dir, studies


@pytest.fixture(scope="module")
def model_trained_at_patch_128(tmp_path_factory):
    """A report model whose ``feature_extraction.json`` is the record training writes for features extracted at
    patch size 128 (the slide demo's setting; the apps' old default was 256), and a slide to serve."""
    root = tmp_path_factory.mktemp("label128")
    write_synthetic_slide(root / "train" / "t.svs", "adenocarcinoma", seed=3, size=(1024, 1024))
    extractor = FeatureExtractor(root / "train_features", build_encoder("builtin-small"), device="cpu",
                                 patch_size=128, num_workers=0, save_thumbnails=False, progress=False)
    assert extractor.extract_slide(SlideSource("t", str(root / "train" / "t.svs"))).status == "done"
    record = extraction_record(root / "train_features" / "t.h5")
    assert record is not None and record["patch_size"] == 128
    torch.manual_seed(9)
    config = HistGenConfig(in_dim=128, d_vf=64, d_model=32, d_ff=64, num_heads=4, num_layers=2, topk=8, cmm_size=16,
                           cmm_dim=32, region_size=8, prototype_num=4, vocab_size=len(TOKENS), max_seq_length=16,
                           beam_size=2)
    model_dir = save_report_model(root / "models", HistGen(config), Vocabulary(TOKENS), extraction=record).parent
    studies = root / "studies"
    write_synthetic_slide(studies / "slide_w.svs", "squamous cell carcinoma", seed=4, size=(1536, 1536))
    return root, model_dir, studies


def _multipart(fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _post(url: str, fields: dict[str, str]) -> tuple[int, str]:
    body, content_type = _multipart(fields)
    request = urllib.request.Request(url, body, {"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.mark.slow
def test_monailabel_server_returns_a_report_for_a_slide_region(served_model, tmp_path):
    label_path = _monailabel_path()
    if label_path is None:
        pytest.skip("monailabel is not installed: run `bash apps/monailabel/install.sh` (see "
                    "docs/share_and_serve/monailabel.md for why it is installed beside the venv)")
    model_dir, studies = served_model
    port = free_port()
    env = bundle_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (label_path, env.get("PYTHONPATH", "")) if p)
    # `monailabel start_server ...` runs exactly this module with the Python found on PATH
    cmd = [sys.executable, "-m", "monailabel.main", "start_server", "--app", str(REPO_ROOT / "apps" / "monailabel"),
           "--studies", str(studies), "--conf", "model_dir", str(model_dir), "--conf", "models", "histgen_report",
           "--host", "127.0.0.1", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with running_server(cmd, f"{base}/info/", tmp_path / "server.log", tmp_path, env) as answer:
        info = json.loads(answer)
        assert "histgen_report" in info["models"]

        region = {"location": [256, 256], "size": [1536, 1536]}
        status, text = _post(f"{base}/infer/histgen_report?image=slide_a&output=json", {"params": json.dumps(region)})
        assert status == 200, text[-2000:]
        result = json.loads(text)

        bag = region_feature_bag(studies / "slide_a.svs", build_encoder("builtin-small"), (256, 256), (1536, 1536))
        expected = ReportPredictor(model_dir, device="cpu").predict_bags([bag.feats], ["slide_a"], with_weights=True)[0]
        assert result["report"] == expected.report and result["report"].strip()
        assert result["num_patches"] == bag.feats.shape[0]
        patches = result["heatmap"]["patches"]
        assert [p[:2] for p in patches] == bag.coords.tolist()
        assert all(256 <= x < 1792 and 256 <= y < 1792 for x, y, _ in patches)
        assert sum(w for _, _, w in patches) > 0

        # the WSI endpoint QuPath and Digital Slide Archive call: one report for the whole region, no tiling
        wsi = {"location": [256, 256], "size": [1536, 1536], "level": 0}
        status, text = _post(f"{base}/infer/wsi_v2/histgen_report?image=slide_a&output=json", {"wsi": json.dumps(wsi)})
        assert status == 200, text[-2000:]
        assert json.loads(text)["report"] == expected.report


def test_report_task_answers_a_feature_file_directly(served_model, tmp_path):
    """The task class itself (what the server calls), on a feature file: no server needed."""
    label_path = _monailabel_path()
    if label_path is None:
        pytest.skip("monailabel is not installed: run `bash apps/monailabel/install.sh`")
    model_dir, _ = served_model
    feats = torch.randn(30, 128, generator=torch.Generator().manual_seed(2))
    torch.save(feats, tmp_path / "bag_1.pt")
    script = (
        "import json, sys; sys.path.insert(0, sys.argv[1])\n"
        "from lib.report_infer import ReportInferTask\n"
        "task = ReportInferTask(sys.argv[2], device='cpu')\n"
        "assert task.is_valid()\n"
        "print(json.dumps(task({'image': sys.argv[3]})[1]))\n"
    )
    env = bundle_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (label_path, env["PYTHONPATH"]) if p)
    proc = subprocess.run([sys.executable, "-c", script, str(REPO_ROOT / "apps" / "monailabel"), str(model_dir),
                           str(tmp_path / "bag_1.pt")], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = ReportPredictor(model_dir, device="cpu").predict_files([tmp_path / "bag_1.pt"])[0]
    assert result["report"] == expected.report and result["slide_id"] == "bag_1"
    assert result["heatmap"] is None and result["num_patches"] == 30
    assert result["notice"] == ReportPredictor(model_dir, device="cpu").notice  # as the bundle's outputs
    assert Path(tmp_path / "bag_1.pt").is_file()


@pytest.mark.slow
def test_a_whole_slide_gets_the_report_of_slide_inference(model_trained_at_patch_128, tmp_path):
    """The app reads the model's feature_extraction.json (patch size 128): a whole-slide request gives the report
    and patches of ``python -m monai.bundle run inference --config_file configs/inference.json --slide``."""
    label_path = _monailabel_path()
    if label_path is None:
        pytest.skip("monailabel is not installed: run `bash apps/monailabel/install.sh`")
    root, model_dir, studies = model_trained_at_patch_128
    run_bundle("inference", "inference.json", output_dir=path_of(root), slide=path_of(studies / "slide_w.svs"),
               reports_dir=path_of(tmp_path / "workflow"), heatmaps=False, progress=False)
    with open(tmp_path / "workflow" / "reports.csv", encoding="utf-8-sig", newline="") as handle:
        (workflow,) = list(csv.DictReader(handle))
    assert workflow["status"] == "done" and workflow["report"].strip(), workflow

    port = free_port()
    env = bundle_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (label_path, env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-m", "monailabel.main", "start_server", "--app", str(REPO_ROOT / "apps" / "monailabel"),
           "--studies", str(studies), "--conf", "model_dir", str(model_dir), "--conf", "models", "histgen_report",
           "--host", "127.0.0.1", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with running_server(cmd, f"{base}/info/", tmp_path / "server.log", tmp_path, env):
        status, text = _post(f"{base}/infer/histgen_report?image=slide_w&output=json", {"params": "{}"})
        assert status == 200, text[-2000:]
    result = json.loads(text)
    assert result["num_patches"] == int(workflow["n_patches"])
    assert result["report"] == workflow["report_tokens"]  # the app returns the model's tokens
    assert result["heatmap"]["patch_size_level0"] == 128  # 0.5 um/px slide, patches of 128 px at 0.5 um/px
