"""HistGen-compatible word vocabulary: build, encode, decode, save and load ``vocab.json``.

Conventions (those of the reference tokenizer, kept so released checkpoints work):

- tokens are the words of :func:`scripts.text.clean_report` (``"."`` ends a sentence and is a token);
- the vocabulary is every training word seen at least ``threshold`` times, plus ``<unk>``, sorted
  (Python string order); token ``i`` of the sorted list has id ``i + 1``;
- id 0 is BOS, EOS and PAD at once; ``encode`` gives ``[0] + ids + [0]`` and then truncates to
  ``max_seq_length``, so a truncated report loses its EOS (as in the reference);
- ``len(vocab)`` counts the tokens (``<unk>`` included, id 0 excluded); a network needs ``len(vocab) + 1``
  output logits.

``vocab.json`` looks like::

    {"format": "histgen-vocab", "version": 1, "cleaning": "histgen-v1", "threshold": 10,
     "special_ids": {"0": "BOS, EOS and PAD ..."}, "unk_token": "<unk>",
     "tokens": [".", "08", ..., "<unk>", ...]}     # tokens[i] has id i + 1
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from scripts.atomic_io import atomic_write_text

from .errors import ReportTextError
from .report_cleaning import CLEANING_NAME, clean_report

__all__ = ["BOS_EOS_PAD_ID", "UNK_TOKEN", "VOCAB_FORMAT", "VOCAB_VERSION", "Vocabulary"]

#: The one special id: begin, end and padding of a report.
BOS_EOS_PAD_ID = 0
UNK_TOKEN = "<unk>"
VOCAB_FORMAT = "histgen-vocab"
VOCAB_VERSION = 1
_SENTENCE_END = "."


def _ids_to_ints(ids: Iterable[Any]) -> list[int]:
    """Plain ints from a list, a numpy array or a torch tensor (``.tolist()`` if there is one)."""
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    return [int(i) for i in ids]


class Vocabulary:
    """Word vocabulary with HistGen's id conventions.

    Args:
        tokens: the tokens in id order (``tokens[i]`` has id ``i + 1``); must hold ``<unk>`` once.
        threshold: the minimum count used to build it (recorded in ``vocab.json``; ``None`` if unknown).

    Example:
        >>> vocab = Vocabulary.build(["Carcinoma, grade 2.", "Carcinoma."], threshold=1)
        >>> vocab.tokens
        ['.', '2', '<unk>', 'carcinoma', 'grade']
        >>> vocab.encode("Carcinoma, grade 3!")
        [0, 4, 5, 3, 1, 0]
        >>> vocab.decode([0, 4, 5, 3, 1, 0])
        'carcinoma grade <unk> .'
    """

    def __init__(self, tokens: Sequence[str], threshold: int | None = None) -> None:
        tokens = list(tokens)
        bad = [t for t in tokens if not isinstance(t, str) or not t or t.split() != [t]]
        if bad:
            raise ReportTextError(f"vocabulary tokens must be non-empty words without spaces, got {bad[:5]!r}")
        if len(set(tokens)) != len(tokens):
            dupes = sorted(t for t, c in Counter(tokens).items() if c > 1)
            raise ReportTextError(f"vocabulary has duplicate tokens: {dupes[:10]!r}")
        if UNK_TOKEN not in tokens:
            raise ReportTextError(f"vocabulary has no {UNK_TOKEN!r} token")
        self._tokens = tokens
        self._token_to_id = {token: index + 1 for index, token in enumerate(tokens)}
        self._unk_id = self._token_to_id[UNK_TOKEN]
        self.threshold = threshold

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, reports: Iterable[str], threshold: int) -> Vocabulary:
        """Build from raw training reports: cleaned words with count >= ``threshold``, plus ``<unk>``, sorted."""
        if threshold < 1:
            raise ValueError(f"threshold must be >= 1, got {threshold}")
        counts: Counter[str] = Counter()
        for report in reports:
            counts.update(clean_report(report).split())
        kept = {token for token, count in counts.items() if count >= threshold}
        kept.add(UNK_TOKEN)
        return cls(sorted(kept), threshold=threshold)

    # ------------------------------------------------------------------ lookup
    def __len__(self) -> int:
        """Number of tokens (``<unk>`` included, id 0 excluded)."""
        return len(self._tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._tokens == other._tokens

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens, threshold={self.threshold})"

    @property
    def tokens(self) -> list[str]:
        """The tokens in id order (``tokens[i]`` has id ``i + 1``)."""
        return list(self._tokens)

    @property
    def unk_id(self) -> int:
        return self._unk_id

    def token_to_id(self, token: str) -> int:
        """Id of a token; unknown tokens map to the ``<unk>`` id."""
        return self._token_to_id.get(token, self._unk_id)

    def id_to_token(self, token_id: int) -> str:
        """Token of an id in ``1..len(self)``; id 0 (BOS/EOS/PAD) has no token."""
        token_id = int(token_id)
        if not 1 <= token_id <= len(self._tokens):
            raise ReportTextError(f"token id {token_id} is outside the vocabulary (1..{len(self._tokens)})")
        return self._tokens[token_id - 1]

    # ------------------------------------------------------------------ encode / decode
    def encode(self, report: str, max_seq_length: int | None = None, report_id: str | None = None) -> list[int]:
        """Clean and encode one raw report as ``[0] + ids + [0]``, truncated to ``max_seq_length``.

        Args:
            report: raw report text.
            max_seq_length: keep at most this many ids (BOS and EOS included); a longer report is cut
                and loses its EOS, like the reference. ``None`` keeps everything.
            report_id: named in error messages (usually the slide id).

        Raises:
            ReportTextError: the report is not a string, is empty or whitespace only, or has no word
                left after cleaning (only punctuation: it would clean to ``" ."``).
        """
        label = f"report {report_id!r}" if report_id is not None else "report"
        if not isinstance(report, str):
            raise ReportTextError(f"{label}: expected text, got {type(report).__name__}")
        if not report.strip():
            raise ReportTextError(f"{label}: empty report text")
        tokens = clean_report(report).split()
        if all(token == _SENTENCE_END for token in tokens):
            raise ReportTextError(f"{label}: no words left after cleaning (text was {report[:60]!r})")
        if max_seq_length is not None and max_seq_length < 1:
            raise ValueError(f"max_seq_length must be >= 1, got {max_seq_length}")
        ids = [BOS_EOS_PAD_ID] + [self.token_to_id(t) for t in tokens] + [BOS_EOS_PAD_ID]
        return ids if max_seq_length is None else ids[:max_seq_length]

    def decode(self, ids: Iterable[Any]) -> str:
        """Ids to text: skip one leading BOS (0), stop at the next 0, join tokens with spaces.

        Accepts a list, numpy array or 1-D tensor. ``decode(encode(r))`` equals ``clean_report(r)``
        with its spaces normalised, for reports whose words are all in the vocabulary.
        """
        values = _ids_to_ints(ids)
        if values and values[0] == BOS_EOS_PAD_ID:
            values = values[1:]
        words = []
        for value in values:
            if value == BOS_EOS_PAD_ID:
                break
            words.append(self.id_to_token(value))
        return " ".join(words)

    def decode_batch(self, ids_batch: Iterable[Iterable[Any]]) -> list[str]:
        """:meth:`decode` for each row of a list of id lists or a 2-D tensor ``[B, T]``."""
        return [self.decode(row) for row in ids_batch]

    @property
    def checksum(self) -> str:
        """SHA-256 of the token list in id order (two vocabularies decode alike iff their checksums match)."""
        text = json.dumps(list(self._tokens), ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": VOCAB_FORMAT,
            "version": VOCAB_VERSION,
            "cleaning": CLEANING_NAME,
            "threshold": self.threshold,
            "special_ids": {str(BOS_EOS_PAD_ID): "BOS, EOS and PAD (not listed in tokens)"},
            "unk_token": UNK_TOKEN,
            "id_rule": "tokens[i] has id i + 1; network output size is len(tokens) + 1",
            "tokens": list(self._tokens),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``vocab.json`` atomically (temporary file in the same folder, then ``os.replace``)."""
        text = json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n"
        return atomic_write_text(path, text)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocabulary:
        """Read a ``vocab.json`` written by :meth:`save`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise ReportTextError(f"{path}: vocabulary file not found") from err
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ReportTextError(f"{path}: cannot read vocabulary JSON ({err})") from err
        if not isinstance(data, dict) or data.get("format") != VOCAB_FORMAT:
            raise ReportTextError(
                f"{path}: not a {VOCAB_FORMAT!r} file (format={data.get('format')!r})"
                if isinstance(data, dict)
                else f"{path}: not a {VOCAB_FORMAT!r} file"
            )
        if data.get("version") != VOCAB_VERSION:
            raise ReportTextError(f"{path}: vocabulary version {data.get('version')!r}, expected {VOCAB_VERSION}")
        if data.get("cleaning", CLEANING_NAME) != CLEANING_NAME:
            raise ReportTextError(f"{path}: cleaning {data.get('cleaning')!r}, expected {CLEANING_NAME!r}")
        tokens = data.get("tokens")
        if not isinstance(tokens, list):
            raise ReportTextError(f"{path}: 'tokens' must be a list")
        try:
            return cls(tokens, threshold=data.get("threshold"))
        except ReportTextError as err:
            raise ReportTextError(f"{path}: {err}") from err
