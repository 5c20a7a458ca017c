"""Patch encoders: every loader on a checkpoint file in its real layout, the shared interface, the built-in.

Checkpoints are written here the way their owners write them (a timm ``state_dict``, a DINOv2 teacher
checkpoint, a torchvision ResNet-50 ``state_dict``), with random weights; the loaded encoder must give the
same features as the model the file came from. Nothing is downloaded: ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before timm / huggingface_hub are imported

import hashlib
import math
import re
import time
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from safetensors.torch import save_file

from scripts.encoders import IMAGENET_MEAN, IMAGENET_STD, TIMM_PRESETS, build_encoder, list_encoders
from scripts.encoders.dinov2_checkpoint import HISTGEN_DINOV2_NAME
from scripts.encoders.patch_encoder import make_patch_transform
from scripts.encoders.timm_encoder import create_timm_model

TINY_VIT = "timm:vit_tiny_patch16_224"
TINY_VIT_KWARGS = {"img_size": 64, "depth": 2}


def _uint8_patches(n: int, size: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=gen, dtype=torch.uint8)


def _sha16(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------------------
# the interface
# ----------------------------------------------------------------------------------------------------------
def test_list_encoders_names_every_builder():
    names = list_encoders()
    for name in ("builtin-small", "histgen-dinov2-vitl14", "resnet50-trunc", "timm:<model_name>", *TIMM_PRESETS):
        assert name in names
    with pytest.raises(ValueError, match="unknown encoder 'nope'"):
        build_encoder("nope")


@pytest.mark.parametrize("size", [224, 256, 512])
def test_transform_resizes_any_patch_and_normalises(size):
    transform = make_patch_transform(224)
    grey = torch.full((2, 3, size, size), 128, dtype=torch.uint8)
    out = transform(grey)
    assert out.shape == (2, 3, 224, 224) and out.dtype == torch.float32
    expected = (128 / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(out[0, :, 100, 100], expected, atol=1e-5, rtol=0)


def test_transform_matches_pil_bicubic_like_the_reference_pipeline():
    """HistGen/CLAM resize the uint8 patch with PIL bicubic, then normalise: within rounding of it."""
    rng = np.random.default_rng(0)
    smooth = rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)
    patch = np.array(Image.fromarray(smooth).resize((512, 512), Image.BILINEAR))
    ours = make_patch_transform(224)(torch.from_numpy(patch).permute(2, 0, 1)[None])[0]
    ref = np.asarray(Image.fromarray(patch).resize((224, 224), Image.BICUBIC), np.float32) / 255
    ours_levels = (ours * torch.tensor(IMAGENET_STD)[:, None, None] + torch.tensor(IMAGENET_MEAN)[:, None, None]) * 255
    diff = (ours_levels - torch.from_numpy(ref).permute(2, 0, 1) * 255).abs()
    print(f"transform vs PIL bicubic: max {diff.max():.2f}, mean {diff.mean():.4f} grey levels")
    assert diff.max() <= 2.01 and diff.mean() < 0.05


def test_centre_crop_preset_transform():
    transform = make_patch_transform(224, crop_pct=224 / 256)
    x = torch.zeros(1, 3, 300, 300, dtype=torch.uint8)
    x[..., 150 - 16 : 150 + 16, 150 - 16 : 150 + 16] = 255  # a centred square survives the crop
    out = transform(x)
    assert out.shape == (1, 3, 224, 224)
    assert out[0, 0, 112, 112] > out[0, 0, 0, 0]


# ----------------------------------------------------------------------------------------------------------
# builtin-small
# ----------------------------------------------------------------------------------------------------------
def test_builtin_small_is_deterministic_and_seeded():
    a, b = build_encoder("builtin-small"), build_encoder("builtin-small")
    assert (a.name, a.embed_dim, a.input_size) == ("builtin-small", 128, 64)
    assert a.checksum == b.checksum and re.fullmatch(r"[0-9a-f]{16}", a.checksum)
    x = _uint8_patches(4, 224)
    with torch.inference_mode():
        fa, fb = a(a.transform(x)), b(b.transform(x))
    assert fa.shape == (4, 128) and fa.dtype == torch.float32
    assert torch.equal(fa, fb)
    other = build_encoder("builtin-small", seed=1)
    assert other.checksum != a.checksum
    with pytest.raises(ValueError, match="takes no checkpoint"):
        build_encoder("builtin-small", checkpoint="weights.pth")


def test_builtin_small_rejects_untransformed_input():
    enc = build_encoder("builtin-small")
    with pytest.raises(TypeError, match="apply encoder.transform first"):
        enc(_uint8_patches(2, 64))


def test_builtin_small_throughput():
    """Target >= 300 patches/s (224 px uint8 in, transform + forward, 2 CPU threads); fail far below it."""
    torch.set_num_threads(2)
    enc = build_encoder("builtin-small")
    x = _uint8_patches(256, 224)
    with torch.inference_mode():
        enc(enc.transform(x[:16]))
        start = time.perf_counter()
        for _ in range(2):
            enc(enc.transform(x))
        rate = 512 / (time.perf_counter() - start)
    print(f"builtin-small: {rate:.0f} patches/s (224 px, transform + forward, 2 threads)")
    assert rate > 100


def test_builtin_small_separates_synthetic_tissues(tmp_path):
    """A linear probe on builtin-small features of patches cut from synthetic slides tells the tissues apart."""
    openslide = pytest.importorskip("openslide")
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from scripts.demo.synthetic_slides import write_synthetic_slide
    from scripts.demo.tissue_classes import COMPONENT_NAMES, DIAGNOSIS_CLASSES

    rng = np.random.default_rng(0)
    side, per_component = 224, 16
    patches, labels = [], []
    for i, diagnosis in enumerate(DIAGNOSIS_CLASSES):
        info = write_synthetic_slide(
            tmp_path / f"probe{i}.svs", diagnosis, seed=100 + i, size=(3072, 3072), tumour_fraction=0.7, pen_marks=False
        )
        lab, scale = info.label_map, info.label_scale
        cells = math.ceil(side / scale)
        slide = openslide.OpenSlide(str(info.path))
        for component in np.unique(lab):
            ys, xs = np.nonzero(lab == component)
            taken = 0
            for j in rng.permutation(len(ys)):
                window = lab[ys[j] : ys[j] + cells, xs[j] : xs[j] + cells]
                if window.shape != (cells, cells) or (window == component).mean() < 0.95:
                    continue
                region = slide.read_region((int(xs[j] * scale), int(ys[j] * scale)), 0, (side, side))
                patches.append(np.asarray(region.convert("RGB")))
                labels.append(int(component))
                taken += 1
                if taken == per_component:
                    break
        slide.close()
    y = np.asarray(labels)
    present = {COMPONENT_NAMES[c] for c in np.unique(y)}
    assert set(DIAGNOSIS_CLASSES) | {"background", "stroma", "necrosis"} <= present
    enc = build_encoder("builtin-small")
    with torch.inference_mode():
        feats = enc(enc.transform(torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2))).numpy()
    x_train, x_test, y_train, y_test = train_test_split(feats, y, test_size=0.4, stratify=y, random_state=0)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(x_train, y_train)
    accuracy = probe.score(x_test, y_test)
    print(f"builtin-small linear probe on {len(present)} synthetic tissues: accuracy {accuracy:.3f}")
    assert accuracy >= 0.9


# ----------------------------------------------------------------------------------------------------------
# missing checkpoints
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["histgen-dinov2-vitl14", "resnet50-trunc", "uni", "virchow2", TINY_VIT])
def test_missing_checkpoint_is_a_clear_error(tmp_path, name):
    with pytest.raises(FileNotFoundError, match=re.escape(f"encoder {name!r} needs a local checkpoint")):
        build_encoder(name)
    missing = tmp_path / "nowhere" / "weights.pth"
    with pytest.raises(FileNotFoundError, match=re.escape(f"encoder {name!r}: checkpoint file not found: {missing}")):
        build_encoder(name, missing)


# ----------------------------------------------------------------------------------------------------------
# timm:<model_name>
# ----------------------------------------------------------------------------------------------------------
def _tiny_timm_model(seed: int = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    kwargs = {**TINY_VIT_KWARGS, **overrides}
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, **{"num_classes": 0, **kwargs}).eval()


def _save(obj, path: Path) -> Path:
    if path.suffix == ".safetensors":
        save_file(obj, str(path))
    else:
        torch.save(obj, path)
    return path


@pytest.mark.parametrize(
    "layout",
    [
        "raw.pth",
        "legacy.pth",
        "state_dict-module.pth",
        "model-backbone.bin",
        "teacher-backbone-heads.pth",
        "raw.safetensors",
    ],
)
def test_timm_loader_reads_every_layout(tmp_path, layout):
    source = _tiny_timm_model()
    state = {k: v.clone() for k, v in source.state_dict().items()}
    kind, suffix = layout.split(".")
    if kind in ("raw", "legacy"):
        obj = state
    elif kind == "state_dict-module":
        obj = {"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}
    elif kind == "model-backbone":
        obj = {"model": {f"backbone.{k}": v for k, v in state.items()}}
    else:  # a DINO-style teacher: backbone plus projection heads that are not part of the encoder
        obj = {"teacher": {**{f"backbone.{k}": v for k, v in state.items()}, "dino_head.last.weight": torch.ones(4)}}
    path = tmp_path / f"weights.{suffix}"
    if kind == "legacy":  # torch's pre-1.6 pickle format (cannot be memory-mapped)
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:
        _save(obj, path)
    enc = build_encoder(TINY_VIT, path, **TINY_VIT_KWARGS)
    assert (enc.name, enc.embed_dim, enc.input_size) == (TINY_VIT, 192, 64)
    assert enc.checksum == _sha16(path)
    x = torch.randn(3, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(enc(x), source(x))
    assert enc(enc.transform(_uint8_patches(2, 256))).shape == (2, 192)


def test_timm_loader_reports_key_mismatches_and_can_relax(tmp_path):
    state = _tiny_timm_model().state_dict()
    state["extra.weight"] = torch.zeros(3)
    del state["norm.bias"]
    path = _save(state, tmp_path / "bad.pth")
    with pytest.raises(KeyError, match=r"missing keys: norm\.bias.*unexpected keys: extra\.weight.*strict=False"):
        build_encoder(TINY_VIT, path, **TINY_VIT_KWARGS)
    enc = build_encoder(TINY_VIT, path, strict=False, **TINY_VIT_KWARGS)
    assert enc.embed_dim == 192
    wrong = _tiny_timm_model(embed_dim=96, num_heads=3).state_dict()
    with pytest.raises(KeyError, match=r"shape mismatch: cls_token \[1, 1, 96\] \(model wants \[1, 1, 192\]\)"):
        build_encoder(TINY_VIT, _save(wrong, tmp_path / "wrong.pth"), strict=False, **TINY_VIT_KWARGS)


def test_timm_loader_drops_a_classifier_head(tmp_path):
    with_head = _tiny_timm_model(num_classes=10)
    path = _save(with_head.state_dict(), tmp_path / "classifier.pth")
    enc = build_encoder(TINY_VIT, path, **TINY_VIT_KWARGS)
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(enc(x), with_head.forward_head(with_head.forward_features(x), pre_logits=True))


def test_checksum_follows_the_weights(tmp_path):
    a = _save(_tiny_timm_model(seed=0).state_dict(), tmp_path / "a.pth")
    b = _save(_tiny_timm_model(seed=1).state_dict(), tmp_path / "b.pth")
    enc_a, enc_b = build_encoder(TINY_VIT, a, **TINY_VIT_KWARGS), build_encoder(TINY_VIT, b, **TINY_VIT_KWARGS)
    assert enc_a.checksum == _sha16(a) and enc_b.checksum == _sha16(b) and enc_a.checksum != enc_b.checksum
    c = tmp_path / "c.pth"
    c.write_bytes(a.read_bytes())
    assert build_encoder(TINY_VIT, c, **TINY_VIT_KWARGS).checksum == enc_a.checksum


def test_unknown_timm_model_is_a_clear_error(tmp_path):
    path = _save({"w": torch.zeros(1)}, tmp_path / "w.pth")
    with pytest.raises(ValueError, match="timm has no model named 'no_such_vit'"):
        build_encoder("timm:no_such_vit", path)
    with pytest.raises(ValueError, match="would fetch a config from the hub"):
        build_encoder("timm:hf-hub:MahmoodLab/UNI", path)


@pytest.mark.parametrize(
    ("preset", "params_millions"),
    [("uni", 303.4), ("uni2-h", 681.4), ("virchow2", 631.2), ("gigapath", 1135.0), ("h-optimus-0", 1134.8)],
)
def test_presets_build_the_published_architectures(preset, params_millions):
    """Each preset's kwargs build (on the meta device: no memory) a model of the published width and size."""
    spec = TIMM_PRESETS[preset]
    model = create_timm_model(spec.model_name, encoder=preset, device="meta", **spec.kwargs)
    width = model.num_features * (2 if spec.pooling == "cls+mean" else 1)
    assert width == spec.embed_dim
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert params == pytest.approx(params_millions, rel=0.002)


def test_preset_loads_a_local_checkpoint_with_its_normalisation(tmp_path):
    """h-optimus-0's preset on a shrunk copy of its architecture: its mean/std and its own kwargs are used."""
    spec = TIMM_PRESETS["h-optimus-0"]
    shrink = {"embed_dim": 48, "depth": 1, "num_heads": 3}
    torch.manual_seed(0)
    source = create_timm_model(spec.model_name, encoder="test", **{**spec.kwargs, **shrink}).eval()
    path = _save(source.state_dict(), tmp_path / "pytorch_model.bin")
    enc = build_encoder("h-optimus-0", path, **shrink)
    assert enc.name == "h-optimus-0" and enc.input_size == 224 and enc.embed_dim == 48
    normalize = enc.transform.transforms[-1]
    assert tuple(normalize.mean) == spec.mean and tuple(normalize.std) == spec.std
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        assert torch.equal(enc(x), source(x))


def test_virchow_pooling_concatenates_class_and_mean_patch_tokens(tmp_path):
    spec = TIMM_PRESETS["virchow2"]
    shrink = {"embed_dim": 32, "depth": 1, "num_heads": 2}
    torch.manual_seed(0)
    source = create_timm_model(spec.model_name, encoder="test", **{**spec.kwargs, **shrink}).eval()
    enc = build_encoder("virchow2", _save(source.state_dict(), tmp_path / "v2.pth"), **shrink)
    assert enc.embed_dim == 64
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        tokens = source.forward_features(x)  # [B, 1 + 4 registers + 256 patches, 32]
        expected = torch.cat([tokens[:, 0], tokens[:, 5:].mean(1)], dim=-1)
        assert torch.equal(enc(x), expected)


# ----------------------------------------------------------------------------------------------------------
# histgen-dinov2-vitl14
# ----------------------------------------------------------------------------------------------------------
def _swiglu_hidden(dim: int) -> int:
    """DINOv2's SwiGLUFFNFused hidden width for mlp_ratio 4."""
    return (int(dim * 4 * 2 / 3) + 7) // 8 * 8


def _dinov2_state(
    dim=64, depth=2, patch=14, grid=16, ffn="swiglu", registers=0, chunks=0, seed=0
) -> dict[str, torch.Tensor]:
    """A random backbone state dict with the DINOv2 repository's key names and shapes."""
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=0.05):
        return torch.randn(*shape, generator=gen) * scale

    state = {
        "cls_token": rnd(1, 1, dim, scale=0.5),
        "pos_embed": rnd(1, 1 + grid * grid, dim, scale=0.5),
        "patch_embed.proj.weight": rnd(dim, 3, patch, patch),
        "patch_embed.proj.bias": rnd(dim),
        "mask_token": torch.zeros(1, dim),
        "norm.weight": 1 + rnd(dim),
        "norm.bias": rnd(dim),
    }
    if registers:
        state["register_tokens"] = rnd(1, registers, dim, scale=0.5)
    for i in range(depth):
        block = f"blocks.{i // math.ceil(depth / chunks)}.{i}." if chunks else f"blocks.{i}."
        state.update(
            {
                block + "norm1.weight": 1 + rnd(dim),
                block + "norm1.bias": rnd(dim),
                block + "attn.qkv.weight": rnd(3 * dim, dim, scale=0.2),
                block + "attn.qkv.bias": rnd(3 * dim),
                block + "attn.proj.weight": rnd(dim, dim, scale=0.2),
                block + "attn.proj.bias": rnd(dim),
                block + "ls1.gamma": 0.5 + rnd(dim),
                block + "norm2.weight": 1 + rnd(dim),
                block + "norm2.bias": rnd(dim),
                block + "ls2.gamma": 0.5 + rnd(dim),
            }
        )
        if ffn == "swiglu":
            hidden = _swiglu_hidden(dim)
            state[block + "mlp.w12.weight"] = rnd(2 * hidden, dim, scale=0.2)
            state[block + "mlp.w12.bias"] = rnd(2 * hidden)
            state[block + "mlp.w3.weight"] = rnd(dim, hidden, scale=0.2)
            state[block + "mlp.w3.bias"] = rnd(dim)
        elif ffn == "swiglu-unpacked":
            hidden = _swiglu_hidden(dim)
            for name, shape in (("w1", (hidden, dim)), ("w2", (hidden, dim)), ("w3", (dim, hidden))):
                state[block + f"mlp.{name}.weight"] = rnd(*shape, scale=0.2)
                state[block + f"mlp.{name}.bias"] = rnd(shape[0])
        else:
            state[block + "mlp.fc1.weight"] = rnd(4 * dim, dim, scale=0.2)
            state[block + "mlp.fc1.bias"] = rnd(4 * dim)
            state[block + "mlp.fc2.weight"] = rnd(dim, 4 * dim, scale=0.2)
            state[block + "mlp.fc2.bias"] = rnd(dim)
    return state


def _dinov2_reference(state: dict[str, torch.Tensor], x: torch.Tensor, num_heads: int, patch: int) -> torch.Tensor:
    """DINOv2's forward (normalised CLS token), written from the paper/repository semantics in plain torch."""
    sd = {re.sub(r"^blocks\.\d+\.(\d+)\.", r"blocks.\1.", k): v for k, v in state.items()}  # undo chunking
    b, dim = x.shape[0], sd["cls_token"].shape[-1]
    t = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=patch).flatten(2).transpose(1, 2)
    t = torch.cat([sd["cls_token"].expand(b, -1, -1), t], dim=1)
    pos = sd["pos_embed"]
    old, new = int(math.isqrt(pos.shape[1] - 1)), x.shape[-1] // patch
    if old != new:  # DINOv2's run-time interpolation
        grid = pos[:, 1:].reshape(1, old, old, dim).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, scale_factor=((new + 0.1) / old,) * 2, mode="bicubic")
        pos = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, new * new, dim)], dim=1)
    t = t + pos
    if "register_tokens" in sd:
        t = torch.cat([t[:, :1], sd["register_tokens"].expand(b, -1, -1), t[:, 1:]], dim=1)
    depth = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k)))
    for i in range(depth):
        p = f"blocks.{i}."
        h = F.layer_norm(t, (dim,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], eps=1e-6)
        q, k, v = (
            F.linear(h, sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"])
            .reshape(b, -1, 3, num_heads, dim // num_heads)
            .permute(2, 0, 3, 1, 4)
        )
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, -1, dim)
        t = t + sd[p + "ls1.gamma"] * F.linear(a, sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
        h = F.layer_norm(t, (dim,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], eps=1e-6)
        if p + "mlp.w12.weight" in sd:
            x1, x2 = F.linear(h, sd[p + "mlp.w12.weight"], sd[p + "mlp.w12.bias"]).chunk(2, dim=-1)
            h = F.linear(F.silu(x1) * x2, sd[p + "mlp.w3.weight"], sd[p + "mlp.w3.bias"])
        elif p + "mlp.w1.weight" in sd:
            x1 = F.linear(h, sd[p + "mlp.w1.weight"], sd[p + "mlp.w1.bias"])
            x2 = F.linear(h, sd[p + "mlp.w2.weight"], sd[p + "mlp.w2.bias"])
            h = F.linear(F.silu(x1) * x2, sd[p + "mlp.w3.weight"], sd[p + "mlp.w3.bias"])
        else:
            h = F.gelu(F.linear(h, sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"]))
            h = F.linear(h, sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])
        t = t + sd[p + "ls2.gamma"] * h
    return F.layer_norm(t, (dim,), sd["norm.weight"], sd["norm.bias"], eps=1e-6)[:, 0]


def _save_teacher(state: dict[str, torch.Tensor], path: Path) -> Path:
    """The layout of dinov2_cpath_v1.pth: {"teacher": {"backbone.<k>": ..., "dino_head.*": ..., "ibot_head.*"}}."""
    teacher = {f"backbone.{k}": v for k, v in state.items()}
    teacher["dino_head.mlp.0.weight"] = torch.zeros(8, 4)
    teacher["ibot_head.last_layer.weight_g"] = torch.ones(8, 1)
    torch.save({"teacher": teacher}, path)
    return path


def test_histgen_dinov2_reproduces_the_timm_model_it_was_written_from(tmp_path):
    """A tiny timm ViT (patch 14, width 64, depth 2, SwiGLU) renamed to DINOv2 names, chunked, saved as a
    teacher checkpoint: the loaded encoder gives exactly the original model's output."""
    torch.manual_seed(0)
    hidden = _swiglu_hidden(64)
    source = timm.create_model(
        "vit_large_patch14_dinov2", pretrained=False, num_classes=0, img_size=224, embed_dim=64, depth=2,
        num_heads=4, mlp_ratio=2 * hidden / 64, mlp_layer=timm.layers.SwiGLUPacked, act_layer=torch.nn.SiLU,
    ).eval()
    dinov2 = {"mask_token": torch.zeros(1, 64)}
    for key, value in source.state_dict().items():
        key = key.replace(".mlp.fc1.", ".mlp.w12.").replace(".mlp.fc2.", ".mlp.w3.")
        key = re.sub(r"^blocks\.(\d+)\.", r"blocks.\1.\1.", key)  # block_chunks=depth: chunk i holds block i
        dinov2[key] = value.clone()
    assert "blocks.1.1.mlp.w12.weight" in dinov2  # block_chunks layout: blocks.<chunk>.<index>
    path = _save_teacher(dinov2, tmp_path / "dinov2_cpath_v1.pth")
    enc = build_encoder(HISTGEN_DINOV2_NAME, path, embed_dim=64, depth=2, num_heads=4)
    assert (enc.name, enc.embed_dim, enc.input_size, enc.checksum) == (HISTGEN_DINOV2_NAME, 64, 224, _sha16(path))
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        assert torch.equal(enc(x), source(x))
        assert enc(enc.transform(_uint8_patches(2, 512))).shape == (2, 64)


@pytest.mark.parametrize(
    ("ffn", "grid", "registers", "chunks"),
    [
        ("swiglu", 16, 0, 2),  # HistGen's layout: SwiGLU, 224 px grid, chunked blocks
        ("swiglu", 37, 0, 0),  # public DINOv2 weights: 518 px grid, resampled to 16 x 16
        ("mlp", 16, 4, 0),  # ffn_layer="mlp" with register tokens
        ("swiglu-unpacked", 16, 0, 0),  # xFormers' unpacked SwiGLU weights
    ],
)
def test_histgen_dinov2_matches_a_plain_dinov2_forward(tmp_path, ffn, grid, registers, chunks):
    state = _dinov2_state(ffn=ffn, grid=grid, registers=registers, chunks=chunks)
    path = _save_teacher(state, tmp_path / "teacher.pth")
    enc = build_encoder(HISTGEN_DINOV2_NAME, path, num_heads=4)
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(enc(x), _dinov2_reference(state, x, num_heads=4, patch=14), atol=2e-5, rtol=1e-5)


def test_histgen_dinov2_checks_the_requested_architecture(tmp_path):
    path = _save_teacher(_dinov2_state(), tmp_path / "tiny.pth")
    with pytest.raises(ValueError, match="holds a ViT with embed_dim=64, but embed_dim=1024 was asked"):
        build_encoder(HISTGEN_DINOV2_NAME, path, embed_dim=1024)
    with pytest.raises(ValueError, match="not a multiple of the patch size 14"):
        build_encoder(HISTGEN_DINOV2_NAME, path, input_size=200)
    enc = build_encoder(HISTGEN_DINOV2_NAME, path)  # heads default to width // 64 = 1
    assert enc.model.blocks[0].attn.num_heads == 1


def test_histgen_dinov2_mapping_fits_vit_large_exactly():
    """HistGen's real layout (ViT-L/14, 24 blocks in 4 chunks, SwiGLU 2 x 2736, 16 x 16 grid), on the meta
    device: the renamed keys and shapes are exactly those of the timm model built from them."""
    from scripts.encoders.dinov2_checkpoint import dinov2_architecture, dinov2_to_timm

    dim, hidden = 1024, _swiglu_hidden(1024)
    assert hidden == 2736
    with torch.device("meta"):
        state = _dinov2_state(dim=dim, depth=24, chunks=4)
    assert "blocks.3.23.mlp.w12.weight" in state and tuple(state["blocks.0.0.mlp.w12.weight"].shape) == (5472, 1024)
    converted = dinov2_to_timm(state)
    arch = dinov2_architecture(converted)
    assert (arch["embed_dim"], arch["depth"], arch["patch_size"]) == (1024, 24, 14)
    model = create_timm_model(
        "vit_large_patch14_dinov2", encoder="test", device="meta", img_size=224, num_heads=16, **arch
    )
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert own == {k: tuple(v.shape) for k, v in converted.items()}


# ----------------------------------------------------------------------------------------------------------
# resnet50-trunc
# ----------------------------------------------------------------------------------------------------------
def test_resnet50_trunc_matches_torchvision_up_to_layer3(tmp_path):
    torch.manual_seed(0)
    net = torchvision.models.resnet50(weights=None).eval()
    for module in net.modules():  # non-trivial batch-norm statistics, so that they must be loaded
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "resnet50.pth"
    torch.save(net.state_dict(), path)
    enc = build_encoder("resnet50-trunc", path)
    assert (enc.embed_dim, enc.input_size, enc.checksum) == (1024, 224, _sha16(path))
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        h = net.layer3(net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(x)))))))
        torch.testing.assert_close(enc(x), h.mean(dim=(2, 3)), atol=1e-5, rtol=1e-5)
    truncated = {k: v for k, v in net.state_dict().items() if not k.startswith(("layer4.", "fc."))}
    clam_path = tmp_path / "clam_trunc.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in truncated.items()}}, clam_path)
    with torch.inference_mode():
        assert torch.equal(build_encoder("resnet50-trunc", clam_path)(x), enc(x))
