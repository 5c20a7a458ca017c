"""The GPU check: slide reading, patch encoding, the released training step and decoding on one GPU.

Run by ``benchmarks/gpu_check.sh`` (which adds the machine's facts); prints one Markdown table. Stages:

1. ``read``: cuCIM multi-location ``read_region`` of tissue patches (256 px) of a synthetic 24,576 x 24,576
   px JPEG-tiled slide with ``device="cuda"`` (nvJPEG decode) vs ``device="cpu"``; patches/s.
2. ``extract``: ``scripts.wsi.FeatureExtractor.encode_patches`` (cuCIM reading, the encoder's batched
   transform, the encoder) under bf16 autocast, for DINOv2 ViT-L/14 (``histgen-dinov2-vitl14``) and
   ResNet-50-trunc (``resnet50-trunc``), both from random checkpoints written locally; patches/s and
   slides/hour at 15,000 patches per slide.
3. ``train``: one teacher-forced training step of the released configuration (d_model 512, 100-token
   report, Adam AMSGrad) at N = 30,000 and 100,000 patches: best-of-2 step time and peak GPU memory.
4. ``decode``: beam-3 decoding of 100 tokens (end token suppressed) at N = 10,000, released configuration.

No weights are downloaded: every model is random and built here. ``--dry-run`` runs every stage on tiny
inputs (a 2,048 px slide, tiny ViT/ResNet inputs, a small HistGen, N = 200) on the CPU, so the script
itself is tested in CI (``tests/benchmarks/test_benchmarks_gpu_check.py``); where there is no GPU, the ``cuda``
reading row says so instead of a number.

    bash benchmarks/gpu_check.sh               # on a GPU machine, under 8 minutes
    bash benchmarks/gpu_check.sh --dry-run     # CPU, tiny inputs, ~20 s
"""

from __future__ import annotations

import argparse
import contextlib
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

PATCHES_PER_SLIDE = 15_000


@dataclass(frozen=True)
class Sizes:
    """What each stage runs on (the real check or the dry run)."""

    slide_side: int
    read_patches: int
    extract_patches: int
    input_size: int
    vit: dict
    train_sizes: tuple[int, ...]
    decode_size: int
    tokens: int
    histgen: dict


FULL = Sizes(
    slide_side=24_576, read_patches=4_000, extract_patches=3_000, input_size=224,
    vit={"embed_dim": 1024, "depth": 24, "num_heads": 16}, train_sizes=(30_000, 100_000),
    decode_size=10_000, tokens=100, histgen={},
)  # fmt: skip
DRY = Sizes(
    slide_side=2_048, read_patches=64, extract_patches=16, input_size=56,
    vit={"embed_dim": 64, "depth": 2, "num_heads": 4}, train_sizes=(200,), decode_size=200, tokens=8,
    histgen={"in_dim": 64, "d_vf": 64, "d_model": 64, "d_ff": 64, "num_heads": 4, "topk": 16, "cmm_size": 64,
             "cmm_dim": 64, "region_size": 16, "prototype_num": 32, "vocab_size": 150},
)  # fmt: skip


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------------------ checkpoints
def swiglu_hidden(dim: int) -> int:
    """DINOv2's fused SwiGLU hidden width for mlp_ratio 4."""
    return (int(dim * 4 * 2 / 3) + 7) // 8 * 8


def write_dinov2_checkpoint(path: Path, embed_dim: int, depth: int, num_heads: int) -> Path:
    """A random DINOv2-layout (SwiGLU, HistGen's) ViT/14 teacher checkpoint at ``path``."""
    import timm

    torch.manual_seed(0)
    hidden = swiglu_hidden(embed_dim)
    model = timm.create_model(
        "vit_large_patch14_dinov2", pretrained=False, num_classes=0, img_size=224, embed_dim=embed_dim,
        depth=depth, num_heads=num_heads, mlp_ratio=2 * hidden / embed_dim, mlp_layer=timm.layers.SwiGLUPacked,
        act_layer=torch.nn.SiLU,
    )  # fmt: skip
    state = {"mask_token": torch.zeros(1, embed_dim)}
    for key, value in model.state_dict().items():
        state[re.sub(r"\.mlp\.fc1\.", ".mlp.w12.", key).replace(".mlp.fc2.", ".mlp.w3.")] = value
    torch.save({"teacher": {f"backbone.{k}": v for k, v in state.items()}}, path)
    return path


def write_resnet50_checkpoint(path: Path) -> Path:
    """A random torchvision ResNet-50 state dict at ``path``."""
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    return path


# ------------------------------------------------------------------------------------------ stages
def slide_and_coords(folder: Path, sizes: Sizes):
    """The synthetic slide, its read plan and tissue coordinates (the extractor's defaults, native mpp)."""
    from scripts.demo.synthetic_slides import write_synthetic_slide
    from scripts.wsi import Slide, TissueMaskParams, build_patch_grid, plan_patch_reading, slide_tissue_mask

    path = folder / f"gpu_check_{sizes.slide_side}.svs"
    if not path.is_file():  # the benchmark slide of bench_patch_reading (same writer, seed and settings)
        side = sizes.slide_side
        write_synthetic_slide(path, "adenocarcinoma", seed=7, size=(side, side), pen_marks=False)
    with Slide(path) as slide:
        plan = plan_patch_reading(slide.name, slide.level_downsamples, slide.mpp, slide.mpp, 256)
        tissue = slide_tissue_mask(slide, TissueMaskParams())
        grid = build_patch_grid(tissue, slide.dimensions, slide.level_dimensions[0], plan, 0.5)
    return path, plan, grid.coords


def read_rate(path: Path, coords: np.ndarray, device: str, workers: int = 8, batch: int = 64) -> float:
    """Patches/s of cuCIM's multi-location ``read_region`` onto ``device`` (``"cpu"`` or ``"cuda"``)."""
    from cucim import CuImage

    image = CuImage(str(path))
    start = time.perf_counter()
    count = 0
    batches = image.read_region(
        coords.tolist(), (256, 256), 0, num_workers=workers, batch_size=batch, drop_last=False,
        prefetch_factor=2, device=device,
    )  # fmt: skip
    for batch_image in batches:
        # materialise each batch where it was decoded (CPU array, or a CUDA tensor over the GPU buffer)
        pixels = np.asarray(batch_image) if device == "cpu" else torch.as_tensor(batch_image, device="cuda")
        count += pixels.shape[0] if pixels.ndim == 4 else 1
    if device == "cuda":
        torch.cuda.synchronize()
    if count != len(coords):
        raise RuntimeError(f"cuCIM ({device}) returned {count} of {len(coords)} patches")
    return count / (time.perf_counter() - start)


def extract_rate(path: Path, plan, coords: np.ndarray, encoder, device: torch.device) -> float:
    """Patches/s of ``FeatureExtractor.encode_patches`` under bf16 autocast (one warm-up batch first)."""
    from scripts.wsi import FeatureExtractor, Slide

    extractor = FeatureExtractor(tempfile.gettempdir(), encoder, device=device, batch_size=64, progress=False)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16)
    with Slide(path) as slide, autocast:
        extractor.encode_patches(slide, coords[:64], plan)  # warm-up: kernels, cuDNN plans
        _sync(device)
        start = time.perf_counter()
        feats = extractor.encode_patches(slide, coords, plan)
        _sync(device)
    assert np.isfinite(feats).all(), f"{encoder.name}: non-finite features"
    return len(coords) / (time.perf_counter() - start)


def _histgen(sizes: Sizes, device: torch.device):
    from scripts.networks import HistGen, HistGenConfig

    torch.manual_seed(0)
    config = HistGenConfig(**sizes.histgen)
    return HistGen(config).to(device), config


def train_step(sizes: Sizes, n: int, device: torch.device) -> tuple[float, float | None]:
    """Best of 2 training steps (seconds) and peak GPU memory (GiB; None on the CPU)."""
    from benchmarks.training_step import teacher_forced_step

    model, config = _histgen(sizes, device)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=5e-5, amsgrad=True)
    feats = torch.randn(1, n, config.in_dim, device=device)
    target = torch.randint(1, config.vocab_size + 1, (1, sizes.tokens), device=device)
    target[:, 0] = 0
    target[:, -1] = 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    best = float("inf")
    for _ in range(2):
        _sync(device)
        start = time.perf_counter()
        teacher_forced_step(model, optimizer, feats, target)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    del model, optimizer, feats
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return best, peak


def decode_time(sizes: Sizes, device: torch.device, beam: int = 3) -> float:
    """Best of 2 beam searches of exactly ``sizes.tokens`` tokens over ``sizes.decode_size`` patches."""
    model, config = _histgen(sizes, device)
    model.eval()
    with torch.no_grad():
        model.decoder.logit.bias[0] = -1e4  # never end early: time exactly `tokens` steps
        encoding = model.encode(torch.randn(1, sizes.decode_size, config.in_dim, device=device))
        best = float("inf")
        for _ in range(2):
            _sync(device)
            start = time.perf_counter()
            ids = model.beam_search(encoding, beam, sizes.tokens)
            _sync(device)
            best = min(best, time.perf_counter() - start)
    assert int((ids != 0).sum()) == sizes.tokens, "the end token was not suppressed"
    return best


# ------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="every stage on tiny inputs on the CPU")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the slide and checkpoints here")
    args = parser.parse_args(argv)
    sizes = DRY if args.dry_run else FULL
    cuda = torch.cuda.is_available() and not args.dry_run
    if not cuda and not args.dry_run:
        raise SystemExit("gpu_check: no CUDA device; run with --dry-run on a CPU machine")
    device = torch.device("cuda" if cuda else "cpu")
    from scripts.encoders import build_encoder

    rows: list[tuple[str, str, str]] = []

    def row(stage: str, what: str, value: str) -> None:
        rows.append((stage, what, value))
        print(f"  {stage}: {what}: {value}", flush=True)

    context = tempfile.TemporaryDirectory() if args.workdir is None else contextlib.nullcontext(str(args.workdir))
    with context as folder_name:
        folder = Path(folder_name)
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        path, plan, coords = slide_and_coords(folder, sizes)
        row(
            "setup",
            f"synthetic slide {sizes.slide_side:,} px, {len(coords):,} tissue patches",
            f"{time.perf_counter() - start:.0f} s",
        )

        read_coords = coords[: sizes.read_patches]
        row(
            "read",
            f"cuCIM device=cpu, {len(read_coords):,} patches",
            f"{read_rate(path, read_coords, 'cpu'):,.0f} patches/s",
        )
        if cuda:
            cuda_rate = f"{read_rate(path, read_coords, 'cuda'):,.0f} patches/s"
        else:
            cuda_rate = "not run (no GPU)"
        row("read", f"cuCIM device=cuda, {len(read_coords):,} patches", cuda_rate)

        extract_coords = coords[: sizes.extract_patches]
        encoders = {
            "DINOv2 ViT-L/14": lambda: build_encoder(
                "histgen-dinov2-vitl14", write_dinov2_checkpoint(folder / "dinov2.pth", **sizes.vit),
                device=device, input_size=sizes.input_size, **sizes.vit,
            ),
            "ResNet-50-trunc": lambda: build_encoder(
                "resnet50-trunc", write_resnet50_checkpoint(folder / "resnet50.pth"), device=device,
                input_size=sizes.input_size,
            ),
        }  # fmt: skip
        for label, make in encoders.items():
            encoder = make()
            rate = extract_rate(path, plan, extract_coords, encoder, device)
            per_hour = 3600 / (PATCHES_PER_SLIDE / rate)
            row(
                "extract",
                f"{label} bf16, {len(extract_coords):,} patches",
                f"{rate:,.0f} patches/s = {per_hour:,.0f} slides/h",
            )
            del encoder
            if cuda:
                torch.cuda.empty_cache()

        for n in sizes.train_sizes:
            seconds, peak = train_step(sizes, n, device)
            memory = f", peak {peak:.2f} GiB" if peak is not None else ""
            size = "tiny-model" if args.dry_run else "released-size"
            row("train", f"{size} training step, N = {n:,}", f"{seconds:.2f} s{memory}")
        row(
            "decode", f"beam 3, {sizes.tokens} tokens, N = {sizes.decode_size:,}", f"{decode_time(sizes, device):.2f} s"
        )

    print("\n| stage | what | result |\n|---|---|---|")
    for stage, what, value in rows:
        print(f"| {stage} | {what} | {value} |")
    return rows


if __name__ == "__main__":
    main()
