"""Where the transfer bundles' SYNTHETIC demo slides come from: the report bundle's demos.

Two sources (the ``source`` demo option):

- ``"slides"`` (default): the report bundle's slide demo (:func:`scripts.demo.slide_dataset.make_slide_demo_dataset`:
  synthetic pyramidal slides -> ``builtin-small`` patch features ``[N, 128]`` -> annotation). When
  ``report_demo_dir`` (the bundles' default: ``<repository root>/demo_data``, where the report bundle's
  ``python -m monai.bundle run training --config_file configs/train.json --demo#source slides`` writes it) holds a
  finished slide demo with the same parameters, it is reused as it is (the check takes seconds). Otherwise the demo
  is built, or completed, in the bundle's own folder. A report demo folder with other parameters is never touched.
- ``"feature_bags"``: the report bundle's generated feature bags (:func:`scripts.demo.feature_bags.make_demo_dataset`,
  64-d); no slide is read. Written to a folder of its own (its slide ids are the slide demo's).

Either way the result is the annotation items of every split pooled (``id``, ``diagnosis``, ``tumour_share``...)
and the folder of their feature files.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["DEMO_SOURCES", "DemoSlides", "load_demo_slides", "matching_slide_demo", "split_builder_options"]

logger = logging.getLogger("histgen.transfer")

DEMO_SOURCES: tuple[str, ...] = ("slides", "feature_bags")
#: Builder arguments that are not demo options (the caller decides them) or not part of a demo's identity.
_NOT_OPTIONS = {"out_dir", "shuffle_pairs"}
_NOT_IDENTITY = {"workers", "progress"}
NO_DIR = ("", "none", "null", "false")


@dataclasses.dataclass(frozen=True)
class DemoSlides:
    """The demo's slides.

    Attributes:
        items: annotation items of every split (``id``, ``diagnosis``, ``tumour_share``...), train first.
        dataset_dir: folder of their feature files.
        source: ``"slides"`` or ``"feature_bags"``.
        description: what they are and where they come from (for the log).
    """

    items: list[dict[str, Any]]
    dataset_dir: Path
    source: str
    description: str


def _builder(source: str) -> Callable[..., Any]:
    if source == "slides":
        from scripts.demo.slide_dataset import make_slide_demo_dataset

        return make_slide_demo_dataset
    if source == "feature_bags":
        from scripts.demo.feature_bags import make_demo_dataset

        return make_demo_dataset
    raise ValueError(f"demo source must be one of {DEMO_SOURCES}, got {source!r}")


def split_builder_options(options: dict[str, Any] | None) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(source, builder keyword arguments, other options)`` of the ``demo`` setting."""
    options = dict(options or {})
    source = str(options.pop("source", "slides"))
    names = set(inspect.signature(_builder(source)).parameters) - _NOT_OPTIONS
    arguments = {k: v for k, v in options.items() if k in names}
    return source, arguments, {k: v for k, v in options.items() if k not in names}


def _normalised(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_normalised(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return float(value)


def _manifest_arguments(params: dict[str, Any]) -> dict[str, Any]:
    """The :func:`make_slide_demo_dataset` arguments a slide demo manifest's ``params`` were made from."""
    slide = params["slide"]
    return {
        "n_train": params["n_train"], "n_val": params["n_val"], "n_test": params["n_test"], "seed": params["seed"],
        "slide_size": slide["size"], "mpp": slide["mpp"], "downsample": slide["downsample"], "tile": slide["tile"],
        "jpeg_quality": slide["jpeg_quality"], "tumour_fraction_range": slide["tumour_fraction_range"],
        "pen_mark_probability": slide["pen_mark_probability"], **params["extraction"],
    }


def matching_slide_demo(folder: str | os.PathLike[str] | None, arguments: dict[str, Any]) -> Path | None:
    """``folder`` if it holds a finished slide demo made with ``arguments``, else None (and a log line why).

    A finished demo has a ``demo_manifest.json`` (written last, removed while a build runs). Arguments not given
    take :func:`make_slide_demo_dataset`'s defaults; ``workers`` and ``progress`` do not matter.
    """
    from scripts.demo.slide_dataset import MANIFEST_NAME, SLIDE_DEMO_VERSION, make_slide_demo_dataset

    if folder is None or str(folder).strip().lower() in NO_DIR:
        return None
    manifest_path = Path(folder) / MANIFEST_NAME
    if not manifest_path.is_file():
        logger.info("no finished slide demo in %s (no %s): the bundle builds its own", folder, MANIFEST_NAME)
        return None
    defaults = {name: p.default for name, p in inspect.signature(make_slide_demo_dataset).parameters.items()
                if name not in _NOT_OPTIONS | _NOT_IDENTITY}
    wanted = {**defaults, **{k: v for k, v in arguments.items() if k in defaults}}
    try:
        params = json.loads(manifest_path.read_text(encoding="utf-8"))["params"]
        found = _manifest_arguments(params)
        version = params["version"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        logger.info("%s: not a readable slide demo manifest (%s): the bundle builds its own demo", manifest_path, err)
        return None
    different = sorted(k for k in wanted if _normalised(wanted[k]) != _normalised(found.get(k)))
    if version != SLIDE_DEMO_VERSION or different:
        shown = ", ".join(f"{k}={found.get(k)!r} (wanted {wanted[k]!r})" for k in different) or f"version {version}"
        logger.info("the slide demo in %s has other parameters (%s): the bundle builds its own", folder, shown)
        return None
    return Path(folder)


def _pooled_items(annotation_file: Path) -> list[dict[str, Any]]:
    annotation = json.loads(annotation_file.read_text(encoding="utf-8"))
    return [item for split in ("train", "val", "test") for item in annotation.get(split, [])]


def load_demo_slides(source: str, arguments: dict[str, Any], own_dir: str | os.PathLike[str],
                     report_demo_dir: str | os.PathLike[str] | None = None) -> DemoSlides:
    """Build or reuse the demo named by ``source`` (see the module docstring).

    Args:
        source: ``"slides"`` or ``"feature_bags"``.
        arguments: keyword arguments of the demo's builder (``n_train``, ``slide_size``...).
        own_dir: the bundle's folder for a demo it builds itself.
        report_demo_dir: the report bundle's slide demo, reused when it matches (slides only); None or
            ``"none"`` never reuses one.
    """
    build = _builder(source)
    if source == "feature_bags":
        bags = build(own_dir, **arguments)
        return DemoSlides(_pooled_items(bags.annotation_file), bags.dataset_dir, source,
                          f"generated feature bags in {bags.dataset_dir}")
    reused = matching_slide_demo(report_demo_dir, arguments)
    demo = build(reused if reused is not None else own_dir, **arguments)
    if reused is not None:
        where = f"the report bundle's slide demo in {demo.out_dir}, reused"
    else:
        where = f"slides {'built' if demo.generated else 'reused'} in {demo.out_dir}"
    return DemoSlides(_pooled_items(demo.annotation_file), demo.dataset_dir, source,
                      f"synthetic slides -> {demo.params['extraction']['encoder_name']} features; {where}")
