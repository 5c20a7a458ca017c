"""MONAI's bundle CLI on the three bundles: metadata verified offline against the shipped schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from monai.bundle.scripts import _get_fake_spatial_shape

from tests.support.bundle_runs import bundle_env
from tests.support.shared_fixtures import REPO_ROOT

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema not installed (pip install -e '.[test]')")

SCHEMA = REPO_ROOT / "configs" / "schema" / "bundle_metadata.schema.json"
METADATA = {b: REPO_ROOT / p / "configs" / "metadata.json"
            for b, p in (("report", "."), ("subtyping", "bundle/subtyping"), ("survival", "bundle/survival"))}


def test_verify_metadata_runs_offline_on_the_report_bundle():
    env = bundle_env()  # outbound connections refused
    env["PYTHONPATH"] += os.pathsep + str(Path(jsonschema.__file__).parents[1])
    cmd = [sys.executable, "-m", "monai.bundle", "verify_metadata", "--meta_file", "configs/metadata.json",
           "--filepath", str(SCHEMA.relative_to(REPO_ROOT))]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "metadata is verified with no error" in proc.stdout + proc.stderr


@pytest.mark.parametrize("bundle", sorted(METADATA))
def test_every_bundles_metadata_follows_the_schema_and_monai_reads_its_shapes(bundle):
    from monai.bundle import verify_metadata

    meta = json.loads(METADATA[bundle].read_text())
    assert meta["schema"].startswith("https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/")
    verify_metadata(meta_file=str(METADATA[bundle]), filepath=str(SCHEMA))  # MONAI's own check, the CLI's code
    for kind in ("inputs", "outputs"):
        for tensor in meta["network_data_format"][kind].values():
            _get_fake_spatial_shape(tensor["spatial_shape"], p=1, n=1, any=3)  # verify_net_in_out's reading


def test_the_schema_refuses_what_verify_net_in_out_cannot_read():
    meta = json.loads(METADATA["report"].read_text())
    meta["network_data_format"]["inputs"]["image"]["spatial_shape"] = ["N"]
    with pytest.raises(jsonschema.ValidationError, match="N"):
        jsonschema.validate(meta, json.loads(SCHEMA.read_text()))
    meta["network_data_format"]["inputs"]["image"]["spatial_shape"] = ["*"]
    meta["network_data_format"]["inputs"]["image"]["num_channels"] = "D"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(meta, json.loads(SCHEMA.read_text()))
    del meta["version"]
    with pytest.raises(jsonschema.ValidationError, match="version"):
        jsonschema.validate(meta, json.loads(SCHEMA.read_text()))
