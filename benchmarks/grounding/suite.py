"""Running one benchmark of the suite: data, report model, shuffled control, ABMIL bound -> table rows.

Layout under the suite's ``output_dir``::

    data/<name>-<params key>/                 the generated benchmark (cached by parameters)
    runs/<name>/<variant>/model|control/      bundle output dirs (variant: "defaults" or a hash of --extra-args)
    runs/<name>/<variant>/control_annotation.json   a demo's control: its reports dealt class-balanced (train/val)
    runs/<name>/<variant>/control-<k>/, control_annotation_<k>.json   with ``--control-dealings``: dealing k >= 2

A demo's model run writes the demo (no dataset given, as the README's command); its control trains on the
same features with :func:`~benchmarks.grounding.control.shuffled_annotation` of the demo's annotation, so
every control in the table is dealt the same way and keeps the true test pairs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from scripts.atomic_io import atomic_write_json
from scripts.data import find_feature_file, read_feature_file, read_feature_header

from .abmil_bound import train_abmil
from .bundle_runs import BundleRun, effective_seed, evaluate_bundle, finished_run, train_bundle
from .control import benchmark_diagnosis, dealing_model_seed, dealing_seed, demo_diagnosis, shuffled_annotation
from .dataset import make_benchmark_dataset
from .registry import BenchmarkEntry
from .scoring import BenchmarkTruth, ReportScores, demo_truth, read_reports_csv, score_reports, synthetic_truth
from .table import TableRow

__all__ = ["SuiteSettings", "run_benchmark", "variant_name"]

logger = logging.getLogger("benchmarks.grounding")

#: Where a demo run writes its data inside its output dir (``scripts.engines.report_data``).
_DEMO_FOLDERS = {"slides": "demo_data", "feature_bags": "demo_bags"}


@dataclass(frozen=True)
class SuiteSettings:
    """Settings shared by every benchmark of one invocation.

    Attributes:
        output_dir: the root folder (see the module docstring).
        extra_args: bundle overrides passed to both training runs (model and control).
        abmil_epochs: epochs of each finding's ABMIL.
        use_extractor: score generated benchmarks with ``scripts.metrics.extract_findings`` when installed
            (False: the benchmarks' known-phrase reader).
        reuse_runs: keep a run folder's finished run (same overrides, same training config bytes, same data)
            instead of training again; only the scoring is redone.
        control_dealings: how many class-balanced dealings the control is trained on (each a full training;
            every dealing after the first with a bundle seed of its own, :func:`dealing_model_seed`, so that the
            dealings are independent replicates); with more than one the table gains a row per further dealing
            and their mean, since one control training can land above chance by luck (docs/benchmarks.md).
        train_config, eval_config: the bundle config files (repository-relative).
    """

    output_dir: Path
    extra_args: tuple[str, ...] = ()
    abmil_epochs: int = 20
    use_extractor: bool = True
    reuse_runs: bool = False
    control_dealings: int = 1
    train_config: str = "configs/train.json"
    eval_config: str = "configs/evaluate.json"

    def __post_init__(self) -> None:
        if self.control_dealings < 1:
            raise ValueError(f"control_dealings must be >= 1, got {self.control_dealings}")


def variant_name(extra_args: tuple[str, ...]) -> str:
    """``"defaults"`` without overrides, else a short hash of them (one folder per ablation)."""
    if not extra_args:
        return "defaults"
    return "args-" + hashlib.sha256("\0".join(extra_args).encode("utf-8")).hexdigest()[:10]


def _abmil_rows(entry: BenchmarkEntry, truth: BenchmarkTruth, dataset_dir: Path, epochs: int, seed: int
                ) -> TableRow:
    start = time.perf_counter()
    bags = {split: [read_feature_file(find_feature_file(dataset_dir, i), i).feats for i in ids]
            for split, ids in truth.splits.items()}
    row = TableRow(entry.name, "ABMIL")
    for finding in truth.findings:
        labels = {split: [truth.values[i][finding] for i in ids] for split, ids in truth.splits.items()}
        score = train_abmil(bags, labels, truth.classes[finding], epochs=epochs, seed=seed)
        row.accuracy[finding] = score.accuracy
        row.balanced_accuracy[finding] = score.balanced_accuracy
        logger.info("%s ABMIL %s: accuracy %.3f, balanced %.3f (epoch %d)", entry.name, finding, score.accuracy,
                    score.balanced_accuracy, score.best_epoch)
    row.wall_seconds = time.perf_counter() - start
    return row


def _reference_reports(annotation_file: Path) -> dict[str, str]:
    annotation = json.loads(annotation_file.read_text(encoding="utf-8"))
    return {item["id"]: item["report"] for item in annotation["test"]}


def _run_scores(run: BundleRun, truth: BenchmarkTruth) -> ReportScores:
    """The findings of ``run``'s generated test reports, scored against ``truth``."""
    return score_reports(read_reports_csv(run.reports_csv), truth)


def _report_row(entry: BenchmarkEntry, name: str, run: BundleRun, truth: BenchmarkTruth,
                scores: ReportScores) -> TableRow:
    metrics = run.metrics or {}
    return TableRow(
        entry.name, name, accuracy=dict(scores.accuracy), bleu_4=metrics.get("BLEU_4"),
        rouge_l=metrics.get("ROUGE_L"), diagnoses_written=scores.diagnoses_written,
        diagnoses_total=len(truth.classes["diagnosis"]), best_epoch=run.best_epoch, epochs_run=run.epochs_run,
        wall_seconds=run.train_seconds + run.eval_seconds,
    )


def _mean_row(entry: BenchmarkEntry, controls: list[TableRow]) -> TableRow:
    """The dealings' mean accuracy per finding, BLEU-4 and ROUGE-L (a finding missing from a row is left out)."""
    def mean(values: list[float | None]) -> float | None:
        kept = [v for v in values if v is not None]
        return sum(kept) / len(kept) if len(kept) == len(values) else None

    findings = set.intersection(*(set(row.accuracy) for row in controls))
    return TableRow(entry.name, f"control, mean of {len(controls)} dealings",
                    accuracy={f: sum(row.accuracy[f] for row in controls) / len(controls) for f in sorted(findings)},
                    bleu_4=mean([row.bleu_4 for row in controls]), rouge_l=mean([row.rouge_l for row in controls]),
                    wall_seconds=sum(row.wall_seconds or 0.0 for row in controls))


def _blind_row(entry: BenchmarkEntry, scores: list[ReportScores]) -> TableRow:
    """What the control runs would score if their reports ignored the slide (:attr:`ReportScores.blind`, the mean
    over dealings): the control's own chance level, beside the majority share of the ``chance`` row."""
    blinds = [s.blind for s in scores]
    name = "control, slide-blind expectation" + (f" (mean of {len(scores)})" if len(scores) > 1 else "")
    return TableRow(entry.name, name, accuracy={f: sum(b[f] for b in blinds) / len(blinds) for f in blinds[0]})


def _trained(run_dir: Path, data_args: list[str], dataset_dir: Path, annotation_file: Path,
             settings: SuiteSettings, seed: int | None = None) -> BundleRun:
    """Train into ``run_dir`` (with bundle ``seed``, None: the config's) and evaluate on the true test pairs, or
    reuse a finished run there."""
    seed = effective_seed(seed, settings.extra_args)  # what train_bundle records, for the reuse check
    if settings.reuse_runs:
        run = finished_run(run_dir, dataset_dir, annotation_file, settings.train_config, seed, data_args)
        if run is not None:
            logger.info("reusing the finished run in %s", run_dir)
            return run
    run = train_bundle(run_dir, data_args, list(settings.extra_args), settings.train_config, seed)
    return evaluate_bundle(run, dataset_dir, annotation_file, settings.eval_config)


def run_benchmark(entry: BenchmarkEntry, settings: SuiteSettings) -> tuple[list[TableRow], str]:
    """Generate (or reuse) ``entry``'s data, train and evaluate model and control, train the ABMIL bound.

    Returns:
        The rows ``references`` (the findings reader on the test reference reports: the scoring's own
        ceiling), ``model``, ``control`` (one per dealing, their mean, and what reports with the controls' mix of
        stated values would score without reading the slide), ``ABMIL``, ``chance``, and the name of the findings
        reader used.
    """
    runs_dir = settings.output_dir / "runs" / entry.name / variant_name(settings.extra_args)
    if entry.params is not None:
        data = make_benchmark_dataset(entry.params, settings.output_dir / "data" / f"{entry.name}-{entry.params.key()}")
        dataset_dir, true_annotation = data.dataset_dir, data.annotation_file
        model = _trained(runs_dir / "model", ["--dataset_dir", str(dataset_dir), "--annotation_file",
                                              str(true_annotation)], dataset_dir, true_annotation, settings)
        control_data = ["--dataset_dir", str(dataset_dir), "--annotation_file", str(data.shuffled_annotation_file)]
        base_seed, class_of = entry.params.seed, benchmark_diagnosis
        truth = synthetic_truth(entry.params, data.labels_file, data.annotation_file, settings.use_extractor)
        p = entry.params
        sizes = dict(seed=p.seed, bags=f"{p.n_train}/{p.n_val}/{p.n_test}",
                     patches=f"{p.n_patches[0]}-{p.n_patches[1]}", feature_dim=p.feature_dim)
    else:
        source = entry.demo["source"]
        demo_dir = runs_dir / "model" / _DEMO_FOLDERS[source]  # the model run writes the demo here
        dataset_dir, true_annotation = demo_dir / "features", demo_dir / "annotation.json"
        model = _trained(runs_dir / "model", ["--demo#source", source], dataset_dir, true_annotation, settings)
        control_annotation = runs_dir / "control_annotation.json"
        annotation = json.loads(true_annotation.read_text(encoding="utf-8"))
        base_seed, class_of = 0, demo_diagnosis
        atomic_write_json(control_annotation, shuffled_annotation(annotation, base_seed, class_of))
        control_data = ["--dataset_dir", str(dataset_dir), "--annotation_file", str(control_annotation)]
        truth = demo_truth(true_annotation)
        counts = [item["num_patches"] for s in ("train", "val", "test") for item in annotation[s]
                  if "num_patches" in item]
        first = truth.splits["test"][0]
        sizes = dict(seed="config", bags="/".join(str(len(truth.splits[s])) for s in ("train", "val", "test")),
                     patches=f"{min(counts)}-{max(counts)}" if counts else None,
                     feature_dim=read_feature_header(find_feature_file(dataset_dir, first), first).feature_dim)
    control = _trained(runs_dir / "control", control_data, dataset_dir, true_annotation, settings)
    control_scores = [_run_scores(control, truth)]
    controls = [_report_row(entry, "control", control, truth, control_scores[0])]
    if settings.control_dealings > 1:
        annotation = json.loads(true_annotation.read_text(encoding="utf-8"))
    for dealing in range(1, settings.control_dealings):
        annotation_file = runs_dir / f"control_annotation_{dealing + 1}.json"
        atomic_write_json(annotation_file, shuffled_annotation(annotation, dealing_seed(base_seed, dealing), class_of))
        run = _trained(runs_dir / f"control-{dealing + 1}", ["--dataset_dir", str(dataset_dir), "--annotation_file",
                                                              str(annotation_file)], dataset_dir, true_annotation,
                       settings, dealing_model_seed(base_seed, dealing))
        control_scores.append(_run_scores(run, truth))
        controls.append(_report_row(entry, f"control, dealing {dealing + 1}", run, truth, control_scores[-1]))
    if len(controls) > 1:
        controls.append(_mean_row(entry, controls))
    controls.append(_blind_row(entry, control_scores))

    seed = entry.params.seed if entry.params is not None else 0
    references = score_reports(_reference_reports(true_annotation), truth)
    rows = [TableRow(entry.name, "references", accuracy=dict(references.accuracy),
                     diagnoses_written=references.diagnoses_written, diagnoses_total=len(truth.classes["diagnosis"])),
            _report_row(entry, "model", model, truth, _run_scores(model, truth)), *controls,
            _abmil_rows(entry, truth, dataset_dir, settings.abmil_epochs, seed),
            TableRow(entry.name, "chance", accuracy=truth.chance())]
    for row in rows:
        for key, value in sizes.items():
            setattr(row, key, value)
    return rows, truth.reader.name
