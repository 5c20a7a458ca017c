"""List the settings a bundle config takes: every key with its default and a one-line description.

``python -m scripts.settings configs/train.json`` (several files merge as MONAI merges them:
``python -m scripts.settings configs/train.json configs/multi_gpu_train.json``) prints the keys of the
config; ``--help`` on any workflow (``python -m monai.bundle run training --config_file configs/train.json
--help``) prints the same listing and stops before the workflow does anything. Keys and defaults come from
the config files; descriptions from :mod:`scripts.settings_descriptions`.

What is listed, in file order:

- settings: every top-level key that is not an object or a workflow, with its default as written in the
  config (``$...`` expressions as written); keys marked ``(derived)`` are computed from the others;
  a nested dict of plain values (``demo``, ``histgen``) lists its keys (``--demo#source feature_bags``);
- objects: keys that build Python objects (``_target_``); their arguments are changed with
  ``--<key>#<argument> value``;
- workflows: what ``python -m monai.bundle run <workflow>`` can run with this config.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.settings_descriptions import WORKFLOWS, describe

__all__ = ["Setting", "bundle_of", "config_files_of", "format_settings", "list_settings", "main", "with_shared_base"]

_WIDTH = 40  # longest default shown before it is cut


@dataclass
class Setting:
    """One key of a config.

    Attributes:
        key: the config id (``max_epochs``, ``demo``).
        default: the value as written in the config files.
        kind: ``setting``, ``object`` or ``workflow``.
        description: the one-line description, or None when :mod:`scripts.settings_descriptions` lacks one.
        nested: ``(id, default)`` of the keys of a nested dict of plain values (``demo#source``).
    """

    key: str
    default: Any
    kind: str
    description: str | None
    nested: list[tuple[str, Any]] = field(default_factory=list)


def _has_target(value: Any) -> bool:
    if isinstance(value, Mapping):
        return "_target_" in value or any(_has_target(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_target(v) for v in value)
    return False


def config_files_of(value: str | Sequence[str]) -> list[str]:
    """Config file names from a path, a list, or MONAI's ``"['a.json','b.json']"`` text."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return [str(v) for v in ast.literal_eval(text)]
        return [text]
    return [str(v) for v in value]


def bundle_of(config_file: str | Path) -> str:
    """The sibling bundle's name (``subtyping``, ``survival``, ...) for ``bundle/<name>/configs/*.json``, else
    ``report``."""
    folder = Path(config_file).resolve().parent
    if folder.name == "configs" and folder.parent.parent.name == "bundle":
        return folder.parent.name
    return "report"


def with_shared_base(files: list[str]) -> list[str]:
    """A sibling bundle's config followed by the shared base it runs with.

    The base is ``scripts/transfer/configs/transfer_<name>`` (the prefix keeps file names distinct, which MONAI's
    ``ckpt_export`` requires). The transfer bundles keep only what differs in ``bundle/<name>/configs``; their
    commands pass both files (``--config_file "['bundle/subtyping/configs/train.json',
    'scripts/transfer/configs/transfer_train.json']"``). A listing of the bundle's file alone adds the base the
    same way, unless it is already given.
    """
    if not files or bundle_of(files[0]) == "report":
        return files
    first = Path(files[0]).resolve()
    base = first.parents[3] / "scripts" / "transfer" / "configs" / f"transfer_{first.name}"
    given = {Path(f).resolve() for f in files}
    if not base.is_file() or base in given:
        return files
    return [files[0], str(base), *files[1:]]


def _load(files: list[str]) -> dict[str, Any]:
    from monai.bundle import ConfigParser

    for name in files:
        if not Path(name).is_file():
            raise FileNotFoundError(f"{name}: config file not found")
    try:
        return ConfigParser.load_config_files(files)
    except KeyError as err:  # a "train#sampler"-style key of a file that only patches another one
        raise ValueError(f"{', '.join(files)}: {err.args[0]} is not declared; a file such as "
                         "multi_gpu_train.json only adds to a base config: give it after that one") from None


def list_settings(config_file: str | Sequence[str]) -> list[Setting]:
    """Every top-level key of the (merged) config files, classified and described.

    Args:
        config_file: a config path, a list of paths, or MONAI's ``"['a.json','b.json']"`` text.

    Returns:
        One :class:`Setting` per key, in file order (``imports`` and ``_meta_`` left out).
    """
    files = with_shared_base(config_files_of(config_file))
    bundle = bundle_of(files[0])
    config = _load(files)
    settings: list[Setting] = []
    for key, value in config.items():
        if key in ("imports", "_meta_") or "#" in key:
            continue
        if key in WORKFLOWS:
            settings.append(Setting(key, value, "workflow", WORKFLOWS[key]))
        elif _has_target(value):
            settings.append(Setting(key, value, "object", None))
        else:
            nested = []
            description = describe(key, bundle)
            if isinstance(value, Mapping) and not (description or "").startswith("(derived)"):
                nested = [(f"{key}#{k}", v) for k, v in value.items()]
            settings.append(Setting(key, value, "setting", description, nested))
    return settings


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= _WIDTH else text[: _WIDTH - 3] + "..."


def format_settings(config_file: str | Sequence[str], workflow: str | None = None) -> str:
    """The listing printed by ``python -m scripts.settings`` and by ``--help`` (see the module docstring)."""
    files = with_shared_base(config_files_of(config_file))
    settings = list_settings(files)
    shown = ", ".join(files)
    file_arg = files[0] if len(files) == 1 else "\"[" + ",".join(f"'{f}'" for f in files) + "]\""
    workflows = [s.key for s in settings if s.kind == "workflow"]
    run = workflow or (workflows[0] if workflows else "<workflow>")
    lines = [f"Settings of {shown} (bundle: {bundle_of(files[0])})",
             f"give any as --key value: python -m monai.bundle run {run} --config_file {file_arg} --key value",
             "values: JSON-like (true/false, null, 3, 'text', \"['a','b']\"); unknown keys are refused", ""]
    rows = [s for s in settings if s.kind == "setting"]
    width = max([len(s.key) for s in rows] + [len(k) for s in rows for k, _ in s.nested] + [10]) + 2
    for s in rows:
        default = "" if s.nested else _shown(s.default)
        lines.append(f"  --{s.key:<{width}} {default:<{_WIDTH}}  {s.description or '(no description)'}")
        for sub_key, sub_default in s.nested:
            lines.append(f"  --{sub_key:<{width}} {_shown(sub_default):<{_WIDTH}}")
    objects = [s.key for s in settings if s.kind == "object"]
    if objects:
        lines += ["", "objects (change an argument with --<object>#<argument> value): " + ", ".join(objects)]
    if workflows:
        lines += ["", "workflows (python -m monai.bundle run <workflow> ...):"]
        lines += [f"  {s.key:<{width}} {s.description}" for s in settings if s.kind == "workflow"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m scripts.settings CONFIG [CONFIG ...]``: print the settings of the merged config files."""
    parser = argparse.ArgumentParser(prog="python -m scripts.settings", description=__doc__.splitlines()[0])
    parser.add_argument("config_file", nargs="+", help="config file(s), merged in order as MONAI merges them")
    args = parser.parse_args(argv)
    files = [f for value in args.config_file for f in config_files_of(value)]
    try:
        print(format_settings(files))
    except (FileNotFoundError, ValueError, SyntaxError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
