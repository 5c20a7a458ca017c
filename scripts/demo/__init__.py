"""The embedded demo: synthetic slides, synthetic feature bags and the reports tied to them."""

# Feature-bag demo (scripts.demo.feature_bags, scripts.demo.reports). feature_bags imports torch, so it is
# loaded on first use; that also keeps ``python -m scripts.demo.feature_bags`` free of runpy warnings.
from .reports import DEMO_KEY_PHRASES, DIAGNOSIS_PHRASES, diagnoses_in_text, make_report, share_band

_LAZY_FEATURE_BAG_EXPORTS = ("DemoDataset", "make_demo_dataset")

__all__ = [
    "DEMO_KEY_PHRASES",
    "DIAGNOSIS_PHRASES",
    "DemoDataset",
    "diagnoses_in_text",
    "make_demo_dataset",
    "make_report",
    "share_band",
]


def __getattr__(name: str):
    if name in _LAZY_FEATURE_BAG_EXPORTS:
        from . import feature_bags

        return getattr(feature_bags, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
