"""models/model.ts: the whole report generator as TorchScript, loaded where this repository is not importable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest
import torch

from scripts.engines import load_report_model, save_report_model
from scripts.networks import HistGen, HistGenConfig
from scripts.text import Vocabulary
from tests.support.bundle_runs import REPO_ROOT, bundle_env

TOKENS = ["<unk>", ".", "tissue", "carcinoma", "tumour", "of", "the", "shows", "stroma", "necrosis", "grade", "high"]

# Runs in a fresh interpreter from an empty folder, without PYTHONPATH: only torch is importable.
LOADER = r"""
import importlib.util, json, sys, torch, warnings
warnings.simplefilter("ignore")
repo = sys.argv[1]
assert not any(p and p.rstrip("/") == repo for p in sys.path), sys.path
assert importlib.util.find_spec("scripts") is None, "the repo's scripts package must not be importable here"
inputs = torch.load(sys.argv[2])
extra = {"model_config.json": "", "vocab.json": ""}
net = torch.jit.load(sys.argv[3], _extra_files=extra)
out = {"ids": {}, "texts": net.reports(inputs["feats"], inputs["mask"])}
for beam in (1, 2, 3):
    out["ids"][beam] = net.generate(inputs["feats"], inputs["mask"], beam, 12, True)
out["score"] = net.score(inputs["feats"], inputs["targets"], inputs["mask"])
out["config"] = json.loads(extra["model_config.json"])
out["in_dim"] = net.in_dim
torch.save(out, sys.argv[4])
"""


def _model_dir(tmp_path, compat: str, input_norm: bool = False):
    torch.manual_seed(3)
    config = HistGenConfig(in_dim=24, d_vf=32, d_model=32, d_ff=48, num_heads=4, num_layers=2, topk=6, cmm_size=12,
                           cmm_dim=32, region_size=6, prototype_num=4, vocab_size=len(TOKENS), max_seq_length=12,
                           beam_size=2, compat=compat, input_norm=input_norm)
    model = HistGen(config)
    with torch.no_grad():  # a peaked output layer so that beams end at different steps
        model.decoder.logit.weight.mul_(4.0)
    if input_norm:  # statistics far from (0, 1), so that leaving them out of the export would change the output
        gen = torch.Generator().manual_seed(5)
        model.fit_input_norm([torch.randn(50, 24, generator=gen) * torch.linspace(0.1, 5.0, 24) + 2.0])
    return save_report_model(tmp_path / "models", model, Vocabulary(TOKENS)).parent


def _inputs(compat: str):
    gen = torch.Generator().manual_seed(11)
    feats = torch.randn(3, 40, 24, generator=gen)
    mask = torch.ones(3, 40, dtype=torch.bool)
    if compat == "default":  # padded bags of 40, 17 and 29 patches
        mask[1, 17:] = False
        mask[2, 29:] = False
        feats[~mask] = 0.0
    targets = torch.randint(1, len(TOKENS) + 1, (3, 9), generator=gen)
    targets[:, 0] = 0
    return feats, mask, targets


def _load_in_fresh_process(tmp_path, model_ts, feats, mask, targets):
    torch.save({"feats": feats, "mask": mask, "targets": targets}, tmp_path / "inputs.pt")
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = {k: v for k, v in bundle_env().items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", LOADER, str(REPO_ROOT), str(tmp_path / "inputs.pt"), str(model_ts),
                           str(tmp_path / "out.pt")], cwd=empty, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(tmp_path / "out.pt", weights_only=False)


@pytest.mark.parametrize("compat, input_norm", [("default", False), ("default", True), ("histgen-v1", False)])
def test_torchscript_export_matches_the_eager_model(tmp_path, compat, input_norm):
    model_dir = _model_dir(tmp_path, compat, input_norm)
    cmd = [sys.executable, "-m", "scripts.serving.torchscript_export", "--model_dir", str(model_dir),
           "--meta_file", "configs/metadata.json"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=bundle_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (model_dir / "model.ts").is_file()

    feats, mask, targets = _inputs(compat)
    got = _load_in_fresh_process(tmp_path, model_dir / "model.ts", feats, mask, targets)
    model, vocab = load_report_model(model_dir)
    for beam in (1, 2, 3):
        expected = model.generate(feats, mask, beam_size=beam, max_len=12)
        assert torch.equal(got["ids"][beam], expected), f"beam {beam}"
    if compat == "default" and not input_norm:  # reports end at different steps: both search exits run
        assert len({int((row > 0).sum()) for row in got["ids"][3]}) > 1
    assert torch.allclose(got["score"], model.score(feats, targets, mask), atol=1e-5, rtol=0)
    default_ids = model.generate(feats, mask, beam_size=model.config.beam_size, max_len=model.config.max_seq_length)
    assert got["texts"] == vocab.decode_batch(default_ids.tolist())
    assert got["config"]["compat"] == compat and got["in_dim"] == 24
    assert got["config"]["input_norm"] is input_norm


def test_monai_ckpt_export_writes_the_same_generator(tmp_path):
    model_dir = _model_dir(tmp_path, "default")
    target = tmp_path / "exported" / "model.ts"
    target.parent.mkdir()  # ckpt_export does not create it
    cmd = [sys.executable, "-m", "monai.bundle", "ckpt_export", "--net_id", "torchscript_network_def",
           "--config_file", "configs/export.json", "--model_dir", str(model_dir),
           "--ckpt_file", str(model_dir / "model.pt"), "--filepath", str(target)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=bundle_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    extra = {"metadata.json": "", "export.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = torch.jit.load(str(target), _extra_files=extra)
    assert json.loads(extra["metadata.json"])["version"]
    feats, mask, _ = _inputs("default")
    model, _ = load_report_model(model_dir)
    assert torch.equal(net.generate(feats, mask, 3, 12, True), model.generate(feats, mask, beam_size=3, max_len=12))


def test_the_model_itself_scripts_and_generates_the_eager_ids():
    """``torch.jit.script(model)`` of HistGen is the exported network: no second copy of the model exists."""
    torch.manual_seed(0)
    model = HistGen(HistGenConfig(in_dim=8, d_vf=16, d_model=16, d_ff=16, num_heads=2, num_layers=1, topk=4,
                                  cmm_size=8, cmm_dim=16, region_size=4, prototype_num=2, vocab_size=5)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(model)
    features = torch.randn(2, 9, 8)
    assert torch.equal(scripted.generate(features, beam_size=3, max_len=10),
                       model.generate(features, beam_size=3, max_len=10))
    targets = torch.tensor([[0, 1, 2, 0], [0, 3, 4, 5]])
    assert torch.allclose(scripted(features, targets)[0], model(features, targets).logprobs, atol=1e-5, rtol=0)
    encoding = scripted.encode(features)
    assert torch.allclose(encoding.region_tokens, model.encode(features).region_tokens, atol=1e-6)


def test_exported_file_rejects_wrong_feature_size(tmp_path):
    model_dir = _model_dir(tmp_path, "default")
    from scripts.serving import export_torchscript, load_exported_network

    net, config = load_exported_network(export_torchscript(model_dir))
    assert config["in_dim"] == 24
    with pytest.raises(Exception, match="wrong dimension D"):
        net.generate(torch.randn(1, 5, 7), None, 2, 5, True)
    assert os.path.getsize(model_dir / "model.ts") > 0
