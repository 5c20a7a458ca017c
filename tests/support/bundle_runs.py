"""Run the bundle's workflows the way a user does: ``python -m monai.bundle run ...`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.shared_fixtures import REPO_ROOT

#: Its ``sitecustomize.py`` refuses outbound connections in the subprocess (loopback only).
NO_NETWORK_DIR = REPO_ROOT / "tests" / "no_network"


def bundle_env() -> dict[str, str]:
    """The environment of a bundle subprocess: offline, and with outbound sockets refused.

    ``HISTGEN_TESTS_ALLOW_NETWORK=1`` leaves the network guard (``tests/no_network``) out.
    """
    env = dict(os.environ)
    guard = [] if env.get("HISTGEN_TESTS_ALLOW_NETWORK") == "1" else [str(NO_NETWORK_DIR)]
    env.update(
        {
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "2"),
            "PYTHONPATH": os.pathsep.join([*guard, str(REPO_ROOT)]),
        }
    )
    return env


def config_arg(*names: str) -> str:
    files = [f"configs/{n}" for n in names]
    return files[0] if len(files) == 1 else "[" + ",".join(f"'{f}'" for f in files) + "]"


def bundle_command(run_id: str, configs: tuple[str, ...], overrides: dict[str, object],
                   torchrun_procs: int | None = None) -> list[str]:
    """The command line for a workflow; ``overrides`` become ``--key value``."""
    if torchrun_procs:
        head = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={torchrun_procs}",
                "--rdzv-backend=c10d", "--rdzv-endpoint=localhost:0",
                "-m", "monai.bundle"]
    else:
        head = [sys.executable, "-m", "monai.bundle"]
    cmd = [*head, "run", run_id, "--config_file", config_arg(*configs)]
    for key, value in overrides.items():
        cmd += [f"--{key}", str(value)]
    return cmd


def run_bundle(run_id: str, *configs: str, timeout: float = 900, torchrun_procs: int | None = None,
               **overrides: object) -> subprocess.CompletedProcess[str]:
    """Run a workflow from the repo root; fail with its output if it exits non-zero."""
    cmd = bundle_command(run_id, configs, overrides, torchrun_procs)
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=bundle_env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-6000:]
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}")
    return proc


def path_of(p: Path) -> str:
    return str(p.resolve())


def run_from_anywhere(tmp_path: Path, bundle_args: list[str], output_flag: str) -> list[Path]:
    """Run ``python -m monai.bundle <bundle_args>`` as a user of an unzipped bundle would, from two folders.

    Once from an empty folder, once with ``python -P`` from a folder that has its own ``scripts`` package (a
    decoy that raises on import), both without the checkout on ``PYTHONPATH``: the bundle must find its own
    code through ``--bundle_root``. Each run writes to its own folder, given as ``<output_flag> <folder>``.

    Returns:
        The two output folders, after both runs succeeded.
    """
    env = {k: v for k, v in bundle_env().items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    decoy = tmp_path / "decoy"
    (decoy / "scripts").mkdir(parents=True, exist_ok=True)
    (decoy / "scripts" / "__init__.py").write_text("raise ImportError('not the bundle')\n")
    outputs = []
    for python_args, cwd in (([], tmp_path / "empty"), (["-P"], decoy)):
        cwd.mkdir(exist_ok=True)
        out = tmp_path / f"from_anywhere{len(python_args)}"
        cmd = [sys.executable, *python_args, "-m", "monai.bundle", *bundle_args, output_flag, str(out)]
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        outputs.append(out)
    return outputs
