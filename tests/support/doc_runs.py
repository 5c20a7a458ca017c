"""Run the commands the documentation shows, as written, in a throw-away workspace (issue 14, item 8).

The commands of a block run with bash, one after the other, in a folder that looks like a fresh clone: the
bundle's code, configs, apps and docs are copied in (``scripts/``, ``configs/``, ``apps/``, ``docs/``, ``bundle/``),
the rest is linked (``benchmarks/``, ``tests/``, ``build/``), ``.venv`` is the test's own environment and
``python`` / ``python3`` / ``torchrun`` on
``PATH`` are the test's interpreter. So a command that writes ``models/``, ``runs/``, ``model.ts`` or
``demo_data/`` writes into the workspace, never into the checkout.

Placeholder paths (``/data/slides``, ``/models/uni.bin``, ``a.svs``, ...) are documented in the table
"Paths in the examples" of docs/README.md; :func:`substitute` points each absolute one into the workspace
(``/data/slides`` -> ``<workspace>/data/slides``), the relative ones are files the test writes into the
workspace. A command that names a ``/data/...``, ``/models/...``, ``/opt/...`` or ``/path/...`` path the table
does not document fails its test (:func:`undocumented_paths`).

Where a command cannot run small as written (the full 240-slide demo, 40 epochs), the test appends the fewest
documented keys; every such addition is listed in :data:`APPENDED_OVERRIDES` (one table, visible in review),
and the commands not run at all are in :data:`NOT_RUN` with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.bundle_runs import NO_NETWORK_DIR, bundle_env
from tests.support.doc_commands import SHELL_LANGUAGES, DocBlock, block_commands, doc_blocks, placeholder_table
from tests.support.shared_fixtures import REPO_ROOT

#: the file whose "Paths in the examples" table documents the placeholders of README.md and docs/*.md
PLACEHOLDER_DOC = REPO_ROOT / "docs" / "README.md"
#: copied into every workspace: what commands read as "the bundle" (the export zips the folder above ``scripts``,
#: the apps write logs beside themselves), so that nothing is written into the checkout
COPIED = ("configs", "scripts", "apps", "docs", "bundle", "LICENSE")
#: linked into every workspace (read-only parts of a clone; ``build/`` holds the apps' side installs)
LINKED = ("benchmarks", "requirements", "pyproject.toml", "tests", "build")
#: the CI script whose commands must be the README's exactly
CI_SCRIPT = REPO_ROOT / ".ci" / "run"

#: the tiny slide demo (20 slides of 1024 x 1024 px, ~20 patches each) that stands for the 240-slide default:
#: the fewest slides with which the sibling bundles' 2-fold demo cross-validation can still cut a val part
_TINY_DEMO_OPTIONS = {"n_train": 12, "n_val": 4, "n_test": 4, "slide_size": 1024, "seed": 3}
#: as the report bundle's ``--demo`` value (which also names the demo's source)
TINY_DEMO = repr({"source": "slides", **_TINY_DEMO_OPTIONS})
_TINY_CONTROL_DEMO = repr({"source": "slides", **_TINY_DEMO_OPTIONS, "shuffle_pairs": True})
#: as ``python -m scripts.demo --demo`` takes it (JSON)
_TINY_DEMO_JSON = json.dumps(_TINY_DEMO_OPTIONS)
#: what makes a sibling bundle's demo training small: the workspace's tiny demo, 2 folds of 1 epoch
_SIBLING_SMALL = f'--demo "{TINY_DEMO}" --num_folds 2 --max_epochs 1'
_SIBLING_SMALL_WHY = "5 folds x up to 8 epochs on the 240-slide demo"

#: (Markdown file, command as the doc writes it) -> what the test appends to it, and why (the only changes)
APPENDED_OVERRIDES: dict[tuple[str, str], tuple[str, str]] = {
    ("docs/README.md", "python -m monai.bundle run training --config_file configs/train.json"):
        (f'--demo "{TINY_DEMO}" --max_epochs 2', "the default demo is 240 slides and 40 epochs (~10 min)"),
    ("docs/slide_pipeline.md", "python -m monai.bundle run training --config_file configs/train.json"):
        (f'--demo "{TINY_DEMO}" --max_epochs 2', "the default demo is 240 slides and 40 epochs (~10 min)"),
    ("docs/slide_pipeline.md", "python -m monai.bundle run evaluating --config_file configs/evaluate.json"):
        (f'--demo "{TINY_DEMO}"', "reads the demo the training above wrote (same demo setting)"),
    ("docs/slide_pipeline.md", "python -m monai.bundle run training --config_file configs/train.json "
                               "--demo#shuffle_pairs true --output_dir runs/control"):
        (f'--demo "{_TINY_CONTROL_DEMO}" --max_epochs 1', "240 slides and 40 epochs"),
    ("docs/slide_pipeline.md", "python -m scripts.demo --output_dir runs/demo"):
        (f"--demo '{_TINY_DEMO_JSON}'", "the default demo is 240 slides"),
    ("docs/slide_pipeline.md", "python -m monai.bundle run training --config_file configs/train.json --dataset_dir "
                               "runs/demo/demo_data/features --annotation_file runs/demo/demo_data/annotation.json "
                               "--output_dir runs/demo"):
        ("--max_epochs 1", "40 epochs"),
    ("docs/README.md", "torchrun --nproc_per_node=2 -m monai.bundle run training --config_file "
                       "\"['configs/train.json','configs/multi_gpu_train.json']\" --output_dir runs/ddp"):
        (f'--demo "{TINY_DEMO}" --max_epochs 1', "the default demo is 240 slides and 40 epochs"),
    ("docs/README.md", "python -m monai.bundle run training --config_file configs/train.json --dataset_dir "
                       "/data/features --annotation_file /data/annotation.json --output_dir runs/exp1 "
                       "--tracking mlflow"):
        ("--max_epochs 1", "40 epochs"),
    ("README.md", "python -m monai.bundle run training --config_file \"['configs/train.json',"
                  "'configs/presets/histgen_released.json']\" --dataset_dir /data/histgen/features --annotation_file "
                  "/data/histgen/annotation.json --output_dir runs/histgen --tracking mlflow"):
        ("--max_epochs 1", "the preset's 40 epochs of the paper-size network"),
    ("docs/share_and_serve/registry.md", "python -m monai.bundle run training --config_file configs/train.json "
                                         "--tracking mlflow --register_model histgen-report"):
        (f'--demo "{TINY_DEMO}" --max_epochs 3', "the 240-slide demo; 3 epochs: the workspace's run has done 2, "
                                                "and a re-run that trains nothing registers nothing"),
    ("docs/README.md", "python -m monai.bundle verify_net_in_out network_def --meta_file configs/metadata.json "
                       "--config_file configs/inference.json"):
        ("--_meta_#network_data_format#inputs#image#num_channels 128",
         "the metadata lists D = 1024; the workspace's demo model has builtin-small's D = 128 (the override the "
         "doc gives for other sizes)"),
    ("docs/README.md", "python -m monai.bundle verify_net_in_out network_def --meta_file "
                       "bundle/subtyping/configs/metadata.json --config_file "
                       "\"['bundle/subtyping/configs/inference.json',"
                       "'scripts/transfer/configs/transfer_inference.json']\""):
        ("--_meta_#network_data_format#inputs#image#num_channels 128 "
         "--_meta_#network_data_format#outputs#pred#num_channels 4",
         "the metadata lists D = 1024 and 2 classes; the workspace's demo folds have D = 128 and 4 classes (the "
         "overrides the doc gives for other sizes)"),
    ("docs/README.md", "python -m monai.bundle verify_net_in_out network_def --meta_file "
                       "bundle/survival/configs/metadata.json --config_file "
                       "\"['bundle/survival/configs/inference.json',"
                       "'scripts/transfer/configs/transfer_inference.json']\""):
        ("--_meta_#network_data_format#inputs#image#num_channels 128",
         "the metadata lists D = 1024; the workspace's demo folds have builtin-small's D = 128"),
    ("docs/share_and_serve/registry.md", "python -m monai.bundle run training --tracking mlflow --register_model "
                                         "histgen-subtyping --config_file \"['bundle/subtyping/configs/train.json',"
                                         "'scripts/transfer/configs/transfer_train.json']\""):
        (_SIBLING_SMALL, _SIBLING_SMALL_WHY),
    ("docs/share_and_serve/registry.md", "python -m monai.bundle run training --register_model histgen-survival "
                                         "--config_file \"['bundle/survival/configs/train.json',"
                                         "'scripts/transfer/configs/transfer_train.json']\""):
        (_SIBLING_SMALL, _SIBLING_SMALL_WHY),
    ("docs/share_and_serve/registry.md", "curl -X POST http://127.0.0.1:5002/invocations -H 'Content-Type: "
                                         "application/json' -d '{\"dataframe_records\": [{\"feature_file\": "
                                         "\"/data/features/slide1.h5\"}]}'"):
        ("--fail-with-body", "an HTTP error answer fails the test (curl exits 0 on one)"),
    ("docs/share_and_serve/registry.md", "curl -X POST http://127.0.0.1:5001/invocations -H 'Content-Type: "
                                         "application/json' -d '{\"dataframe_records\": [{\"feature_file\": "
                                         "\"/data/features/slide1.h5\"}], \"params\": {\"beam_size\": 3}}'"):
        ("--fail-with-body", "an HTTP error answer fails the test (curl exits 0 on one)"),
    ("docs/share_and_serve/monailabel.md", "curl -X POST \"http://127.0.0.1:8000/infer/histgen_report?image=slide_a&"
                                           "output=json\" -F 'params={\"location\": [256, 256], "
                                           "\"size\": [1536, 1536]}'"):
        ("--fail-with-body", "an HTTP error answer fails the test (curl exits 0 on one)"),
}

#: (file, python key) -> the environment a python block's comments ask for (set before it runs; placeholders too)
BLOCK_ENVIRONMENT: dict[tuple[str, str], dict[str, str]] = {
    ("docs/share_and_serve/registry.md", "python:model.predict(pd.DataFrame({\"feature_file\": [\"slide1.h5\", "
                                         "\"/data/features/slide2.pt\"]}))"):
        {"MLFLOW_TRACKING_URI": "sqlite:////path/to/eval/mlruns.db", "MLFLOW_REGISTRY_URI": "sqlite:////path/to/eval/mlruns.db",
         "HISTGEN_FEATURE_ROOT": "/data/features"},
    ("docs/share_and_serve/registry.md", "python:model.predict(pd.DataFrame({\"feature_file\": "
                                         "[\"/data/features/slide1.h5\"]}))"):
        {"MLFLOW_TRACKING_URI": "sqlite:////path/to/bundle/subtyping/eval/mlruns.db",
         "MLFLOW_REGISTRY_URI": "sqlite:////path/to/bundle/subtyping/eval/mlruns.db",
         "HISTGEN_FEATURE_ROOT": "/data/features"},
}

#: the sibling bundles' documented demo training (their docs/README.md), run once in the base workspace after the
#: report training with ``_SIBLING_SMALL`` appended: the blocks that need trained fold models (a fold's
#: ``ckpt_export`` and ``verify_net_in_out``, the sibling zips, the registry's predict and serve) then run as written
SIBLING_TRAININGS: tuple[tuple[str, str], ...] = tuple(
    (f"bundle/{name}/docs/README.md", "python -m monai.bundle run training --config_file "
                                      f"\"['bundle/{name}/configs/train.json','scripts/transfer/configs/"
                                      "transfer_train.json']\"")
    for name in ("subtyping", "survival"))

#: what a placeholder stands for in the workspace where the table's plain meaning cannot be met small
STAND_INS: dict[str, str] = {
    "histgen_ckpt/model_best.pth": "the reference-format checkpoint of ../shared/fixtures/histgen_official/small, "
                                   "with its config.json as the workspace's configs/histgen_released.json "
                                   "(the released checkpoint is 4,676 outputs at d_model 512)",
    "/data/histgen/features": "12 HistGen-style `.pt` bags [N, 96] (the small reference checkpoint's in_dim)",
    "/models/my_encoder": "a histgen-word-embedding-v1 folder with random 8-dim rows over the demo's words",
}

#: (Markdown file, command) -> why the test does not run it (it still fails when the doc names an undocumented path)
#: (a python block's key is :func:`python_key`)
NOT_RUN: dict[tuple[str, str], str] = {
    ("docs/slide_pipeline.md", "python -m monai.bundle run extract_features --config_file "
                               "configs/extract_features.json --slides_csv slides.csv --output_dir /data/features "
                               "--encoder_name uni --encoder_checkpoint /models/uni.bin"):
        "UNI's weights are gated (the user downloads them; no test may); a random stand-in is a 1.2 GB ViT-L at "
        "~1 s a patch on CPU. The uni preset (architecture, 303.4 M parameters, checkpoint errors) is tested in "
        "tests/encoders/test_encoders.py, the checkpoint layouts on a tiny ViT",
    ("docs/slide_pipeline.md", "python -m monai.bundle run inference --config_file configs/inference.json "
                               "--slides_csv slides.csv --encoder_checkpoint /models/uni.bin"):
        "needs UNI's gated weights and a report model trained on UNI features (the checksum check refuses any "
        "other encoder: tests/engines/test_slide_inference.py)",
    ("docs/share_and_serve/monai_deploy.md", "cp -r scripts apps/monai_deploy/scripts"):
        "part of packaging a MAP, which needs Docker and the network (the doc says it is not tested here)",
    ("docs/share_and_serve/monai_deploy.md", "monai-deploy package apps/monai_deploy --tag histgen-report:0.1.0 "
                                             "--model models/model.ts --requirements requirements/constraints.txt"):
        "builds a Docker image: needs Docker and the network",
    ("docs/share_and_serve/monai_deploy.md", "monai-deploy run histgen-report:0.1.0 /data/slides /data/reports"):
        "runs the Docker image of the MAP",
}

#: how a documented long-running server is run: started in the background in its own process group
#: (``setsid``), waited for on its ready endpoint, stopped when the test module ends
SERVERS: dict[str, str] = {
    "mlflow models serve": "http://127.0.0.1:{port}/ping",
    "PYTHONPATH=build/monailabel_env .venv/bin/python -m monailabel.main start_server": "http://127.0.0.1:{port}/info/",
}
#: the file (in the workspace) listing the process groups of the servers started there
SERVER_PIDS = ".doc_servers.pid"


def _server_command(command: str) -> str:
    """``command`` (a documented server) started in the background, then waited for until it answers."""
    flags = re.search(r"(?:-p|--port)\s+(\d+)", command)
    assert flags, f"no port in the server command {command!r}"
    port = flags.group(1)
    url = next(url for prefix, url in SERVERS.items() if command.startswith(prefix)).format(port=port)
    env, _, rest = command.partition(" ") if command.startswith("PYTHONPATH=") else ("", "", command)
    log = f".doc_server_{port}.log"
    return (f"{env} setsid {rest} > {log} 2>&1 & echo $! >> {SERVER_PIDS}; server=$!\n"
            f"for _ in $(seq 1 240); do curl -sf -o /dev/null {url} && break; "
            f"kill -0 $server 2>/dev/null || {{ cat {log}; exit 1; }}; sleep 1; done\n"
            f"curl -sf -o /dev/null {url} || {{ cat {log}; exit 1; }}").lstrip()


def stop_servers(root: Path) -> None:
    """Stop the process groups of the servers this workspace's blocks started."""
    pids = root / SERVER_PIDS
    if not pids.is_file():
        return
    for line in pids.read_text().split():
        try:
            os.killpg(int(line), 15)
        except (ProcessLookupError, PermissionError):
            pass


def workspace_python() -> Path:
    """The test's interpreter, the ``python`` every documented command means."""
    return Path(sys.executable)


def make_workspace(root: Path) -> Path:
    """A folder that looks like a fresh clone with its venv: links to the code, a copy of ``bundle/``.

    ``root/.bin`` holds ``python``, ``python3`` and ``torchrun`` wrappers of the test's interpreter (put first
    on ``PATH`` by :func:`run_commands`); ``root/.venv`` is the test's environment.
    """
    root.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        if (REPO_ROOT / name).exists() and not (root / name).exists():
            (root / name).symlink_to(REPO_ROOT / name)
    skipped = shutil.ignore_patterns("eval", "checkpoints", "demo_data", "runs", "dist", "logs", "*.pt", "*.ts",
                                     "*.db", "__pycache__")
    for name in COPIED:
        source, target = REPO_ROOT / name, root / name
        if target.exists():
            continue
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True, ignore=skipped)
        else:
            shutil.copy2(source, target)
    (root / "models").mkdir(exist_ok=True)
    if not (root / ".venv").exists():
        (root / ".venv").symlink_to(Path(sys.prefix))
    bin_dir = root / ".bin"
    bin_dir.mkdir(exist_ok=True)
    python = workspace_python()
    # torchrun: its rendezvous on a free port (PET_* are torchrun's own environment defaults), since test files
    # run in parallel and its default port 29500 would be shared
    for name, target in (("python", f'"{python}"'), ("python3", f'"{python}"'),
                         ("torchrun", f'env PET_RDZV_BACKEND=c10d PET_RDZV_ENDPOINT=localhost:0 "{python}" '
                                      "-m torch.distributed.run")):
        wrapper = bin_dir / name
        wrapper.write_text(f'#!/bin/sh\nexec {target} "$@"\n')
        wrapper.chmod(0o755)
    return root


def documented_placeholders() -> dict[str, str]:
    """The placeholder table of docs/README.md: ``{"/data/slides": "what it stands for", ...}``."""
    return placeholder_table(PLACEHOLDER_DOC)


_ABSOLUTE = re.compile(r"(?<![\w.-])/(?:data|models|opt|path)(?:/[^\s'\",\]\)]*)?")


def undocumented_paths(command: str, table: dict[str, str]) -> list[str]:
    """The placeholder-like absolute paths of ``command`` neither in ``table`` nor inside one of its folders."""
    documented = [p for p in table if p.startswith("/")]
    return [p for p in _ABSOLUTE.findall(command)
            if not any(p == d or p.startswith(d.rstrip("/") + "/") for d in documented)]


def substitute(command: str, table: dict[str, str], root: Path) -> str:
    """``command`` with every documented absolute placeholder pointed into ``root`` (longest first)."""
    for placeholder in sorted((p for p in table if p.startswith("/")), key=len, reverse=True):
        pattern = re.compile(rf"(?<![\w.-]){re.escape(placeholder)}(?=$|[/\s'\",\]\)])")
        command = pattern.sub(lambda _m, p=placeholder: str(root) + p, command)
    return command


def planned_commands(block: DocBlock, root: Path, table: dict[str, str]) -> list[str]:
    """The block's commands as the test runs them: placeholders substituted, documented overrides appended.

    Raises:
        AssertionError: a command names a placeholder path the table does not document.
    """
    planned = []
    for command in block_commands(block):
        missing = undocumented_paths(command, table)
        assert not missing, (f"{block.id}: {command!r} names {missing}, which docs/README.md's "
                             "'Paths in the examples' table does not document")
        extra = APPENDED_OVERRIDES.get((block.path, command))
        planned.append(substitute(command + (f" {extra[0]}" if extra else ""), table, root))
    return planned


def run_commands(commands: list[str], cwd: Path, timeout: float = 600,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``commands`` with bash in ``cwd`` (stop at the first failure); fail with the output if one fails.

    Unset variables expand to nothing, as in the user's shell (no ``set -u``).
    """
    environment = dict(env or bundle_env())
    guard = [] if environment.get("HISTGEN_TESTS_ALLOW_NETWORK") == "1" else [str(NO_NETWORK_DIR)]
    environment["PYTHONPATH"] = os.pathsep.join([*guard, str(cwd)])  # the workspace is the clone
    environment["PATH"] = os.pathsep.join([str(cwd / ".bin"), str(Path(sys.executable).parent),
                                           environment.get("PATH", "")])
    script = "set -eo pipefail\n" + "\n".join(commands) + "\n"  # -e: stop at the first failure, as CI
    proc = subprocess.run(["bash", "-c", script], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-6000:]
        raise AssertionError(f"documented commands exited {proc.returncode} in {cwd}:\n{script}\n{tail}")
    return proc


def ci_commands() -> list[str]:
    """The commands ``.ci/run`` runs: each line split at ``&&`` (comments and shell structure left out)."""
    commands = []
    for line in CI_SCRIPT.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            commands += [part.strip() for part in line.split("&&")]
    return commands


#: the documented demo training (docs/README.md, docs/slide_pipeline.md): it prepares every workspace, so a block
#: that starts with it runs the rest of its commands in a copy of that workspace (the state it leaves)
BASE_COMMAND = "python -m monai.bundle run training --config_file configs/train.json"


def session_folder(tmp_path_factory: Any) -> Path:
    """A folder that every process of this pytest session sees, and no other session: pytest's base temp, or
    under pytest-xdist its parent (``pytest-<n>/``, which holds each worker's ``popen-gw<k>/``)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def prepare_base(root: Path, shared: Path | None = None) -> Path:
    """A workspace after the documented demo training (tiny demo), with every placeholder's data built.

    With ``shared`` (a folder all test processes of the session see, e.g. the parent of pytest's base temp
    under xdist), the base is built once there, under a file lock, and ``root`` is a copy of it (file times
    kept, links kept): the doc test files then pay for one demo training, not one each.
    """
    if shared is None:
        return _build_base(root)
    import fcntl

    shared.mkdir(parents=True, exist_ok=True)
    base, done = shared / "doc_base", shared / "doc_base.done"
    with open(shared / "doc_base.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if building fails
        if not done.exists():
            shutil.rmtree(base, ignore_errors=True)
            _build_base(base)
            done.write_text("ok\n")
    shutil.copytree(base, root, symlinks=True)
    return root


def _build_base(root: Path) -> Path:
    from tests.support.doc_data import build_placeholders

    make_workspace(root)
    extra, _ = APPENDED_OVERRIDES[("docs/README.md", BASE_COMMAND)]
    run_commands([f"{BASE_COMMAND} {extra}"], root)
    build_placeholders(root, documented_placeholders())
    run_commands([f"{command} {_SIBLING_SMALL}" for _, command in SIBLING_TRAININGS], root)
    return root


def python_key(block: DocBlock) -> str:
    """The key of a python block in :data:`NOT_RUN`: ``python:`` + its last line of code (comment dropped)."""
    lines = [line.split("  #")[0].rstrip() for line in block.text.splitlines()]
    return "python:" + [line for line in lines if line.strip() and not line.lstrip().startswith("#")][-1]


def commands_to_run(block: DocBlock, root: Path, table: dict[str, str]) -> list[str]:
    """:func:`planned_commands` less the :data:`NOT_RUN` ones, a leading :data:`BASE_COMMAND` (already run) and,
    outside README.md, the commands README.md shows word for word (:func:`readme_commands`).

    A python block is written (placeholders substituted) to ``<root>/.doc_<file>_<line>.py`` and run with
    ``python``.
    """
    if block.language == "python":
        missing = undocumented_paths(block.text, table)
        assert not missing, f"{block.id} names {missing}, which the 'Paths in the examples' table does not document"
        if (block.path, python_key(block)) in NOT_RUN:
            return []
        script = root / f".doc_{Path(block.path).stem}_{block.line}.py"
        script.write_text(substitute(block.text, table, root), encoding="utf-8")
        environment = BLOCK_ENVIRONMENT.get((block.path, python_key(block)), {})
        exports = [substitute(f"export {k}={v}", table, root) for k, v in environment.items()]
        return [*exports, f"python {script.name}"]
    raw = block_commands(block)
    planned = planned_commands(block, root, table)
    shown_in_readme = readme_commands() if block.path != "README.md" else set()
    keep = [_server_command(p) if c.startswith(tuple(SERVERS)) else p for i, (c, p) in enumerate(zip(raw, planned))
            if (block.path, c) not in NOT_RUN and not (i == 0 and c == BASE_COMMAND) and c not in shown_in_readme]
    return keep


def readme_commands() -> set[str]:
    """The commands of README.md's blocks: a guide that shows one of them word for word (the extraction, the
    slide inference) leaves it to the README test, which runs it on the same data (CI time is scarce)."""
    return {c for block in doc_blocks(REPO_ROOT / "README.md") for c in block_commands(block)}


def ci_block(block: DocBlock) -> bool:
    """Whether ``block`` is one that ``.ci/run`` runs verbatim (the README's install + main job, apps, tests)."""
    if block.language != "bash" and block.language not in SHELL_LANGUAGES:
        return False
    first = block_commands(block)[0] if block_commands(block) else ""
    return first.startswith(CI_RUN_PREFIXES)


#: the first words of the blocks that ``.ci/run`` runs (the tests assert it runs them exactly, and do not rerun them)
CI_RUN_PREFIXES = ("python3 -m venv .venv", "bash apps/monailabel/install.sh", "bash apps/monai_deploy/install.sh",
                   ".venv/bin/python -m pytest")


def assert_ci_runs(block: DocBlock) -> None:
    """Every command of ``block`` (``&&`` chains split) is a command of ``.ci/run``, word for word."""
    ci = ci_commands()
    for command in block_commands(block):
        for part in (p.strip() for p in command.split("&&")):
            assert part in ci, f"{block.id}: {part!r} is not run by .ci/run (README and CI differ)"


def run_block(block: DocBlock, root: Path, timeout: float = 600) -> None:
    """Check or run one documented block: CI's blocks against ``.ci/run``, the others in the workspace ``root``.

    The blocks of a guide build on each other (a model trained in ``runs/exp1`` is evaluated next), so a test
    module runs its blocks in document order in one workspace prepared by :func:`prepare_base`.
    """
    if ci_block(block):
        assert_ci_runs(block)
        return
    commands = commands_to_run(block, root, documented_placeholders())
    if commands:
        run_commands(commands, root, timeout=timeout)
