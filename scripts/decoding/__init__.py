"""Decoding of report token ids from an encoded slide: beam search and greedy search."""

from .beam_search import beam_search
from .greedy import greedy_search
from .stepper import CachedStepper, FullPrefixStepper, Stepper

__all__ = ["beam_search", "greedy_search", "Stepper", "CachedStepper", "FullPrefixStepper"]
