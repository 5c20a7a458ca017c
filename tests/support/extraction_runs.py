"""The extract_features workflow as the tests run it: the command line, the slide table, the environment."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from tests.support.bundle_runs import REPO_ROOT, bundle_env

REPO = REPO_ROOT
CONFIG = REPO / "configs" / "extract_features.json"
MULTI_GPU = REPO / "configs" / "multi_gpu_extract.json"
ENV = bundle_env()  # offline, outbound sockets refused (tests/no_network)


def write_slides_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["slide_id", "path"])
        writer.writerows(rows)
    return path


def extract_command(slides_dir: Path, output_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "extract_features",
        "--config_file",
        str(CONFIG.relative_to(REPO)),
        "--slides_dir",
        str(slides_dir),
        "--output_dir",
        str(output_dir),
        *extra,
    ]
