"""Data: HistGen annotations, per-slide feature files, bag datasets and padded batches."""

from scripts import quiet_cucim  # noqa: F401  (first: cuCIM's start-up lines stay quiet)

from .annotation import HISTGEN_SPLITS, load_annotation, require_slides_in, vocabulary_from_annotation
from .bag_datasets import SKIPPED_KEY, FeatureBagDataset, ReportBagDataset
from .collate import COORD_PAD, collate_bags
from .errors import AnnotationError, BagDataError
from .feature_files import (
    FEATURE_SUFFIXES,
    FeatureBag,
    FeatureFileInfo,
    find_feature_file,
    read_feature_attrs,
    read_feature_file,
    read_feature_header,
    write_feature_file_h5,
)
from .produced import DatasetProducer, ProducedDataset

__all__ = [
    "COORD_PAD",
    "FEATURE_SUFFIXES",
    "HISTGEN_SPLITS",
    "SKIPPED_KEY",
    "AnnotationError",
    "BagDataError",
    "DatasetProducer",
    "FeatureBag",
    "FeatureBagDataset",
    "FeatureFileInfo",
    "ProducedDataset",
    "ReportBagDataset",
    "collate_bags",
    "find_feature_file",
    "load_annotation",
    "vocabulary_from_annotation",
    "require_slides_in",
    "read_feature_attrs",
    "read_feature_file",
    "read_feature_header",
    "write_feature_file_h5",
]
