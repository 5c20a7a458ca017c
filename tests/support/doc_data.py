"""Small real data for the placeholder paths of the documented commands (docs/README.md, "Paths in the examples").

:func:`build_placeholders` writes, into a workspace that already holds the tiny slide demo (``demo_data/``) and the
model trained on it (``models/``), one small stand-in for every documented placeholder; :data:`BUILT`,
:data:`WRITTEN_BY_COMMANDS` and :data:`NOT_BUILT` together name every row of the table (a test checks it).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import torch

from tests.support.shared_fixtures import HISTGEN_SMALL, SHARED

#: placeholders that the documented commands write themselves (outputs), nothing to build
WRITTEN_BY_COMMANDS = frozenset({"/data/features_macenko", "/data/cases.csv", "/data/reports", "/data/predictions",
                                 "/opt/bundles", "out/"})
#: placeholders only the commands of ``doc_runs.NOT_RUN`` name
NOT_BUILT = frozenset({"/models/uni.bin"})

_TEST_SLIDES = ("SYNTH-test-0000", "SYNTH-test-0001")


def _slide(root: Path, name: str) -> Path:
    return root / "demo_data" / "slides" / f"{name}.svs"


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def _slides_folder(root: Path, target: Path) -> None:
    """Two demo test slides, and CASE-7's three slides (docs/slide_pipeline.md's case table names them)."""
    for name in _TEST_SLIDES:
        _link(_slide(root, name), target / f"{name}.svs")
    for letter, name in zip("ABC", ("SYNTH-test-0000", "SYNTH-test-0001", "SYNTH-val-0000")):
        _link(_slide(root, name), target / f"CASE-7-{letter}.svs")
    # docs/share_and_serve/monailabel.md asks for a 1536 px region of slide_a at (256, 256): a real H&E slide
    _link(SHARED / "fixtures" / "slides" / "CMU-1-Small-Region.svs", target / "slide_a.svs")


def _two_slides(root: Path, target: Path) -> None:
    for name in _TEST_SLIDES:
        _link(_slide(root, name), target / f"{name}.svs")


def _features_folder(root: Path, target: Path) -> None:
    """The demo's feature files (the annotation's ids), plus ``slide1.h5`` and ``slide2.pt`` (the serving examples')."""
    target.mkdir(parents=True, exist_ok=True)
    for path in (root / "demo_data" / "features").glob("*.h5"):
        _link(path, target / path.name)
    _link(root / "demo_data" / "features" / f"{_TEST_SLIDES[0]}.h5", target / "slide1.h5")
    with h5py.File(root / "demo_data" / "features" / f"{_TEST_SLIDES[1]}.h5", "r") as handle:  # HistGen's .pt form
        torch.save(torch.from_numpy(handle["feats"][()]), target / "slide2.pt")


def _new_features(root: Path, target: Path) -> None:
    for name in _TEST_SLIDES:
        _link(root / "demo_data" / "features" / f"{name}.h5", target / f"{name}.h5")


#: 149 words (+ "." + <unk>: the small reference checkpoint's vocab_size 150, 151 outputs) at threshold 10
_HISTGEN_WORDS = [f"q{a}{b}" for a in "abcdefghijklm" for b in "abcdefghijklm"][:149]


def _histgen_annotation(root: Path, target: Path) -> None:
    """HistGen's annotation layout: 4 train, 1 val, 1 test reports over the small checkpoint's vocabulary."""
    rng = np.random.default_rng(0)
    splits: dict[str, list[dict[str, str]]] = {"train": [], "val": [], "test": []}
    for i, split in enumerate(["train"] * 4 + ["val", "test"]):
        words = rng.permutation(_HISTGEN_WORDS * 3) if split == "train" else _HISTGEN_WORDS[:12]
        splits[split].append({"id": f"TCGA-{i:02d}", "report": f"{' '.join(words)}."})
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(splits), encoding="utf-8")


def _histgen_features(root: Path, target: Path) -> None:
    """``TCGA-<i>.pt`` bags ``[N, 96]`` (the small reference checkpoint's ``in_dim``), as the HistGen release."""
    target.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    for i in range(6):
        torch.save(torch.randn(20 + 7 * i, 96, generator=generator), target / f"TCGA-{i:02d}.pt")


def _histgen_checkpoint(root: Path, target: Path) -> None:
    """The small reference checkpoint, and its config as ``configs/histgen_released.json`` in the workspace."""
    _link(HISTGEN_SMALL / "checkpoint.pth", target)
    configs = root / "configs"  # the workspace's own copy
    _link(HISTGEN_SMALL / "config.json", configs / "histgen_released.json")


def _text_encoder(root: Path, target: Path) -> None:
    """A ``histgen-word-embedding-v1`` folder over the demo reports' words (random 8-dim rows)."""
    vocab = json.loads((root / "models" / "vocab.json").read_text(encoding="utf-8"))
    words = [w for w in vocab["tokens"] if w.isalpha()]
    target.mkdir(parents=True, exist_ok=True)
    (target / "text_encoder.json").write_text(json.dumps({"format": "histgen-word-embedding-v1", "words": words}))
    torch.save({"embeddings": torch.randn(len(words), 8, generator=torch.Generator().manual_seed(0))},
               target / "text_encoder.pt")


def _point_to(root: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(os.path.relpath(root, target.parent))  # relative: a cloned workspace points to itself


def _slides_csv(root: Path, target: Path) -> None:
    target.write_text(f"path\ndata/slides/{_TEST_SLIDES[0]}.svs\n", encoding="utf-8")


#: placeholder -> builder(workspace root, where the placeholder points in the workspace)
BUILT: dict[str, Callable[[Path, Path], None]] = {
    "/data/slides": _slides_folder,
    "slides/": _two_slides,
    "/data/case-1.svs": lambda root, target: _link(_slide(root, _TEST_SLIDES[0]), target),
    "a.svs": lambda root, target: _link(_slide(root, _TEST_SLIDES[0]), target),
    "b.svs": lambda root, target: _link(_slide(root, _TEST_SLIDES[1]), target),
    "slides.csv": _slides_csv,
    "/data/features": _features_folder,
    "/data/annotation.json": lambda root, target: _link(root / "demo_data" / "annotation.json", target),
    "/data/new_features": _new_features,
    "/data/f.h5": lambda root, target: _link(root / "demo_data" / "features" / f"{_TEST_SLIDES[0]}.h5", target),
    "/data/histgen/features": _histgen_features,
    "/data/histgen/annotation.json": _histgen_annotation,
    "histgen_ckpt/model_best.pth": _histgen_checkpoint,
    "/models/my_encoder": _text_encoder,
    "/path/to": lambda root, target: _point_to(root, target),  # the workspace: where the documented training ran
}


def placeholder_target(placeholder: str, root: Path) -> Path:
    """Where ``placeholder`` points in the workspace: absolute ones under ``root``, relative ones in it."""
    return root / placeholder.lstrip("/")


def build_placeholders(root: Path, table: dict[str, str]) -> None:
    """Write every built placeholder of ``table`` into ``root`` (a workspace holding ``demo_data``, ``models``)."""
    for placeholder in table:
        if placeholder in BUILT:
            BUILT[placeholder](root, placeholder_target(placeholder, root))
