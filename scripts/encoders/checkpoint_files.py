"""Reading local weight files: open, unwrap, rename, check, fingerprint.

Nothing here downloads anything. A checkpoint is a ``.pth``/``.pt``/``.bin`` file written by ``torch.save``
or a ``.safetensors`` file, holding a state dict either at the top level or nested under one of
``"teacher"``, ``"state_dict"``, ``"model"`` (a DINO/DINOv2 training checkpoint, a Lightning or
trainer checkpoint, a timm/DeiT checkpoint).

Example:
    >>> state = read_state_dict("uni.bin", encoder="uni")          # doctest: +SKIP
    >>> state = strip_prefixes(select_submodule(state, ("backbone.",)), ("module.",))
    >>> load_checked(model, state, encoder="uni", source="uni.bin")  # raises on missing/unexpected keys
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from scripts.safe_load import UnsafeFileError, load_plain

__all__ = [
    "NESTED_KEYS",
    "file_checksum",
    "load_checked",
    "read_state_dict",
    "select_submodule",
    "state_checksum",
    "strip_prefixes",
]

#: Keys under which checkpoints nest their weights, in the order they are tried.
NESTED_KEYS: tuple[str, ...] = ("teacher", "state_dict", "model")


def _require_file(path: str | os.PathLike | None, encoder: str) -> Path:
    if path is None:
        raise FileNotFoundError(
            f"encoder {encoder!r} needs a local checkpoint file (checkpoint=...); no weights are downloaded"
        )
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"encoder {encoder!r}: checkpoint file not found: {path}")
    return path


def _is_state_dict(obj) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(torch.is_tensor(v) for v in obj.values())


def read_state_dict(
    path: str | os.PathLike | None, *, encoder: str
) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, unwrapped from ``NESTED_KEYS`` nesting.

    Args:
        path: ``.pth``/``.pt``/``.bin`` (``torch.save``) or ``.safetensors`` file.
        encoder: encoder name, for error messages.

    Returns:
        state: parameter name -> tensor (on the CPU).
    """
    path = _require_file(path, encoder)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        obj = load_file(str(path), device="cpu")
    else:
        # tensors and plain values only (weights_only=True): a checkpoint from elsewhere cannot run code.
        # Memory-mapped: a 1.6 GB teacher checkpoint is not copied into memory first.
        try:
            obj = load_plain(path, what=f"checkpoint of encoder {encoder!r}", mmap=True)
        except UnsafeFileError as err:
            raise UnsafeFileError(f"encoder {encoder!r}: {err}") from None
        except ValueError as err:
            raise RuntimeError(f"encoder {encoder!r}: cannot read checkpoint {path}: {err}") from err
    seen: list[str] = []
    while isinstance(obj, Mapping) and not _is_state_dict(obj):
        key = next((k for k in NESTED_KEYS if isinstance(obj.get(k), Mapping)), None)
        if key is None:
            break
        seen.append(key)
        obj = obj[key]
    if not isinstance(obj, Mapping):
        raise ValueError(f"encoder {encoder!r}: {path} holds a {type(obj).__name__}, not a state dict")
    state = {k: v for k, v in obj.items() if torch.is_tensor(v)}
    if not state:
        nested = "/".join(seen) or "top level"
        raise ValueError(
            f"encoder {encoder!r}: no tensors in {path} at {nested} (keys: {sorted(obj)[:10]}); "
            f"expected a state dict, possibly nested under one of {NESTED_KEYS}"
        )
    return state


def select_submodule(state: Mapping[str, torch.Tensor], prefixes: Iterable[str]) -> dict[str, torch.Tensor]:
    """Keep only the keys under the first prefix that any key has (prefix removed), e.g. ``"backbone."``.

    A DINO teacher checkpoint holds ``backbone.*`` beside ``dino_head.*``/``ibot_head.*``: this keeps the
    backbone. A state dict without any of the prefixes is returned unchanged.
    """
    for prefix in prefixes:
        picked = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if picked:
            return picked
    return dict(state)


def strip_prefixes(state: Mapping[str, torch.Tensor], prefixes: Iterable[str]) -> dict[str, torch.Tensor]:
    """Remove wrapper prefixes such as ``"module."`` (DataParallel) from every key that has them."""
    prefixes = tuple(prefixes)
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in prefixes:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        out[key] = value
    return out


def _listing(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > limit else shown


def load_checked(
    module: torch.nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    encoder: str,
    source: str | os.PathLike,
    strict: bool = True,
) -> tuple[list[str], list[str]]:
    """``module.load_state_dict`` with a readable error listing missing, unexpected and mis-shaped keys.

    Args:
        module: the model to fill.
        state: its weights.
        encoder, source: encoder name and checkpoint path, for messages.
        strict: raise when any key is missing or unexpected (shape mismatches always raise).

    Returns:
        (missing, unexpected) key lists (empty when strict).
    """
    own = module.state_dict()
    mis_shaped = [
        f"{k} {list(v.shape)} (model wants {list(own[k].shape)})"
        for k, v in state.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    problems = []
    if mis_shaped:
        problems.append(f"shape mismatch: {_listing(mis_shaped)}")
    if strict and missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if strict and unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if problems:
        hint = "" if mis_shaped or not strict else " (pass strict=False to load anyway)"
        raise KeyError(
            f"encoder {encoder!r}: checkpoint {source} does not fit the model: " + "; ".join(problems) + hint
        )
    module.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return missing, unexpected


def file_checksum(path: str | os.PathLike, chunk_bytes: int = 8 << 20) -> str:
    """First 16 hex digits of the SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()[:16]


def state_checksum(state: Mapping[str, torch.Tensor]) -> str:
    """First 16 hex digits of the SHA-256 over a state dict's names, dtypes, shapes and bytes (sorted keys)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]
