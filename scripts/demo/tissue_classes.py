"""Tissue classes of the embedded demo, as data.

The demo's synthetic slides (``scripts.demo.synthetic_slides``) and feature bags share these names. Each
diagnosis has one *lesion* component with its own H&E-like texture; every slide also holds the shared
components ``background`` (glass), ``stroma`` and, in tumours, ``necrosis``.

Colours are RGB as a scanner would record them (stain on white light); texture parameters are in
micrometres (``*_um``), per square millimetre (``*_per_mm2``) or area fractions, so that a slide written at
another micrometres-per-pixel keeps the same tissue scale. The renderers that turn these numbers into
pixels live in ``scripts.demo.tissue_textures``.

Example:
    >>> from scripts.demo.tissue_classes import DIAGNOSIS_CLASSES, COMPONENTS
    >>> DIAGNOSIS_CLASSES
    ('adenocarcinoma', 'squamous cell carcinoma', 'lymphoma', 'normal')
    >>> COMPONENTS["lymphoma"].pattern
    'lymphoid'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

RGB = tuple[int, int, int]

__all__ = [
    "COMPONENTS",
    "COMPONENT_IDS",
    "COMPONENT_NAMES",
    "DIAGNOSES",
    "DIAGNOSIS_CLASSES",
    "GLASS_RGB",
    "PEN_COLOURS",
    "DiagnosisSpec",
    "TissueComponent",
]


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class TissueComponent:
    """One tissue texture.

    Attributes:
        name: component name (a diagnosis name for lesion components).
        pattern: which renderer draws it (a key of ``tissue_textures.PATTERN_RENDERERS``).
        palette: element name -> RGB colour, e.g. ``{"nucleus": (70, 45, 125), ...}``.
        params: texture parameters (sizes in micrometres, densities per mm^2, fractions in [0, 1]).
        description: a short phrase a report template can use.
    """

    name: str
    pattern: str
    palette: Mapping[str, RGB] = field(default_factory=dict)
    params: Mapping[str, float] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class DiagnosisSpec:
    """How a slide of one diagnosis is laid out.

    Attributes:
        name: the diagnosis (also the name of its lesion component).
        necrosis_fraction: share of the lesion area that is necrotic (0 for none).
        tumour_fraction_range: (low, high) share of the tissue covered by the lesion, used by
            ``make_demo_slides`` when it draws a slide's ``tumour_fraction``.
        malignant: whether the lesion is a malignancy.
    """

    name: str
    necrosis_fraction: float
    tumour_fraction_range: tuple[float, float]
    malignant: bool


DIAGNOSIS_CLASSES: tuple[str, ...] = ("adenocarcinoma", "squamous cell carcinoma", "lymphoma", "normal")

DIAGNOSES: Mapping[str, DiagnosisSpec] = _frozen(
    {
        "adenocarcinoma": DiagnosisSpec("adenocarcinoma", 0.12, (0.35, 0.8), True),
        "squamous cell carcinoma": DiagnosisSpec("squamous cell carcinoma", 0.15, (0.35, 0.8), True),
        "lymphoma": DiagnosisSpec("lymphoma", 0.05, (0.45, 0.9), True),
        "normal": DiagnosisSpec("normal", 0.0, (0.3, 0.7), False),
    }
)

GLASS_RGB: RGB = (242, 241, 244)

_NUCLEUS: RGB = (72, 46, 128)  # haematoxylin-dense nucleus
_COLLAGEN: RGB = (232, 150, 190)  # eosinophilic collagen
_SPACE: RGB = (247, 236, 244)  # empty/retracted space inside tissue

COMPONENTS: Mapping[str, TissueComponent] = _frozen(
    {
        "background": TissueComponent(
            "background",
            "glass",
            _frozen({"glass": GLASS_RGB}),
            _frozen({"grain": 2.0}),
            "no tissue",
        ),
        "stroma": TissueComponent(
            "stroma",
            "fibrous",
            _frozen({"matrix": _COLLAGEN, "nucleus": _NUCLEUS, "space": _SPACE, "lymphocyte": (58, 40, 120)}),
            _frozen(
                {
                    "fibre_width_um": 1.6,
                    "fibre_length_um": 22.0,
                    "fibre_coverage": 0.72,
                    "spindle_per_mm2": 900.0,
                    "spindle_length_um": 12.0,
                    "spindle_width_um": 2.2,
                    "lymphocyte_per_mm2": 350.0,
                    "lymphocyte_radius_um": 3.0,
                }
            ),
            "dense fibrous stroma with scattered fibroblasts and lymphocytes",
        ),
        "necrosis": TissueComponent(
            "necrosis",
            "necrotic",
            _frozen({"matrix": (236, 182, 204), "debris": (88, 58, 130), "ghost": (214, 150, 186)}),
            _frozen(
                {
                    "debris_per_mm2": 9000.0,
                    "debris_radius_um": 0.9,
                    "debris_cluster_um": 9.0,
                    "ghost_cell_um": 14.0,
                    "granularity_um": 3.0,
                }
            ),
            "tumour necrosis with karyorrhectic debris",
        ),
        "adenocarcinoma": TissueComponent(
            "adenocarcinoma",
            "glandular",
            _frozen(
                {
                    "matrix": (228, 138, 182),
                    "epithelium": (196, 118, 178),
                    "nucleus": (62, 38, 118),
                    "lumen": (249, 240, 246),
                }
            ),
            _frozen(
                {
                    "gland_radius_min_um": 18.0,
                    "gland_radius_max_um": 42.0,
                    "gland_coverage": 0.62,
                    "epithelium_thickness_um": 11.0,
                    "nucleus_spacing_um": 5.0,
                    "nucleus_length_um": 8.0,
                    "nucleus_width_um": 3.6,
                    "fibre_width_um": 1.6,
                }
            ),
            "crowded irregular neoplastic glands with open lumina",
        ),
        "squamous cell carcinoma": TissueComponent(
            "squamous cell carcinoma",
            "squamous",
            _frozen(
                {
                    "cytoplasm": (226, 150, 186),
                    "border": (178, 104, 150),
                    "nucleus": (84, 52, 134),
                    "keratin": (236, 112, 128),
                    "matrix": _COLLAGEN,
                    "space": _SPACE,
                }
            ),
            _frozen(
                {
                    "cell_size_um": 15.0,
                    "nucleus_radius_um": 4.2,
                    "pearl_radius_min_um": 22.0,
                    "pearl_radius_max_um": 45.0,
                    "pearl_per_mm2": 70.0,
                    "stroma_band_fraction": 0.16,
                }
            ),
            "sheets of polygonal squamous cells with keratin pearls",
        ),
        "lymphoma": TissueComponent(
            "lymphoma",
            "lymphoid",
            _frozen({"cytoplasm": (214, 184, 220), "nucleus": (50, 40, 118), "large_nucleus": (104, 78, 160)}),
            _frozen(
                {
                    "nucleus_radius_um": 3.4,
                    "cell_spacing_um": 7.4,
                    "large_cell_fraction": 0.08,
                    "large_nucleus_radius_um": 5.6,
                }
            ),
            "diffuse sheets of small round blue lymphoid cells",
        ),
        "normal": TissueComponent(
            "normal",
            "fibroadipose",
            _frozen(
                {"matrix": (234, 166, 204), "nucleus": _NUCLEUS, "space": (248, 240, 246), "membrane": (220, 140, 182)}
            ),
            _frozen(
                {
                    "adipocyte_radius_min_um": 14.0,
                    "adipocyte_radius_max_um": 30.0,
                    "adipocyte_coverage": 0.2,
                    "fibre_width_um": 1.4,
                    "fibre_length_um": 30.0,
                    "fibre_coverage": 0.7,
                    "spindle_per_mm2": 260.0,
                    "spindle_length_um": 13.0,
                    "spindle_width_um": 2.0,
                }
            ),
            "benign fibrous tissue with wavy collagen strands and scattered fat cells",
        ),
    }
)

#: Label ids used in a slide's label map: background 0, stroma 1, necrosis 2, then the lesion components.
COMPONENT_NAMES: tuple[str, ...] = ("background", "stroma", "necrosis", *DIAGNOSIS_CLASSES)
COMPONENT_IDS: Mapping[str, int] = _frozen({name: i for i, name in enumerate(COMPONENT_NAMES)})

#: Marker pen inks (RGB of a dense stroke on white).
PEN_COLOURS: Mapping[str, RGB] = _frozen({"blue": (38, 72, 172), "green": (36, 136, 84), "black": (46, 44, 56)})
