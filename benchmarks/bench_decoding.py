"""Beam-3 decoding speed: the model's cached decoding versus re-running the full prefix at every step.

Both share the weights, the encoded slide and the model's beam search; only the decoding step differs
(:class:`benchmarks.full_prefix_decoding.FullPrefixHistGen` is the baseline). The end token is suppressed so
that every run decodes exactly ``--tokens`` tokens. ``--script`` also times the ``torch.jit.script`` model.

With ``--against-reference PATH`` the baseline is instead the reference HistGen code of the checkout at
``PATH`` (see :mod:`benchmarks.reference_histgen`): one process builds the reference model, loads its weights
into ours (``compat="histgen-v1"``), and times ``generate`` against the reference's beam-search sampler, both
encoding included, in interleaved rounds (best of ``--repeats``), checking that both return the same ids.

    python -m benchmarks.bench_decoding            # released configuration, N = 1,000 and 10,000
    python -m benchmarks.bench_decoding --quick    # small model, for a smoke run
    python -m benchmarks.bench_decoding --against-reference ../HistGen --repeats 3
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from benchmarks.full_prefix_decoding import FullPrefixHistGen
from scripts.networks import HistGen, HistGenConfig


def time_decode(model: HistGen, feats: torch.Tensor, tokens: int, beam: int, repeats: int) -> float:
    """Best wall time of ``repeats`` beam searches over ``feats`` (encoding excluded)."""
    best = float("inf")
    for _ in range(repeats):
        with torch.no_grad():
            encoding = model.encode(feats)
            start = time.perf_counter()
            ids = model.beam_search(encoding, beam, tokens)
            best = min(best, time.perf_counter() - start)
    assert int((ids != 0).sum()) == tokens * feats.shape[0], "the end token was not suppressed"
    return best


def time_against_reference(path: str, config: HistGenConfig, sizes: list[int], tokens: int, beam: int,
                           repeats: int) -> list[dict[str, float]]:
    """Best-of-``repeats`` interleaved wall times of our ``generate`` and the reference sampler, same weights.

    Returns one row per size: ``n``, ``ours_s``, ``ref_s``, ``speedup``, ``same_ids`` (1.0 when every round of
    both returned the same ids).

    Raises:
        RuntimeError: a round returned fewer than ``tokens`` tokens (the end token was not suppressed).
    """
    from benchmarks.reference_histgen import ours_from_reference, reference_model, tensors_stay_on_cpu

    config = HistGenConfig.from_dict(config.to_dict(), compat="histgen-v1", max_seq_length=tokens, beam_size=beam)
    reference = reference_model(path, config, beam_size=beam).eval()
    with torch.no_grad():
        reference.encoder_decoder.logit.bias[0] = -1e4  # never end early: time exactly `tokens` steps
    ours = ours_from_reference(reference, config).eval()
    rows = []
    for n in sizes:
        feats = torch.randn(1, n, config.in_dim)
        best_ours = best_ref = float("inf")
        same = True
        for _ in range(repeats):
            start = time.perf_counter()
            ids = ours.generate(feats, beam_size=beam, max_len=tokens)
            best_ours = min(best_ours, time.perf_counter() - start)
            with torch.no_grad(), tensors_stay_on_cpu():
                start = time.perf_counter()
                ref_ids = reference(feats, mode="sample")
                best_ref = min(best_ref, time.perf_counter() - start)
            if int((ids != 0).sum()) != tokens or int((ref_ids != 0).sum()) != tokens:
                raise RuntimeError("the end token was not suppressed: a report ended early")
            same = same and ids.tolist() == ref_ids.tolist()
        rows.append({"n": n, "ours_s": best_ours, "ref_s": best_ref, "speedup": best_ref / best_ours,
                     "same_ids": float(same)})
    return rows


def print_against_reference(args: argparse.Namespace, config: HistGenConfig) -> None:
    print(f"beam {args.beam}, {args.tokens} tokens, {args.threads} threads, d_model {config.d_model}, vocab "
          f"{config.vocab_size}, generate() of both (encoding included), best of {args.repeats} interleaved rounds")
    print(f"{'N patches':>10} | {'reference (s)':>13} | {'ours (s)':>8} | {'speed-up':>8} | {'same ids':>8}")
    print("-" * 59)
    for n in args.sizes:  # one size at a time, so that a long run prints as it goes
        row = time_against_reference(args.against_reference, config, [n], args.tokens, args.beam, args.repeats)[0]
        print(f"{n:>10,} | {row['ref_s']:>13.2f} | {row['ours_s']:>8.2f} | {row['speedup']:>7.1f}x | "
              f"{'yes' if row['same_ids'] else 'NO':>8}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--beam", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="small model and 30 tokens")
    parser.add_argument("--script", action="store_true", help="also time the TorchScript model's generate()")
    parser.add_argument("--against-reference", metavar="PATH",
                        help="a checkout of the reference HistGen code: time its beam search, not the full prefix")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = HistGenConfig()  # released configuration
    if args.quick:
        config = HistGenConfig(in_dim=64, d_vf=64, d_model=64, d_ff=64, num_heads=4, topk=16, cmm_size=64,
                               cmm_dim=64, region_size=16, prototype_num=32, vocab_size=150)
        args.tokens = min(args.tokens, 30)
    if args.against_reference:
        if args.quick:
            config = HistGenConfig.from_dict(config.to_dict(), in_dim=1024)  # the reference reads 1024-d features
        print_against_reference(args, config)
        return
    model = HistGen(config).eval()
    with torch.no_grad():
        model.decoder.logit.bias[0] = -1e4  # never end early: time exactly `tokens` steps
    baseline = FullPrefixHistGen.from_model(model).eval()
    scripted = None
    if args.script:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scripted = torch.jit.script(model)

    print(f"beam {args.beam}, {args.tokens} tokens, {args.threads} threads, "
          f"d_model {config.d_model}, vocab {config.vocab_size}, best of {args.repeats}")
    header = ["N patches", "full prefix (s)", "cached (s)", "speed-up", "ms/token cached"]
    widths = [10, 15, 10, 8, 15]
    if scripted is not None:
        header.append("scripted generate (s)")
        widths.append(21)
    print(" | ".join(f"{h:>{w}}" for h, w in zip(header, widths)))
    print("-" * (sum(widths) + 3 * (len(widths) - 1)))
    for n in args.sizes:
        feats = torch.randn(1, n, config.in_dim)
        naive = time_decode(baseline, feats, args.tokens, args.beam, args.repeats)
        cached = time_decode(model, feats, args.tokens, args.beam, args.repeats)
        row = (f"{n:>10,} | {naive:>15.2f} | {cached:>10.2f} | {naive / cached:>7.1f}x | "
               f"{1000 * cached / args.tokens:>15.1f}")
        if scripted is not None:
            best = float("inf")
            for _ in range(args.repeats):  # encoding included: generate() is one call
                start = time.perf_counter()
                scripted.generate(feats, None, args.beam, args.tokens, True)
                best = min(best, time.perf_counter() - start)
            row += f" | {best:>21.2f}"
        print(row)


if __name__ == "__main__":
    main()
