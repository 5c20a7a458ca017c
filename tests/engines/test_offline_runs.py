"""Nothing downloads at run time, and tests leave nothing in the checkout.

The bundle subprocesses of the test suite run with ``tests/no_network`` first on ``PYTHONPATH``
(:func:`bundle_runs.bundle_env`): its ``sitecustomize.py`` refuses every outbound connection and name
lookup (loopback stays allowed) and records the attempt. Training, evaluation and inference on tiny data
must stay green that way and record no attempt.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from scripts.demo.feature_bags import make_demo_dataset
from tests.support.bundle_runs import NO_NETWORK_DIR, bundle_env, path_of, run_bundle

PROBE = r"""
import socket, sys, urllib.request
out = {}
for name, target in (("name", "https://huggingface.co/api/models"), ("address", "http://192.0.2.1/")):
    try:
        urllib.request.urlopen(target, timeout=2)
        out[name] = "reached"
    except OSError as err:
        out[name] = str(err)
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
socket.create_connection(server.getsockname(), timeout=2).close()
out["loopback"] = "ok"
print(__import__("json").dumps(out))
"""


def test_the_bundle_environment_refuses_outbound_connections_and_keeps_loopback(tmp_path):
    log = tmp_path / "attempts.log"
    env = {**bundle_env(), "HISTGEN_NO_NETWORK_LOG": str(log)}
    assert env["PYTHONPATH"].split(":")[0] == str(NO_NETWORK_DIR)
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    assert "refused in tests" in got["name"] and "refused in tests" in got["address"], got
    assert got["loopback"] == "ok"
    assert "huggingface.co" in log.read_text() and "192.0.2.1" in log.read_text()


@pytest.mark.slow  # importing the slide stack takes 10-30 s on 2 busy cores
def test_cucim_writes_its_log_outside_the_working_folder(tmp_path):
    """Importing the slide code starts cuFile (it logs a missing libcuda on CPU machines): not into the cwd."""
    proc = subprocess.run([sys.executable, "-c", "import scripts.wsi"], cwd=tmp_path, env=bundle_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list(tmp_path.iterdir()) == [], "the subprocess wrote into its working folder"


@pytest.mark.slow
def test_train_evaluate_and_infer_with_outbound_sockets_refused(tmp_path, monkeypatch):
    log = tmp_path / "attempts.log"
    monkeypatch.setenv("HISTGEN_NO_NETWORK_LOG", str(log))  # bundle_env copies os.environ
    demo = make_demo_dataset(tmp_path / "demo", n_train=6, n_val=3, n_test=3, feature_dim=16, n_patches=(8, 16))
    out = tmp_path / "run"
    data = {"dataset_dir": path_of(demo.dataset_dir), "annotation_file": path_of(demo.annotation_file)}
    small = {"batch_size": 3, "val_batch_size": 3, "max_seq_length": 20, "beam_size": 1}
    run_bundle("training", "train.json", **data, output_dir=path_of(out), max_epochs=1, tracking="mlflow", **small)
    run_bundle("evaluating", "evaluate.json", **data, output_dir=path_of(out), beam_size=1)
    run_bundle("inference", "inference.json", dataset_dir=path_of(demo.dataset_dir), output_dir=path_of(out),
               reports_dir=path_of(tmp_path / "reports"), beam_size=1)
    assert (out / "models" / "model.pt").is_file() and (out / "eval" / "metrics.json").is_file()
    assert list((tmp_path / "reports").glob("*.txt"))
    assert not log.exists(), f"a workflow tried to reach the network:\n{log.read_text()}"
