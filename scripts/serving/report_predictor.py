"""Feature bags in, report texts out: the one inference path behind MLflow, MONAI Label and MONAI Deploy.

It does what ``configs/inference.json`` does (read and check each feature file, pad bags into
batches of ``batch_size`` in the given order, ``HistGen.generate``, decode with the vocabulary), so
the same files give the same reports as ``python -m monai.bundle run inference``.

Loading logs the model's one-line provenance (``provenance.json``) and, for a model trained on synthetic
data, the ``SYNTHETIC-DATA MODEL — NOT FOR DIAGNOSIS`` warning; :attr:`ReportPredictor.notice` is the line
its outputs carry, :attr:`SlideReport.prose` the readable form of a report.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from scripts.data import collate_bags, read_feature_file
from scripts.engines.model_files import decoding_settings, load_report_model
from scripts.engines.model_provenance import log_model_provenance, output_notice
from scripts.text.prose import report_prose

from .bag_rows import bag_tensor

#: The default of ``configs/inference.json``'s ``batch_size`` (beam size and length are the model's own).
DEFAULT_BATCH_SIZE = 4


@dataclass
class SlideReport:
    """One generated report.

    Attributes:
        slide_id: the bag's id (file name without suffix, or the id given).
        report: the generated text, as the model's tokens (what the metrics score).
        ids: token ids ``[L]`` (0-padded after the end token).
        patch_weights: attentive-pooling weight of each real patch ``[N]`` (input order), for heatmaps.
    """

    slide_id: str
    report: str
    ids: list[int]
    patch_weights: list[float] | None = None

    @property
    def prose(self) -> str:
        """The report as sentence-case prose (:func:`scripts.text.prose.report_prose`)."""
        return report_prose(self.report)


def default_device() -> torch.device:
    return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")


class ReportPredictor:
    """A trained report model ready to turn feature bags into texts.

    Args:
        model_dir: folder of ``model.pt``, ``model_config.json``, ``vocab.json``.
        device: torch device; CUDA when available by default.
        beam_size: beams (1 = greedy); None = the model's ``beam_size`` (``model_config.json``), as
            ``inference.json``; an override that differs from it is logged.
        max_len: longest report in tokens; None = the model's ``max_seq_length``.
        batch_size: bags decoded together, as ``inference.json``'s ``batch_size``.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        device: str | torch.device | None = None,
        beam_size: int | None = None,
        max_len: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.device = torch.device(device) if device is not None else default_device()
        self.model, self.vocab = load_report_model(self.model_dir, self.device)
        self.provenance = log_model_provenance(self.model_dir)
        self.beam_size, self.max_len = decoding_settings(None, beam_size, max_len, recorded=self.recorded)
        self.batch_size = batch_size

    @property
    def recorded(self) -> dict[str, Any]:
        """The model's ``model_config.json`` (as loaded): the source of the decoding defaults."""
        return self.model.config.to_dict()

    @property
    def notice(self) -> str:
        """The notice the model's outputs carry (research use; synthetic-data warning when it applies)."""
        return output_notice(self.provenance)

    @property
    def feature_dim(self) -> int:
        return int(self.model.config.in_dim)

    def read_bag(self, path: str | os.PathLike[str], slide_id: str | None = None) -> torch.Tensor:
        """``[N, D]`` features of one ``.h5``/``.pt`` file, checked against the model's ``in_dim``."""
        path = Path(path)
        return read_feature_file(path, slide_id=slide_id or path.stem, feature_dim=self.feature_dim).feats

    @torch.no_grad()
    def predict_bags(
        self,
        bags: Sequence[Any],
        slide_ids: Sequence[str] | None = None,
        beam_size: int | None = None,
        max_len: int | None = None,
        batch_size: int | None = None,
        with_weights: bool = False,
    ) -> list[SlideReport]:
        """Reports for ``bags`` (each ``[N_i, D]`` array or tensor), in order.

        Args:
            bags: feature bags.
            slide_ids: one id per bag (default ``bag-0``, ``bag-1``...).
            beam_size, max_len, batch_size: override the predictor's settings.
            with_weights: also return each patch's attentive-pooling weight (one extra encoder pass).
        """
        ids = list(slide_ids) if slide_ids is not None else [f"bag-{i}" for i in range(len(bags))]
        if len(ids) != len(bags):
            raise ValueError(f"{len(ids)} slide ids for {len(bags)} feature bags")
        tensors = [bag_tensor(bag, sid, self.feature_dim) for bag, sid in zip(bags, ids)]
        beam, length = self.beam_size, self.max_len
        if beam_size is not None or max_len is not None:
            beam, length = decoding_settings(None, beam_size if beam_size is not None else beam,
                                             max_len if max_len is not None else length, recorded=self.recorded)
        size = max(1, self.batch_size if batch_size is None else batch_size)
        out: list[SlideReport] = []
        for start in range(0, len(tensors), size):
            items = [{"id": sid, "features": feats, "coords": None, "report": "", "report_ids": None}
                     for sid, feats in zip(ids[start : start + size], tensors[start : start + size])]
            batch = collate_bags(items)
            features = batch["features"].to(self.device)
            mask = batch["mask"].to(self.device)
            pred = self.model.generate(features, mask=mask, beam_size=beam, max_len=length)
            texts = self.vocab.decode_batch(pred.tolist())
            weights: list[list[float] | None] = [None] * len(items)
            if with_weights:
                encoded = self.model.encode(features, mask)
                for row, n in enumerate(batch["num_patches"].tolist()):
                    weights[row] = encoded.patch_weights[row, :n].float().cpu().tolist()
            for row, item in enumerate(items):
                out.append(SlideReport(item["id"], texts[row], pred[row].tolist(), weights[row]))
        return out

    def predict_files(
        self, paths: Sequence[str | os.PathLike[str]], slide_ids: Sequence[str] | None = None, **kwargs: Any
    ) -> list[SlideReport]:
        """Reports for feature files (``.h5``/``.pt``), in order; ids default to the file names."""
        ids = list(slide_ids) if slide_ids is not None else [Path(p).stem for p in paths]
        bags = [self.read_bag(p, sid) for p, sid in zip(paths, ids)]
        return self.predict_bags(bags, ids, **kwargs)
