"""HistGen network: the slide encoder, the report decoder, the model, and the importer of reference checkpoints."""

from .bundle_net import HistGenBundleNet, channel_last_bags
from .config import COMPAT_MODES, HistGenConfig, NetworkBehaviour
from .hierarchical_encoder import LocalGlobalEncoder
from .histgen import HistGen
from .report_decoder import DecoderCache, ReportDecoder, select_hypotheses
from .slide_encoder import SlideEncoder, SlideEncoding

__all__ = ["COMPAT_MODES", "DecoderCache", "HistGen", "HistGenBundleNet", "HistGenConfig", "LocalGlobalEncoder",
           "NetworkBehaviour", "ReportDecoder", "SlideEncoder", "SlideEncoding", "channel_last_bags",
           "select_hypotheses"]
