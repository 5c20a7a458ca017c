"""Two-process training (torchrun, gloo, CPU) splits the data and equals one process with the same global batch.

The two ranks must see disjoint shards that together cover the train split every epoch, and the model
they train must equal (to float tolerance) the model of a single process whose sampler yields the same
global batches (a ``DistributedSampler`` with one replica and the same seed) at twice the per-rank batch
size. Dropout is off and every report has the same number of tokens, so that the mean of the two ranks'
losses is the loss of the global batch (DDP averages gradients over ranks).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scripts.demo.feature_bags import make_demo_dataset
from tests.support.bundle_runs import REPO_ROOT, bundle_env, path_of

WORDS = ["adenocarcinoma", "lung", "acinar", "pattern", "pleura", "margin", "tumour", "normal", "lymph", "node"]
SETTINGS = {"max_epochs": 2, "val_batch_size": 4, "max_seq_length": 20, "beam_size": 1, "vocab_threshold": 1,
            "network_def#config#dropout": 0.0, "network_def#config#drop_prob_lm": 0.0}
PER_RANK_BATCH = 2


def _overlay(folder: Path, base: str, name: str, extra: dict | None = None) -> Path:
    config = json.loads((REPO_ROOT / "configs" / "train.json").read_text())
    steps = json.loads((REPO_ROOT / "configs" / base).read_text())["training"]
    steps.insert(steps.index("$@train#trainer.run()"), "$shard_probe.install(@train#trainer, @output_dir)")
    path = folder / name
    imports = [*config["imports"], "$import tests.support.shard_probe as shard_probe"]
    path.write_text(json.dumps({"imports": imports, "training": steps, **(extra or {})}))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    demo = make_demo_dataset(folder / "demo", n_train=12, n_val=4, n_test=4, feature_dim=16, n_patches=(10, 40))
    annotation = json.loads(demo.annotation_file.read_text())
    for split in (annotation[name] for name in ("train", "val", "test")):
        for i, item in enumerate(split):  # eight words and a full stop each: equal token counts
            item["report"] = " ".join(WORDS[(i * 3 + j) % len(WORDS)] for j in range(8)) + " ."
    path = folder / "equal_length.json"
    path.write_text(json.dumps(annotation))
    return demo.dataset_dir, path, folder


def _run(configs: list[Path | str], out: Path, data, batch_size: int, procs: int | None) -> None:
    dataset_dir, annotation, _ = data
    head = [sys.executable, "-m", "monai.bundle"]
    if procs:
        head = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={procs}", "--rdzv-backend=c10d",
                "--rdzv-endpoint=localhost:0", "-m", "monai.bundle"]
    cmd = [*head, "run", "training", "--config_file", "[" + ",".join(f"'{c}'" for c in configs) + "]"]
    settings = {"dataset_dir": path_of(dataset_dir), "annotation_file": path_of(annotation),
                "output_dir": path_of(out), "batch_size": batch_size, **SETTINGS}
    for key, value in settings.items():
        cmd += [f"--{key}", str(value)]
    env = bundle_env()
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]


@pytest.mark.slow
def test_two_ranks_see_disjoint_shards_and_train_the_single_process_model(data, tmp_path):
    _, annotation, folder = data
    ddp_overlay = _overlay(folder, "multi_gpu_train.json", "ddp_probe.json")
    single_overlay = _overlay(folder, "train.json", "single_probe.json", {
        "train#sampler": {"_target_": "DistributedSampler", "dataset": "@train#dataset", "even_divisible": True,
                          "shuffle": True, "num_replicas": 1, "rank": 0},
        "train#dataloader#sampler": "@train#sampler", "train#dataloader#shuffle": False})
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    _run(["configs/train.json", "configs/multi_gpu_train.json", ddp_overlay], ddp, data, PER_RANK_BATCH, procs=2)
    _run(["configs/train.json", single_overlay], single, data, 2 * PER_RANK_BATCH, procs=None)

    train_ids = {item["id"] for item in json.loads(annotation.read_text())["train"]}
    ranks = [json.loads((ddp / f"seen.rank{r}.json").read_text()) for r in (0, 1)]
    global_batches = json.loads((single / "seen.rank0.json").read_text())
    assert len(ranks[0]) == len(ranks[1]) == len(global_batches) == SETTINGS["max_epochs"] * 3
    for epoch in (1, 2):
        shards = [{i for e, batch in rank for i in batch if e == epoch} for rank in ranks]
        assert not shards[0] & shards[1], f"epoch {epoch}: both ranks trained on {shards[0] & shards[1]}"
        assert shards[0] | shards[1] == train_ids and len(shards[0]) == len(shards[1]) == 6
    for step, (b0, b1, whole) in enumerate(zip(ranks[0], ranks[1], global_batches, strict=True)):
        assert set(b0[1]) | set(b1[1]) == set(whole[1]), f"step {step}: the global batches differ"

    ddp_model = torch.load(ddp / "checkpoints" / "last.pt", weights_only=True)["model"]
    single_model = torch.load(single / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert ddp_model.keys() == single_model.keys()
    # Tolerance: an attention key bias gets a gradient that is zero in exact arithmetic (softmax ignores a
    # shift shared by all keys); Adam scales its float noise up to steps of up to lr, so such entries differ
    # by ~1e-4 between any two summation orders; the median tensor must agree far closer than that.
    diffs = {name: float((ddp_model[name].float() - value.float()).abs().max())
             for name, value in single_model.items() if value.is_floating_point()}
    worst = max(diffs, key=diffs.get)
    print(f"DDP vs single process: largest weight difference {diffs[worst]:.1e} ({worst}); "
          f"median over tensors {sorted(diffs.values())[len(diffs) // 2]:.1e}")
    for name, value in single_model.items():
        torch.testing.assert_close(ddp_model[name], value, rtol=1e-3, atol=1e-4, msg=lambda m, n=name: f"{n}: {m}")
    assert sorted(diffs.values())[len(diffs) // 2] < 1e-6
