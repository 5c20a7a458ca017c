"""Export a trained report model as one TorchScript file (``models/model.ts``) that runs without this package.

The file is ``torch.jit.script`` of the :class:`scripts.networks.HistGen` model itself (encoder, cached
decoder, beam and greedy search, id -> text with the vocabulary's tokens attached) and holds, as extra
files, ``model_config.json``, ``vocab.json``, ``feature_extraction.json`` and ``provenance.json`` (when the
model has them) and (when given) ``metadata.json``; :func:`load_exported_provenance` reads the provenance back, so
an app serving the file gives its outputs the model's notice (``SYNTHETIC-DATA MODEL — NOT FOR DIAGNOSIS``...).

Command line (from the bundle root)::

    python -m scripts.serving.torchscript_export --model_dir models --filepath models/model.ts

Loading it anywhere (only ``torch`` needed)::

    net = torch.jit.load("models/model.ts")
    texts = net.reports(features, mask)          # features [B, N, D] float, mask [B, N] bool or None
    ids = net.generate(features, mask, 3, 100, True)  # beam size, max length, trigram blocking (greedy)
    logprobs = net(features, target_ids, mask)   # teacher-forced, as HistGen.forward / HistGen.score
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from scripts.atomic_io import atomic_path
from scripts.engines.model_files import CONFIG_FILE, EXTRACTION_FILE, VOCAB_FILE, load_report_model
from scripts.engines.model_provenance import PROVENANCE_FILE
from scripts.networks import HistGen

__all__ = ["build_scriptable_network", "export_torchscript", "load_exported_network", "load_exported_provenance",
           "main", "quiet_jit", "script_network"]


def build_scriptable_network(model_dir: str | os.PathLike[str]) -> HistGen:
    """The trained model of ``model_dir`` (``model.pt``, ``model_config.json``, ``vocab.json``) with its tokens,
    in eval mode, ready for :func:`script_network`."""
    model, vocab = load_report_model(model_dir, device="cpu")
    model.set_tokens(vocab.tokens)
    return model.eval()


@contextlib.contextmanager
def quiet_jit() -> Iterator[None]:
    """Silence TorchScript's deprecation notices (it is still what MONAI's ``ckpt_export`` and MONAI Deploy load)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.*")
        warnings.filterwarnings("ignore", category=UserWarning, message=".*TorchScript.*")
        yield


def script_network(network: HistGen) -> torch.jit.ScriptModule:
    """``torch.jit.script`` of the model (in eval mode), without TorchScript's deprecation notices."""
    with quiet_jit():
        return torch.jit.script(network.eval())


def export_torchscript(
    model_dir: str | os.PathLike[str],
    filepath: str | os.PathLike[str] | None = None,
    meta_file: str | os.PathLike[str] | None = None,
) -> Path:
    """Script the model of ``model_dir`` and save it atomically.

    Args:
        model_dir: folder with ``model.pt``, ``model_config.json``, ``vocab.json``.
        filepath: output file; default ``<model_dir>/model.ts``.
        meta_file: the bundle's ``configs/metadata.json``, stored inside the file when given.

    Returns:
        The written file.
    """
    model_dir = Path(model_dir)
    filepath = Path(filepath) if filepath else model_dir / "model.ts"
    scripted = script_network(build_scriptable_network(model_dir))
    extra = {
        CONFIG_FILE: (model_dir / CONFIG_FILE).read_text(encoding="utf-8"),
        VOCAB_FILE: (model_dir / VOCAB_FILE).read_text(encoding="utf-8"),
    }
    if (model_dir / EXTRACTION_FILE).is_file():  # the model's input: what serving must extract (MONAI Deploy)
        extra[EXTRACTION_FILE] = (model_dir / EXTRACTION_FILE).read_text(encoding="utf-8")
    if (model_dir / PROVENANCE_FILE).is_file():  # what it was trained on: the notice of every served output
        extra[PROVENANCE_FILE] = (model_dir / PROVENANCE_FILE).read_text(encoding="utf-8")
    if meta_file:
        extra["metadata.json"] = Path(meta_file).read_text(encoding="utf-8")
    with quiet_jit(), atomic_path(filepath) as tmp:
        torch.jit.save(scripted, str(tmp), _extra_files=extra)
    return filepath


def load_exported_network(filepath: str | os.PathLike[str]) -> tuple[torch.jit.ScriptModule, dict]:
    """The scripted generator and its ``model_config.json`` (as a dict); needs torch only."""
    extra = {CONFIG_FILE: ""}
    with quiet_jit():
        net = torch.jit.load(str(filepath), map_location="cpu", _extra_files=extra)
    return net.eval(), json.loads(extra[CONFIG_FILE] or "{}")


def load_exported_provenance(filepath: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``provenance.json`` record a ``model.ts`` carries, else the one beside the file (the model folder), else
    None (the model's data is unknown: its outputs carry the research-use notice only)."""
    from scripts.engines.model_provenance import load_provenance

    extra = {PROVENANCE_FILE: ""}
    with quiet_jit():
        torch.jit.load(str(filepath), map_location="cpu", _extra_files=extra)
    if not extra[PROVENANCE_FILE]:
        return load_provenance(Path(filepath).parent)
    record = json.loads(extra[PROVENANCE_FILE])
    if not isinstance(record, dict):
        raise ValueError(f"{filepath}: its provenance.json is not a JSON object")
    return record


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description="Export a trained HistGen report model as TorchScript (model.ts).")
    parser.add_argument("--model_dir", default="models", help="folder of model.pt, model_config.json, vocab.json")
    parser.add_argument("--filepath", default=None, help="output file (default <model_dir>/model.ts)")
    parser.add_argument("--meta_file", default=None, help="bundle metadata.json to store inside the file")
    args = parser.parse_args(argv)
    path = export_torchscript(args.model_dir, args.filepath, args.meta_file)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
