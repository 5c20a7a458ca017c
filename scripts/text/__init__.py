"""Report text: HistGen-compatible cleaning, vocabulary, encoding and decoding."""

from .errors import ReportTextError
from .report_cleaning import CLEANING_NAME, clean_report, report_tokens
from .report_io import read_report_text
from .vocabulary import BOS_EOS_PAD_ID, UNK_TOKEN, VOCAB_FORMAT, VOCAB_VERSION, Vocabulary

__all__ = [
    "BOS_EOS_PAD_ID",
    "CLEANING_NAME",
    "UNK_TOKEN",
    "VOCAB_FORMAT",
    "VOCAB_VERSION",
    "ReportTextError",
    "Vocabulary",
    "clean_report",
    "read_report_text",
    "report_tokens",
]
