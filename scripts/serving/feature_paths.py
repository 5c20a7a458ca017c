"""Which server files a served model may open for a request's ``feature_file``, and one-line error bodies.

A ``feature_file`` in a request names a path on the server. Left open, a client could probe which files
exist and read other slides' feature bags. So path inputs are **off by default**: requests carry the bag
itself (the ``features`` column). An operator who wants path inputs names one folder in the environment
of the serving process::

    HISTGEN_FEATURE_ROOT=/data/features mlflow models serve -m models:/histgen-report/1 ...

Then a ``feature_file`` is taken relative to that folder (an absolute path must lie inside it too), symbolic
links are resolved, and a path that ends up outside the folder is refused with the same message as one that
does not exist, so a refusal tells a client nothing about the server's files.

Errors of ``predict`` reach the client as one message (``MlflowException``): MLflow's body then holds
``error_code`` and ``message`` and no ``stack_trace``; the traceback goes to the server's log.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

__all__ = [
    "FEATURE_ROOT_ENV",
    "FeatureFileNotAllowedError",
    "feature_root_from_env",
    "guarded_feature_reader",
    "one_line_error",
    "resolve_feature_file",
]

logger = logging.getLogger("histgen.serving")

#: Environment variable naming the one folder whose feature files requests may name (unset: none).
FEATURE_ROOT_ENV = "HISTGEN_FEATURE_ROOT"


class FeatureFileNotAllowedError(ValueError):
    """A request's ``feature_file`` that the served model will not open."""


def feature_root_from_env(environ: Mapping[str, str] | None = None) -> Path | None:
    """The folder of :data:`FEATURE_ROOT_ENV` (resolved), or None when path inputs are off.

    Raises:
        NotADirectoryError: the variable is set but names no folder (a misconfigured server stops at load).
    """
    value = (os.environ if environ is None else environ).get(FEATURE_ROOT_ENV, "").strip()
    if not value:
        return None
    root = Path(value).expanduser().resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"{FEATURE_ROOT_ENV}={value}: not a folder")
    return root


def resolve_feature_file(path: str, root: Path | None) -> Path:
    """The file ``path`` names inside ``root`` (relative paths are taken from ``root``).

    Raises:
        FeatureFileNotAllowedError: path inputs are off (``root`` is None), or the path is outside ``root`` or is
            not a file there (one message for both, naming only what the client sent).
    """
    if root is None:
        raise FeatureFileNotAllowedError(
            f"feature_file inputs are turned off on this server; send the bag in the 'features' column "
            f"(an operator can allow files under one folder with {FEATURE_ROOT_ENV})"
        )
    text = str(path)
    if "\x00" in text:
        raise FeatureFileNotAllowedError(f"feature_file {text!r}: not a feature file under the server's feature root")
    resolved = (root / text).resolve()  # an absolute ``text`` replaces root, and is checked like any other
    if not resolved.is_relative_to(root) or not resolved.is_file():
        raise FeatureFileNotAllowedError(f"feature_file {text!r}: not a feature file under the server's feature root")
    return resolved


def guarded_feature_reader(
    read_bag: Callable[[str, str], torch.Tensor], root: Path | None
) -> Callable[[str, str], torch.Tensor]:
    """``read_bag`` behind :func:`resolve_feature_file`: the reader a served model gives ``bags_from_frame``."""

    def read(path: str, slide_id: str) -> torch.Tensor:
        return read_bag(str(resolve_feature_file(path, root)), slide_id)

    return read


def one_line_error(err: BaseException) -> Exception:
    """An ``MlflowException`` holding one line for ``err`` (the traceback is logged here, not sent).

    Bad input (``ValueError``, ``KeyError``, ``TypeError``, ``LookupError``, ``OSError``) is a 400
    ``INVALID_PARAMETER_VALUE``; anything else a 500 ``INTERNAL_ERROR`` with only the exception's type.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE

    if isinstance(err, MlflowException):
        return err
    logger.error("predict failed", exc_info=err)
    first = (str(err).strip().splitlines() or [""])[0]
    if isinstance(err, (ValueError, KeyError, TypeError, LookupError, OSError)):
        if isinstance(err, OSError):
            first = "a feature file could not be read"  # no server path in a reply
        return MlflowException(first or type(err).__name__, error_code=INVALID_PARAMETER_VALUE)
    return MlflowException(f"the model failed on this input ({type(err).__name__})", error_code=INTERNAL_ERROR)
