"""Grounding benchmark suite: does the report model write what the slide shows? (issue 10, item 1)

For each benchmark (synthetic feature bags of :mod:`benchmarks.grounding`, plus the two embedded demos) it
trains and evaluates the report bundle with the defaults of ``configs/train.json`` (subprocesses
``python -m monai.bundle run training|evaluating``), the same on class-balanced shuffled pairs (the control),
and one ABMIL classifier per finding on the same bags (the upper bound), then prints one markdown table and
writes it to ``<output_dir>/grounding_table.md`` and ``grounding_table.json``.

    python -m benchmarks.bench_grounding                        # the whole suite (hours on 2 CPU cores)
    python -m benchmarks.bench_grounding --only six-dx needle   # some benchmarks
    python -m benchmarks.bench_grounding --quick                # one tiny benchmark, 2 epochs (a smoke test)
    python -m benchmarks.bench_grounding --only six-dx --extra-args "--val_metric BLEU_4"   # an ablation row
"""

from __future__ import annotations

import argparse
import datetime
import logging
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.grounding import BENCHMARKS, DEFAULT_SUITE, QUICK_BENCHMARK, get_benchmark
from benchmarks.grounding.bundle_runs import BUNDLE_ROOT
from benchmarks.grounding.suite import SuiteSettings, run_benchmark
from benchmarks.grounding.table import TableRow, markdown_table
from scripts.atomic_io import atomic_write_json, atomic_write_text

TABLE_NAME = "grounding_table.md"
JSON_NAME = "grounding_table.json"
QUICK_EPOCHS = ("--max_epochs", "2")


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=BUNDLE_ROOT, capture_output=True,
                             text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_grounding", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"only the tiny '{QUICK_BENCHMARK.name}' benchmark, {' '.join(QUICK_EPOCHS)} "
                             "(unless --extra-args sets max_epochs) and 3 ABMIL epochs")
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"benchmarks to run ({', '.join(BENCHMARKS)})")
    parser.add_argument("--output_dir", type=Path, default=Path("runs/bench_grounding"),
                        help="data, bundle runs and the table (default: runs/bench_grounding)")
    parser.add_argument("--extra-args", "--extra_args", dest="extra_args", default="",
                        help='bundle overrides for both training runs, e.g. "--val_metric BLEU_4"')
    parser.add_argument("--abmil-epochs", "--abmil_epochs", dest="abmil_epochs", type=int, default=None,
                        help="epochs of each finding's ABMIL (default 20, 3 with --quick)")
    parser.add_argument("--findings-reader", "--findings_reader", dest="findings_reader", default="auto",
                        choices=("auto", "phrases"),
                        help="auto: scripts.metrics.extract_findings when installed, else the benchmarks' known "
                             "phrases; phrases: always the known phrases")
    parser.add_argument("--control-dealings", "--control_dealings", dest="control_dealings", type=int, default=1,
                        help="train the shuffled-pairs control on this many class-balanced dealings (default 1), "
                             "each after the first with a bundle seed of its own; the table adds a row per further "
                             "dealing and their mean")
    parser.add_argument("--reuse-runs", "--reuse_runs", dest="reuse_runs", action="store_true",
                        help="keep finished bundle runs (same overrides, training config and data); score again")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    names = args.only or ([QUICK_BENCHMARK.name] if args.quick else list(DEFAULT_SUITE))
    try:
        entries = [get_benchmark(name) for name in names]
    except KeyError as err:
        raise SystemExit(str(err.args[0])) from None
    extra = tuple(shlex.split(args.extra_args))
    if args.quick and "--max_epochs" not in extra:
        extra = (*extra, *QUICK_EPOCHS)
    abmil_epochs = args.abmil_epochs or (3 if args.quick else 20)
    try:
        settings = SuiteSettings(output_dir=args.output_dir.resolve(), extra_args=extra, abmil_epochs=abmil_epochs,
                                 use_extractor=args.findings_reader == "auto", reuse_runs=args.reuse_runs,
                                 control_dealings=args.control_dealings)
    except ValueError as err:
        raise SystemExit(f"--control-dealings: {err}") from None

    rows: list[TableRow] = []
    readers: dict[str, str] = {}
    start = time.perf_counter()
    for entry in entries:
        logging.getLogger("benchmarks.grounding").info("benchmark %s: %s", entry.name, entry.description)
        entry_rows, readers[entry.name] = run_benchmark(entry, settings)
        rows.extend(entry_rows)
    table = markdown_table(rows)
    command = "python -m benchmarks.bench_grounding " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    legend = (
        f"\n`{command.strip()}` — overrides: `{' '.join(extra) or 'none (configs/train.json defaults)'}`; "
        f"ABMIL {abmil_epochs} epochs; findings read by: "
        + "; ".join(f"{name}: {reader}" for name, reader in readers.items())
        + f"; total {time.perf_counter() - start:.0f} s.\n"
    )
    print(table + legend)
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(settings.output_dir / TABLE_NAME, table + legend)
    atomic_write_json(settings.output_dir / JSON_NAME, {
        "command": command.strip(),
        "extra_args": list(extra),
        "abmil_epochs": abmil_epochs,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "readers": readers,
        "benchmarks": {e.name: {"description": e.description,
                                "params": e.params.to_dict() if e.params else {"demo": e.demo}} for e in entries},
        "rows": [row.to_dict() for row in rows],
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
