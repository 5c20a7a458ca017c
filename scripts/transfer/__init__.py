"""Transfer learning from the report-pretrained HistGen encoder: slide subtyping and survival bundles.

The HistGen authors never released this code; the method, per the paper: reuse the report-pretrained visual
encoder, pool its region tokens into a slide embedding, fine-tune as a multiple-instance learning model. The
``bundle/subtyping`` and ``bundle/survival`` configs wire these pieces into MONAI engines:

- data: label CSVs checked against the feature files (:func:`read_slide_table`), or the SYNTHETIC demo's (its
  producer is declared in the configs), k-fold splits by case (:func:`load_or_make_folds`), the current fold
  (:class:`CrossValidationData`) and its datasets (:class:`FoldBagDataset`);
- models: :class:`HistGenMIL` (HistGen encoder + gated attention over regions) and the :class:`ABMIL` baseline;
  :func:`load_pretrained_encoder` starts the encoder from a report ``model.pt``; :class:`FoldInputNorm` fits
  their per-dimension input standardisation on each fold's training part;
- tasks: :class:`TransferTask`, the one protocol of what differs between tasks (targets from a table, loss,
  metric, prediction rows and figure, ensemble and serving columns), with :class:`SubtypingTask`,
  :class:`SurvivalTask` and the worked example :class:`GradeTask` (``docs/adding_a_task.md``);
- losses: :class:`ClassWeightedCrossEntropy`, :class:`DiscreteTimeSurvivalLoss`;
- workflow: :class:`CrossValidation` (train/test every fold, summary with mean and std), its handlers, per-fold
  MLflow runs, and :class:`FoldEnsemble` for inference.
"""

from scripts import quiet_cucim  # noqa: F401  (first: cuCIM's start-up lines stay quiet)
from scripts.flags import as_flag

from .cross_validation import CrossValidation, restart_engine
from .encoder_weights import (
    encoder_config,
    find_report_model,
    load_pretrained_encoder,
    resolve_pretrained_encoder,
    trainable_parameters,
)
from .errors import EncoderWeightsError, SlideTableError, SplitError
from .fold_data import CrossValidationData, make_targets
from .fold_datasets import (
    FoldBagDataset,
    FoldDistributedSampler,
    collate_labelled_bags,
    prepare_channel_first_mil_batch,
    prepare_mil_batch,
)
from .fold_ensemble import EnsemblePredictionWriter, FoldEnsemble
from .fold_handlers import FoldBestModel, FoldTestWriter, selection_score, selection_score_function
from .fold_input_norm import FoldInputNorm, fit_fold_input_norm
from .fold_models import (
    list_fold_models,
    load_fold_info,
    load_fold_weights,
    network_from_fold_models,
    save_fold_model,
    saved_model_info,
)
from .fold_summary import summarize_folds
from .losses import ClassWeightedCrossEntropy, DiscreteTimeSurvivalLoss, discrete_time_nll, survival_outputs
from .metric_inputs import survival_metric_inputs
from .mil_networks import (
    ABMIL,
    MIL_MODELS,
    ABMILBundleNet,
    HistGenMIL,
    HistGenMILBundleNet,
    build_mil_network,
    network_spec,
)
from .mlflow_folds import FoldTracking
from .output_notice import NOTICE_COLUMN, transfer_notice, with_notice
from .slide_data import resolve_slide_table
from .slide_table import SlideRecord, SlideTable, read_slide_table
from .splits import (
    FoldSplit,
    check_folds,
    load_or_make_folds,
    make_folds,
    read_folds,
    require_folds,
    saved_num_folds,
    write_folds,
)
from .targets import ClassTargets, SurvivalTargets, assign_time_bins, quantile_time_bins
from .task_grade import GradeTask
from .task_outputs import SubtypingOutputs, SurvivalOutputs, task_outputs
from .task_subtyping import SubtypingTask
from .task_survival import SurvivalTask
from .tasks import TASK_TYPES, TransferTask, as_task, task_from_info

__all__ = [
    "ABMIL",
    "ABMILBundleNet",
    "MIL_MODELS",
    "ClassTargets",
    "ClassWeightedCrossEntropy",
    "CrossValidation",
    "CrossValidationData",
    "DiscreteTimeSurvivalLoss",
    "EncoderWeightsError",
    "EnsemblePredictionWriter",
    "FoldBagDataset",
    "FoldBestModel",
    "FoldDistributedSampler",
    "FoldEnsemble",
    "FoldInputNorm",
    "FoldSplit",
    "FoldTestWriter",
    "FoldTracking",
    "GradeTask",
    "HistGenMIL",
    "HistGenMILBundleNet",
    "SlideRecord",
    "SlideTable",
    "SlideTableError",
    "SplitError",
    "SubtypingOutputs",
    "SubtypingTask",
    "SurvivalOutputs",
    "SurvivalTargets",
    "SurvivalTask",
    "TASK_TYPES",
    "TransferTask",
    "as_flag",
    "as_task",
    "assign_time_bins",
    "build_mil_network",
    "check_folds",
    "collate_labelled_bags",
    "discrete_time_nll",
    "encoder_config",
    "fit_fold_input_norm",
    "find_report_model",
    "list_fold_models",
    "load_fold_info",
    "load_fold_weights",
    "load_or_make_folds",
    "load_pretrained_encoder",
    "make_folds",
    "make_targets",
    "network_from_fold_models",
    "network_spec",
    "prepare_channel_first_mil_batch",
    "prepare_mil_batch",
    "quantile_time_bins",
    "read_folds",
    "read_slide_table",
    "require_folds",
    "resolve_pretrained_encoder",
    "resolve_slide_table",
    "restart_engine",
    "save_fold_model",
    "saved_model_info",
    "saved_num_folds",
    "selection_score",
    "selection_score_function",
    "summarize_folds",
    "survival_metric_inputs",
    "survival_outputs",
    "task_from_info",
    "task_outputs",
    "trainable_parameters",
    "write_folds",
    "NOTICE_COLUMN",
    "transfer_notice",
    "with_notice",
]
