"""Peak host memory and time of one teacher-forced training step in the released configuration.

Each bag size runs in a fresh process so that its peak resident memory is its own. With
``--against-reference PATH`` the reference HistGen code of the checkout at ``PATH``
(``github.com/dddavid4real/HistGen``; see :mod:`benchmarks.reference_histgen`) runs the same step on the
same sizes, also one process per size, ours and the reference's interleaved, and the table gives the
ratios (reference time / ours: how many times faster ours is; ours / reference peak RSS).

    python -m benchmarks.bench_training_step                                  # N = 10,000 and 30,000
    python -m benchmarks.bench_training_step --sizes 2000                     # quicker
    python -m benchmarks.bench_training_step --against-reference ../HistGen --sizes 10000 30000 100000 \\
        --reference-max-n 30000                                               # ours alone above 30,000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable


def _timed_steps(step: Callable[[], None], steps: int) -> list[float]:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_step(n: int, tokens: int, threads: int, steps: int, checkpointing: str = "auto") -> dict[str, float]:
    """Best time of ``steps`` training steps of our model (``compat="default"``) on one bag of ``n`` patches.

    ``checkpointing`` is the config's ``gradient_checkpointing``: ``"auto"`` (the default a user gets), "on", "off".
    """
    import torch

    from benchmarks.training_step import teacher_forced_step
    from scripts.networks import HistGen, HistGenConfig

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = HistGenConfig(gradient_checkpointing=checkpointing)
    model = HistGen(config).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=5e-5, amsgrad=True)
    feats = torch.randn(1, n, config.in_dim)
    target = torch.randint(1, config.vocab_size + 1, (1, tokens))
    target[:, 0] = 0
    target[:, -1] = 0
    rss_before = _peak_mb()
    losses = []

    def step() -> None:
        losses.append(float(teacher_forced_step(model, optimizer, feats, target)))

    times = _timed_steps(step, steps)
    params = sum(p.numel() for p in model.parameters())
    return {"n": n, "seconds": min(times), "peak_mb": _peak_mb(), "setup_mb": rss_before, "params": params,
            "loss": losses[0]}


def reference_step(path: str, n: int, tokens: int, threads: int, steps: int) -> dict[str, float]:
    """The same measurement for the reference code's model, optimiser and loss (its trainer's step)."""
    import torch

    from benchmarks.reference_histgen import reference_args, reference_model, reference_optimizer
    from scripts.networks import HistGenConfig

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = HistGenConfig()
    model = reference_model(path, config).train()
    optimizer = reference_optimizer(model, reference_args(config))
    feats = torch.randn(1, n, config.in_dim)
    target = torch.randint(1, config.vocab_size + 1, (1, tokens))
    target[:, 0] = 0
    target[:, -1] = 0
    target_mask = torch.ones_like(target)
    rss_before = _peak_mb()
    losses = []

    def step() -> None:
        output = model(feats, target, mode="train")
        # modules/loss.py: masked mean of -log p over target[:, 1:]
        picked = -output.gather(2, target[:, 1:, None]).squeeze(2) * target_mask[:, 1:]
        loss = picked.sum() / target_mask[:, 1:].sum()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_value_(model.parameters(), 0.1)
        optimizer.step()
        losses.append(float(loss))

    times = _timed_steps(step, steps)
    params = sum(p.numel() for p in model.parameters())
    return {"n": n, "seconds": min(times), "peak_mb": _peak_mb(), "setup_mb": rss_before, "params": params,
            "loss": losses[0]}


def run_child(args: argparse.Namespace, n: int, reference: str | None = None, checkpointing: str = "auto"
              ) -> dict[str, float]:
    """One measurement in a fresh process (its peak RSS is its own); the child prints one JSON line."""
    cmd = [sys.executable, "-m", "benchmarks.bench_training_step", "--child", str(n), "--tokens", str(args.tokens),
           "--threads", str(args.threads), "--steps", str(args.steps)]
    cmd += ["--child_checkpointing", checkpointing]
    cmd += ["--child_reference", reference] if reference else []
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{'reference' if reference else 'our'} step at N={n} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def print_ours(args: argparse.Namespace) -> None:
    print(f"{'N patches':>10} | {'checkpointing':>13} | {'step (s)':>8} | {'peak RSS (MB)':>13} | {'setup (MB)':>10}")
    print("-" * 68)
    out: dict[str, float] = {}
    for n in args.sizes:
        for ckpt in ("auto", "off", "on") if args.checkpointing else ("auto",):
            out = run_child(args, n, checkpointing=ckpt)
            print(f"{n:>10,} | {ckpt:>13} | {out['seconds']:>8.2f} | {out['peak_mb']:>13,.0f} | "
                  f"{out['setup_mb']:>10,.0f}", flush=True)
    print(f"parameters: {out['params']:,}")


def print_against_reference(args: argparse.Namespace) -> list[dict[str, float]]:
    """Ours then the reference at each size (interleaved); prints and returns one row per size."""
    print(f"{'N patches':>10} | {'ours (s)':>8} | {'reference (s)':>13} | {'speed-up':>8} | {'ours RSS (MB)':>13} | "
          f"{'ref. RSS (MB)':>13} | {'RSS ratio':>9}")
    print("-" * 96)
    rows = []
    for n in args.sizes:
        ours = run_child(args, n)
        row = {"n": n, "ours_s": ours["seconds"], "ours_mb": ours["peak_mb"], "ours_loss": ours["loss"]}
        if n <= args.reference_max_n:
            ref = run_child(args, n, reference=args.against_reference)
            row.update(ref_s=ref["seconds"], ref_mb=ref["peak_mb"], ref_loss=ref["loss"],
                       speedup=ref["seconds"] / ours["seconds"], rss_ratio=ours["peak_mb"] / ref["peak_mb"])
            print(f"{n:>10,} | {ours['seconds']:>8.2f} | {ref['seconds']:>13.2f} | {row['speedup']:>7.2f}x | "
                  f"{ours['peak_mb']:>13,.0f} | {ref['peak_mb']:>13,.0f} | {row['rss_ratio']:>9.2f}", flush=True)
        else:
            print(f"{n:>10,} | {ours['seconds']:>8.2f} | {'not run':>13} | {'':>8} | {ours['peak_mb']:>13,.0f} | "
                  f"{'not run':>13} | {'':>9}", flush=True)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 30000])
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--checkpointing", action="store_true",
                        help="also time gradient_checkpointing off and on (the default is auto)")
    parser.add_argument("--against-reference", metavar="PATH",
                        help="a checkout of the reference HistGen code: time its training step too")
    parser.add_argument("--reference-max-n", type=int, default=10**9,
                        help="with --against-reference: run the reference only up to this bag size")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child_checkpointing", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--child_reference", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        if args.child_reference:
            result = reference_step(args.child_reference, args.child, args.tokens, args.threads, args.steps)
        else:
            result = one_step(args.child, args.tokens, args.threads, args.steps, args.child_checkpointing)
        print(json.dumps(result))
        return
    print(f"released configuration, batch 1, {args.tokens}-token report, {args.threads} threads, "
          f"best of {args.steps} steps, each measurement in a fresh process")
    if args.against_reference:
        print_against_reference(args)
    else:
        print_ours(args)


if __name__ == "__main__":
    main()
