"""Operators of the HistGen MONAI Deploy app: input scan -> patch features -> report model -> report files.

Every operator is a MONAI Deploy App SDK 0.5 ``Operator``; ``app.py`` chains them. Data between
operators stays in memory; the first reads ``-i`` (a slide, a feature file or a folder of them) and
the last writes ``-o``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import monai.deploy.core as md
import torch
from monai.deploy.core import DataPath, ExecutionContext, InputContext, IOType, Operator, OutputContext

from scripts.atomic_io import atomic_write_json, atomic_write_text
from scripts.data import FEATURE_SUFFIXES, read_feature_file

logger = logging.getLogger(__name__)

#: Slide formats handed to the slide pipeline (OpenSlide/cuCIM); everything else must be a feature file.
SLIDE_SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".svslide")


@dataclass
class SlideBag:
    """One slide's features on their way to the model: ``feats [N, D]``, ``coords [N, 2]`` or None."""

    slide_id: str
    source: str
    feats: torch.Tensor
    coords: torch.Tensor | None = None
    report: str = ""
    ids: list[int] = field(default_factory=list)


@md.input("input", DataPath, IOType.DISK)
@md.output("inputs", list, IOType.IN_MEMORY)
class ScanInputOperator(Operator):
    """``-i``: one slide or feature file, or a folder (not recursive) of them -> sorted list of paths."""

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        path = Path(op_input.get("input").path)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SLIDE_SUFFIXES
                           + FEATURE_SUFFIXES and not p.name.startswith("."))
        elif path.is_file():
            files = [path]
        else:
            raise FileNotFoundError(f"{path}: input not found")
        if not files:
            raise FileNotFoundError(f"{path}: no slide ({', '.join(SLIDE_SUFFIXES)}) or feature file (.h5/.pt)")
        op_output.set([str(p) for p in files], "inputs")


@md.input("inputs", list, IOType.IN_MEMORY)
@md.output("bags", list, IOType.IN_MEMORY)
class PatchFeatureOperator(Operator):
    """Paths -> feature bags: feature files are read; slides are patched and encoded.

    Args:
        encoder_name, encoder_checkpoint: the patch encoder the report model was trained on.
        target_mpp, patch_size, tissue_fraction: patching, as in ``configs/extract_features.json``.
        device: where the encoder runs.
    """

    def __init__(self, encoder_name: str = "builtin-small", encoder_checkpoint: str | None = None,
                 target_mpp: float = 0.5, patch_size: int = 256, tissue_fraction: float = 0.5,
                 device: str = "cpu") -> None:
        super().__init__()
        self.encoder_name = encoder_name
        self.encoder_checkpoint = encoder_checkpoint
        self.target_mpp = target_mpp
        self.patch_size = patch_size
        self.tissue_fraction = tissue_fraction
        self.device = device
        self._encoder: Any = None

    def encoder(self) -> Any:
        if self._encoder is None:
            from scripts.encoders import build_encoder

            self._encoder = build_encoder(self.encoder_name, checkpoint=self.encoder_checkpoint, device=self.device)
        return self._encoder

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        from scripts.serving.region_features import region_feature_bag

        bags = []
        for source in op_input.get("inputs"):
            path = Path(source)
            if path.suffix in FEATURE_SUFFIXES:
                bag = read_feature_file(path, slide_id=path.stem)
                bags.append(SlideBag(path.stem, source, bag.feats, bag.coords))
            else:
                region = region_feature_bag(path, self.encoder(), target_mpp=self.target_mpp,
                                            patch_size=self.patch_size, tissue_fraction=self.tissue_fraction,
                                            device=self.device)
                bags.append(SlideBag(path.stem, source, region.feats, region.coords))
            logger.info("%s: %d patches of D=%d", path.name, bags[-1].feats.shape[0], bags[-1].feats.shape[1])
        op_output.set(bags, "bags")


@md.input("bags", list, IOType.IN_MEMORY)
@md.output("reports", list, IOType.IN_MEMORY)
class ReportGeneratorOperator(Operator):
    """Bags -> reports with the app's model (``-m``): the exported TorchScript ``model.ts``.

    The scripted generator carries its vocabulary, so no bundle code runs here. Bags are decoded
    ``batch_size`` at a time, zero-padded with a mask, as ``configs/inference.json`` does.
    """

    def __init__(self, beam_size: int = 3, max_len: int = -1, batch_size: int = 4) -> None:
        super().__init__()
        self.beam_size = beam_size
        self.max_len = max_len
        self.batch_size = batch_size

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        from scripts.data import collate_bags

        model = context.models.get()
        if model is None:
            raise FileNotFoundError("no model given: pass -m models/model.ts (docs/share_and_serve/monai_deploy.md)")
        net = torch.jit.load(str(model.path), map_location="cpu").eval()
        bags: list[SlideBag] = op_input.get("bags")
        for bag in bags:
            if bag.feats.shape[1] != net.in_dim:
                raise ValueError(f"{bag.slide_id}: features have D={bag.feats.shape[1]}, model expects {net.in_dim}")
        with torch.no_grad():
            for start in range(0, len(bags), self.batch_size):
                chunk = bags[start : start + self.batch_size]
                batch = collate_bags([{"id": b.slide_id, "features": b.feats, "coords": None} for b in chunk])
                ids = net.generate(batch["features"], batch["mask"], self.beam_size, self.max_len, True)
                for bag, row, text in zip(chunk, ids.tolist(), net.decode(ids)):
                    bag.ids, bag.report = row, text
        op_output.set(bags, "reports")


@md.input("reports", list, IOType.IN_MEMORY)
@md.output("output", DataPath, IOType.DISK)
class ReportWriterOperator(Operator):
    """``-o``: ``<slide_id>.txt`` and ``<slide_id>.json`` per slide, plus ``reports.json`` with all of them."""

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        out = Path(op_output.get().path)
        out.mkdir(parents=True, exist_ok=True)
        rows = []
        for bag in op_input.get("reports"):
            row = {"slide_id": bag.slide_id, "source": bag.source, "num_patches": int(bag.feats.shape[0]),
                   "report": bag.report}
            atomic_write_text(out / f"{bag.slide_id}.txt", bag.report + "\n")
            atomic_write_json(out / f"{bag.slide_id}.json", row)
            rows.append(row)
        atomic_write_json(out / "reports.json", {"reports": rows, "generator": "HistGen report bundle",
                                                  "intended_use": "research only, not for diagnosis"})
        logger.info("wrote %d reports to %s", len(rows), out)


def env_setting(name: str, default: str) -> str:
    """App settings come from the environment (a MAP is configured that way): ``HISTGEN_<NAME>``."""
    return os.environ.get(f"HISTGEN_{name}", default)


__all__ = ["PatchFeatureOperator", "ReportGeneratorOperator", "ReportWriterOperator", "ScanInputOperator",
           "SlideBag", "env_setting"]
