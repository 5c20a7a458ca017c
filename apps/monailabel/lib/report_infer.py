"""MONAI Label infer task: a slide region (or a feature file) -> a draft pathology report.

Request keys (``POST /infer/histgen_report?image=<id or path>&output=json``, ``params`` JSON form field):

- ``image``: a slide of the datastore (``.svs``, ``.tif``...) or the path of a ``.h5``/``.pt`` feature file
  on the server;
- ``location``: ``[x, y]`` level-0 top-left corner of the region (default ``[0, 0]``);
- ``size``: ``[width, height]`` in level-0 pixels (default: to the slide's edge). Without ``location`` and
  ``size`` the whole slide is extracted as ``configs/inference.json --slide`` does (slide-level tissue mask),
  so it gets the same report; a region is patched with a per-patch tissue test
  (:mod:`scripts.serving.region_features`);
- ``beam_size``, ``max_len``: decoding (defaults: the model's ``beam_size`` and ``max_seq_length``).

Encoder, ``target_mpp``, ``patch_size`` and ``tissue_fraction`` are the model's (its
``feature_extraction.json``); the app's ``--conf`` can override them (logged when they differ).

Result (JSON): ``report``, ``slide_id``, ``num_patches``, ``heatmap`` (level-0 ``x, y``, side and
attentive-pooling weight of every patch; ``null`` for a feature file without coordinates), ``notice`` (the
model's notice, as on the bundle's outputs: the research-use notice, led by ``SYNTHETIC-DATA MODEL — NOT FOR
DIAGNOSIS`` for a model trained on synthetic data) and ``latencies``. No label image is produced.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

logger = logging.getLogger(__name__)

# the bundle's package is put on sys.path by main.py from --conf bundle_root, after this module loads:
# ``scripts`` is imported inside the methods


class ReportInferTask(InferTask):
    """Runs the report bundle on one request.

    Args:
        model_dir: ``model.pt``, ``vocab.json``, ``model_config.json`` (and ``feature_extraction.json``) of the
            report bundle.
        encoder_name, target_mpp, patch_size, tissue_fraction: overrides of the model's extraction settings;
            None (the default) = the model's ``feature_extraction.json`` (or, for a model without one, the
            defaults of :data:`scripts.engines.model_files.DEFAULT_EXTRACTION`, logged).
        encoder_checkpoint: local weights of the encoder (all but ``builtin-small``).
        device: torch device name.
    """

    def __init__(
        self,
        model_dir: str | Path,
        encoder_name: str | None = None,
        encoder_checkpoint: str | None = None,
        target_mpp: float | None = None,
        patch_size: int | None = None,
        tissue_fraction: float | None = None,
        device: str = "cpu",
    ) -> None:
        super().__init__(
            type=InferType.OTHERS,
            labels=None,
            dimension=2,
            description="HistGen: draft pathology report for a slide region (text, per-patch attention)",
            config={"beam_size": None, "location": None, "size": None},
        )
        self.model_dir = Path(model_dir)
        self.overrides = {"encoder_name": encoder_name, "target_mpp": target_mpp, "patch_size": patch_size,
                          "tissue_fraction": tissue_fraction}
        self.encoder_checkpoint = encoder_checkpoint
        self.device = device
        self._predictor: Any = None
        self._extractor: Any = None

    def is_valid(self) -> bool:
        return all((self.model_dir / name).is_file() for name in ("model.pt", "vocab.json", "model_config.json"))

    def get_path(self, validate: bool = True) -> str | None:
        path = self.model_dir / "model.pt"
        return str(path) if path.is_file() or not validate else None

    def predictor(self) -> Any:
        """The bundle's :class:`scripts.serving.report_predictor.ReportPredictor`, built on first use."""
        if self._predictor is None:
            from scripts.serving.report_predictor import ReportPredictor

            self._predictor = ReportPredictor(self.model_dir, device=self.device)
        return self._predictor

    def extractor(self) -> Any:
        """The slide inference's extractor for this model (``scripts.engines.slide_inference``), built on first use;
        its features go to a private temporary folder (a cache of the slides already asked for)."""
        if self._extractor is None:
            from scripts.engines.model_files import EXTRACTION_FILE, extraction_settings
            from scripts.engines.slide_inference import slide_feature_extractor

            settings = extraction_settings(self.model_dir, self.overrides, fallback=True)
            self._extractor = slide_feature_extractor(
                settings, tempfile.mkdtemp(prefix="histgen-label-"), device=self.device,
                encoder_checkpoint=self.encoder_checkpoint, check_checksum=self.overrides["encoder_name"] is None,
                record_path=self.model_dir / EXTRACTION_FILE, num_workers=0, save_thumbnails=False, progress=False,
            )
            embed_dim = self._extractor.encoder.embed_dim
            if embed_dim != self.predictor().feature_dim:
                raise ValueError(
                    f"encoder {settings['encoder_name']} gives D={embed_dim} features but the report model "
                    f"in {self.model_dir} expects in_dim={self.predictor().feature_dim}"
                )
        return self._extractor

    def __call__(self, request: dict[str, Any]) -> tuple[None, dict[str, Any]]:
        from scripts.data import FEATURE_SUFFIXES, read_feature_file
        from scripts.serving.region_features import region_feature_bag
        from scripts.serving.slide_features import slide_feature_bag

        start = time.time()
        image = str(request["image"])
        slide_id = Path(image).stem
        predictor = self.predictor()
        if Path(image).suffix in FEATURE_SUFFIXES:
            bag = read_feature_file(image, slide_id=slide_id, feature_dim=predictor.feature_dim)
            feats, coords, side = bag.feats, bag.coords, None
        elif request.get("location") is None and request.get("size") is None:  # the whole slide
            whole = slide_feature_bag(self.extractor(), image, slide_id)
            feats, coords, side = whole.feats, whole.coords, whole.patch_size_level0
        else:
            size = request.get("size")
            x = self.extractor()
            region = region_feature_bag(
                image, x.encoder, location=tuple(request.get("location") or (0, 0)),
                size=tuple(size) if size else None, target_mpp=x.target_mpp, patch_size=x.patch_size,
                tissue_fraction=x.tissue_fraction, wsi_backend=x.wsi_backend, assume_mpp=x.assume_mpp,
                device=self.device,
            )
            feats, coords, side = region.feats, region.coords, region.patch_size_level0
        pre = time.time()
        beam_size, max_len = request.get("beam_size"), request.get("max_len")
        (report,) = predictor.predict_bags(
            [feats], [slide_id], beam_size=int(beam_size) if beam_size else None,
            max_len=int(max_len) if max_len else None, with_weights=True,
        )
        infer = time.time()
        heatmap = None
        if coords is not None and report.patch_weights is not None:
            heatmap = {
                "patch_size_level0": side,
                "patches": [[int(x), int(y), round(float(w), 6)]
                            for (x, y), w in zip(coords.tolist(), report.patch_weights)],
            }
        result = {
            "report": report.report,
            "slide_id": slide_id,
            "num_patches": int(feats.shape[0]),
            "heatmap": heatmap,
            "notice": predictor.notice,
            "latencies": {"pre": round(pre - start, 3), "infer": round(infer - pre, 3), "post": 0.0,
                          "total": round(time.time() - start, 3)},
        }
        logger.info("%s: report of %d words from %d patches", slide_id, len(report.report.split()), feats.shape[0])
        return None, result
