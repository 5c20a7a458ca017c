"""Check the settings a user gave on the command line once, before a workflow does anything.

``python -m monai.bundle run <workflow> --key value ...`` hands every ``--key value`` to MONAI's
``ConfigParser`` as an override, and MONAI accepts any key: a typo (``--max_epoch 1``) adds a new, unused
key and the default runs; a wrong type (``--max_epochs abc``) fails deep inside the run; ``--resume false``
arrives as the string ``"false"``, which is true. Each workflow list of the bundle's configs therefore starts
with ``$scripts.config_checks.check_settings()``, which compares the overrides of the run with the keys the
config files declare:

- an override whose id the configs do not declare is an error that names the closest declared keys;
- an override of a declared number must be a number (``int`` for an ``int`` default), of a declared string a
  string (numbers are turned into their text), of a list or object a list or object;
- an override of a declared yes/no setting is parsed with :func:`scripts.flags.as_flag`
  (``true/false/1/0/yes/no/on/off``, any case) and handed on as a real bool;
- ``null``/``none`` is None where the declared value is ``null`` or the key is in :data:`NULLABLE`;
- ``$``/``@``/``%`` values (expressions, references, macros) are left to MONAI.

``--help`` among the overrides prints the settings listing of :mod:`scripts.settings` and ends the run
(exit code 0) before the workflow does anything.

Declared values that are ``null`` or expressions have no known type: any override is accepted. The check
reads the overrides from MONAI's ``run``/``run_workflow`` call on the stack; a workflow built in Python
(``ConfigWorkflow(...)``) is not checked.
"""

from __future__ import annotations

import difflib
import inspect
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from scripts.error_messages import remember_log_folder
from scripts.flags import as_flag

__all__ = ["SettingsError", "check_overrides", "check_settings", "declared_ids"]

logger = logging.getLogger("histgen.settings")

_EXPRESSION_PREFIXES = ("$", "@", "%")
_NULL_WORDS = ("null", "none")
#: numeric settings whose ``null`` means "no limit" / "off" (the other numbers must stay numbers)
#: overrides that ask for the settings listing instead of a run (``--help``, ``--h``)
HELP_KEYS = frozenset({"help", "h"})
NULLABLE = frozenset({"max_patches", "clip_value", "max_norm", "torch_threads", "assume_mpp", "step"})


class SettingsError(ValueError):
    """A command-line setting the bundle cannot use: an unknown key or a value of the wrong type."""


def declared_ids(config: Any, prefix: str = "") -> list[str]:
    """Every id in a config, top-level and nested (``train#dataset#max_patches``), in file order."""
    ids: list[str] = []
    items: Iterable[tuple[Any, Any]]
    if isinstance(config, Mapping):
        items = config.items()
    elif isinstance(config, list):
        items = enumerate(config)
    else:
        return ids
    for key, value in items:
        key_id = f"{prefix}{key}"
        ids.append(key_id)
        ids += declared_ids(value, key_id + "#")
    return ids


def _lookup(config: Any, key: str) -> tuple[bool, Any]:
    node = config
    for part in key.split("#"):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _unknown_key(key: str, ids: list[str], config_files: str) -> SettingsError:
    top_level = [i for i in ids if "#" not in i]
    pool = ids if "#" in key else top_level
    close = difflib.get_close_matches(key, pool, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join('--' + c for c in close)}?" if close else "see the config for the keys it takes"
    return SettingsError(f"unknown setting --{key} (not a key of {config_files}): {hint}")


def _checked_value(key: str, value: Any, default: Any) -> Any:
    """``value`` as the type of ``default`` (the declared value), or a :class:`SettingsError`."""
    if isinstance(value, str) and value.startswith(_EXPRESSION_PREFIXES):
        return value
    if default is None or (isinstance(default, str) and default.startswith(_EXPRESSION_PREFIXES)):
        return None if isinstance(value, str) and value.strip().lower() in _NULL_WORDS else value
    if key.split("#")[-1] in NULLABLE and (value is None or str(value).strip().lower() in _NULL_WORDS):
        return None
    if isinstance(default, bool):
        try:
            return as_flag(value, f"--{key}")
        except ValueError as err:
            raise SettingsError(f"{err} (true/false, 1/0, yes/no, on/off)") from None
    if isinstance(default, int) and not (isinstance(value, int) and not isinstance(value, bool)):
        raise SettingsError(f"--{key} must be a whole number (like {default}), got {value!r}")
    if isinstance(default, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise SettingsError(f"--{key} must be a number (like {default}), got {value!r}")
    if isinstance(default, str) and not isinstance(value, str):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise SettingsError(f"--{key} must be text (like {default!r}), got {value!r}")
    if isinstance(default, (list, dict)) and not isinstance(value, type(default)):
        raise SettingsError(f"--{key} must be a {type(default).__name__}, got {value!r}")
    return value


def check_overrides(declared: Mapping[str, Any], overrides: Mapping[str, Any],
                    config_files: str = "the config") -> dict[str, Any]:
    """The overrides, checked against the declared config and converted to the declared types.

    Args:
        declared: the merged content of the config files (without the overrides).
        overrides: ``{id: value}`` as the command line gave them.
        config_files: how to name the config files in messages.

    Raises:
        SettingsError: every unknown key and wrong value, one per line.
    """
    ids = declared_ids(declared)
    checked: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in overrides.items():
        key = str(key).replace("::", "#")
        found, default = _lookup(declared, key)
        if not found:
            problems.append(str(_unknown_key(key, ids, config_files)))
            continue
        try:
            checked[key] = _checked_value(key, value, default)
        except SettingsError as err:
            problems.append(str(err))
    if problems:
        raise SettingsError("\n".join(problems))
    return checked


def _run_call_on_stack() -> tuple[Any, dict[str, Any]] | None:
    """``(config_file, overrides)`` of the MONAI ``run``/``run_workflow`` call that started this workflow."""
    frame = inspect.currentframe()
    while frame is not None:
        code = frame.f_code
        in_monai = Path(code.co_filename).as_posix().endswith("monai/bundle/scripts.py")
        if in_monai and code.co_name in ("run", "run_workflow"):
            local = frame.f_locals
            overrides = dict(local.get("override") or local.get("kwargs") or {})
            return local.get("config_file") or overrides.pop("config_file", None), overrides
        frame = frame.f_back
    return None


def _workflow_on_stack() -> Any:
    """The ``ConfigWorkflow`` whose workflow list is being run."""
    from monai.bundle import ConfigWorkflow

    frame = inspect.currentframe()
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, ConfigWorkflow):
            return candidate
        frame = frame.f_back
    return None


def _print_help_and_exit(config_file: Any, workflow: Any) -> None:
    """``--help``: print the config's settings (:mod:`scripts.settings`) and end the run with exit code 0."""
    from scripts.settings import format_settings

    print(format_settings(config_file, workflow=getattr(workflow, "run_id", None)), flush=True)
    raise SystemExit(0)


def check_settings() -> dict[str, Any]:
    """Check this run's command-line overrides against its config files (first step of every workflow list).

    Converted values (``"false"`` for a yes/no key, ``5`` for a text key) replace the parser's copy before
    anything reads them.

    ``--help`` prints every key of the config with its default and description and exits with code 0
    before anything else runs.

    Returns:
        The checked overrides (empty when the workflow was not started by ``monai.bundle run``).

    Raises:
        SettingsError: unknown keys (with the closest declared keys) and wrong values.
    """
    from monai.bundle import ConfigParser
    from monai.bundle.workflows import BundleWorkflow

    call = _run_call_on_stack()
    workflow = _workflow_on_stack()
    if call is None or workflow is None:
        return {}
    config_file, overrides = call
    run_args = set(inspect.signature(BundleWorkflow.__init__).parameters)
    run_args |= {"workflow_name", "args_file", "config_file", "meta_file", "logging_file", "init_id", "run_id",
                 "final_id", "tracking", "workflow_type", "properties_path"}
    overrides = {k: v for k, v in overrides.items() if k not in run_args}
    if config_file is not None and any(k in HELP_KEYS for k in overrides):
        _print_help_and_exit(config_file, workflow)
    checked: dict[str, Any] = {}
    if overrides and config_file is not None:
        files = [str(f) for f in (config_file if isinstance(config_file, (list, tuple)) else [config_file])]
        declared = ConfigParser.load_config_files(files)
        checked = check_overrides(declared, overrides, config_files=", ".join(files))
        resolver = workflow.parser.ref_resolver
        for key, value in checked.items():
            if value is overrides.get(key):
                continue
            workflow.parser[key] = value
            item = resolver.get_item(key)
            if item is not None and key not in resolver.resolved_content:
                item.update_config(value)
    if "output_dir" in workflow.parser:
        try:
            remember_log_folder(workflow.parser.get_parsed_content("output_dir"))
        except Exception as err:  # the workflow itself reports a bad output_dir
            logger.debug("output_dir not known yet: %s", err)
    return checked
