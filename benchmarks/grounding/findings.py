"""What a grounding benchmark's reports state: the findings, their values and the diagnoses' names.

Five findings per report (:data:`FINDINGS`):

- ``diagnosis``: one of the benchmark's diagnoses (:data:`DIAGNOSES`, real histologic type names);
- ``grade``: ``"1"``, ``"2"`` or ``"3"``, written in the diagnosis's grading system (Nottingham for breast,
  WHO/ISUP or Fuhrman for kidney, differentiation words elsewhere);
- ``margin``: ``"positive"`` or ``"negative"``;
- ``lymphovascular_invasion``: ``"present"`` or ``"absent"``;
- ``lymph_nodes``: ``"positive"`` or ``"negative"`` (at least one node with metastasis or none), written
  with counts such as "2 of 15 lymph nodes".

The first four are drawn into the slide's patch features (:mod:`benchmarks.grounding.bags`);
``lymph_nodes`` is not (the nodes are not on the slide), so no model can do better than the majority there.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "DIAGNOSES",
    "DIAGNOSIS_ORDER",
    "FINDINGS",
    "FINDING_VALUES",
    "SLIDE_FINDINGS",
    "DiagnosisInfo",
    "finding_values",
]

#: Findings in table order; ``diagnosis`` values depend on the benchmark.
FINDINGS: tuple[str, ...] = ("diagnosis", "grade", "margin", "lymphovascular_invasion", "lymph_nodes")

#: Findings drawn into the features (the report model can read them from the slide).
SLIDE_FINDINGS: tuple[str, ...] = ("diagnosis", "grade", "margin", "lymphovascular_invasion")

#: Values of the findings other than ``diagnosis``.
FINDING_VALUES: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "grade": ("1", "2", "3"),
        "margin": ("negative", "positive"),
        "lymphovascular_invasion": ("absent", "present"),
        "lymph_nodes": ("negative", "positive"),
    }
)


@dataclass(frozen=True)
class DiagnosisInfo:
    """How one diagnosis is written.

    Attributes:
        name: the canonical name (the value in ``labels.csv``; lower case).
        synonyms: other names a pathologist writes for it (reports use the name or one of these).
        organ: the organ, for the specimen line.
        specimen: procedures for the specimen line ("lumpectomy", "radical nephrectomy", ...).
        grading: ``"nottingham"``, ``"isup"`` or ``"differentiation"``.
    """

    name: str
    synonyms: tuple[str, ...]
    organ: str
    specimen: tuple[str, ...]
    grading: str


_BREAST = ("lumpectomy", "partial mastectomy", "total mastectomy")
_KIDNEY = ("radical nephrectomy", "partial nephrectomy")
_LUNG = ("lobectomy", "wedge resection")

#: Every diagnosis a benchmark can use, in the order benchmarks take them (the first k).
DIAGNOSIS_ORDER: tuple[str, ...] = (
    "invasive ductal carcinoma",
    "invasive lobular carcinoma",
    "clear cell renal cell carcinoma",
    "papillary renal cell carcinoma",
    "squamous cell carcinoma",
    "adenocarcinoma",
    "mucinous carcinoma",
    "hepatocellular carcinoma",
)

DIAGNOSES: MappingProxyType[str, DiagnosisInfo] = MappingProxyType(
    {
        info.name: info
        for info in (
            DiagnosisInfo("invasive ductal carcinoma", ("infiltrating ductal carcinoma",), "breast", _BREAST,
                          "nottingham"),
            DiagnosisInfo("invasive lobular carcinoma", ("infiltrating lobular carcinoma",), "breast", _BREAST,
                          "nottingham"),
            DiagnosisInfo("mucinous carcinoma", ("colloid carcinoma",), "breast", _BREAST, "nottingham"),
            DiagnosisInfo("clear cell renal cell carcinoma", ("renal cell carcinoma, clear cell type",), "kidney",
                          _KIDNEY, "isup"),
            DiagnosisInfo("papillary renal cell carcinoma", ("renal cell carcinoma, papillary type",), "kidney",
                          _KIDNEY, "isup"),
            DiagnosisInfo("squamous cell carcinoma", ("keratinizing squamous cell carcinoma",), "lung", _LUNG,
                          "differentiation"),
            DiagnosisInfo("adenocarcinoma", ("invasive adenocarcinoma",), "lung", _LUNG, "differentiation"),
            DiagnosisInfo("hepatocellular carcinoma", ("hepatocellular carcinoma, trabecular type",), "liver",
                          ("partial hepatectomy", "segmentectomy"), "differentiation"),
        )
    }
)

if tuple(sorted(DIAGNOSES)) != tuple(sorted(DIAGNOSIS_ORDER)):  # the two tables must agree
    raise ImportError("benchmarks.grounding.findings: DIAGNOSES and DIAGNOSIS_ORDER list different names")


def finding_values(finding: str, diagnoses: tuple[str, ...]) -> tuple[str, ...]:
    """The values ``finding`` takes in a benchmark with ``diagnoses`` (its classes, in order)."""
    if finding == "diagnosis":
        return tuple(diagnoses)
    if finding not in FINDING_VALUES:
        raise KeyError(f"unknown finding {finding!r}; expected one of {FINDINGS}")
    return FINDING_VALUES[finding]
