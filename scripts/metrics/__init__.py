"""Metrics: the paper's captioning scores (pycocoevalcap), clinical key-phrase accuracy, rule-based clinical
findings of report text, slide classification scores (scikit-learn) and survival scores (scikit-survival,
lifelines)."""

from .caption_metric import CaptionMetrics, FindingsMetric
from .caption_scores import CAPTION_METRICS, CaptionScorer, caption_scores, result_keys
from .classification import (
    CLASSIFICATION_METRICS,
    ClassificationMetrics,
    classification_scores,
    confusion_matrix_counts,
    plot_confusion_matrix,
)
from .clinical_scoring import REG_WEIGHTS, clinical_scores, reg_score
from .findings_grades import grade_tier, grade_tiers
from .findings_rules import CATEGORICAL_FINDINGS, ReportFindings, extract_findings
from .findings_scores import clinical_keywords, findings_comparison, findings_scores, keyword_jaccard
from .findings_vocabulary import FindingsVocabulary
from .key_phrases import DEFAULT_GROUP, find_key_phrases, key_phrase_accuracy, key_phrase_matches
from .meteor_jar import MeteorError, MeteorJar, find_java, meteor_jar_path
from .selection import COMBINED_SCORES, selection_score
from .survival import (
    CaseOutcomes,
    SurvivalMetrics,
    case_level,
    concordance_index,
    logrank_p_value,
    median_risk_groups,
    plot_kaplan_meier,
)
from .text_embedding import TextEncoder

__all__ = [
    "CAPTION_METRICS",
    "CATEGORICAL_FINDINGS",
    "CLASSIFICATION_METRICS",
    "COMBINED_SCORES",
    "CaseOutcomes",
    "DEFAULT_GROUP",
    "CaptionMetrics",
    "CaptionScorer",
    "ClassificationMetrics",
    "FindingsMetric",
    "FindingsVocabulary",
    "MeteorError",
    "MeteorJar",
    "REG_WEIGHTS",
    "ReportFindings",
    "SurvivalMetrics",
    "TextEncoder",
    "case_level",
    "caption_scores",
    "classification_scores",
    "clinical_keywords",
    "clinical_scores",
    "concordance_index",
    "confusion_matrix_counts",
    "extract_findings",
    "find_java",
    "find_key_phrases",
    "grade_tier",
    "grade_tiers",
    "findings_comparison",
    "findings_scores",
    "key_phrase_accuracy",
    "key_phrase_matches",
    "keyword_jaccard",
    "logrank_p_value",
    "median_risk_groups",
    "meteor_jar_path",
    "plot_confusion_matrix",
    "plot_kaplan_meier",
    "reg_score",
    "result_keys",
    "selection_score",
]
