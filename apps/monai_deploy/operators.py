"""Operators of the HistGen MONAI Deploy app: input scan -> patch features -> report model -> report files.

Every operator is a MONAI Deploy App SDK 0.5 ``Operator``; ``app.py`` chains them. Data between
operators stays in memory; the first reads ``-i`` (a slide, a feature file or a folder of them) and
the last writes ``-o``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import monai.deploy.core as md
import torch
from monai.deploy.core import DataPath, ExecutionContext, InputContext, IOType, Operator, OutputContext

from scripts.atomic_io import atomic_write_json, atomic_write_text
from scripts.data import FEATURE_SUFFIXES, read_feature_file

logger = logging.getLogger(__name__)

def model_records(model_path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The ``model_config.json`` and ``feature_extraction.json`` a ``model.ts`` carries (the export stores them);
    a ``feature_extraction.json`` beside the file (the model folder) serves an older export without one."""
    from scripts.engines.model_files import CONFIG_FILE, EXTRACTION_FILE
    from scripts.serving.torchscript_export import quiet_jit

    extra = {CONFIG_FILE: "", EXTRACTION_FILE: ""}
    with quiet_jit():
        torch.jit.load(str(model_path), map_location="cpu", _extra_files=extra)
    config = json.loads(extra[CONFIG_FILE] or "{}")
    beside = Path(model_path).parent / EXTRACTION_FILE
    if extra[EXTRACTION_FILE]:
        return config, json.loads(extra[EXTRACTION_FILE])
    return config, json.loads(beside.read_text(encoding="utf-8")) if beside.is_file() else None


def model_path_of(context: ExecutionContext) -> Path:
    model = context.models.get()
    if model is None:
        raise FileNotFoundError("no model given: pass -m models/model.ts (docs/share_and_serve/monai_deploy.md)")
    return Path(model.path)


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
    """Paths -> feature bags: feature files are read; slides are extracted as ``configs/inference.json --slide``
    extracts them (:func:`scripts.engines.slide_inference.slide_feature_extractor`), with the model's own
    ``feature_extraction.json`` (carried by ``model.ts``).

    Args:
        encoder_name, target_mpp, patch_size, tissue_fraction: overrides of the model's extraction settings;
            None = the model's (logged when an override differs from it).
        encoder_checkpoint: local weights of the encoder (all but ``builtin-small``).
        device: where the encoder runs.
    """

    def __init__(self, encoder_name: str | None = None, encoder_checkpoint: str | None = None,
                 target_mpp: float | None = None, patch_size: int | None = None,
                 tissue_fraction: float | None = None, device: str = "cpu") -> None:
        super().__init__()
        self.overrides = {"encoder_name": encoder_name, "target_mpp": target_mpp, "patch_size": patch_size,
                          "tissue_fraction": tissue_fraction}
        self.encoder_checkpoint = encoder_checkpoint
        self.device = device

    def extractor(self, model_path: Path, features_dir: str) -> Any:
        """The slide extractor for the model in ``model_path``, writing into ``features_dir``."""
        from scripts.engines.model_files import EXTRACTION_FILE, extraction_settings
        from scripts.engines.slide_inference import slide_feature_extractor

        _, recorded = model_records(model_path)
        settings = extraction_settings(None, self.overrides, recorded=recorded, fallback=True)
        return slide_feature_extractor(
            settings, features_dir, device=self.device, encoder_checkpoint=self.encoder_checkpoint,
            check_checksum=self.overrides["encoder_name"] is None, record_path=f"{model_path}:{EXTRACTION_FILE}",
            num_workers=0, save_thumbnails=False, progress=False,
        )

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        from scripts.serving.slide_features import slide_feature_bag

        bags = []
        extractor = None
        with tempfile.TemporaryDirectory(prefix="histgen-deploy-") as features_dir:
            for source in op_input.get("inputs"):
                path = Path(source)
                if path.suffix in FEATURE_SUFFIXES:
                    bag = read_feature_file(path, slide_id=path.stem)
                    bags.append(SlideBag(path.stem, source, bag.feats, bag.coords))
                else:
                    extractor = extractor or self.extractor(model_path_of(context), features_dir)
                    whole = slide_feature_bag(extractor, path, path.stem)
                    bags.append(SlideBag(path.stem, source, whole.feats, whole.coords))
                logger.info("%s: %d patches of D=%d", path.name, bags[-1].feats.shape[0], bags[-1].feats.shape[1])
        op_output.set(bags, "bags")


@md.input("bags", list, IOType.IN_MEMORY)
@md.output("reports", list, IOType.IN_MEMORY)
class ReportGeneratorOperator(Operator):
    """Bags -> reports with the app's model (``-m``): the exported TorchScript ``model.ts``.

    The scripted generator carries its vocabulary. Bags are decoded ``batch_size`` at a time, zero-padded with
    a mask, as ``configs/inference.json`` does, with the model's ``beam_size`` and ``max_seq_length`` (its
    ``model_config.json``, carried by ``model.ts``) unless overridden (logged when different).

    Args:
        beam_size, max_len: overrides; None = the model's.
        batch_size: bags decoded together.
    """

    def __init__(self, beam_size: int | None = None, max_len: int | None = None, batch_size: int = 4) -> None:
        super().__init__()
        self.beam_size = beam_size
        self.max_len = max_len
        self.batch_size = batch_size

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        from scripts.data import collate_bags
        from scripts.engines.model_files import decoding_settings

        model_path = model_path_of(context)
        net = torch.jit.load(str(model_path), map_location="cpu").eval()
        recorded, _ = model_records(model_path)
        beam_size, max_len = decoding_settings(None, self.beam_size, self.max_len, recorded=recorded)
        bags: list[SlideBag] = op_input.get("bags")
        for bag in bags:
            if bag.feats.shape[1] != net.in_dim:
                raise ValueError(f"{bag.slide_id}: features have D={bag.feats.shape[1]}, model expects {net.in_dim}")
        with torch.no_grad():
            for start in range(0, len(bags), self.batch_size):
                chunk = bags[start : start + self.batch_size]
                batch = collate_bags([{"id": b.slide_id, "features": b.feats, "coords": None} for b in chunk])
                ids = net.generate(batch["features"], batch["mask"], beam_size, max_len, True)
                for bag, row, text in zip(chunk, ids.tolist(), net.decode(ids)):
                    bag.ids, bag.report = row, text
        op_output.set(bags, "reports")


@md.input("reports", list, IOType.IN_MEMORY)
@md.output("output", DataPath, IOType.DISK)
class ReportWriterOperator(Operator):
    """``-o``: ``<slide_id>.txt`` and ``<slide_id>.json`` per slide, plus ``reports.json`` with all of them.

    Every output carries the model's notice, as the bundle's own report files do (``docs/outputs.md``): the
    ``.txt`` is the bundle's report file (synthetic-data warning first when it applies, prose, tokens, research-use
    notice, provenance line); the JSON rows and ``reports.json`` have ``notice``. The provenance is the one
    ``model.ts`` carries (:func:`scripts.serving.torchscript_export.load_exported_provenance`).
    """

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        from scripts.engines.model_provenance import log_model_provenance, output_notice
        from scripts.engines.report_outputs import report_file_text
        from scripts.serving.torchscript_export import load_exported_provenance

        model_path = model_path_of(context)
        provenance = log_model_provenance(model_path, load_exported_provenance(model_path))
        notice = output_notice(provenance)
        out = Path(op_output.get().path)
        out.mkdir(parents=True, exist_ok=True)
        rows = []
        for bag in op_input.get("reports"):
            row = {"slide_id": bag.slide_id, "source": bag.source, "num_patches": int(bag.feats.shape[0]),
                   "report": bag.report, "notice": notice}
            atomic_write_text(out / f"{bag.slide_id}.txt", report_file_text(bag.report, provenance))
            atomic_write_json(out / f"{bag.slide_id}.json", row)
            rows.append(row)
        atomic_write_json(out / "reports.json", {"reports": rows, "generator": "HistGen report bundle",
                                                  "notice": notice})
        logger.info("wrote %d reports to %s (%s)", len(rows), out, notice)


def env_setting(name: str, default: str) -> str:
    """App settings come from the environment (a MAP is configured that way): ``HISTGEN_<NAME>``."""
    return os.environ.get(f"HISTGEN_{name}", default)


def env_number(name: str, kind: type) -> float | int | None:
    """An optional numeric setting ``HISTGEN_<NAME>``; None when unset (the model's own value applies)."""
    value = os.environ.get(f"HISTGEN_{name}", "")
    return kind(value) if value else None


__all__ = ["PatchFeatureOperator", "ReportGeneratorOperator", "ReportWriterOperator", "ScanInputOperator",
           "SlideBag", "env_number", "env_setting", "model_records"]
