"""Metrics: the paper's captioning scores (pycocoevalcap), clinical key-phrase accuracy, rule-based clinical
findings of report text, slide classification scores (scikit-learn) and survival scores (scikit-survival,
lifelines)."""

from .caption_metric import CaptionMetrics
from .caption_scores import CAPTION_METRICS, CaptionScorer, caption_scores, result_keys
from .classification import (
    CLASSIFICATION_METRICS,
    ClassificationMetrics,
    classification_scores,
    confusion_matrix_counts,
    plot_confusion_matrix,
)
from .findings_rules import CATEGORICAL_FINDINGS, ReportFindings, extract_findings
from .findings_vocabulary import FindingsVocabulary
from .key_phrases import DEFAULT_GROUP, find_key_phrases, key_phrase_accuracy, key_phrase_matches
from .meteor_jar import MeteorError, MeteorJar, find_java, meteor_jar_path
from .survival import (
    CaseOutcomes,
    SurvivalMetrics,
    case_level,
    concordance_index,
    logrank_p_value,
    median_risk_groups,
    plot_kaplan_meier,
)

__all__ = [
    "CAPTION_METRICS",
    "CATEGORICAL_FINDINGS",
    "CLASSIFICATION_METRICS",
    "CaseOutcomes",
    "DEFAULT_GROUP",
    "CaptionMetrics",
    "CaptionScorer",
    "ClassificationMetrics",
    "FindingsVocabulary",
    "MeteorError",
    "MeteorJar",
    "ReportFindings",
    "SurvivalMetrics",
    "case_level",
    "caption_scores",
    "classification_scores",
    "concordance_index",
    "confusion_matrix_counts",
    "extract_findings",
    "find_java",
    "find_key_phrases",
    "key_phrase_accuracy",
    "key_phrase_matches",
    "logrank_p_value",
    "median_risk_groups",
    "meteor_jar_path",
    "plot_confusion_matrix",
    "plot_kaplan_meier",
    "result_keys",
]
