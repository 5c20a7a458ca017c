"""Import of reference HistGen checkpoints (``model_best.pth`` of the reference trainer).

One place maps the reference parameter names onto this package's modules, in the manner of
timm's ``checkpoint_filter_fn``. Groups the reference saves but never uses are dropped:
``visual_extractor.*`` (an ImageNet ResNet-101), the sinusoidal ``*.pe`` buffers, the unused
``attn``/``ff`` copies and ``position_embeddings`` inside each encoder layer, the second layer's
global token, and the duplicate ``model.cmn.*`` (the same module as ``cmn.*``).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from scripts.safe_load import NUMPY_SCALAR_GLOBALS, UnsafeFileError, load_plain

from .config import HistGenConfig

# (reference pattern, our name); applied to keys with the "encoder_decoder." prefix removed
_RENAMES: list[tuple[str, str]] = [
    (r"^wsi_mapping\.(weight|bias)$", r"projection.\1"),
    (r"^att_embed\.0\.(weight|bias)$", r"visual_embed.0.\1"),
    (r"^memory_matrix$", r"memory_matrix"),
    (r"^cmn\.linears\.(\d)\.(weight|bias)$", r"context.<proj\1>.\2"),
    (r"^attn_mem\.linears\.(\d)\.(weight|bias)$", r"visual_context_attn.<proj\1>.\2"),
    (r"^model\.encoder\.layer\.0\.global_token$", r"encoder.global_token"),
    (r"^model\.encoder\.layer\.(\d)\.region_encoder\.(.*)$", r"encoder.region_layers.\1.<enc>\2"),
    (r"^model\.encoder\.layer\.0\.WSI_encoder\.(.*)$", r"encoder.slide_layer.<enc>\1"),
    (r"^model\.encoder\.norm\.(a_2|b_2)$", r"encoder.norm.<ln\1>"),
    (r"^model\.encoder\.pooler\.dense\.(weight|bias)$", r"encoder.pool_dense.\1"),
    (r"^model\.encoder\.pooler\.attentive_pooling\.lin_proj\.(weight|bias)$", r"encoder.pool_proj.\1"),
    (r"^model\.encoder\.pooler\.attentive_pooling\.v\.weight$", r"encoder.pool_score.weight"),
    (r"^model\.decoder\.layers\.(\d+)\.(.*)$", r"decoder.layers.\1.<dec>\2"),
    (r"^model\.decoder\.norm\.(a_2|b_2)$", r"decoder.norm.<ln\1>"),
    (r"^model\.tgt_embed\.0\.lut\.weight$", r"decoder.embed.weight"),
    (r"^logit\.(weight|bias)$", r"decoder.logit.\1"),
]

_IGNORED = [
    r"^visual_extractor\.",
    r"\.pe$",
    r"^model\.encoder\.layer\.\d\.(attn|ff)\.",
    r"^model\.encoder\.layer\.\d\.position_embeddings\.",
    r"^model\.encoder\.layer\.1\.global_token$",
    r"^model\.cmn\.",
]

_PROJ = {"0": "q_proj", "1": "k_proj", "2": "v_proj", "3": "out_proj"}
_LN = {"a_2": "weight", "b_2": "bias"}


def _rename_block(rest: str, sublayers: tuple[str, ...]) -> str:
    """Rename inside an encoder/decoder layer: ``self_attn.linears.0.weight`` -> ``self_attn.q_proj.weight``."""
    m = re.match(r"^(self_attn|src_attn)\.linears\.(\d)\.(weight|bias)$", rest)
    if m:
        module = "cross_attn" if m.group(1) == "src_attn" else "self_attn"
        return f"{module}.{_PROJ[m.group(2)]}.{m.group(3)}"
    m = re.match(r"^feed_forward\.(w_1|w_2)\.(weight|bias)$", rest)
    if m:
        return rest
    m = re.match(r"^sublayer\.(\d)\.norm\.(a_2|b_2)$", rest)
    if m and int(m.group(1)) < len(sublayers):
        return f"{sublayers[int(m.group(1))]}.{_LN[m.group(2)]}"
    raise KeyError(rest)


def rename_reference_key(key: str) -> str | None:
    """Our parameter name for a reference key, or None for a key that is deliberately dropped.

    Raises:
        KeyError: for a key that is neither known nor ignorable.
    """
    name = key.removeprefix("encoder_decoder.")
    if any(re.search(p, name) for p in _IGNORED):
        return None
    for pattern, target in _RENAMES:
        if not re.match(pattern, name):
            continue
        out = re.sub(pattern, target, name)
        out = re.sub(r"<proj(\d)>", lambda m: _PROJ[m.group(1)], out)
        out = re.sub(r"<ln(a_2|b_2)>", lambda m: _LN[m.group(1)], out)
        if "<enc>" in out:
            head, rest = out.split("<enc>")
            out = head + _rename_block(rest, ("norm1", "norm2"))
        if "<dec>" in out:
            head, rest = out.split("<dec>")
            out = head + _rename_block(rest, ("norm1", "norm2", "norm3"))
        return out
    raise KeyError(key)


def read_reference_checkpoint(checkpoint_path: str | Path) -> dict[str, torch.Tensor]:
    """The raw reference state dict from a trainer checkpoint (or a bare state dict)."""
    path = Path(checkpoint_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: reference HistGen checkpoint not found")
    try:
        # the trainer format holds tensors, numbers (its best score may be a numpy scalar) and optimizer state
        blob = load_plain(path, what="reference HistGen checkpoint", allow=NUMPY_SCALAR_GLOBALS)
    except UnsafeFileError:
        raise
    except Exception as err:  # noqa: BLE001 - report any unpickling failure with the file name
        raise ValueError(f"{path}: cannot read as a PyTorch checkpoint ({type(err).__name__}: {err})") from None
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict) or not state:
        found = list(blob)[:8] if isinstance(blob, dict) else type(blob).__name__
        raise ValueError(f"{path}: no 'state_dict' found (found: {found})")
    return {k.removeprefix("module."): v for k, v in state.items()}


def convert_reference_state_dict(state: dict[str, torch.Tensor], source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Rename a reference state dict into this package's names, dropping the unused groups."""
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        try:
            name = rename_reference_key(key)
        except KeyError:
            unknown.append(key)
            continue
        if name is not None:
            out[name] = value
    if unknown:
        raise ValueError(f"{source}: unexpected keys for a HistGen checkpoint: {unknown[:10]}")
    cmn = "encoder_decoder.cmn.linears.0.weight"
    dup = "encoder_decoder.model.cmn.linears.0.weight"
    if cmn in state and dup in state and not torch.equal(state[cmn], state[dup]):
        raise ValueError(f"{source}: 'model.cmn' differs from 'cmn'; the reference shares one module")
    return out


def load_reference_state_dict(checkpoint_path: str | Path, config: HistGenConfig) -> dict[str, torch.Tensor]:
    """Read, rename and shape-check a reference checkpoint against ``config``."""
    state = convert_reference_state_dict(read_reference_checkpoint(checkpoint_path), str(checkpoint_path))
    checks = {
        "projection.weight": (config.d_vf, config.in_dim),
        "decoder.logit.weight": (config.vocab_size + 1, config.d_model),
        "memory_matrix": (config.cmm_size, config.cmm_dim),
    }
    for name, shape in checks.items():
        if name in state and tuple(state[name].shape) != shape:
            raise ValueError(
                f"{checkpoint_path}: {name} has shape {tuple(state[name].shape)} but the config gives {shape} "
                "(check in_dim / d_vf / vocab_size / cmm_size against the checkpoint)"
            )
    return state
