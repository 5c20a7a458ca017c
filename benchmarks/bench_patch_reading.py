"""Patch reading speed: our pipeline against a CLAM-style loader and MONAI's PatchWSIDataset.

On one multi-level JPEG-tiled synthetic slide (default 20,480 x 20,480 px, written by
``scripts.demo.synthetic_slides``), every method reads the same tissue patches (256 px at level 0,
in grid order) with the same number of workers and produces the encoder's input batches; the main
process runs with 1 and with 2 torch threads (one table each):

- ``ours``: ``scripts.wsi.PatchBatchReader`` (one cuCIM multi-location read, ``num_workers``
  decode threads) + the encoder's batched ``transform`` on uint8 tensors;
- ``ours (openslide)``: the same reader's DataLoader path over OpenSlide;
- ``CLAM-style``: a DataLoader with ``num_workers`` processes, each patch read with OpenSlide's
  ``read_region``, then PIL -> tensor -> resize -> normalise per patch;
- ``MONAI PatchWSIDataset``: MONAI's dataset over the same coordinates (cuCIM reader), the
  encoder's transform per patch, DataLoader with ``num_workers`` processes;
- ``raw tile decode``: every JPEG tile of level 0 decoded with tifffile/imagecodecs using
  ``num_workers`` threads (no patch assembly, no transform) in 256 x 256 patch equivalents.

Each method runs read + transform, then read + transform + encode (``builtin-small``); rates are
the best of ``--repeats`` interleaved rounds (load from other processes hits every method alike),
ratios come from the same run.

    python -m benchmarks.bench_patch_reading                 # 20,480 px slide, up to 3,000 tissue patches
    python -m benchmarks.bench_patch_reading --quick         # 4,096 px slide, 400 patches (smoke run)
    python -m benchmarks.bench_patch_reading --compare_preprocessing   # MONAI chain vs the torchvision one

``--compare_preprocessing`` times only ``ours (cuCIM batched)`` read + transform with three chains in
interleaved rounds: the torchvision ``v2.Compose`` the encoders built before the patch preprocessing became a
MONAI chain (kept here as the reference), the MONAI chain (``scripts.encoders.PatchPreprocessing``) and the
MONAI chain with Macenko stain normalisation.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import openslide
import tifffile
import torch
from monai.data import PatchWSIDataset
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as TF

from scripts.encoders import PatchPreprocessing, build_encoder
from scripts.wsi import (
    FeatureExtractor,
    PatchBatchReader,
    Slide,
    TissueMaskParams,
    build_patch_grid,
    plan_patch_reading,
    slide_tissue_mask,
)

PATCH = 256


# ---------------------------------------------------------------------------------------- slide
def make_slide(path: Path, side: int) -> Path:
    """A ``side`` x ``side`` synthetic H&E-like slide (JPEG tiles, pyramid), reused if present."""
    if path.is_file():
        return path
    from scripts.demo.synthetic_slides import write_synthetic_slide

    start = time.perf_counter()
    write_synthetic_slide(path, "adenocarcinoma", seed=7, size=(side, side), pen_marks=False)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - start:.0f} s")
    return path


def tissue_coords(path: Path, limit: int) -> np.ndarray:
    """The first ``limit`` tissue patches of our grid (row-major: the order every method reads)."""
    with Slide(path) as slide:
        plan = plan_patch_reading(slide.name, slide.level_downsamples, slide.mpp, slide.mpp, PATCH)
        tissue = slide_tissue_mask(slide, TissueMaskParams())
        grid = build_patch_grid(tissue, slide.dimensions, slide.level_dimensions[0], plan, 0.25)
    if len(grid) < limit:
        print(f"note: only {len(grid)} tissue patches on the slide (asked for {limit})")
    return grid.coords[:limit]


# ---------------------------------------------------------------------------------------- baselines
class ClamStyleDataset(Dataset):
    """CLAM-style: OpenSlide ``read_region`` per patch, PIL -> tensor -> resize -> normalise."""

    def __init__(self, path: Path, coords: np.ndarray, size: int, mean, std):
        self.path, self.coords, self.size, self.mean, self.std = str(path), coords, size, mean, std
        self.slide = None

    def __len__(self) -> int:
        return len(self.coords)

    def __getitem__(self, index: int) -> torch.Tensor:
        if self.slide is None:
            self.slide = openslide.OpenSlide(self.path)
        x, y = self.coords[index]
        image = self.slide.read_region((int(x), int(y)), 0, (PATCH, PATCH)).convert("RGB")
        tensor = TF.to_image(image).to(torch.float32) / 255.0  # PIL -> float tensor [3, H, W]
        tensor = TF.resize(tensor, [self.size, self.size], InterpolationMode.BICUBIC, antialias=True)
        return TF.normalize(tensor.clamp(0, 1), self.mean, self.std)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "slide": None}


def _monai_dataset(path: Path, coords: np.ndarray, transform: Callable) -> PatchWSIDataset:
    data = [{"image": str(path), "location": [int(y), int(x)]} for x, y in coords]  # MONAI: (row, column)

    def per_patch(item: dict) -> torch.Tensor:
        return transform(torch.as_tensor(item["image"]).as_subclass(torch.Tensor)[None])[0]

    return PatchWSIDataset(
        data,
        patch_size=PATCH,
        patch_level=0,
        transform=per_patch,
        include_label=False,
        center_location=False,
        reader="cuCIM",
    )


# ---------------------------------------------------------------------------------------- runners
def run_ours_read_only(path: Path, coords: np.ndarray, workers: int, batch: int) -> int:
    with Slide(path) as slide:
        plan = plan_patch_reading(slide.name, slide.level_downsamples, slide.mpp, slide.mpp, PATCH)
        return sum(len(index) for _, index in PatchBatchReader(slide, coords, plan, batch, workers))


def run_ours(
    path: Path, coords: np.ndarray, encoder, workers: int, batch: int, threads: int, encode: bool, backend: str
) -> int:
    extractor = FeatureExtractor(
        tempfile.gettempdir(),
        encoder,
        device="cpu",
        batch_size=batch,
        num_workers=workers,
        progress=False,
        torch_threads=threads,
    )
    with Slide(path, backend) as slide:
        plan = plan_patch_reading(slide.name, slide.level_downsamples, slide.mpp, slide.mpp, PATCH)
        if encode:
            return len(extractor.encode_patches(slide, coords, plan))
        count = 0
        with torch.inference_mode():
            for patches, _ in PatchBatchReader(slide, coords, plan, batch, workers):
                count += extractor.preprocessing(patches).shape[0]
        return count


def torchvision_chain(input_size: int, mean, std) -> v2.Compose:
    """The torchvision chain the encoders built before their steps became a MONAI chain (the reference)."""
    return v2.Compose([
        v2.Resize((input_size, input_size), interpolation=InterpolationMode.BICUBIC, antialias=True),
        v2.ToDtype(torch.float32, scale=True),
        v2.Lambda(lambda x: x.clamp(0.0, 1.0)),
        v2.Normalize(mean=list(mean), std=list(std)),
    ])


def run_read_transform(path: Path, coords: np.ndarray, chain: Callable, workers: int, batch: int) -> int:
    """Read every patch (cuCIM batched) and apply ``chain`` to each batch; returns the patch count."""
    count = 0
    with Slide(path, "cucim") as slide, torch.inference_mode():
        plan = plan_patch_reading(slide.name, slide.level_downsamples, slide.mpp, slide.mpp, PATCH)
        for patches, _ in PatchBatchReader(slide, coords, plan, batch, workers):
            count += chain(patches).shape[0]
    return count


def compare_preprocessing(path: Path, coords: np.ndarray, encoder, args: argparse.Namespace) -> None:
    """Read + transform rates of the torchvision chain (before) and the MONAI chains (after), interleaved."""
    mean, std = encoder.transform.transforms[-1].mean, encoder.transform.transforms[-1].std
    chains = {
        "torchvision v2.Compose (before)": torchvision_chain(encoder.input_size, mean, std),
        "MONAI PatchPreprocessing (after)": PatchPreprocessing(encoder),
        "MONAI PatchPreprocessing + Macenko": PatchPreprocessing(encoder, "macenko"),
    }
    probe = torch.randint(0, 256, (4, 3, PATCH, PATCH), dtype=torch.uint8)
    before_chain, after_chain = chains["torchvision v2.Compose (before)"], chains["MONAI PatchPreprocessing (after)"]
    same = torch.equal(before_chain(probe), after_chain(probe))
    for threads in args.threads:
        torch.set_num_threads(threads)
        for chain in chains.values():  # warm-up
            run_read_transform(path, coords, chain, args.workers, args.batch)
        rates: dict[str, list[float]] = {name: [] for name in chains}
        for _ in range(args.repeats):
            for name, chain in chains.items():
                rates[name].append(timed_rate(lambda c=chain: run_read_transform(path, coords, c, args.workers,
                                                                                  args.batch)))
        before = rates["torchvision v2.Compose (before)"]
        print(f"\n{len(coords)} patches, {threads} torch thread(s), {args.workers} workers, "
              f"{args.repeats} interleaved rounds; identical output before/after: {same}\n")
        print("| chain | best (patches/s) | median (patches/s) | best / before |")
        print("|---|---:|---:|---:|")
        for name, values in rates.items():
            best, median = max(values), float(np.median(values))
            print(f"| {name} | {best:,.0f} | {median:,.0f} | {best / max(before):.2f} |")
    print(f"1-min load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def run_loader(dataset: Dataset, encoder, workers: int, batch: int, encode: bool) -> int:
    loader = DataLoader(dataset, batch_size=batch, num_workers=workers, shuffle=False)
    count = 0
    with torch.inference_mode():
        for inputs in loader:
            if encode:
                encoder(inputs)
            count += inputs.shape[0]
    return count


def raw_tile_decode(path: Path, workers: int, level: int = 0, patch: int = PATCH) -> tuple[float, int]:
    """``patch`` x ``patch`` equivalents per second for decoding every JPEG tile of pyramid ``level``.

    Returns:
        rate, number of tiles decoded.
    """
    with tifffile.TiffFile(path) as tif:
        page = tif.series[0].levels[level].keyframe
        start = time.perf_counter()
        pixels = 0
        for tile, _, _ in page.segments(maxworkers=workers):
            pixels += tile.size // 3
        seconds = time.perf_counter() - start
    return pixels / (patch * patch) / seconds, len(page.dataoffsets)


def timed_rate(fn: Callable[[], int]) -> float:
    start = time.perf_counter()
    count = fn()
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=20_480, help="slide width = height at level 0")
    parser.add_argument("--patches", type=int, default=3_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="rounds; every method runs once per round")
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[1, 2],
        help="torch intra-op threads of the main process (one table each)",
    )
    parser.add_argument("--slide", type=Path, default=None, help="reuse/keep the slide at this path")
    parser.add_argument("--quick", action="store_true", help="4,096 px slide, 400 patches, 1 round")
    parser.add_argument("--compare_preprocessing", action="store_true",
                        help="only the read + transform rate of the torchvision chain vs the MONAI chains")
    args = parser.parse_args()
    if args.quick:
        args.side, args.patches, args.repeats = 4096, 400, 1
    if args.compare_preprocessing:
        with tempfile.TemporaryDirectory() as tmp:
            path = make_slide(args.slide or Path(tmp) / f"bench_{args.side}.svs", args.side)
            compare_preprocessing(path, tissue_coords(path, args.patches), build_encoder("builtin-small"), args)
        return

    with tempfile.TemporaryDirectory() as tmp:
        path = make_slide(args.slide or Path(tmp) / f"bench_{args.side}.svs", args.side)
        with Slide(path) as slide:
            print(
                f"slide {path.name}: {slide.dimensions[0]} x {slide.dimensions[1]} px, levels "
                f"{slide.level_dimensions}; {args.workers} workers, batch {args.batch}, {os.cpu_count()} cores"
            )
        coords = tissue_coords(path, args.patches)
        encoder = build_encoder("builtin-small")
        mean = encoder.transform.transforms[-1].mean
        std = encoder.transform.transforms[-1].std
        clam = ClamStyleDataset(path, coords, encoder.input_size, mean, std)
        monai_ds = _monai_dataset(path, coords, encoder.transform)
        w, b = args.workers, args.batch
        methods: dict[str, Callable[[int, bool], int]] = {
            "ours (cuCIM batched)": lambda t, e: run_ours(path, coords, encoder, w, b, t, e, "cucim"),
            "ours (OpenSlide DataLoader)": lambda t, e: run_ours(path, coords, encoder, w, b, t, e, "openslide"),
            "CLAM-style (OpenSlide per patch)": lambda t, e: run_loader(clam, encoder, w, b, e),
            "MONAI PatchWSIDataset (cuCIM)": lambda t, e: run_loader(monai_ds, encoder, w, b, e),
        }
        for run in methods.values():  # warm-up: page cache, worker start-up code paths
            run(1, False)
        # Rounds interleave the methods so that load from other processes hits all of them alike.
        best: dict[tuple[int, str, bool], float] = {}
        read_only = decode_rate = 0.0
        for _ in range(args.repeats):
            for threads in args.threads:
                torch.set_num_threads(threads)
                for name, run in methods.items():
                    for encode in (False, True):
                        key = (threads, name, encode)
                        best[key] = max(best.get(key, 0.0), timed_rate(lambda r=run, t=threads, e=encode: r(t, e)))
            read_only = max(read_only, timed_rate(lambda: run_ours_read_only(path, coords, w, b)))
            rate, n_tiles = raw_tile_decode(path, w)
            decode_rate = max(decode_rate, rate)
        load = os.getloadavg()[0]

    print(f"\n{len(coords)} tissue patches of {PATCH} px, best of {args.repeats} interleaved rounds")
    for threads in args.threads:
        clam_read = best[(threads, "CLAM-style (OpenSlide per patch)", False)]
        clam_all = best[(threads, "CLAM-style (OpenSlide per patch)", True)]
        print(f"\nmain process: {threads} torch thread(s); {w} workers for every method\n")
        print("| method | read + transform (patches/s) | x CLAM | read + transform + encode (patches/s) | x CLAM |")
        print("|---|---:|---:|---:|---:|")
        for name in methods:
            read, full = best[(threads, name, False)], best[(threads, name, True)]
            print(f"| {name} | {read:,.0f} | {read / clam_read:.2f} | {full:,.0f} | {full / clam_all:.2f} |")
    print(f"\nraw tile decode (tifffile/imagecodecs, {w} threads, all {n_tiles} level-0 tiles): {decode_rate:,.0f} /s")
    print(f"ours read only (no transform): {read_only:,.0f} patches/s = {read_only / decode_rate:.0%} of raw decode")
    for threads in args.threads:
        ours = best[(threads, "ours (cuCIM batched)", False)]
        print(f"ours read + transform, {threads} thread(s): {ours / decode_rate:.0%} of the raw decode rate")
    print(f"1-min load average at the end: {load:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
