"""MONAI Label infer task: a slide region (or a feature file) -> a draft pathology report.

Request keys (``POST /infer/histgen_report?image=<id or path>&output=json``, ``params`` JSON form field):

- ``image``: a slide of the datastore (``.svs``, ``.tif``...) or the path of a ``.h5``/``.pt`` feature file
  on the server;
- ``location``: ``[x, y]`` level-0 top-left corner of the region (default ``[0, 0]``);
- ``size``: ``[width, height]`` in level-0 pixels (default: to the slide's edge);
- ``beam_size``, ``max_len``: decoding (defaults: 3 and the model's ``max_seq_length``).

Result (JSON): ``report``, ``slide_id``, ``num_patches``, ``heatmap`` (level-0 ``x, y``, side and
attentive-pooling weight of every patch; ``null`` for a feature file without coordinates) and
``latencies``. No label image is produced.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

logger = logging.getLogger(__name__)

# the bundle's package is put on sys.path by main.py from --conf bundle_root, after this module loads:
# ``scripts`` is imported inside the methods
DEFAULT_BEAM_SIZE = 3


class ReportInferTask(InferTask):
    """Runs the report bundle on one request.

    Args:
        model_dir: ``model.pt``, ``vocab.json``, ``model_config.json`` of the report bundle.
        encoder_name, encoder_checkpoint: the patch encoder the model's features came from
            (``scripts.encoders.build_encoder``); its ``embed_dim`` must equal the model's ``in_dim``.
        target_mpp, patch_size, tissue_fraction: patching of a region, as in ``configs/extract_features.json``.
        device: torch device name.
    """

    def __init__(
        self,
        model_dir: str | Path,
        encoder_name: str = "builtin-small",
        encoder_checkpoint: str | None = None,
        target_mpp: float = 0.5,
        patch_size: int = 256,
        tissue_fraction: float = 0.5,
        device: str = "cpu",
    ) -> None:
        super().__init__(
            type=InferType.OTHERS,
            labels=None,
            dimension=2,
            description="HistGen: draft pathology report for a slide region (text, per-patch attention)",
            config={"beam_size": DEFAULT_BEAM_SIZE, "location": [0, 0], "size": None},
        )
        self.model_dir = Path(model_dir)
        self.encoder_name = encoder_name
        self.encoder_checkpoint = encoder_checkpoint
        self.target_mpp = target_mpp
        self.patch_size = patch_size
        self.tissue_fraction = tissue_fraction
        self.device = device
        self._predictor: Any = None
        self._encoder: Any = None

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

    def encoder(self) -> Any:
        if self._encoder is None:
            from scripts.encoders import build_encoder

            self._encoder = build_encoder(self.encoder_name, checkpoint=self.encoder_checkpoint, device=self.device)
            if self._encoder.embed_dim != self.predictor().feature_dim:
                raise ValueError(
                    f"encoder {self.encoder_name} gives D={self._encoder.embed_dim} features but the report model "
                    f"in {self.model_dir} expects in_dim={self.predictor().feature_dim}"
                )
        return self._encoder

    def __call__(self, request: dict[str, Any]) -> tuple[None, dict[str, Any]]:
        from scripts.data import FEATURE_SUFFIXES, read_feature_file
        from scripts.serving.region_features import region_feature_bag

        start = time.time()
        image = str(request["image"])
        slide_id = Path(image).stem
        predictor = self.predictor()
        if Path(image).suffix in FEATURE_SUFFIXES:
            bag = read_feature_file(image, slide_id=slide_id, feature_dim=predictor.feature_dim)
            feats, coords, side = bag.feats, bag.coords, None
        else:
            size = request.get("size")
            region = region_feature_bag(
                image, self.encoder(), location=tuple(request.get("location") or (0, 0)),
                size=tuple(size) if size else None, target_mpp=self.target_mpp, patch_size=self.patch_size,
                tissue_fraction=self.tissue_fraction, device=self.device,
            )
            feats, coords, side = region.feats, region.coords, region.patch_size_level0
        pre = time.time()
        max_len = request.get("max_len")
        (report,) = predictor.predict_bags(
            [feats], [slide_id], beam_size=int(request.get("beam_size", DEFAULT_BEAM_SIZE)),
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
            "latencies": {"pre": round(pre - start, 3), "infer": round(infer - pre, 3), "post": 0.0,
                          "total": round(time.time() - start, 3)},
        }
        logger.info("%s: report of %d words from %d patches", slide_id, len(report.report.split()), feats.shape[0])
        return None, result
