"""HistGen report generation as a MONAI Deploy application (App SDK 0.5.1, CPU or GPU).

    python apps/monai_deploy/app.py -i slides_or_features/ -o reports/ -m models/model.ts

``-i``: a slide (``.svs``, ``.tif``...), a ``.h5``/``.pt`` feature file, or a folder of them.
``-o``: ``<slide_id>.txt``, ``<slide_id>.json`` and ``reports.json``.
``-m``: the report model exported as TorchScript (``python -m scripts.serving.torchscript_export``).
Slides are extracted and decoded with the model's own settings, carried by ``model.ts`` (its
``feature_extraction.json`` and ``model_config.json``), as ``configs/inference.json --slide`` does.
Settings (environment), each an override of the model's (logged when it differs): ``HISTGEN_ENCODER``,
``HISTGEN_TARGET_MPP``, ``HISTGEN_PATCH_SIZE``, ``HISTGEN_TISSUE_FRACTION``, ``HISTGEN_BEAM_SIZE``,
``HISTGEN_MAX_LEN``; and ``HISTGEN_ENCODER_CHECKPOINT`` (local encoder weights), ``HISTGEN_DEVICE``.
Packaging as a MAP: ``docs/share_and_serve/monai_deploy.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sdk_path import ensure_bundle_on_path, ensure_deploy_sdk  # noqa: E402

ensure_bundle_on_path()
ensure_deploy_sdk()

import torch  # noqa: E402
from monai.deploy.core import Application, resource  # noqa: E402
from operators import (  # noqa: E402
    PatchFeatureOperator,
    ReportGeneratorOperator,
    ReportWriterOperator,
    ScanInputOperator,
    env_number,
    env_setting,
)


@resource(cpu=1, memory="4Gi")
class HistGenReportApp(Application):
    """Whole-slide images (or patch-feature files) to draft pathology reports (research use only)."""

    name = "histgen_report"
    version = "0.1.0"

    def compose(self) -> None:
        device = env_setting("DEVICE", "cuda" if torch.cuda.is_available() else "cpu")
        checkpoint = env_setting("ENCODER_CHECKPOINT", "") or None
        scan = ScanInputOperator()
        features = PatchFeatureOperator(
            encoder_name=env_setting("ENCODER", "") or None, encoder_checkpoint=checkpoint,
            target_mpp=env_number("TARGET_MPP", float), patch_size=env_number("PATCH_SIZE", int),
            tissue_fraction=env_number("TISSUE_FRACTION", float), device=device,
        )
        generator = ReportGeneratorOperator(beam_size=env_number("BEAM_SIZE", int), max_len=env_number("MAX_LEN", int))
        writer = ReportWriterOperator()
        self.add_flow(scan, features, {"inputs": "inputs"})
        self.add_flow(features, generator, {"bags": "bags"})
        self.add_flow(generator, writer, {"reports": "reports"})


if __name__ == "__main__":
    HistGenReportApp(do_run=True)
