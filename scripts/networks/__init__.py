"""HistGen network modules and the importer of reference checkpoints."""

from .config import COMPAT_MODES, HistGenConfig
from .hierarchical_encoder import EncodedSlide, LocalGlobalEncoder
from .histgen import HistGen

__all__ = ["HistGen", "HistGenConfig", "EncodedSlide", "LocalGlobalEncoder", "COMPAT_MODES"]
