"""HistGen's DINOv2 ViT-L/14 patch encoder (``dinov2_cpath_v1.pth``) on timm's ``vit_large_patch14_dinov2``.

HistGen extracted its features with a DINOv2 ViT-L/14 teacher trained on pathology patches, built with the
official DINOv2 code at ``img_size=224, patch_size=14, init_values=1e-5, ffn_layer="swiglufused",
block_chunks=4`` and loaded from ``torch.load(path)["teacher"]`` keeping the ``backbone.*`` keys. Its
output is the normalised CLS token (1024-d); inputs are resized to 224 and normalised with ImageNet
mean/std. This module reads such a checkpoint without the DINOv2 code, by renaming its keys to timm's.

Key mapping, DINOv2 official names -> timm ``VisionTransformer``:

=================================================  ==========================================================
DINOv2                                             timm
=================================================  ==========================================================
``patch_embed.proj.{weight,bias}``, ``cls_token``  same
``pos_embed`` [1, 1 + G*G, D]                      same; resampled once to the input grid if G differs
``register_tokens`` [1, R, D] (``*_reg`` models)   ``reg_token``; ``pos_embed[:, 0]`` folded into ``cls_token``,
                                                   ``pos_embed`` keeps only patch slots (``no_embed_class``)
``mask_token``                                     dropped (training only)
``blocks.{i}.*`` or ``blocks.{chunk}.{i}.*``       ``blocks.{i}.*`` (``block_chunks`` > 0 nests each block
                                                   under its chunk, keeping the global index ``i``)
``.norm1 .attn.qkv .attn.proj .ls1.gamma``         same
``.norm2 .ls2.gamma``                              same
``.mlp.fc1 .mlp.fc2`` (``ffn_layer="mlp"``)        same (GELU ``Mlp``)
``.mlp.w12 .mlp.w3`` (``swiglufused``, packed)     ``.mlp.fc1 .mlp.fc2`` (``GluMlp`` + SiLU, gate first:
                                                   ``silu(x1) * x2``, timm's ``SwiGLUPacked``)
``.mlp.w1 .mlp.w2 .mlp.w3`` (unpacked SwiGLU)      ``.mlp.fc1`` = cat(w1, w2), ``.mlp.fc2`` = w3
``norm``                                           ``norm``
=================================================  ==========================================================

The architecture is read from the checkpoint's shapes (width, depth, patch size, FFN type and width,
layer scale, registers, position grid); only the number of heads cannot be, and defaults to
``embed_dim // 64`` as in every DINOv2 size (ViT-L: 16). Keyword arguments override or check the rest, so
the same loader serves the real ViT-L/14 and a tiny test model.

Position embeddings: the timm model is built at ``img_size = input_size`` (224, HistGen's setting). When the
checkpoint's grid differs (the public DINOv2 weights are 37 x 37, for 518 px) it is resampled once at load,
the way DINOv2 interpolates at run time (bicubic, ``scale_factor = (new + 0.1) / old``, no antialiasing), so
the encoder reproduces DINOv2's own forward at that size. HistGen's checkpoint is 16 x 16 = 224 / 14: loaded
as is.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

import torch
import torch.nn.functional as F

from scripts.encoders.checkpoint_files import file_checksum, load_checked, read_state_dict, select_submodule
from scripts.encoders.patch_encoder import IMAGENET_MEAN, IMAGENET_STD, make_patch_transform
from scripts.encoders.timm_encoder import TimmPatchEncoder, create_timm_model

__all__ = ["HISTGEN_DINOV2_NAME", "build_histgen_dinov2", "dinov2_architecture", "dinov2_to_timm", "resample_pos_embed"]

HISTGEN_DINOV2_NAME = "histgen-dinov2-vitl14"
_TIMM_ARCH = "vit_large_patch14_dinov2"
_CHUNKED = re.compile(r"^blocks\.(\d+)\.(\d+)\.(.+)$")
_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def resample_pos_embed(patch_pos: torch.Tensor, new_grid: int) -> torch.Tensor:
    """Resample patch position embeddings [1, G*G, D] -> [1, new*new, D] like DINOv2's forward does."""
    old = int(round(math.sqrt(patch_pos.shape[1])))
    if old * old != patch_pos.shape[1]:
        raise ValueError(f"position embeddings hold {patch_pos.shape[1]} patch slots, not a square grid")
    if old == new_grid:
        return patch_pos
    dim = patch_pos.shape[-1]
    grid = patch_pos.float().reshape(1, old, old, dim).permute(0, 3, 1, 2)
    scale = (new_grid + 0.1) / old
    out = F.interpolate(grid, scale_factor=(scale, scale), mode="bicubic", align_corners=False)
    out = out[:, :, :new_grid, :new_grid]
    return out.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, dim).to(patch_pos.dtype)


def dinov2_to_timm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a DINOv2 backbone state dict (no ``backbone.`` prefix) to timm ``VisionTransformer`` keys.

    Position embeddings are renamed, not resampled (``build_histgen_dinov2`` does that).
    """
    out: dict[str, torch.Tensor] = {}
    unpacked: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key == "mask_token":
            continue
        chunked = _CHUNKED.match(key)
        if chunked:
            key = f"blocks.{chunked.group(2)}.{chunked.group(3)}"
        match = re.match(r"^(blocks\.\d+\.mlp)\.(w12|w3|w1|w2)\.(weight|bias)$", key)
        if match:
            prefix, layer, kind = match.groups()
            if layer == "w12":
                key = f"{prefix}.fc1.{kind}"
            elif layer == "w3":
                key = f"{prefix}.fc2.{kind}"
            else:  # unpacked SwiGLU: w1 (gate) and w2 (value) become the two halves of fc1
                unpacked.setdefault(f"{prefix}.fc1.{kind}", {})[layer] = value
                continue
        out[key] = value
    for key, halves in unpacked.items():
        if set(halves) != {"w1", "w2"}:
            raise KeyError(f"unpacked SwiGLU weights incomplete at {key}: found {sorted(halves)}")
        out[key] = torch.cat([halves["w1"], halves["w2"]], dim=0)
    if "register_tokens" in out:
        pos = out["pos_embed"]
        out["reg_token"] = out.pop("register_tokens")
        out["cls_token"] = out["cls_token"] + pos[:, :1]
        out["pos_embed"] = pos[:, 1:]
    return out


def dinov2_architecture(timm_state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """timm ``create_model`` kwargs read from a converted state dict's shapes (heads excepted)."""
    try:
        proj = timm_state["patch_embed.proj.weight"]  # [D, 3, p, p]
        cls = timm_state["cls_token"]
    except KeyError as err:
        raise KeyError(f"not a DINOv2 ViT backbone: no {err.args[0]!r} (keys: {sorted(timm_state)[:8]} ...)") from None
    dim, patch = int(proj.shape[0]), int(proj.shape[-1])
    depth = 1 + max((int(m.group(1)) for k in timm_state if (m := _BLOCK.match(k))), default=-1)
    arch: dict[str, Any] = {"embed_dim": dim, "patch_size": patch, "depth": depth}
    fc1 = timm_state.get("blocks.0.mlp.fc1.weight")
    fc2 = timm_state.get("blocks.0.mlp.fc2.weight")
    if fc1 is None or fc2 is None:
        raise KeyError("not a DINOv2 ViT backbone: no blocks.0.mlp weights")
    hidden = int(fc1.shape[0])
    swiglu = int(fc2.shape[1]) * 2 == hidden
    arch["mlp_ratio"] = (hidden + 0.5) / dim  # int(dim * ratio) == hidden exactly
    if swiglu:
        arch["mlp_layer"], arch["act_layer"] = "SwiGLUPacked", "silu"
    arch["init_values"] = 1e-5 if "blocks.0.ls1.gamma" in timm_state else None
    arch["qkv_bias"] = "blocks.0.attn.qkv.bias" in timm_state
    arch["proj_bias"] = "blocks.0.attn.proj.bias" in timm_state
    if "reg_token" in timm_state:
        arch["reg_tokens"] = int(timm_state["reg_token"].shape[1])
        arch["no_embed_class"] = True
    if int(cls.shape[-1]) != dim:
        raise ValueError(f"cls_token width {cls.shape[-1]} differs from the patch embedding width {dim}")
    return arch


def build_histgen_dinov2(
    checkpoint: str | os.PathLike | None,
    *,
    input_size: int = 224,
    num_heads: int | None = None,
    strict: bool = True,
    name: str = HISTGEN_DINOV2_NAME,
    **arch: Any,
) -> TimmPatchEncoder:
    """HistGen's DINOv2 teacher (or any DINOv2-layout ViT checkpoint) as a ``PatchEncoder``.

    Args:
        checkpoint: ``dinov2_cpath_v1.pth`` or a file in the same layout: DINOv2 key names, possibly under
            ``"teacher"`` and a ``backbone.`` prefix (``teacher.backbone.`` inside ``"model"`` also works).
        input_size: model input side (multiple of the patch size); HistGen used 224.
        num_heads: attention heads (default ``embed_dim // 64``).
        strict: raise on missing or unexpected keys.
        **arch: expected ``embed_dim``, ``depth``, ``patch_size`` (checked against the checkpoint) or other
            timm kwargs to override.

    Returns:
        encoder with ``embed_dim`` = the ViT width (1024 for ViT-L), output = normalised CLS token.
    """
    raw = read_state_dict(checkpoint, encoder=name)
    backbone = select_submodule(raw, ("teacher.backbone.", "backbone.", "module.backbone.", "module."))
    state = dinov2_to_timm(backbone)
    found = dinov2_architecture(state)
    for key in ("embed_dim", "depth", "patch_size"):
        if key in arch and int(arch[key]) != found[key]:
            raise ValueError(
                f"encoder {name!r}: {checkpoint} holds a ViT with {key}={found[key]}, but {key}={arch[key]} was asked"
            )
    kwargs = {**found, **arch}
    dim, patch = kwargs["embed_dim"], kwargs["patch_size"]
    if input_size % patch:
        raise ValueError(f"encoder {name!r}: input_size {input_size} is not a multiple of the patch size {patch}")
    heads = int(num_heads) if num_heads is not None else max(1, dim // 64)
    if dim % heads:
        raise ValueError(f"encoder {name!r}: embed_dim {dim} is not divisible by num_heads {heads}")
    grid = input_size // patch
    pos = state["pos_embed"]
    prefix = 0 if kwargs.get("no_embed_class") else 1
    state["pos_embed"] = torch.cat([pos[:, :prefix], resample_pos_embed(pos[:, prefix:], grid)], dim=1)
    model = create_timm_model(_TIMM_ARCH, encoder=name, img_size=input_size, num_heads=heads, **kwargs)
    load_checked(model, state, encoder=name, source=checkpoint, strict=strict)
    transform = make_patch_transform(input_size, IMAGENET_MEAN, IMAGENET_STD)
    return TimmPatchEncoder(name, model, dim, input_size, transform, file_checksum(checkpoint), "model")
