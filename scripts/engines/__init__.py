"""Ignite engines' pieces for the report bundle: batches, loss, decoding inferer, handlers, data setup."""

import warnings

from scripts import quiet_cucim  # noqa: F401  (first: cuCIM's start-up lines stay quiet)

from .feature_checks import CHECKED_KEYS, FeatureMismatchError, check_feature_files
from .finding_phrases import build_phrase_rules, finding_phrase_rules, with_finding_phrases
from .grounding import ReportFindingLabeler, TeacherForcingBatches, finding_labeler
from .input_normalisation import fit_input_norm
from .mlflow_extras import MLflowRunExtras, find_mlflow_handler
from .model_files import (
    DEFAULT_BEAM_SIZE,
    DEFAULT_EXTRACTION,
    EXTRACTION_FILE,
    FINDINGS_VOCAB_FILE,
    ModelNotFoundError,
    VocabularyMismatchError,
    decoding_settings,
    extraction_settings,
    load_feature_extraction,
    load_findings_vocabulary,
    load_model_config,
    load_model_vocabulary,
    load_report_model,
    require_model_dir,
    save_report_model,
    unwrap,
)
from .model_provenance import (
    PROVENANCE_FILE,
    RESEARCH_NOTICE,
    SYNTHETIC_WARNING,
    load_provenance,
    log_model_provenance,
    output_notice,
    provenance_summary,
    training_provenance,
)
from .patch_attention import PatchAttention, patch_attention
from .progress import EngineProgressBar
from .report_batches import prepare_generation_batch, prepare_teacher_forcing_batch
from .report_data import (
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
from .slide_inference import AttentionHeatmapWriter, SlideInference, SlideReportWriter, slide_feature_extractor
from .training_handlers import (
    BestModelSaver,
    CheckpointError,
    EpochSummary,
    GradientClipping,
    SelectionEarlyStop,
    TrainingCheckpoint,
    metric_score,
    read_checkpoint,
    selection_start_epoch,
)
from .weight_averaging import WeightAveraging

# The key validation metric (CaptionMetrics) returns a dict of scores; MONAI then skips its own
# best-metric bookkeeping with a warning every epoch. BestModelSaver does that bookkeeping instead.
warnings.filterwarnings("ignore", message="Key metric is not a scalar value")

__all__ = [
    "CHECKED_KEYS",
    "PROVENANCE_FILE",
    "RESEARCH_NOTICE",
    "SYNTHETIC_WARNING",
    "FeatureMismatchError",
    "ModelNotFoundError",
    "WeightAveraging",
    "check_feature_files",
    "load_provenance",
    "log_model_provenance",
    "output_notice",
    "provenance_summary",
    "require_model_dir",
    "training_provenance",
    "DEFAULT_BEAM_SIZE",
    "DEFAULT_EXTRACTION",
    "EXTRACTION_FILE",
    "FINDINGS_VOCAB_FILE",
    "AttentionHeatmapWriter",
    "BestModelSaver",
    "CheckpointError",
    "DecodeReports",
    "EngineProgressBar",
    "EpochSummary",
    "EvaluationWriter",
    "GradientClipping",
    "GroundedReportLoss",
    "ReportFindingLabeler",
    "TeacherForcingBatches",
    "build_phrase_rules",
    "finding_labeler",
    "finding_phrase_rules",
    "with_finding_phrases",
    "MLflowRunExtras",
    "PatchAttention",
    "ReportData",
    "ReportGenerationInferer",
    "ReportNLLLoss",
    "ReportWriter",
    "SelectionEarlyStop",
    "SlideInference",
    "SlideReportWriter",
    "TrainingCheckpoint",
    "VocabularyMismatchError",
    "build_vocabulary",
    "caption_pairs",
    "decoding_settings",
    "extraction_settings",
    "read_checkpoint",
    "default_key_phrases",
    "feature_dim_of",
    "feature_extraction_of",
    "fit_input_norm",
    "find_mlflow_handler",
    "feature_file_list",
    "load_feature_extraction",
    "load_findings_vocabulary",
    "load_model_config",
    "load_model_vocabulary",
    "load_report_model",
    "metric_score",
    "patch_attention",
    "prepare_generation_batch",
    "prepare_teacher_forcing_batch",
    "report_nll",
    "resolve_report_data",
    "save_report_model",
    "selection_start_epoch",
    "slide_feature_extractor",
    "unwrap",
]
