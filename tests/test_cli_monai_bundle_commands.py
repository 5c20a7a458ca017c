"""MONAI's bundle CLI: ``ckpt_export`` of the report bundle's default ``network_def`` and MONAI's own property
check of each bundle's ``configs/inference.json`` with the bundle's default values (issue 14, item 7)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigWorkflow

from scripts.engines import save_report_model
from scripts.networks import HistGen, HistGenConfig
from scripts.text import Vocabulary
from scripts.transfer.fold_models import save_fold_model
from scripts.transfer.mil_networks import build_mil_network
from tests.support.bundle_runs import REPO_ROOT, bundle_env

TINY = dict(in_dim=16, d_vf=16, d_model=32, d_ff=32, num_heads=4, num_layers=2, topk=4, cmm_size=8, cmm_dim=32,
            region_size=4, prototype_num=3, vocab_size=12, dropout=0.0, drop_prob_lm=0.0)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A models/ folder as training writes it (model.pt, model_config.json, vocab.json), tiny and untrained."""
    model_dir = tmp_path_factory.mktemp("cli") / "models"
    torch.manual_seed(0)
    save_report_model(model_dir, HistGen(HistGenConfig(**TINY)), Vocabulary(["<unk>", *(f"w{i}" for i in range(11))]))
    return model_dir


def test_ckpt_export_of_the_default_network_def_gives_a_torchscript_model(tiny_model_dir, tmp_path):
    exported = tmp_path / "model.ts"
    cmd = [sys.executable, "-m", "monai.bundle", "ckpt_export", "network_def", "--filepath", str(exported),
           "--ckpt_file", str(tiny_model_dir / "model.pt"), "--meta_file", "configs/metadata.json",
           "--config_file", "configs/inference.json", "--model_dir", str(tiny_model_dir)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=bundle_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"exported to file: {exported}" in proc.stdout + proc.stderr
    scripted = torch.jit.load(str(exported))
    eager = HistGen(HistGenConfig(**TINY))
    eager.load_state_dict(torch.load(tiny_model_dir / "model.pt", weights_only=True))
    features = torch.randn(2, 9, TINY["in_dim"], generator=torch.Generator().manual_seed(1))
    ids = scripted.generate(features, None, 2, 6, True)
    assert ids.shape == (2, 6) and ids.dtype == torch.int64
    assert torch.equal(ids, eager.generate(features, beam_size=2, max_len=6))  # the checkpoint's weights, not new ones
    # forward is MONAI's: channel-first bags [B, D, N] -> ids [B, 1, L] with the model's own beam size and length
    assert torch.equal(scripted(features.transpose(1, 2)), eager.generate(features)[:, None])


def test_monai_property_check_of_inference_passes_with_the_default_values(tiny_model_dir):
    workflow = ConfigWorkflow(config_file=str(REPO_ROOT / "configs" / "inference.json"),
                              meta_file=str(REPO_ROOT / "configs" / "metadata.json"), workflow_type="infer",
                              run_id="inference", bundle_root=str(REPO_ROOT), model_dir=str(tiny_model_dir))
    workflow.initialize()
    assert workflow.check_properties() == []
    assert len(workflow.dataset) == 0  # resolving the properties touched no data
    with pytest.raises(RuntimeError) as failed:  # MONAI wraps the expression's error
        workflow.run()  # the default values still cannot run: the clear error comes when the workflow starts
    assert "inference needs feature_files" in str(failed.value.__cause__)


@pytest.mark.parametrize("task, num_outputs", [("subtyping", 3), ("survival", 4)])
def test_monai_property_check_of_the_siblings_inference_passes_with_the_default_values(task, num_outputs, tmp_path):
    network = build_mil_network("abmil", 16, num_outputs)  # one tiny fold model, as training saves it
    save_fold_model(tmp_path / "models", 0, network.state_dict(), network, {"task": task})
    root = REPO_ROOT / "bundle" / task
    files = [str(root / "configs" / "inference.json"),
             str(REPO_ROOT / "scripts/transfer/configs/transfer_inference.json")]
    workflow = ConfigWorkflow(config_file=files,  # the bundle's file, then the shared base (as the README runs it)
                              meta_file=str(root / "configs" / "metadata.json"), workflow_type="infer",
                              run_id="inference", bundle_root=str(root), model_dir=str(tmp_path / "models"))
    workflow.initialize()
    assert workflow.check_properties() == []
    assert len(workflow.dataset) == 0
    with pytest.raises(RuntimeError) as failed:
        workflow.run()
    assert "inference needs feature_files" in str(failed.value.__cause__)


@pytest.mark.parametrize("model, task, num_outputs", [("abmil", "subtyping", 3), ("histgen", "survival", 4)])
def test_ckpt_export_of_a_sibling_fold_model_gives_a_torchscript_model(model, task, num_outputs, tmp_path):
    """One fold's weights through the sibling's own network_def (built from the fold models' record)."""
    torch.manual_seed(0)
    histgen = {k: v for k, v in TINY.items() if k != "in_dim"}
    network = build_mil_network(model, 16, num_outputs, histgen=histgen, abmil={"input_norm": True}).eval()
    if model == "abmil":
        network.input_mean.fill_(0.25)  # a fitted standardisation must travel with the export
        network.input_std.fill_(2.0)
    save_fold_model(tmp_path / "models", 0, network.state_dict(), network, {"task": task})
    root = f"bundle/{task}"
    exported = tmp_path / "fold0.ts"
    files = f"['{root}/configs/inference.json','scripts/transfer/configs/transfer_inference.json']"
    cmd = [sys.executable, "-m", "monai.bundle", "ckpt_export", "network_def", "--filepath", str(exported),
           "--ckpt_file", str(tmp_path / "models" / "fold_0" / "model.pt"), "--meta_file",
           f"{root}/configs/metadata.json", "--config_file", files, "--bundle_root", root,
           "--model_dir", str(tmp_path / "models")]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=bundle_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    scripted = torch.jit.load(str(exported))
    features = torch.randn(2, 13, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():  # forward is MONAI's: the channel-first bag [B, D, N]
        assert torch.allclose(scripted(features.transpose(1, 2)), network(features), atol=1e-5)
