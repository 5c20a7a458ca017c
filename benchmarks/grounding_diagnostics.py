"""Does a trained report model read the slide? Swap tests and loss terms of one model on one split.

For each test slide ``i`` and a partner slide ``j`` (another slide of the split, fixed by the seed):

- **slide information** (nats per token): ``NLL(report_i | slide_j) - NLL(report_i | slide_i)``, over all
  report tokens and over the *content* tokens only (words that fewer than half of the training reports
  hold, i.e. not the template). Near 0: the decoder writes the same whatever the slide.
- **swap identity**: the share of slides whose generated report is identical with slide ``j``'s features.
- **loss terms**: the mean NLL of template and content tokens under the model.
- **gradient share**: on one training batch, the gradient norm that the report NLL sends to the slide
  side of the network (everything but ``decoder.*``) against the decoder's own.

    python -m benchmarks.grounding_diagnostics --model_dir runs/x/models \
        --dataset_dir data/feats --annotation_file data/annotation.json [--split test] [--max_slides 40]

Prints one table (markdown) and writes nothing.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from typing import Any

import torch

from scripts.data import ReportBagDataset, collate_bags, load_annotation
from scripts.engines import load_report_model, report_nll
from scripts.text import clean_report


def content_words(annotation_file: str, share: float = 0.5) -> set[str]:
    """Words that fewer than ``share`` of the training reports hold (the non-template words)."""
    train = load_annotation(annotation_file)["train"]
    counts: Counter[str] = Counter()
    for item in train:
        counts.update(set(clean_report(item["report"]).split()))
    return {w for w, c in counts.items() if c < share * len(train)}


def _token_nll(model: torch.nn.Module, features: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Per-token NLL ``[T-1]`` of ``ids [T]`` given ``features [N, D]``."""
    logprobs = model.score(features[None], ids[None])
    return -logprobs[0].gather(1, ids[1:, None]).squeeze(1)


def gradient_share(model: torch.nn.Module, batch: dict[str, Any]) -> float:
    """Gradient norm of the report NLL on the slide side / on the decoder side, for one batch."""
    model.train()
    model.zero_grad()
    logprobs = model.score(batch["features"], batch["report_ids"], batch["mask"])
    report_nll(logprobs, batch["report_ids"], batch["report_mask"]).backward()
    slide, decoder = 0.0, 0.0
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        norm = float(p.grad.pow(2).sum())
        if name.startswith("decoder."):
            decoder += norm
        else:
            slide += norm
    model.zero_grad()
    model.eval()
    return (slide**0.5) / max(decoder**0.5, 1e-12)


@torch.no_grad()
def swap_tests(
    model: torch.nn.Module, vocab: Any, dataset: ReportBagDataset, content: set[str], max_slides: int, seed: int
) -> dict[str, float]:
    """Slide information, content/template loss terms and swap identity over ``max_slides`` slides."""
    n = min(len(dataset), max_slides)
    order = list(range(n))
    partners = order[1:] + order[:1]
    random.Random(seed).shuffle(partners)
    info_all, info_content, nll_content, nll_template, identical = [], [], [], [], 0
    for i, j in zip(order, partners, strict=True):
        if i == j:
            j = (i + 1) % n
        own, other = dataset[i], dataset[j]
        ids = own["report_ids"]
        words = [vocab.id_to_token(int(t)) if int(t) > 0 else "<eos>" for t in ids[1:]]
        is_content = torch.tensor([w in content for w in words])
        nll_own = _token_nll(model, own["features"], ids)
        nll_other = _token_nll(model, other["features"], ids)
        info_all.append(float((nll_other - nll_own).mean()))
        if bool(is_content.any()):
            info_content.append(float((nll_other - nll_own)[is_content].mean()))
            nll_content.append(float(nll_own[is_content].mean()))
        if bool((~is_content).any()):
            nll_template.append(float(nll_own[~is_content].mean()))
        a = model.generate(own["features"][None])[0]
        b = model.generate(other["features"][None])[0]
        identical += int(torch.equal(a, b))

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else float("nan")

    return {
        "slides": n,
        "info_all": mean(info_all),
        "info_content": mean(info_content),
        "nll_content": mean(nll_content),
        "nll_template": mean(nll_template),
        "swap_identical": identical / n,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--dataset_dir", required=True)
    parser.add_argument("--annotation_file", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--max_slides", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    model, vocab = load_report_model(args.model_dir, device="cpu")
    kwargs = {"vocab": vocab, "max_seq_length": model.config.max_seq_length, "feature_dim": model.config.in_dim}
    dataset = ReportBagDataset(args.annotation_file, args.dataset_dir, split=args.split, **kwargs)
    train = ReportBagDataset(args.annotation_file, args.dataset_dir, split="train", **kwargs)
    result = swap_tests(model, vocab, dataset, content_words(args.annotation_file), args.max_slides, args.seed)
    batch = collate_bags([train[i] for i in range(min(8, len(train)))])
    result["grad_slide_over_decoder"] = gradient_share(model, batch)
    print("| measure | value |\n|---|---:|")
    for key, value in result.items():
        print(f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |")


if __name__ == "__main__":
    main()
