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
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["DEMO_SOURCES", "DemoSlides", "load_demo_slides", "matching_slide_demo", "split_builder_options"]

logger = logging.getLogger("histgen.transfer")  # the transfer bundles' log, where these lines belong

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
        from .slide_dataset import make_slide_demo_dataset

        return make_slide_demo_dataset
    if source == "feature_bags":
        from .feature_bags import make_demo_dataset

        return make_demo_dataset
    raise ValueError(f"demo source must be one of {DEMO_SOURCES}, got {source!r}")


def builder_argument_names(source: str) -> set[str]:
    """The keyword arguments the demo builder of ``source`` takes (for the slides: :class:`SlideDemoParams` fields
    plus ``workers`` and ``progress``)."""
    import inspect

    if source == "slides":
        from .slide_dataset import SlideDemoParams

        return {f.name for f in dataclasses.fields(SlideDemoParams)} | _NOT_IDENTITY
    return set(inspect.signature(_builder(source)).parameters) - _NOT_OPTIONS


def split_builder_options(options: dict[str, Any] | None) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(source, builder keyword arguments, other options)`` of the ``demo`` setting."""
    options = dict(options or {})
    source = str(options.pop("source", "slides"))
    names = builder_argument_names(source)
    arguments = {k: v for k, v in options.items() if k in names}
    return source, arguments, {k: v for k, v in options.items() if k not in names}


def matching_slide_demo(folder: str | os.PathLike[str] | None, arguments: dict[str, Any]) -> Path | None:
    """``folder`` if it holds a finished slide demo made with ``arguments``, else None (and a log line why).

    A finished demo has a ``demo_manifest.json`` (written last, removed while a build runs) whose ``params`` are
    :func:`scripts.demo.slide_dataset.slide_demo_params` of the same arguments (others take their defaults;
    ``workers`` and ``progress`` do not matter).
    """
    from .slide_dataset import MANIFEST_NAME, slide_demo_params

    if folder is None or str(folder).strip().lower() in NO_DIR:
        return None
    manifest_path = Path(folder) / MANIFEST_NAME
    if not manifest_path.is_file():
        logger.info("no finished slide demo in %s (no %s): the bundle builds its own", folder, MANIFEST_NAME)
        return None
    wanted = slide_demo_params(**{k: v for k, v in arguments.items() if k not in _NOT_IDENTITY})
    try:
        found = json.loads(manifest_path.read_text(encoding="utf-8"))["params"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        logger.info("%s: not a readable slide demo manifest (%s): the bundle builds its own demo", manifest_path, err)
        return None
    if found != wanted:
        different = _differences(found, wanted)
        logger.info("the slide demo in %s has other parameters (%s): the bundle builds its own", folder, different)
        return None
    return Path(folder)


def _differences(found: Any, wanted: Any, prefix: str = "") -> str:
    """``key=found (wanted ...)`` for every leaf that differs between two parameter records."""
    if isinstance(found, dict) and isinstance(wanted, dict):
        parts = [_differences(found.get(k), wanted.get(k), f"{prefix}{k}.") for k in sorted(set(found) | set(wanted))]
        return ", ".join(p for p in parts if p)
    return "" if found == wanted else f"{prefix.rstrip('.')}={found!r} (wanted {wanted!r})"


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
