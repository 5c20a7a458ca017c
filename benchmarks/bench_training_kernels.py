"""One training step with the fast training kernels on and off, in the same process (issue 13).

Builds the released-size model twice with the same weights: once as ``compat="default"`` builds it (fast
dropout masks, attention dropout after an explicit softmax, fused LayerNorm), once with those switched back to
the reference kernels, and times teacher-forced steps of the two in alternation (best of ``--repeats`` after a
warm-up step each), so that machine load hits both alike. Prints one table::

    python -m benchmarks.bench_training_kernels --sizes 10000 30000 --threads 1
    python -m benchmarks.bench_training_kernels --quick
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.training_step import teacher_forced_step
from scripts.networks import HistGen, HistGenConfig
from scripts.networks.training_kernels import set_training_kernels

QUICK = dict(in_dim=64, d_vf=64, d_model=64, d_ff=128, num_heads=4, num_layers=2, topk=16, cmm_size=64,
             cmm_dim=64, region_size=16, prototype_num=16, vocab_size=100, max_seq_length=30)


def time_pair(config: HistGenConfig, n_patches: int, tokens: int, repeats: int) -> dict[str, float]:
    """Best step time (s) of the fast and the reference kernels on one random bag of ``n_patches``."""
    torch.manual_seed(0)
    fast = HistGen(config).train()
    slow = set_training_kernels(HistGen(config).train(), fast=False)
    slow.load_state_dict(fast.state_dict())
    models = {"reference kernels": slow, "fast kernels": fast}
    optimisers = {k: torch.optim.Adam(m.parameters(), lr=1e-4, amsgrad=True) for k, m in models.items()}
    feats = torch.randn(1, n_patches, config.in_dim)
    target = torch.randint(1, config.vocab_size, (1, tokens))
    target[:, 0] = 0
    best = {k: float("inf") for k in models}
    for round_ in range(repeats + 1):  # round 0 warms both up
        for name, model in models.items():
            torch.manual_seed(round_)
            start = time.perf_counter()
            teacher_forced_step(model, optimisers[name], feats, target)
            if round_:
                best[name] = min(best[name], time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 30000])
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a small model, 2,000 patches, 30 tokens, 1 repeat")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = HistGenConfig(**QUICK) if args.quick else HistGenConfig()
    sizes = [2000] if args.quick else args.sizes
    tokens = 30 if args.quick else args.tokens
    repeats = 1 if args.quick else args.repeats
    print(f"{'quick' if args.quick else 'released'} configuration, {tokens}-token report, {args.threads} thread(s), "
          f"best of {repeats} interleaved steps after a warm-up")
    print(f"{'N patches':>10} | {'reference kernels (s)':>21} | {'fast kernels (s)':>16} | {'speed-up':>8}")
    print("-" * 66)
    for n in sizes:
        best = time_pair(config, n, tokens, repeats)
        ratio = best["reference kernels"] / best["fast kernels"]
        print(f"{n:>10,} | {best['reference kernels']:>21.3f} | {best['fast kernels']:>16.3f} | {ratio:>7.2f}x")


if __name__ == "__main__":
    main()
