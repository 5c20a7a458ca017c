"""The embedded demo: a producer of SYNTHETIC datasets (slides, features, annotation, label tables).

The workflows never import this package; a bundle config declares :class:`DemoProducer` as a component and the
workflow calls it when the user gives no data (see :mod:`scripts.demo.producer`).
"""

# The producer and the feature-bag demo import torch (through scripts.data) and the slide demo scipy/tifffile:
# loaded on first use, so that writing slides stays light (a slide-writer process holds no torch) and
# ``python -m scripts.demo.<module>`` runs free of runpy warnings.
from .reports import DEMO_KEY_PHRASES, DIAGNOSIS_PHRASES, diagnoses_in_text, make_report, share_band

_LAZY = {
    "DEMO_FOLDER": "producer",
    "DEMO_TASKS": "producer",
    "DemoProducer": "producer",
    "DemoDataset": "feature_bags",
    "make_demo_dataset": "feature_bags",
    "SlideDemoDataset": "slide_dataset",
    "SlideDemoParams": "slide_dataset",
    "make_slide_demo_dataset": "slide_dataset",
}

__all__ = [
    "DEMO_FOLDER",
    "DEMO_KEY_PHRASES",
    "DEMO_TASKS",
    "DIAGNOSIS_PHRASES",
    "DemoDataset",
    "DemoProducer",
    "SlideDemoDataset",
    "SlideDemoParams",
    "diagnoses_in_text",
    "make_demo_dataset",
    "make_report",
    "make_slide_demo_dataset",
    "share_band",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
