"""Which pyramid level to read patches from for a target physical resolution.

A patch is ``patch_size`` pixels wide *at* ``target_mpp`` (e.g. 256 px at 0.5 um/px = 128 um). The
plan reads from the level whose resolution matches ``target_mpp`` within ``mpp_tolerance``
(relative), else from the next finer level with a larger read size that is resized down to
``patch_size`` afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .slide_errors import ResolutionError


@dataclass(frozen=True)
class ReadPlan:
    """How patches of one slide are read.

    Attributes:
        level: pyramid level read from.
        level_mpp: microns per pixel of that level.
        downsample: that level's downsample relative to level 0.
        target_mpp: requested microns per pixel of the output patches.
        patch_size: output patch side at ``target_mpp`` (pixels).
        read_size: patch side read at ``level`` (pixels); equals ``patch_size`` when a level matched.
        patch_size_level0: patch side in level-0 pixels (grid geometry, tissue fractions).
        step_level0: grid step in level-0 pixels.
        resized: whether read patches are resized from ``read_size`` to ``patch_size``.
    """

    level: int
    level_mpp: float
    downsample: float
    target_mpp: float
    patch_size: int
    read_size: int
    patch_size_level0: int
    step_level0: int
    resized: bool

    def as_dict(self) -> dict:
        """Plain dict (for feature-file attributes)."""
        return asdict(self)


def plan_patch_reading(
    slide_name: str,
    level_downsamples: Sequence[float],
    mpp: float,
    target_mpp: float,
    patch_size: int,
    step: int | None = None,
    mpp_tolerance: float = 0.1,
) -> ReadPlan:
    """Choose the read level and read size for patches of ``patch_size`` px at ``target_mpp``.

    Args:
        slide_name: used in error messages.
        level_downsamples: downsample of each level relative to level 0 (level 0 first, 1.0).
        mpp: microns per pixel at level 0.
        target_mpp: microns per pixel of the output patches (0.5 ~ 20x, 0.25 ~ 40x).
        patch_size: output patch side at ``target_mpp``.
        step: grid step at ``target_mpp`` (defaults to ``patch_size``: no overlap).
        mpp_tolerance: relative tolerance for a level to count as matching ``target_mpp``.

    Raises:
        ResolutionError: ``target_mpp`` is finer than level 0 beyond the tolerance (no upsampling).

    Example:
        A 40x slide (0.25 um/px, levels 1, 4, 16) at ``target_mpp=0.5, patch_size=256`` reads 512 px
        at level 0 and resizes them to 256: ``ReadPlan(level=0, read_size=512, resized=True, ...)``.
    """
    if patch_size <= 0 or target_mpp <= 0:
        raise ValueError(f"{slide_name}: patch_size and target_mpp must be positive, got {patch_size}, {target_mpp}")
    step = patch_size if step is None else int(step)
    if step <= 0:
        raise ValueError(f"{slide_name}: step must be positive, got {step}")
    level_mpps = [mpp * ds for ds in level_downsamples]
    relative_gap = [abs(m - target_mpp) / target_mpp for m in level_mpps]
    matching = [lv for lv, gap in enumerate(relative_gap) if gap <= mpp_tolerance + 1e-9]
    if matching:
        level = min(matching, key=lambda lv: relative_gap[lv])
        ds = level_downsamples[level]
        return ReadPlan(
            level=level,
            level_mpp=level_mpps[level],
            downsample=ds,
            target_mpp=target_mpp,
            patch_size=patch_size,
            read_size=patch_size,
            patch_size_level0=int(round(patch_size * ds)),
            step_level0=int(round(step * ds)),
            resized=False,
        )
    finer = [lv for lv, m in enumerate(level_mpps) if m < target_mpp]
    if not finer:
        raise ResolutionError(
            slide_name,
            f"target_mpp {target_mpp} is finer than level 0 ({level_mpps[0]:.4f} um/px, tolerance "
            f"{mpp_tolerance:.0%}); use a larger target_mpp or mpp_tolerance (patches are never upsampled)",
        )
    level = max(finer, key=lambda lv: level_mpps[lv])  # the coarsest level that is still finer
    ds = level_downsamples[level]
    scale = target_mpp / level_mpps[level]
    read_size = int(round(patch_size * scale))
    return ReadPlan(
        level=level,
        level_mpp=level_mpps[level],
        downsample=ds,
        target_mpp=target_mpp,
        patch_size=patch_size,
        read_size=read_size,
        patch_size_level0=int(round(read_size * ds)),
        step_level0=int(round(step * target_mpp / mpp)),
        resized=True,
    )
