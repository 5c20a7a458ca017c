"""Grade tiers: one value for the grades that name the same tier in different words.

Reports state the same histologic grade in several systems and wordings, and which one a report uses
depends on the writer, not on the slide: "Nottingham grade 2 of 3", "G2", "WHO/ISUP grade 2", "Fuhrman
nuclear grade 2", "moderately differentiated". :func:`~scripts.metrics.extract_findings` keeps the system
(``"grade 2"``, ``"isup 2"``, ``"fuhrman 2"``, ``"moderately differentiated"``) so outputs say what the
report wrote; :func:`grade_tier` maps them onto one tier ``"grade N"`` for what must not depend on the
wording:

- scoring (:func:`~scripts.metrics.findings_scores`, ``eval/findings.csv``): a generated "Fuhrman grade 2"
  against a reference "ISUP grade 2" states the right tier;
- the finding heads' classes (:func:`scripts.engines.finding_labeler`): one class per tier, so a head
  does not have to guess the report writer's system, and finding-consistent decoding does not ban the
  right tier written in another system.

Tiers: ``"grade N"``, ``"isup N"``, ``"fuhrman N"`` -> ``"grade N"``; differentiation words as the AJCC
G1-G4 scale (well -> 1, moderately -> 2, poorly -> 3, undifferentiated -> 4). Gleason scores, ``"high
grade"``/``"low grade"`` and mixed differentiation ("moderately to poorly differentiated") are kept as
written: they are no single tier of that scale.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["DIFFERENTIATION_TIERS", "grade_tier", "grade_tiers"]

#: AJCC histologic grade of each differentiation word.
DIFFERENTIATION_TIERS: dict[str, int] = {
    "well differentiated": 1,
    "moderately differentiated": 2,
    "poorly differentiated": 3,
    "undifferentiated": 4,
}

_NUMBERED = re.compile(r"^(?:grade|isup|fuhrman) ([1-5])$")


def grade_tier(grade: str | None) -> str | None:
    """The tier of an extracted grade value (see the module docstring); None stays None.

    Example:
        >>> [grade_tier(g) for g in ("fuhrman 2", "isup 2", "moderately differentiated", "gleason 7", None)]
        ['grade 2', 'grade 2', 'grade 2', 'gleason 7', None]
    """
    if grade is None:
        return None
    numbered = _NUMBERED.match(grade)
    if numbered:
        return f"grade {numbered.group(1)}"
    tier = DIFFERENTIATION_TIERS.get(grade)
    return f"grade {tier}" if tier is not None else grade


def grade_tiers(grades: Iterable[str]) -> tuple[str, ...]:
    """The distinct tiers of ``grades``, in the order of their first occurrence.

    Example:
        >>> grade_tiers(["fuhrman 1", "fuhrman 2", "grade 1", "well differentiated", "gleason 7"])
        ('grade 1', 'grade 2', 'gleason 7')
    """
    seen: dict[str, None] = {}
    for grade in grades:
        tier = grade_tier(grade)
        if tier is not None:
            seen.setdefault(tier, None)
    return tuple(seen)
