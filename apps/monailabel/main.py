"""MONAI Label app serving the HistGen report bundle (QuPath, Digital Slide Archive, any REST client).

Start (from the repository, with ``monailabel`` installed)::

    monailabel start_server --app apps/monailabel --studies /data/slides \\
        --conf model_dir models

``--conf`` keys: ``bundle_root`` (default: this repository; an unzipped bundle works too),
``model_dir`` (default ``<bundle_root>/models``), ``encoder_checkpoint`` (local weights of the model's
encoder), ``device``, ``models`` (MONAI Label's usual switch: ``all`` or ``histgen_report``), and overrides of
the model's own extraction settings (its ``feature_extraction.json``; an override that differs is logged):
``encoder``, ``target_mpp``, ``patch_size``, ``tissue_fraction``.
See ``docs/share_and_serve/monailabel.md``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from lib.report_infer import ReportInferTask
from monailabel.interfaces.app import MONAILabelApp

APP_DIR = Path(__file__).resolve().parent
REPO_ROOT = APP_DIR.parents[1]
MODEL_NAME = "histgen_report"

logger = logging.getLogger(__name__)


def _put_bundle_on_path(bundle_root: Path) -> None:
    """The bundle's ``scripts`` package must be importable before the task module is."""
    if not (bundle_root / "scripts" / "__init__.py").is_file():
        raise FileNotFoundError(f"{bundle_root}: no scripts/ package; set --conf bundle_root to the report bundle")
    if str(bundle_root) not in sys.path:
        sys.path.insert(0, str(bundle_root))


def _number(value: str | None, kind: type) -> float | int | None:
    """A ``--conf`` number, or None when not given (the model's own setting applies)."""
    return None if value in (None, "") else kind(value)


class HistGenReportApp(MONAILabelApp):
    """One infer task, ``histgen_report``; no training, no active learning beyond MONAI Label's default."""

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        self.bundle_root = Path(conf.get("bundle_root", REPO_ROOT)).resolve()
        _put_bundle_on_path(self.bundle_root)
        model_dir = Path(conf.get("model_dir", self.bundle_root / "models"))
        self.model_dir = model_dir if model_dir.is_absolute() else (Path.cwd() / model_dir).resolve()
        self.enabled = conf.get("models", "all")
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="HistGen report",
            description="Draft pathology reports from whole-slide image regions (research use only)",
            version="0.1.0",
        )

    def init_infers(self) -> dict:
        if self.enabled not in ("all", MODEL_NAME) and MODEL_NAME not in self.enabled.split(","):
            return {}
        import torch

        device = self.conf.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        task = ReportInferTask(
            self.model_dir,
            encoder_name=self.conf.get("encoder"),
            encoder_checkpoint=self.conf.get("encoder_checkpoint"),
            target_mpp=_number(self.conf.get("target_mpp"), float),
            patch_size=_number(self.conf.get("patch_size"), int),
            tissue_fraction=_number(self.conf.get("tissue_fraction"), float),
            device=device,
        )
        if not task.is_valid():
            logger.warning("%s: no trained report model (model.pt, vocab.json, model_config.json)", self.model_dir)
        return {MODEL_NAME: task}

    def infer_wsi(self, request: dict, datastore=None) -> dict:  # noqa: ANN001 - MONAI Label's signature
        """A report covers the whole requested region: run once instead of tiling it as segmentation does."""
        if request.get("model") != MODEL_NAME:
            return super().infer_wsi(request, datastore)
        result = self.infer(request, datastore)
        return {"file": None, "params": result.get("params")}
