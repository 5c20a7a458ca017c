"""Metrics: the paper's captioning scores (pycocoevalcap) and clinical key-phrase accuracy."""

from .caption_metric import CaptionMetrics
from .caption_scores import CAPTION_METRICS, CaptionScorer, caption_scores, result_keys
from .key_phrases import DEFAULT_GROUP, find_key_phrases, key_phrase_accuracy, key_phrase_matches
from .meteor_jar import MeteorError, MeteorJar, find_java, meteor_jar_path

__all__ = [
    "CAPTION_METRICS",
    "DEFAULT_GROUP",
    "CaptionMetrics",
    "CaptionScorer",
    "MeteorError",
    "MeteorJar",
    "caption_scores",
    "find_java",
    "find_key_phrases",
    "key_phrase_accuracy",
    "key_phrase_matches",
    "meteor_jar_path",
    "result_keys",
]
