"""Exceptions raised for one slide; each message starts with the slide's name.

The feature-extraction run catches :class:`SlideError` per slide, records ``str(error)`` in the
manifest and goes on with the next slide.
"""

from __future__ import annotations


class SlideError(Exception):
    """A problem with one slide. ``str(error)`` reads ``"<slide>: <problem>"``.

    Args:
        slide: the slide's file name (or id) the problem belongs to.
        problem: what was expected and what was found.
    """

    def __init__(self, slide: str, problem: str):
        super().__init__(f"{slide}: {problem}")
        self.slide = slide
        self.problem = problem

    def __reduce__(self):  # keep the two-argument form picklable (DataLoader workers)
        return (type(self), (self.slide, self.problem))


class SlideOpenError(SlideError):
    """The slide file is missing, truncated or no backend can open it."""


class SlideReadError(SlideError):
    """The slide opened but pixel data could not be decoded."""


class MissingMppError(SlideError):
    """The slide carries no usable microns-per-pixel metadata and no ``assume_mpp`` was given."""


class ResolutionError(SlideError):
    """The requested target resolution cannot be served by the slide (e.g. finer than level 0)."""


class NoTissueError(SlideError):
    """The tissue mask of the slide is empty, or no patch reaches the tissue fraction."""
