"""Run the sibling bundles' documented shell blocks as written, on small data, in a throw-away workspace.

Used by the tests of issue 14, item 8 for ``bundle/*/docs/**/*.md`` and ``docs/adding_a_task.md``. A block runs
as one ``bash`` script (``set -e``: a failing command fails the block; shell variables such as ``B=...`` carry to
the next line) from the root of a workspace that looks like the repository root to the commands: ``configs/``,
``scripts/`` and each bundle's ``configs/`` and ``docs/`` are links into the checkout, the folders the commands
write (``bundle/<name>/``, ``models/``, ``demo_data/``, ``runs/``) are the workspace's own. Before it runs:

- every ``/data/...`` path of a command is replaced by the small data the test built for it; a path that the
  Markdown file's "Paths in the examples" table does not document fails the test (:func:`undocumented_paths`);
- the documented command keeps every word; only what :data:`APPENDED_OVERRIDES` lists is appended, to make the
  SYNTHETIC demo and the cross-validation small (the defaults write 240 slides and train 5 folds x 8 epochs);
- ``python`` (and ``torchrun``) on ``PATH`` run the test's interpreter, the environment is
  :func:`tests.support.bundle_runs.bundle_env` (offline) with ``OMP_NUM_THREADS=1``, and ``torchrun``'s default
  rendezvous port is moved to a free one (``PET_MASTER_PORT``) so that two test workers never share it.
"""

from __future__ import annotations

import csv
import json
import os
import re
import resource
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scripts.atomic_io import atomic_write_csv
from scripts.demo.label_tables import make_subtyping_demo, make_survival_demo
from tests.support.bundle_runs import REPO_ROOT, bundle_env
from tests.support.doc_commands import DocBlock, block_commands, doc_blocks, flag_values, placeholder_table
from tests.support.transfer_demo import TINY_SLIDES

#: A placeholder path in a command: ``/data/`` and what follows up to a space, quote, bracket or comma.
PLACEHOLDER = re.compile(r"/data/[^\s'\",\]\)]+")

#: The tiny slide demo as a ``--demo`` value (the sibling bundles' demo options), and with the report bundle's
#: ``source`` (its ``demo`` option holds both).
TINY_DEMO = repr(dict(TINY_SLIDES))
TINY_REPORT_DEMO = repr({"source": "slides", **TINY_SLIDES})


@dataclass(frozen=True)
class AppendedOverride:
    """Keys appended to the documented commands that ``applies`` matches.

    Attributes:
        commands: which documented commands get them (for the table in the report).
        keys: ``--key value`` pairs, appended in this order after the command's own words.
        why: the default that would make the command too large for a test.
        applies: ``(run_id, flags) -> bool`` on the command's workflow and its ``--key value`` pairs.
    """

    commands: str
    keys: tuple[tuple[str, str], ...]
    why: str
    applies: Callable[[str, dict[str, str]], bool] = field(repr=False)


def _is_report_bundle(flags: dict[str, str]) -> bool:
    return flags.get("config_file", "").startswith(("configs/", "['configs/"))


#: Every override the doc tests append, and to which commands (a command may match several rows).
APPENDED_OVERRIDES: tuple[AppendedOverride, ...] = (
    AppendedOverride("sibling `run training` / `run evaluating` on the demo (no `--csv_file`)",
                     (("demo", TINY_DEMO),),
                     "the default demo is the report bundle's 240 slides of 2048 px (4 to 8 min to write); the tiny "
                     "one (40 slides of 1024 px) is already in the workspace's `demo_data/` and is reused",
                     lambda run, f: run in ("training", "evaluating") and not _is_report_bundle(f)
                     and "csv_file" not in f),
    AppendedOverride("sibling `run training`", (("num_folds", "2"), ("max_epochs", "1")),
                     "5 folds x up to 8 epochs",
                     lambda run, f: run == "training" and not _is_report_bundle(f)),
    AppendedOverride("report bundle `run training` (`configs/train.json`)",
                     (("demo", TINY_REPORT_DEMO), ("max_epochs", "1")),
                     "240 slides of 2048 px and 40 epochs; the tiny demo is already in the run's `demo_data/`",
                     lambda run, f: run == "training" and _is_report_bundle(f)),
)


def _workflow(command: str) -> tuple[str, dict[str, str]] | None:
    """``(run_id, flags)`` of a ``python -m monai.bundle run <id>`` or ``torchrun ... -m monai.bundle run <id>``."""
    words = shlex.split(command, posix=True) if command.count('"') % 2 == 0 else command.split()
    for i in range(len(words) - 2):
        if words[i] == "monai.bundle" and words[i + 1] == "run":
            return words[i + 2], flag_values(command)
    return None


def appended_keys(command: str) -> list[tuple[str, str]]:
    """The ``(key, value)`` pairs :data:`APPENDED_OVERRIDES` appends to ``command`` (none for other commands)."""
    workflow = _workflow(command)
    if workflow is None:
        return []
    run_id, flags = workflow
    return [pair for row in APPENDED_OVERRIDES if row.applies(run_id, flags) for pair in row.keys]


def undocumented_paths(md: Path, root: Path = REPO_ROOT) -> dict[str, list[str]]:
    """``{block id: [placeholder paths its commands use that the file's table does not document]}``."""
    table = placeholder_table(md)
    missing: dict[str, list[str]] = {}
    for block in doc_blocks(md, root=root):
        used = sorted({p for c in block_commands(block) for p in PLACEHOLDER.findall(c)} - set(table))
        if used:
            missing[block.id] = used
    return missing


def runnable_script(block: DocBlock, data: dict[str, Path]) -> str:
    """The block's commands with the placeholders replaced by ``data`` and the overrides appended, one per line."""
    lines = []
    for command in block_commands(block):
        for path in sorted(set(PLACEHOLDER.findall(command)), key=len, reverse=True):
            if path not in data:
                raise KeyError(f"{block.id}: no small data for the placeholder {path}")
            command = command.replace(path, str(data[path]))
        extra = " ".join(f"--{key} {_quoted(value)}" for key, value in appended_keys(command))
        lines.append(f"{command} {extra}".rstrip())
    return "\n".join(lines) + "\n"


def _quoted(value: str) -> str:
    """``value`` for bash, in double quotes as the docs write ``--demo "{'source': ...}"`` where that is safe."""
    quoted = shlex.quote(value)
    return f'"{value}"' if quoted != value and not set(value) & set('"$`\\!') else quoted


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_workspace(root: Path, report_demo: Path | None = None, report_model_dir: Path | None = None) -> Path:
    """A folder the documented commands can run from as from the repository root (see the module docstring).

    Args:
        root: the (new) workspace folder.
        report_demo: None, or a tiny slide demo (``make_slide_demo_dataset`` with :data:`TINY_SLIDES`), copied to
            ``demo_data/`` (as the report bundle's training leaves it) and ``runs/report_slides/demo_data/`` (so the
            documented report run reuses it); copies keep the files' times, so its features stay current.
        report_model_dir: a report model folder copied to ``models/`` (the report bundle's default ``model_dir``).
    """
    root.mkdir(parents=True, exist_ok=True)
    for name in ("configs", "scripts"):
        (root / name).symlink_to(REPO_ROOT / name, target_is_directory=True)
    for bundle in sorted((REPO_ROOT / "bundle").iterdir()):
        if bundle.is_dir():
            own = root / "bundle" / bundle.name
            own.mkdir(parents=True)
            for name in ("configs", "docs"):
                if (bundle / name).is_dir():
                    (own / name).symlink_to(bundle / name, target_is_directory=True)
    if report_demo is not None:
        shutil.copytree(report_demo, root / "demo_data")
        shutil.copytree(report_demo, root / "runs" / "report_slides" / "demo_data")
    if report_model_dir is not None:
        shutil.copytree(report_model_dir, root / "models")
    tools = root / ".bin"
    tools.mkdir()
    for name, target in (("python", Path(sys.executable)), ("torchrun", Path(sys.executable).with_name("torchrun"))):
        if target.is_file():  # a wrapper, not a link: a link to a venv's python outside the venv loses the venv
            (tools / name).write_text(f'#!/bin/sh\nexec {shlex.quote(str(target))} "$@"\n', encoding="utf-8")
            (tools / name).chmod(0o755)
    return root


@dataclass
class BlockRun:
    """One block's run: its script, exit status, output, wall time and the CPU time of its processes."""

    block: DocBlock
    script: str
    returncode: int
    output: str
    seconds: float
    started: float
    cpu_seconds: float = 0.0

    def failure(self) -> str:
        return (f"{self.block.id} exited {self.returncode} after {self.seconds:.0f} s ({self.cpu_seconds:.0f} s CPU)\n"
                f"--- script ---\n{self.script}"
                f"--- output (tail) ---\n{self.output[-8000:]}")


class DocBlockRunner:
    """Runs one Markdown file's shell blocks in one workspace, in file order, each at most once.

    A block's test asks for :meth:`run`; the earlier blocks of the file run first (the reader runs them first too:
    a later block uses what an earlier one wrote).
    """

    def __init__(self, md: Path, workspace: Path, data: dict[str, Path], timeout: float = 600) -> None:
        self.md, self.workspace, self.data, self.timeout = md, workspace, data, timeout
        self.blocks = doc_blocks(md)
        self.runs: dict[str, BlockRun] = {}

    def environment(self) -> dict[str, str]:
        env = {**bundle_env(), "OMP_NUM_THREADS": "1", "PET_MASTER_PORT": str(_free_port())}
        env["PATH"] = os.pathsep.join([str(self.workspace / ".bin"), str(Path(sys.executable).parent),
                                       env.get("PATH", "")])
        return env

    def _run_one(self, block: DocBlock) -> BlockRun:
        script = runnable_script(block, self.data)
        started, cpu = time.time(), _children_cpu()
        proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=self.workspace,
                              env=self.environment(), capture_output=True, text=True, timeout=self.timeout)
        run = BlockRun(block, script, proc.returncode, proc.stdout + proc.stderr, time.time() - started, started,
                       _children_cpu() - cpu)
        print(f"{block.id}: {run.seconds:.0f} s wall, {run.cpu_seconds:.0f} s CPU, exit {run.returncode}")
        return run

    def run(self, block_id: str) -> BlockRun:
        """Run the block (after the file's earlier blocks) and return its run."""
        for block in self.blocks:
            if block.id not in self.runs:
                self.runs[block.id] = self._run_one(block)
            if block.id == block_id:
                return self.runs[block_id]
        raise KeyError(f"{self.md}: no shell block {block_id}")

    def earlier_failures(self, block_id: str) -> list[str]:
        ids = [b.id for b in self.blocks]
        return [i for i in ids[: ids.index(block_id)] if self.runs.get(i) and self.runs[i].returncode != 0]


def outputs_of(command: str, workspace: Path) -> list[Path]:
    """The files a documented workflow command must leave (training/evaluating: ``eval/metrics.json`` of a sibling
    bundle or ``models/model.pt`` of the report bundle; inference: ``predictions/predictions.csv``)."""
    workflow = _workflow(command)
    if workflow is None:
        return []
    run_id, flags = workflow
    if _is_report_bundle(flags):
        output_dir = flags.get("output_dir", ".")
        return [workspace / output_dir / "models" / "model.pt"] if run_id == "training" else []
    config = flags.get("config_file", "")
    bundle = re.search(r"bundle/(\w+)/configs", config)
    output_dir = flags.get("output_dir") or (f"bundle/{bundle.group(1)}" if bundle else None)
    if output_dir is None or "$" in output_dir:
        return []
    if run_id in ("training", "evaluating"):
        return [workspace / output_dir / "eval" / "metrics.json"]
    if run_id == "inference":
        return [workspace / output_dir / "predictions" / "predictions.csv"]
    return []


def stale_outputs(run: BlockRun, workspace: Path) -> list[str]:
    """The outputs of the block's commands that are missing or older than the block's run."""
    stale = []
    for command in block_commands(run.block):
        for path in outputs_of(command, workspace):
            if not path.is_file() or path.stat().st_mtime < run.started - 1:
                stale.append(str(path.relative_to(workspace)))
    return stale


def json_listing(md: Path) -> dict[str, object]:
    """``{path: JSON}`` of the ``json`` blocks of ``md`` written as ``<path>  {...}`` lines (adding_a_task.md)."""
    files: dict[str, object] = {}
    for block in doc_blocks(md, languages=("json",)):
        for line in block.text.splitlines():
            path, _, text = line.strip().partition(" ")
            if path and text.strip().startswith("{"):
                files[path] = json.loads(text)
    return files


# --- the small data behind each Markdown file's placeholders ------------------------------------------------------

#: The subtyping doc's two classes, taken from the tiny demo's diagnoses.
NSCLC_CLASSES = {"adenocarcinoma": "LUAD", "squamous cell carcinoma": "LUSC"}


def subtyping_doc_data(folder: Path, demo: Path) -> dict[str, Path]:
    """``/data/features`` = the tiny demo's 128-d features; ``/data/nsclc.csv`` = its adenocarcinoma and squamous
    cell carcinoma slides labelled ``LUAD`` and ``LUSC`` (the demo's cases kept)."""
    table = make_subtyping_demo(folder / "demo_table", dict(TINY_SLIDES), report_demo_dir=demo)
    rows = [r for r in _read_csv(table.csv_file) if r["label"] in NSCLC_CLASSES]
    rows = [{**r, "label": NSCLC_CLASSES[r["label"]]} for r in rows]
    csv_file = atomic_write_csv(folder / "nsclc.csv", rows, ["slide_id", "label", "case_id"])
    return {"/data/features": table.dataset_dir, "/data/nsclc.csv": csv_file}


def survival_doc_data(folder: Path, demo: Path) -> dict[str, Path]:
    """``/data/features`` = the tiny demo's 128-d features; ``/data/luad_os.csv`` = the demo's SYNTHETIC outcome
    table over them (``slide_id,case_id,time,event``)."""
    table = make_survival_demo(folder / "demo_table", dict(TINY_SLIDES), report_demo_dir=demo)
    return {"/data/features": table.dataset_dir, "/data/luad_os.csv": table.csv_file}


def grade_doc_data(folder: Path) -> dict[str, Path]:
    """``/data/grades.csv`` and ``/data/features``: the grade test's 12 tiny bags (``slide_id,grade``)."""
    from tests.transfer.test_transfer_grade_task import write_grade_table

    data = write_grade_table(folder)
    return {"/data/grades.csv": data["csv_file"], "/data/features": data["dataset_dir"]}


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def assert_block_runs(runner: DocBlockRunner, block_id: str) -> BlockRun:
    """Run the block; fail with its script and output when it exits non-zero or leaves no fresh outputs."""
    run = runner.run(block_id)
    earlier = runner.earlier_failures(block_id)
    note = f"\n(earlier blocks of the file that failed: {', '.join(earlier)})" if earlier else ""
    assert run.returncode == 0, run.failure() + note
    stale = stale_outputs(run, runner.workspace)
    assert stale == [], f"{block_id}: missing or old outputs {stale}\n{run.failure()}"
    return run


def block_with(blocks: list[DocBlock], text: str) -> DocBlock:
    """The first block whose text holds ``text``."""
    return next(b for b in blocks if text in b.text)


def assert_demo_predictions_carry_the_synthetic_notice(runner: DocBlockRunner, blocks: list[DocBlock],
                                                       bundle: str) -> None:
    """After the block with the demo's inference: the fold and ensemble predictions end with the SYNTHETIC-DATA
    notice, then the research-use notice, on every row."""
    from scripts.engines.model_provenance import RESEARCH_NOTICE, SYNTHETIC_WARNING

    assert_block_runs(runner, block_with(blocks, "run inference").id)
    out = runner.workspace / "bundle" / bundle
    for table in (out / "predictions" / "predictions.csv", out / "eval" / "fold_0" / "predictions.csv"):
        rows = _read_csv(table)
        assert rows and list(rows[0])[-1] == "notice", table
        assert all(r["notice"].startswith(SYNTHETIC_WARNING) and r["notice"].endswith(RESEARCH_NOTICE)
                   for r in rows), table


def assert_report_pretrained_runs(runner: DocBlockRunner, blocks: list[DocBlock], own_table: str) -> None:
    """The own-data block (``--csv_file <own_table>``) starts from ``models/model.pt`` and the results-table block
    from ``runs/report_slides/models/model.pt`` (and its rows without it from a random initialisation)."""
    own = assert_block_runs(runner, block_with(blocks, f"--csv_file {own_table}").id)
    assert "REPORT-PRETRAINED weights from models/model.pt" in own.output
    rows = assert_block_runs(runner, block_with(blocks, "R=runs/report_slides/models/model.pt").id)
    assert "REPORT-PRETRAINED weights from runs/report_slides/models/model.pt" in rows.output
    assert "RANDOM initialisation" in rows.output
