"""Slide inference: raw slides -> patch features -> reports and attention heatmaps, in one workflow run.

``python -m monai.bundle run inference --config_file configs/inference.json --slide a.svs`` (or
``--slide "['a.svs','b.svs']"``, ``--slides_dir DIR``, ``--slides_csv FILE``) does what
``extract_features`` followed by feature inference does, with the model's own extraction settings:

1. :class:`SlideInference` reads ``<model_dir>/feature_extraction.json`` (written at training time from the
   training features' h5 attributes), builds that encoder (its checksum must match) and runs
   :class:`scripts.wsi.FeatureExtractor` slide by slide into ``slide_features_dir`` (resumable: current
   feature files are reused). A slide that cannot be read or holds no tissue is recorded and skipped.
2. The usual inference evaluator reads the new ``.h5`` files and decodes the reports.
3. :class:`AttentionHeatmapWriter` draws ``<reports_dir>/<slide_id>_heatmap.png``: each patch's relative
   attention of the model (:mod:`scripts.engines.patch_attention`) over the slide thumbnail, coloured by
   where it falls between the slide's own 2nd and 98th percentiles (``scale="percentile"``), with a legend.
4. :class:`SlideReportWriter` writes ``<slide_id>.txt`` and ``<slide_id>.findings.json`` per slide and
   ``reports.csv`` with one row per slide: ``id, report (prose), report_tokens, notice, status (done |
   failed), error, slide, n_patches, heatmap`` and one column per finding of the report (``diagnosis, grade,
   margin, ...``, see :data:`scripts.engines.report_outputs.FINDING_COLUMNS`).

Cases of several slides (``--case_csv``, see :mod:`scripts.engines.slide_cases`): every slide is extracted as
above, each case's slides are decoded as one bag (concatenated, as in training) and written as one report,
``<case_id>.txt``, and one ``reports.csv`` row (``slide``: the case's slide paths joined by ``;``, ``n_patches``:
their sum, ``heatmap``: one heatmap per slide joined by ``;``). A case with a slide that could not be extracted
is reported as failed, naming that slide.

Without slides the workflow is plain feature inference (``reports.csv`` = ``id, report, report_tokens,
notice`` and the finding columns); the feature files' extraction attributes are first checked against the
model's ``feature_extraction.json`` (:func:`scripts.engines.feature_checks.check_feature_files`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.utils import CommonKeys

from scripts.atomic_io import atomic_write_csv
from scripts.ids import output_file
from scripts.metrics import FindingsVocabulary

from .feature_checks import check_feature_files
from .model_files import EXTRACTION_FILE, extraction_settings, unwrap
from .model_provenance import load_provenance, output_notice
from .patch_attention import patch_attention
from .report_data import feature_file_list
from .report_outputs import FINDING_COLUMNS, ReportWriter
from .slide_cases import read_case_csv

__all__ = ["SLIDE_TABLE_COLUMNS", "AttentionHeatmapWriter", "SlideInference", "SlideReportWriter",
           "slide_feature_extractor"]

logger = logging.getLogger("histgen.slides")

#: Columns of ``reports.csv`` in slide mode.
SLIDE_TABLE_COLUMNS = ["id", "report", "report_tokens", "notice", "status", "error", "slide", "n_patches", "heatmap"]

#: Extraction settings a model records and slide inference applies (``feature_extraction.json`` keys).
_EXTRACTOR_KEYS = ("wsi_backend", "target_mpp", "assume_mpp", "mpp_tolerance", "patch_size", "step", "tissue_fraction",
                   "stain_normalization")

HEATMAP_LABEL = "Model attention (this slide)"
#: What the heatmap's colours mean, under its legend title.
HEATMAP_NOTES = ("red: relied on most", "blue: least; clear: typical", "scale: this slide's 2-98th pct")
#: Opacity of the most extreme patches (the tissue stays visible under them).
HEATMAP_ALPHA = 0.6


def _report_fields(report: str | None, notice: str) -> dict[str, str]:
    """The report columns of a ``reports.csv`` row: its prose, its tokens (what the metrics use), the notice."""
    from scripts.text.prose import report_prose

    return {"report": report_prose(report) if report else "", "report_tokens": report or "", "notice": notice}


def _as_list(value: str | os.PathLike | Sequence[str | os.PathLike] | None) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    return [os.fspath(v) for v in value]


def slide_feature_extractor(
    settings: dict[str, Any],
    features_dir: str | os.PathLike,
    device: torch.device | str | None = None,
    encoder_checkpoint: str | os.PathLike | None = None,
    check_checksum: bool = True,
    record_path: str | os.PathLike = EXTRACTION_FILE,
    **options: Any,
) -> Any:
    """A :class:`scripts.wsi.FeatureExtractor` for a model's extraction ``settings`` (see
    :func:`scripts.engines.model_files.extraction_settings`): the one way slides become a model's input, used by
    slide inference and by the MONAI Label and MONAI Deploy apps.

    Args:
        settings: ``encoder_name``, ``target_mpp``, ``patch_size`` and the other ``feature_extraction.json`` keys.
        features_dir: where the ``.h5`` files go.
        device: where the encoder runs (default CUDA when available).
        encoder_checkpoint: local weights of the encoder (all but ``builtin-small``).
        check_checksum: compare the encoder's checksum with the recorded ``encoder_checksum``.
        record_path: the record's file, named in errors.
        options: :class:`scripts.wsi.FeatureExtractor` options that do not change the features
            (``batch_size``, ``num_workers``, ``save_thumbnails``, ``progress``).

    Raises:
        ValueError: the encoder's checksum or feature size differs from the record, or the model was trained on
            features of a custom preprocessing chain (only the encoder's own steps, with or without stain
            normalisation, can be rebuilt from the record).
    """
    from scripts.encoders import build_encoder
    from scripts.wsi import FeatureExtractor, TissueMaskParams

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    encoder = build_encoder(settings["encoder_name"], checkpoint=encoder_checkpoint, device=device)
    expected = settings.get("encoder_checksum")
    if expected and check_checksum and encoder.checksum != expected:
        raise ValueError(
            f"encoder {settings['encoder_name']}: checksum {encoder.checksum} differs from the {expected} of the "
            f"encoder the model was trained with ({record_path}); give the same weights as --encoder_checkpoint "
            f"(got {encoder_checkpoint})"
        )
    if "feature_dim" in settings and int(settings["feature_dim"]) != int(encoder.embed_dim):
        raise ValueError(
            f"encoder {settings['encoder_name']} gives {encoder.embed_dim}-d features; "
            f"the model expects {settings['feature_dim']}"
        )
    chain = settings.get("preprocessing", "encoder")
    if chain != "encoder":
        raise ValueError(
            f"{record_path}: the model was trained on features of the preprocessing chain {chain!r}; slide inference "
            "rebuilds only the encoder's own steps (with stain_normalization); extract the features with that chain "
            "(extract_features) and run feature inference on them"
        )
    tissue = settings.get("tissue_params")
    return FeatureExtractor(
        features_dir,
        encoder,
        device=device,
        tissue_params=TissueMaskParams(**tissue) if isinstance(tissue, dict) else None,
        **{k: settings[k] for k in _EXTRACTOR_KEYS if k in settings},
        **options,
    )


class SlideInference:
    """Slides -> feature files for the inference workflow, with the extraction settings the model was trained on.

    Args:
        model_dir: the model folder (``feature_extraction.json`` is read from it).
        features_dir: where ``<slide_id>.h5``, ``_thumb.png`` and the extraction ``manifest.csv`` go.
        reports_dir: where ``reports.csv`` (and the heatmaps) go.
        slide: one slide path or a list of them.
        slides_dir: a folder scanned recursively for slides.
        slides_csv: a CSV with ``path`` (and optional ``slide_id``) columns.
        case_csv: a CSV with ``case_id`` and ``path`` columns (:func:`scripts.engines.slide_cases.read_case_csv`):
            one report per case of several slides; not combined with ``slide``, ``slides_dir`` or ``slides_csv``.
        device: where the patch encoder runs (default CUDA when available).
        encoder_checkpoint: local weights of the encoder named in the record (all but ``builtin-small``).
        extraction_overrides: settings that replace the recorded ones, e.g. ``{"assume_mpp": 0.25}`` for
            slides without resolution metadata, or ``{"wsi_backend": "openslide"}``; needed in full when
            the model has no ``feature_extraction.json``.
        batch_size, num_workers, save_thumbnails, progress: :class:`scripts.wsi.FeatureExtractor` options
            that do not change the features.
        allow_feature_mismatch: feature mode: decode feature files whose extraction attributes differ from
            the model's ``feature_extraction.json`` (logged as a warning) instead of refusing them.

    Without ``slide``, ``slides_dir`` and ``slides_csv`` it is inactive and :meth:`feature_paths` returns the
    given feature files, so one config serves both kinds of input.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        features_dir: str | os.PathLike,
        reports_dir: str | os.PathLike,
        slide: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        slides_dir: str | os.PathLike | None = None,
        slides_csv: str | os.PathLike | None = None,
        device: torch.device | str | None = None,
        encoder_checkpoint: str | os.PathLike | None = None,
        extraction_overrides: dict[str, Any] | None = None,
        batch_size: int = 64,
        num_workers: int = 2,
        save_thumbnails: bool = True,
        progress: bool = True,
        case_csv: str | os.PathLike | None = None,
        allow_feature_mismatch: bool = False,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.allow_feature_mismatch = bool(allow_feature_mismatch)
        self.features_dir = Path(features_dir)
        self.reports_dir = Path(reports_dir)
        self.slide = _as_list(slide)
        self.slides_dir = slides_dir or None
        self.slides_csv = slides_csv or None
        self.case_csv = case_csv or None
        if self.case_csv and (self.slide or self.slides_dir or self.slides_csv):
            raise ValueError("give case_csv or slides (slide / slides_dir / slides_csv), not both")
        self._cases: dict[str, list[tuple[str, str]]] | None = None
        self.device = device
        self.encoder_checkpoint = encoder_checkpoint
        self.extraction_overrides = dict(extraction_overrides or {})
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.save_thumbnails = bool(save_thumbnails)
        self.progress = bool(progress)
        self._sources: list[Any] | None = None
        self._settings: dict[str, Any] | None = None
        self._extractor: Any = None
        self._rows: list[Any] | None = None
        self.heatmaps: dict[str, str] = {}
        self.heatmap_errors: dict[str, str] = {}

    # ------------------------------------------------------------------ inputs
    @property
    def active(self) -> bool:
        """True when slides were given (slide mode)."""
        return bool(self.slide or self.slides_dir or self.slides_csv or self.case_csv)

    def cases(self) -> dict[str, list[tuple[str, str]]]:
        """``{case_id: [(slide_id, path), ...]}`` of ``case_csv``; empty without one."""
        if self._cases is None:
            self._cases = read_case_csv(self.case_csv) if self.case_csv else {}
        return self._cases

    def sources(self) -> list[Any]:
        """The slides of the run (:class:`scripts.wsi.SlideSource`), in the order given."""
        from scripts.wsi import SlideSource, list_slides

        if self._sources is None:
            sources = [SlideSource(Path(p).stem, str(p)) for p in self.slide]
            sources += [SlideSource(slide_id, path) for slides in self.cases().values() for slide_id, path in slides]
            if self.slides_dir or self.slides_csv:
                sources += list_slides(self.slides_dir, self.slides_csv)
            seen: dict[str, str] = {}
            for source in sources:
                if source.slide_id in seen:
                    raise ValueError(
                        f"slide id {source.slide_id!r} is used twice ({seen[source.slide_id]} and {source.path}); "
                        "list the slides in a CSV with distinct slide_id values"
                    )
                seen[source.slide_id] = source.path
            if not sources:
                raise FileNotFoundError(f"no slides found (slides_dir={self.slides_dir}, slides_csv={self.slides_csv})")
            self._sources = sources
        return self._sources

    def settings(self) -> dict[str, Any]:
        """The extraction settings: the model's ``feature_extraction.json`` with ``extraction_overrides`` applied
        (:func:`scripts.engines.model_files.extraction_settings`)."""
        if self._settings is None:
            self._settings = extraction_settings(self.model_dir, self.extraction_overrides)
        return self._settings

    def extractor(self) -> Any:
        """The :class:`scripts.wsi.FeatureExtractor` with the model's settings (encoder checksum checked)."""
        if self._extractor is None:
            self._extractor = slide_feature_extractor(
                self.settings(), self.features_dir, device=self.device, encoder_checkpoint=self.encoder_checkpoint,
                check_checksum="encoder_name" not in self.extraction_overrides,
                record_path=self.model_dir / EXTRACTION_FILE, batch_size=self.batch_size,
                num_workers=self.num_workers, save_thumbnails=self.save_thumbnails, progress=self.progress,
            )
        return self._extractor

    # ------------------------------------------------------------------ extraction
    def extract(self) -> list[Any]:
        """Extract every slide once (current feature files are reused); returns the manifest rows."""
        from scripts.wsi import write_manifest

        if self._rows is None:
            extractor = self.extractor()
            rows = []
            for source in self.sources():
                row = extractor.extract_slide(source)
                rows.append(row)
                write_manifest(self.features_dir / "manifest.csv", rows)
                if row.status == "failed":
                    logger.warning("slide %s failed: %s", source.slide_id, row.error)
                else:
                    logger.info("slide %s: %s, %d patches", source.slide_id, row.status, row.n_patches)
            self._rows = rows
        return self._rows

    def feature_paths(
        self,
        feature_files: str | os.PathLike | list[str] | None = None,
        dataset_dir: str | os.PathLike | None = None,
    ) -> list[Path]:
        """The feature files to decode: those of the slides that were extracted, else the given feature files
        (checked against the model's ``feature_extraction.json``, see :func:`check_feature_files`).

        With no slides and no feature files it returns ``[]`` (so that MONAI's ``check_properties`` can resolve
        ``dataset`` with the bundle's default values); :meth:`run` then refuses to start with a clear error.
        """
        if not self.active:
            paths = feature_file_list(feature_files, dataset_dir, allow_none=True)
            if paths:
                check_feature_files(paths, self.model_dir, self.allow_feature_mismatch)
            return paths
        if feature_files or dataset_dir:
            raise ValueError("give slides (slide / slides_dir / slides_csv / case_csv) or feature files "
                             "(feature_files / dataset_dir), not both")
        done = {row.slide_id for row in self.extract() if row.status != "failed"}
        if self.case_csv:  # one (case_id, [feature file, ...]) entry per case whose every slide was extracted
            return [(case_id, [output_file(self.features_dir, s, ".h5", "slide id") for s, _ in slides])
                    for case_id, slides in self.cases().items() if all(s in done for s, _ in slides)]
        return [output_file(self.features_dir, row.slide_id, ".h5", "slide id") for row in self.extract()
                if row.slide_id in done]

    # ------------------------------------------------------------------ heatmaps
    def write_heatmap(self, slide_id: str, coords: np.ndarray, values: np.ndarray, label: str = HEATMAP_LABEL) -> Path:
        """Draw ``values [N]`` at the patches ``coords [N, 2]`` over the slide's thumbnail -> ``<id>_heatmap.png``
        (colours scaled to this slide's own percentiles, legend notes :data:`HEATMAP_NOTES`)."""
        from scripts.wsi import Slide, TissueMaskParams, read_h5_attrs, slide_tissue_mask
        from scripts.wsi.attention_heatmap import save_value_heatmap

        source = next(s for s in self.sources() if s.slide_id == slide_id)
        attrs = read_h5_attrs(output_file(self.features_dir, slide_id, ".h5", "slide id")) or {}
        if "patch_size_level0" not in attrs:
            raise ValueError(f"{slide_id}.h5: no patch_size_level0 attribute")
        extractor = self.extractor()
        params = extractor.tissue_params if isinstance(extractor.tissue_params, TissueMaskParams) else None
        with Slide(source.path, extractor.wsi_backend, extractor.assume_mpp, name=Path(source.path).name) as slide:
            tissue = slide_tissue_mask(slide, params or TissueMaskParams())
        path = output_file(self.reports_dir, slide_id, "_heatmap.png", "slide id")
        save_value_heatmap(path, tissue, coords, int(attrs["patch_size_level0"]), values, label=label,
                           scale="percentile", notes=HEATMAP_NOTES, alpha=HEATMAP_ALPHA)
        self.heatmaps[slide_id] = path.name
        return path

    # ------------------------------------------------------------------ outputs
    def write_table(self, reports: dict[str, str], skipped: dict[str, str] | None = None,
                    findings: dict[str, dict[str, Any]] | None = None,
                    provenance: dict[str, Any] | None = None) -> Path:
        """``reports.csv`` with one row per slide (done or failed, with the reason), in the order given.

        ``reports``: ``{slide_id: tokenised report}`` (``report`` holds its prose, ``report_tokens`` the tokens).
        ``findings``: ``{slide_id: {finding column: value}}``; when given, the finding columns follow
        :data:`SLIDE_TABLE_COLUMNS` (empty for slides without a report).
        ``provenance``: the model's record, for the ``notice`` column.
        """
        notice = output_notice(provenance if provenance is not None else load_provenance(self.model_dir))
        skipped = skipped or {}
        if self.case_csv:
            return self._write_case_table(reports, skipped, findings, notice)
        table = []
        for row in self.extract():
            report = reports.get(row.slide_id)
            if row.status == "failed":
                status, error = "failed", row.error
            elif report is None:
                status = "failed"
                error = skipped.get(row.slide_id, "no report was generated (features not decoded)")
            else:
                status, error = "done", self.heatmap_errors.get(row.slide_id, "")
            table.append({
                "id": row.slide_id,
                **_report_fields(report, notice),
                "status": status,
                "error": error,
                "slide": row.path,
                "n_patches": row.n_patches,
                "heatmap": self.heatmaps.get(row.slide_id, ""),
                **(findings or {}).get(row.slide_id, {}),
            })
        return self._save_table(table, findings, "slides")

    def _write_case_table(self, reports: dict[str, str], skipped: dict[str, str],
                          findings: dict[str, dict[str, Any]] | None, notice: str) -> Path:
        """``reports.csv`` with one row per case of ``case_csv``."""
        rows = {row.slide_id: row for row in self.extract()}
        table = []
        for case_id, slides in self.cases().items():
            mine = [rows[slide_id] for slide_id, _ in slides]
            failed = [f"{row.slide_id}: {row.error}" for row in mine if row.status == "failed"]
            report = reports.get(case_id)
            if failed:
                status, error = "failed", "; ".join(failed)
            elif report is None:
                status, error = "failed", skipped.get(case_id, "no report was generated (features not decoded)")
            else:
                status = "done"
                error = "; ".join(self.heatmap_errors[s] for s, _ in slides if s in self.heatmap_errors)
            table.append({
                "id": case_id,
                **_report_fields(report, notice),
                "status": status,
                "error": error,
                "slide": ";".join(row.path for row in mine),
                "n_patches": sum(row.n_patches for row in mine),
                "heatmap": ";".join(self.heatmaps[s] for s, _ in slides if s in self.heatmaps),
                **(findings or {}).get(case_id, {}),
            })
        return self._save_table(table, findings, "cases")

    def _save_table(self, table: list[dict[str, Any]], findings: dict[str, dict[str, Any]] | None,
                    unit: str) -> Path:
        """Write ``reports.csv`` (the slide columns, then the finding columns when scored) and log the count."""
        path = self.reports_dir / "reports.csv"
        columns = SLIDE_TABLE_COLUMNS + (FINDING_COLUMNS if findings is not None else [])
        atomic_write_csv(path, table, columns)
        failed = [r["id"] for r in table if r["status"] == "failed"]
        logger.info("%d of %d %s reported (%s)%s", len(table) - len(failed), len(table), unit, path,
                    f"; failed: {', '.join(failed)}" if failed else "")
        return path

    def run(self, evaluator: Engine) -> None:
        """Run the inference ``evaluator``; in slide mode extract first and report slides that gave no features."""
        if not self.active:
            if len(evaluator.data_loader.dataset) == 0:  # type: ignore[arg-type]
                feature_file_list(None, None)  # raises: inference needs feature_files or dataset_dir
            evaluator.run()
            return
        if not self.feature_paths():
            self.write_table({})
            raise RuntimeError(
                f"none of the {len(self.extract())} slide(s) could be processed; see {self.reports_dir / 'reports.csv'}"
            )
        evaluator.run()


class AttentionHeatmapWriter:
    """Evaluator handler: ``<reports_dir>/<slide_id>_heatmap.png`` for every decoded slide (slide mode only).

    The value of a patch is ``PatchAttention.relative`` (:mod:`scripts.engines.patch_attention`): its
    pooling weight relative to the average patch of its region, times its region's decoder cross-attention
    (while the model writes the report) relative to the average region. 1 marks an average patch.

    Args:
        network: the report model.
        slides: the workflow's :class:`SlideInference` (nothing is drawn when it is inactive).
        enabled: False turns heatmaps off.
    """

    def __init__(self, network: torch.nn.Module, slides: SlideInference | None, enabled: bool = True) -> None:
        self.network = network
        self.slides = slides
        self.enabled = bool(enabled)

    def attach(self, engine: Engine) -> None:
        if self.enabled and self.slides is not None and self.slides.active:
            engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        batch, output = engine.state.batch, engine.state.output
        if not batch["ids"] or batch.get("coords") is None:
            return
        model = unwrap(self.network)
        device = next(model.parameters()).device
        attention = patch_attention(
            model, batch["features"].to(device), batch["mask"].to(device), output[CommonKeys.PRED].to(device)
        )
        weights = attention.relative.float().cpu().numpy()
        case_bounds = batch.get("case_bounds") or [None] * len(batch["ids"])
        case_slides = batch.get("case_slides") or [None] * len(batch["ids"])
        for row, slide_id in enumerate(batch["ids"]):
            n = int(batch["num_patches"][row])
            if case_bounds[row] is None:
                parts = [(slide_id, 0, n)]
            else:  # a case: one heatmap per slide, from that slide's own rows (the filler between is left out)
                parts = [(s, a, b) for s, (a, b) in zip(case_slides[row], case_bounds[row].tolist())]
            for part_id, start, end in parts:
                coords = batch["coords"][row, start:end].numpy()
                try:
                    self.slides.write_heatmap(part_id, coords, weights[row, start:end])
                except Exception as err:  # a heatmap never costs the slide its report
                    message = f"heatmap: {type(err).__name__}: {err}"
                    self.slides.heatmap_errors[part_id] = message
                    logger.warning("%s: %s", part_id, message)


class SlideReportWriter(ReportWriter):
    """Inference outputs: ``<id>.txt`` and ``<id>.findings.json`` per slide and ``reports.csv``.

    Without slides it is :class:`ReportWriter` (``reports.csv`` = ``id, report`` and the finding columns).
    In slide mode ``reports.csv`` lists every slide of the run with ``SLIDE_TABLE_COLUMNS`` and the finding
    columns: failed slides carry the extractor's error (unreadable file, no tissue...) or the reason their
    features could not be decoded.

    Args:
        output_dir: the reports folder.
        slides: the workflow's :class:`SlideInference`, or None.
        findings_vocabulary: known diagnoses for reading the findings (the model's
            ``findings_vocabulary.json``); None reads rule-based phrases.
        write_findings: False writes neither ``<id>.findings.json`` nor the finding columns.
        provenance: the model's ``provenance.json`` record (the notices of every output).
    """

    def __init__(self, output_dir: str | os.PathLike[str], slides: SlideInference | None = None,
                 findings_vocabulary: FindingsVocabulary | None = None, write_findings: bool = True,
                 provenance: dict[str, Any] | None = None) -> None:
        super().__init__(output_dir, findings_vocabulary, write_findings, provenance)
        self.slides = slides

    def __call__(self, engine: Engine) -> None:
        if self.slides is None or not self.slides.active:
            super().__call__(engine)
            return
        cells = self.write_reports()
        dataset = getattr(engine.data_loader, "dataset", None)
        skipped = {s["id"]: s["reason"] for s in getattr(dataset, "skipped", [])}
        self.slides.write_table({row["id"]: row["generated"] for row in self.rows}, skipped,
                                cells if self.write_findings else None, self.provenance)
        self.log_written(len(self.rows))
