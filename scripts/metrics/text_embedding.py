"""Sentence embeddings of reports from a LOCAL text-encoder checkpoint (never downloaded).

Two folder formats are read by :meth:`TextEncoder.load`:

1. **Hugging Face** (a folder with ``config.json`` and tokenizer files, as ``save_pretrained`` writes):
   loaded with ``transformers`` ``AutoModel``/``AutoTokenizer`` and ``local_files_only=True``; the
   embedding is the attention-masked mean of the last hidden states (inputs truncated to 512 tokens).
   Needs the ``transformers`` package, which the bundle does not require: without it this format fails with
   a message saying so.
2. **Plain word-embedding table** (``histgen-word-embedding-v1``, no extra package), two files:

   - ``text_encoder.json``: ``{"format": "histgen-word-embedding-v1", "words": ["carcinoma", ...]}``;
   - ``text_encoder.pt``: ``{"embeddings": FloatTensor [len(words), D]}`` (plain tensors, read with
     ``torch.load(weights_only=True)``).

   A text is cleaned the HistGen way (:func:`scripts.text.clean_report`) and split into words; its
   embedding is the mean of the rows of its known words (a zero vector when none is known). Export any
   word-vector model (or a transformer's input embeddings) to this format to use it without ``transformers``.

Example:
    >>> encoder = TextEncoder.load("encoders/pubmedbert")  # doctest: +SKIP
    >>> encoder.encode(["invasive ductal carcinoma ."]).shape  # doctest: +SKIP
    torch.Size([1, 768])
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from scripts.text import clean_report

__all__ = ["WORD_EMBEDDING_FORMAT", "TextEncoder", "cosine_similarities", "reg_rescale"]

WORD_EMBEDDING_FORMAT = "histgen-word-embedding-v1"
_PLAIN_CONFIG = "text_encoder.json"
_PLAIN_WEIGHTS = "text_encoder.pt"


class TextEncoder:
    """Mean-pooled sentence embeddings from a local checkpoint folder (see the module docstring).

    Use :meth:`load`; ``encode(texts)`` returns ``[N, D]`` float tensors.
    """

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        self.kind = kind
        self._words: dict[str, int] = {}
        self._table: torch.Tensor | None = None
        self._model = None
        self._tokenizer = None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TextEncoder:
        """Read a checkpoint folder in either format; errors name the folder and what is missing."""
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"text encoder {folder}: not a folder (give a local checkpoint folder)")
        if (folder / _PLAIN_CONFIG).is_file():
            return cls._load_plain(folder)
        if (folder / "config.json").is_file():
            return cls._load_transformers(folder)
        raise FileNotFoundError(
            f"text encoder {folder}: neither {_PLAIN_CONFIG} (plain word-embedding format) nor config.json "
            "(Hugging Face format) found"
        )

    @classmethod
    def _load_plain(cls, folder: Path) -> TextEncoder:
        config_path = folder / _PLAIN_CONFIG
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise ValueError(f"{config_path}: not valid JSON ({err})") from err
        if not isinstance(config, dict) or config.get("format") != WORD_EMBEDDING_FORMAT:
            raise ValueError(f"{config_path}: expected format {WORD_EMBEDDING_FORMAT!r}")
        words = config.get("words")
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words) or not words:
            raise ValueError(f"{config_path}: 'words' must be a non-empty list of strings")
        weights_path = folder / _PLAIN_WEIGHTS
        if not weights_path.is_file():
            raise FileNotFoundError(f"{weights_path}: word-embedding weights not found")
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        table = state.get("embeddings") if isinstance(state, dict) else None
        if not isinstance(table, torch.Tensor) or table.ndim != 2 or table.shape[0] != len(words):
            raise ValueError(
                f"{weights_path}: expected {{'embeddings': tensor [{len(words)}, D]}}, got "
                f"{getattr(table, 'shape', type(table).__name__)}"
            )
        encoder = cls(folder, "plain")
        encoder._words = {word: i for i, word in enumerate(words)}
        encoder._table = table.float()
        return encoder

    @classmethod
    def _load_transformers(cls, folder: Path) -> TextEncoder:
        try:
            import transformers
        except ImportError as err:
            raise ImportError(
                f"text encoder {folder} is a Hugging Face checkpoint, but the transformers package is not "
                f"installed; install it or export the encoder to the plain {WORD_EMBEDDING_FORMAT} format"
            ) from err
        encoder = cls(folder, "transformers")
        encoder._tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        encoder._model = transformers.AutoModel.from_pretrained(folder, local_files_only=True).eval()
        return encoder

    @property
    def dim(self) -> int:
        if self._table is not None:
            return int(self._table.shape[1])
        return int(self._model.config.hidden_size)  # type: ignore[union-attr]

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 32) -> torch.Tensor:
        """``[len(texts), D]`` mean-pooled embeddings."""
        if self._table is not None:
            rows = []
            for text in texts:
                ids = [self._words[w] for w in clean_report(text).split() if w in self._words]
                rows.append(self._table[ids].mean(0) if ids else torch.zeros(self._table.shape[1]))
            return torch.stack(rows) if rows else torch.zeros(0, self.dim)
        chunks = []
        for start in range(0, len(texts), batch_size):
            batch = self._tokenizer(  # type: ignore[misc]
                list(texts[start : start + batch_size]), padding=True, truncation=True, max_length=512,
                return_tensors="pt",
            )
            hidden = self._model(**batch).last_hidden_state  # type: ignore[misc]
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            chunks.append((hidden * mask).sum(1) / mask.sum(1).clamp(min=1))
        return torch.cat(chunks) if chunks else torch.zeros(0, self.dim)


def cosine_similarities(encoder: TextEncoder, generated: Sequence[str], references: Sequence[str]) -> list[float]:
    """Cosine similarity of each generated report's embedding with its reference's (0 for a zero vector)."""
    if len(generated) != len(references):
        raise ValueError(f"{len(generated)} generated texts but {len(references)} references")
    a, b = encoder.encode(list(generated)), encoder.encode(list(references))
    return torch.nn.functional.cosine_similarity(a, b, dim=1, eps=1e-12).tolist()


def reg_rescale(similarity: float) -> float:
    """The REG 2025 challenge's rescaling: below 0.5 counts 0, the rest maps [0.5, 1] to [0, 1]."""
    return max(0.0, (similarity - 0.5) / 0.5)
