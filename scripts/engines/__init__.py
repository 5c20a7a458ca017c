"""Ignite engines' pieces for the report bundle: batches, loss, decoding inferer, handlers, data setup."""

import warnings

from .grounding import ReportFindingLabeler, TeacherForcingBatches, finding_labeler
from .input_normalisation import fit_input_norm
from .mlflow_extras import MLflowRunExtras, find_mlflow_handler
from .model_files import (
    EXTRACTION_FILE,
    FINDINGS_VOCAB_FILE,
    load_feature_extraction,
    load_findings_vocabulary,
    load_model_config,
    load_report_model,
    save_report_model,
    unwrap,
)
from .patch_attention import PatchAttention, patch_attention
from .progress import EngineProgressBar
from .report_batches import prepare_generation_batch, prepare_teacher_forcing_batch
from .report_data import (
    DEMO_SOURCES,
    ReportData,
    build_vocabulary,
    default_key_phrases,
    feature_dim_of,
    feature_extraction_of,
    feature_file_list,
    resolve_report_data,
)
from .report_inferer import DecodeReports, ReportGenerationInferer, caption_pairs
from .report_loss import GroundedReportLoss, ReportNLLLoss, report_nll
from .report_outputs import EvaluationWriter, ReportWriter
from .slide_inference import AttentionHeatmapWriter, SlideInference, SlideReportWriter
from .training_handlers import BestModelSaver, EpochSummary, GradientClipping, TrainingCheckpoint, metric_score

# The key validation metric (CaptionMetrics) returns a dict of scores; MONAI then skips its own
# best-metric bookkeeping with a warning every epoch. BestModelSaver does that bookkeeping instead.
warnings.filterwarnings("ignore", message="Key metric is not a scalar value")

__all__ = [
    "DEMO_SOURCES",
    "EXTRACTION_FILE",
    "FINDINGS_VOCAB_FILE",
    "AttentionHeatmapWriter",
    "BestModelSaver",
    "DecodeReports",
    "EngineProgressBar",
    "EpochSummary",
    "EvaluationWriter",
    "GradientClipping",
    "GroundedReportLoss",
    "ReportFindingLabeler",
    "TeacherForcingBatches",
    "finding_labeler",
    "MLflowRunExtras",
    "PatchAttention",
    "ReportData",
    "ReportGenerationInferer",
    "ReportNLLLoss",
    "ReportWriter",
    "SlideInference",
    "SlideReportWriter",
    "TrainingCheckpoint",
    "build_vocabulary",
    "caption_pairs",
    "default_key_phrases",
    "feature_dim_of",
    "feature_extraction_of",
    "fit_input_norm",
    "find_mlflow_handler",
    "feature_file_list",
    "load_feature_extraction",
    "load_findings_vocabulary",
    "load_model_config",
    "load_report_model",
    "metric_score",
    "patch_attention",
    "prepare_generation_batch",
    "prepare_teacher_forcing_batch",
    "report_nll",
    "resolve_report_data",
    "save_report_model",
    "unwrap",
]
