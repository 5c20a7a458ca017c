"""MONAI's ``verify_net_in_out`` on each bundle's ``network_def`` (issue 14, item 7).

The documented commands run as written (plus ``--model_dir``) against tiny models whose sizes match the shipped
``metadata.json`` (``in_dim`` 1024, 2 classes, 4 time bins): the check feeds ``network_def`` a channel-first bag
``[1, D, N]`` and compares the output's channels and dtype with ``network_data_format``. In-process checks show
that the bundle networks' channel-first ``forward`` gives what the library methods give on ``[B, N, D]`` bags.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from monai.bundle import verify_net_in_out

from scripts.engines import save_report_model
from scripts.networks import HistGen, HistGenBundleNet, HistGenConfig
from scripts.text import Vocabulary
from scripts.transfer import network_from_fold_models, prepare_channel_first_mil_batch, prepare_mil_batch
from scripts.transfer.fold_models import save_fold_model
from scripts.transfer.mil_networks import build_mil_network
from tests.support.bundle_runs import REPO_ROOT, bundle_env

IN_DIM = 1024  # the metadata's num_channels: the shipped description is checked, not an override
TINY = dict(in_dim=IN_DIM, d_vf=16, d_model=32, d_ff=32, num_heads=4, num_layers=2, topk=4, cmm_size=8, cmm_dim=32,
            region_size=4, prototype_num=3, vocab_size=12, dropout=0.0, drop_prob_lm=0.0, max_seq_length=7)
#: bundle -> (its model and outputs as the metadata lists them, config files, metadata file)
SIBLINGS = {"subtyping": ("abmil", 2), "survival": ("histgen", 4)}
SUCCESS = "data shape of network is verified with no error."


def _config_files(bundle: str) -> str:
    if bundle == "report":
        return "configs/inference.json"
    return f"['bundle/{bundle}/configs/inference.json','scripts/transfer/configs/transfer_inference.json']"


def _meta_file(bundle: str) -> str:
    return "configs/metadata.json" if bundle == "report" else f"bundle/{bundle}/configs/metadata.json"


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    """One tiny trained-format ``models/`` per bundle (report: model.pt + config + vocab; siblings: fold_0)."""
    root = tmp_path_factory.mktemp("net_in_out")
    torch.manual_seed(0)
    dirs = {"report": root / "report" / "models"}
    save_report_model(dirs["report"], HistGen(HistGenConfig(**TINY)),
                      Vocabulary(["<unk>", *(f"w{i}" for i in range(11))]))
    histgen = {k: v for k, v in TINY.items() if k not in ("in_dim", "max_seq_length")}
    for task, (model, outputs) in SIBLINGS.items():
        network = build_mil_network(model, IN_DIM, outputs, histgen=histgen)
        dirs[task] = root / task / "models"
        info = {"task": task, "classes": ["LUAD", "LUSC"]} if task == "subtyping" else {"task": task}
        save_fold_model(dirs[task], 0, network.state_dict(), network, info)
    return dirs


@pytest.mark.parametrize("bundle", ["report", *SIBLINGS])
def test_verify_net_in_out_passes_on_the_default_network_def(bundle, model_dirs):
    cmd = [sys.executable, "-m", "monai.bundle", "verify_net_in_out", "network_def", "--meta_file", _meta_file(bundle),
           "--config_file", _config_files(bundle), "--model_dir", str(model_dirs[bundle]), "--any", "9"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=bundle_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert SUCCESS in proc.stdout + proc.stderr


def _verify_in_process(bundle: str, model_dir: Path, **meta: object) -> None:
    overrides = {f"_meta_#network_data_format#{k.replace('__', '#')}": v for k, v in meta.items()}
    config = [str(REPO_ROOT / f.strip("'")) for f in _config_files(bundle).strip("[]").split(",")]
    verify_net_in_out("network_def", meta_file=str(REPO_ROOT / _meta_file(bundle)), config_file=config,
                      device="cpu", any=5, model_dir=str(model_dir), **overrides)


def test_the_check_reads_the_metadata_a_wrong_description_fails(model_dirs):
    _verify_in_process("survival", model_dirs["survival"])  # as shipped: passes
    with pytest.raises(ValueError, match="output channel number `4` doesn't match: `3`"):
        _verify_in_process("survival", model_dirs["survival"], outputs__pred__num_channels=3)
    with pytest.raises(ValueError, match=r"features must be \[B, N, 1024\]"):  # ABMIL names the expected width
        _verify_in_process("subtyping", model_dirs["subtyping"], inputs__image__num_channels=512)
    with pytest.raises(ValueError, match="dtype of output data `torch.int64`"):
        _verify_in_process("report", model_dirs["report"], outputs__pred__dtype="float32")


def test_the_report_network_def_decodes_channel_first_bags_as_generate_does(model_dirs):
    config = HistGenConfig.from_dict(json.loads((model_dirs["report"] / "model_config.json").read_text()))
    net = HistGenBundleNet(config)
    net.load_state_dict(torch.load(model_dirs["report"] / "model.pt", weights_only=True))  # HistGen's weights
    assert net.state_dict().keys() == HistGen(config).state_dict().keys()
    features = torch.randn(2, 11, IN_DIM, generator=torch.Generator().manual_seed(3))  # [B, N, D]
    mask = torch.ones(2, 11, dtype=torch.bool)
    mask[1, 6:] = False
    ids = net(features.transpose(1, 2), mask)  # MONAI's [B, D, N]
    assert ids.shape == (2, 1, config.max_seq_length) and ids.dtype == torch.int64
    assert torch.equal(ids[:, 0], net.generate(features, mask))  # the model's beam size and length
    assert torch.equal(torch.jit.script(net)(features.transpose(1, 2), mask), ids)
    with pytest.raises(ValueError, match=r"channel-first \[B, D, N\]"):
        net(features[0])


@pytest.mark.parametrize("task", sorted(SIBLINGS))
def test_the_siblings_network_def_gives_the_fold_models_logits_on_channel_first_bags(task, model_dirs):
    net = network_from_fold_models(model_dirs[task], channels_first=True).eval()
    plain = network_from_fold_models(model_dirs[task]).eval()  # the class training uses
    state = torch.load(model_dirs[task] / "fold_0" / "model.pt", weights_only=True)
    net.load_state_dict(state)
    plain.load_state_dict(state)
    batch = {"features": torch.randn(2, 13, IN_DIM, generator=torch.Generator().manual_seed(4)),
             "mask": torch.ones(2, 13, dtype=torch.bool)}
    batch["mask"][0, 9:] = False
    bags, _, _, kwargs = prepare_channel_first_mil_batch(batch)  # what the bundle's inference runs
    features, _, _, plain_kwargs = prepare_mil_batch(batch)
    assert bags.shape == (2, IN_DIM, 13)
    with torch.no_grad():
        logits = net(bags, **kwargs)
        assert logits.shape == (2, SIBLINGS[task][1])
        assert torch.allclose(logits, plain(features, **plain_kwargs), atol=1e-6)


@pytest.mark.parametrize("bundle, missing", [("report", "model_config.json"), ("subtyping", "fold_<k>/model.pt")])
def test_without_a_trained_model_the_check_names_the_missing_file(bundle, missing, tmp_path):
    with pytest.raises(RuntimeError) as failed:  # a clean checkout: models/ is empty
        _verify_in_process(bundle, tmp_path / "models")
    cause = failed.value.__cause__  # MONAI wraps the expression's error; the CLI prints this one
    assert isinstance(cause, FileNotFoundError) and missing in str(cause) and "train" in str(cause)


def test_the_subtyping_inference_workflow_gives_the_fold_models_probabilities(model_dirs, tmp_path):
    """The whole inference workflow, whose batches now go to network_def's channel-first forward."""
    bags = [torch.randn(n, IN_DIM, generator=torch.Generator().manual_seed(n)) for n in (7, 12, 3)]
    files = []
    for i, bag in enumerate(bags):
        files.append(tmp_path / f"slide{i}.pt")
        torch.save(bag, files[-1])
    listing = "[" + ",".join(f"'{f}'" for f in files) + "]"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "inference", "--config_file", _config_files("subtyping"),
           "--model_dir", str(model_dirs["subtyping"]), "--feature_files", listing, "--output_dir", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=bundle_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    with open(tmp_path / "predictions" / "predictions.csv", encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    plain = network_from_fold_models(model_dirs["subtyping"]).eval()  # the class training uses, [B, N, D]
    plain.load_state_dict(torch.load(model_dirs["subtyping"] / "fold_0" / "model.pt", weights_only=True))
    with torch.no_grad():
        expected = [torch.softmax(plain(bag[None]), dim=-1)[0] for bag in bags]
    assert [row["slide_id"] for row in rows] == ["slide0", "slide1", "slide2"]
    for row, probs in zip(rows, expected):
        assert [float(row["prob_LUAD"]), float(row["prob_LUSC"])] == pytest.approx(probs.tolist(), abs=1e-5)
