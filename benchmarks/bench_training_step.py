"""Peak host memory and time of one teacher-forced training step in the released configuration.

Each bag size runs in a fresh process so that its peak resident memory is its own. The reference
figures (HISTGEN.md / issue): about 6-7 GB of host memory and 10-30 s per step on 2 CPU threads
at these sizes.

    python -m benchmarks.bench_training_step                  # N = 10,000 and 30,000
    python -m benchmarks.bench_training_step --sizes 2000     # quicker
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def one_step(n: int, tokens: int, threads: int, steps: int, checkpointing: bool = False) -> dict[str, float]:
    import torch

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
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        optimizer.zero_grad()
        logprobs = model(feats, target).logprobs
        loss = -logprobs.gather(2, target[:, 1:, None]).mean()
        loss.backward()
        torch.nn.utils.clip_grad_value_(model.parameters(), 0.1)
        optimizer.step()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    params = sum(p.numel() for p in model.parameters())
    return {"n": n, "seconds": min(times), "peak_mb": peak, "setup_mb": rss_before, "params": params}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 30000])
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--checkpointing", action="store_true", help="also time gradient_checkpointing=True")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child_checkpointing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(one_step(args.child, args.tokens, args.threads, args.steps, args.child_checkpointing)))
        return
    print(f"released configuration, batch 1, {args.tokens}-token report, {args.threads} threads, "
          f"best of {args.steps} steps, each size in a fresh process")
    print(f"{'N patches':>10} | {'checkpointing':>13} | {'step (s)':>8} | {'peak RSS (MB)':>13} | {'setup (MB)':>10}")
    print("-" * 68)
    for n in args.sizes:
        for ckpt in (False, True) if args.checkpointing else (False,):
            cmd = [sys.executable, "-m", "benchmarks.bench_training_step", "--child", str(n), "--tokens",
                   str(args.tokens), "--threads", str(args.threads), "--steps", str(args.steps)]
            cmd += ["--child_checkpointing"] if ckpt else []
            lines = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()
            out = json.loads(lines[-1])
            print(f"{n:>10,} | {'on' if ckpt else 'off':>13} | {out['seconds']:>8.2f} | {out['peak_mb']:>13,.0f} | "
                  f"{out['setup_mb']:>10,.0f}")
    print(f"parameters: {out['params']:,}")


if __name__ == "__main__":
    main()
