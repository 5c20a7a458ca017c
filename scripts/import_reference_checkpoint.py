"""Convert a released reference HistGen checkpoint into this bundle's model files.

    python -m scripts.import_reference_checkpoint \\
        --checkpoint histgen_ckpt/model_best.pth \\
        --annotation annotation.json --threshold 10 \\
        --config configs/histgen_released.json \\
        --output_dir models

writes ``models/model.pt`` (state dict, without the unused ResNet-101, position buffers and
never-trained tensors), ``models/vocab.json`` (the reference vocabulary rebuilt from the
annotation's train split) and ``models/model_config.json`` (``compat="histgen-v1"``, so the
released weights give the reference outputs). ``evaluate.json`` and ``inference.json`` then run
with ``--model_dir models``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from scripts.engines.model_files import save_report_model
from scripts.engines.report_data import build_vocabulary
from scripts.networks import HistGen
from scripts.text import Vocabulary

logger = logging.getLogger("histgen.import")


def import_reference_checkpoint(
    checkpoint: str | Path,
    config: str | Path,
    annotation: str | Path | None,
    output_dir: str | Path,
    threshold: int = 10,
    vocab_file: str | Path | None = None,
    compat: str = "histgen-v1",
) -> Path:
    """Convert ``checkpoint`` + the vocabulary of ``annotation`` into ``output_dir``.

    Raises:
        ValueError: the vocabulary size does not match the checkpoint's output layer.
    """
    if vocab_file:
        vocab = Vocabulary.load(vocab_file)
    elif annotation:
        vocab = build_vocabulary(annotation, threshold)
    else:
        raise ValueError("give --annotation (to rebuild the reference vocabulary) or --vocab_file")
    model = HistGen.from_reference_checkpoint(checkpoint, config, compat=compat)
    if len(vocab) != model.config.vocab_size:
        raise ValueError(
            f"{checkpoint}: the checkpoint predicts {model.config.vocab_size + 1} ids but the vocabulary built from "
            f"{annotation or vocab_file} (threshold {threshold}) has {len(vocab)} words + id 0; use the annotation "
            "file and threshold the checkpoint was trained with (the paper's: annotation.json, threshold 10)"
        )
    path = save_report_model(output_dir, model, vocab)
    logger.info("wrote %s, %s and the model config", path, Path(output_dir) / "vocab.json")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="reference trainer checkpoint (model_best.pth)")
    parser.add_argument("--config", required=True, help="hyper-parameter JSON, e.g. configs/histgen_released.json")
    parser.add_argument("--annotation", help="HistGen annotation JSON the checkpoint was trained on")
    parser.add_argument("--threshold", type=int, default=10, help="vocabulary count threshold (reference: 10)")
    parser.add_argument("--vocab_file", help="an existing vocab.json instead of --annotation")
    parser.add_argument("--output_dir", default="models")
    parser.add_argument("--compat", default="histgen-v1", choices=["histgen-v1", "default"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    import_reference_checkpoint(args.checkpoint, args.config, args.annotation, args.output_dir, args.threshold,
                                args.vocab_file, args.compat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
