"""Build the reference HistGen model from a checkout of its code, for side-by-side benchmarks.

Nothing of the reference code lives in this repository: :func:`import_reference` puts a checkout the
user points to (``github.com/dddavid4real/HistGen``) first on ``sys.path`` and imports its
``models.histgen_model.HistGenModel``. Its ``modules.utils`` imports OpenCV for a heat-map helper that
neither training nor decoding calls; when ``cv2`` is not installed an empty stand-in module is
registered so that the import succeeds.

:func:`reference_model` builds ``HistGenModel`` with the released configuration
(``train_wsi_report.sh``: region 96, 512 prototypes, memory 2048x512, top-k 512, 3 decoder layers,
100-token reports, beam 3), the unused ImageNet ResNet-101 included (without downloading weights), and
:func:`reference_optimizer` its trainer's optimiser (Adam with AMSGrad over every parameter, ResNet
included, as ``modules/optimizers.py`` builds it). Its beam search calls ``.cuda()``: run it inside
:func:`tensors_stay_on_cpu` on a machine without a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from scripts.networks import HistGen, HistGenConfig
from scripts.networks.reference_checkpoint import convert_reference_state_dict


def import_reference(path: str | Path) -> type:
    """``HistGenModel`` class of the reference checkout at ``path``.

    Raises:
        FileNotFoundError: ``path`` holds no ``models/histgen_model.py``.
    """
    root = Path(path).resolve()
    if not (root / "models" / "histgen_model.py").is_file() or not (root / "modules" / "histgen_module.py").is_file():
        raise FileNotFoundError(f"{root}: not a HistGen checkout (models/histgen_model.py or "
                                "modules/histgen_module.py missing)")
    try:
        importlib.import_module("cv2")
    except ImportError:
        sys.modules["cv2"] = types.ModuleType("cv2")  # only the reference's heat-map helper uses it
    # this repository has a `models/` folder too: the checkout must come first and stale imports go
    for name in [n for n in sys.modules if n in ("models", "modules") or n.startswith(("models.", "modules."))]:
        del sys.modules[name]
    sys.path.insert(0, str(root))
    return importlib.import_module("models.histgen_model").HistGenModel


@contextlib.contextmanager
def tensors_stay_on_cpu() -> Iterator[None]:
    """Make ``Tensor.cuda()`` return the tensor itself while no GPU is present.

    The reference beam search moves its word ids to the GPU with ``it.cuda()``; on a CPU machine this lets it run
    unchanged (which is how ``shared/fixtures/histgen_official`` was produced).
    """
    if torch.cuda.is_available():
        yield
        return
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.cuda = original  # type: ignore[method-assign]


class _Tokenizer:
    """The attribute of the reference tokenizer that the model reads: ``idx2token`` (its length is the vocabulary)."""

    def __init__(self, vocab_size: int) -> None:
        self.idx2token = {i + 1: f"w{i + 1}" for i in range(vocab_size)}


def reference_args(config: HistGenConfig, beam_size: int = 3) -> argparse.Namespace:
    """The reference's command-line arguments for ``config`` (the released training script's other values)."""
    return argparse.Namespace(
        image_dir="features/", d_model=config.d_model, d_ff=config.d_ff, d_vf=config.d_vf,
        num_heads=config.num_heads, num_layers=config.num_layers, dropout=config.dropout,
        drop_prob_lm=config.drop_prob_lm, topk=config.topk, cmm_size=config.cmm_size, cmm_dim=config.cmm_dim,
        region_size=config.region_size, prototype_num=config.prototype_num, max_seq_length=config.max_seq_length,
        bos_idx=0, eos_idx=0, pad_idx=0, use_bn=0, logit_layers=1,
        visual_extractor="resnet101", visual_extractor_pretrained=False,
        sample_method="beam_search", beam_size=beam_size, temperature=1.0, sample_n=1, group_size=1,
        output_logsoftmax=1, decoding_constraint=0, block_trigrams=1,
        optim="Adam", lr_ve=1e-4, lr_ed=1e-4, weight_decay=5e-5, amsgrad=True,
    )


def reference_model(path: str | Path, config: HistGenConfig, beam_size: int = 3) -> torch.nn.Module:
    """The reference ``HistGenModel`` for ``config`` (``in_dim`` must be 1024 or 768, as the reference hard-codes)."""
    if config.in_dim not in (768, 1024):
        raise ValueError(f"the reference code takes 1024- or 768-dimensional features, not in_dim={config.in_dim}")
    model_class = import_reference(path)
    args = reference_args(config, beam_size)
    if config.in_dim == 768:
        args.image_dir = "ctranspath/"
    return model_class(args, _Tokenizer(config.vocab_size))


def reference_optimizer(model: torch.nn.Module, args: Any) -> torch.optim.Optimizer:
    """The reference trainer's optimiser: Adam (AMSGrad) over the ResNet and the encoder-decoder groups."""
    ve = list(model.visual_extractor.parameters())
    ve_ids = {id(p) for p in ve}
    rest = [p for p in model.parameters() if id(p) not in ve_ids]
    return torch.optim.Adam([{"params": ve, "lr": args.lr_ve}, {"params": rest, "lr": args.lr_ed}],
                            weight_decay=args.weight_decay, amsgrad=args.amsgrad)


def ours_from_reference(reference: torch.nn.Module, config: HistGenConfig) -> HistGen:
    """Our model carrying the reference model's weights (``config.compat`` decides the behaviour)."""
    model = HistGen(config)
    model.load_state_dict(convert_reference_state_dict(reference.state_dict(), "reference model"))
    return model
