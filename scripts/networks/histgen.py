"""HistGen: bag of patch features -> pathology report."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .config import HistGenConfig
from .context_memory import CrossModalMemory
from .finding_heads import SlideFindingHeads
from .hierarchical_encoder import EncodedSlide, LocalGlobalEncoder
from .layers import MultiHeadAttention
from .report_decoder import DecoderCache, ReportDecoder

logger = logging.getLogger("histgen.network")


class ReportScores(NamedTuple):
    logprobs: torch.Tensor
    finding_logits: torch.Tensor


class HistGen(nn.Module):
    """HistGen report generator (Guo et al., MICCAI 2024).

    ``features [B, N, in_dim]`` -> projection -> cross-modal context (prototypes query a learned
    memory, every patch attends to their responses) -> local-global hierarchical encoder ->
    region tokens ``[B, R, d_model]`` -> transformer decoder whose word embeddings also query the
    memory -> log-probabilities over ``vocab_size + 1`` ids (0 = BOS/EOS/PAD).

    Example:
        >>> model = HistGen(HistGenConfig(in_dim=64, d_vf=64, d_model=32, d_ff=32, num_heads=4,
        ...     topk=8, cmm_size=16, cmm_dim=32, region_size=8, prototype_num=4, vocab_size=20))
        >>> ids = model.generate(torch.randn(2, 50, 64), beam_size=3, max_len=10)  # [2, 10]
    """

    def __init__(self, config: HistGenConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        if config is None:
            config = HistGenConfig(**overrides)
        elif overrides:
            config = HistGenConfig.from_dict(config.to_dict(), **overrides)
        self.config = config
        c = config
        if c.input_norm:
            # identity until fit_input_norm(); saved with the weights so inference needs nothing else
            self.register_buffer("input_mean", torch.zeros(c.in_dim))
            self.register_buffer("input_std", torch.ones(c.in_dim))
        self.projection = nn.Linear(c.in_dim, c.d_vf)
        self.visual_embed = nn.Sequential(nn.Linear(c.d_vf, c.d_model), nn.ReLU(), nn.Dropout(c.drop_prob_lm))
        self.memory_matrix = nn.Parameter(torch.empty(c.cmm_size, c.cmm_dim))
        self.context = CrossModalMemory(c.num_heads, c.d_model, c.topk, c.dropout)
        # every patch attends to the K prototype responses: an [N, K] map per head. Dropping out its
        # probabilities (as the reference does) costs ~1.5 GB and 1 s per step at N = 30,000 and
        # rules out the fused attention kernel, so the default variant does not.
        visual_attn_dropout = c.dropout if c.compat == "histgen-v1" else 0.0
        self.visual_context_attn = MultiHeadAttention(c.num_heads, c.d_model, visual_attn_dropout)
        self.encoder = LocalGlobalEncoder(c.d_model, c.d_ff, c.num_heads, c.region_size, c.dropout, c.compat)
        self.encoder.gradient_checkpointing = c.gradient_checkpointing
        self.decoder = ReportDecoder(c.vocab_size, c.d_model, c.d_ff, c.num_heads, c.num_layers, c.dropout)
        self.reset_parameters()
        self.findings = (
            SlideFindingHeads(c.d_model, list(c.finding_classes.values()), dropout=c.dropout) if c.finding_classes else None
        )

    def reset_parameters(self) -> None:
        """Initialise as the reference does: Xavier-uniform matrices, memory ~ N(0, 1/cmm_dim)."""
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        nn.init.normal_(self.memory_matrix, 0.0, 1.0 / self.config.cmm_dim)

    @torch.no_grad()
    def fit_input_norm(self, bags: Iterable[Any]) -> HistGen:
        """Set ``input_mean``/``input_std`` to the per-dimension statistics of every patch in ``bags``.

        Args:
            bags: the training bags: a dataset whose items hold ``"features"`` (e.g.
                :class:`scripts.data.ReportBagDataset` of the train split) or ``[N, D]`` tensors.

        Returns:
            the model itself (so a config can call it in a list of expressions).

        Raises:
            ValueError: the model was built with ``input_norm=False``, or the bags are empty or hold NaN/Inf.
        """
        from .input_norm import feature_statistics

        if not self.config.input_norm:
            raise ValueError("this model was built with input_norm=False; set it to True to fit the statistics")
        mean, std, count = feature_statistics(bags, self.config.in_dim)
        self.input_mean.copy_(mean)
        self.input_std.copy_(std)
        logger.info("input normalisation fitted on %d patches (std range %.3g..%.3g)", count,
                    float(std.min()), float(std.max()))
        return self

    def normalise_inputs(self, features: torch.Tensor) -> torch.Tensor:
        """``(features - input_mean) / input_std`` when ``input_norm`` is on, else ``features`` unchanged."""
        if not self.config.input_norm:
            return features
        return (features - self.input_mean) / self.input_std

    # ------------------------------------------------------------------ encoding
    def _check_inputs(self, features: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if features.dim() != 3:
            raise ValueError(f"features must be [B, N, D], got shape {tuple(features.shape)}")
        if features.shape[-1] != self.config.in_dim:
            raise ValueError(
                f"features have dimension {features.shape[-1]}, the model expects in_dim={self.config.in_dim}"
            )
        if features.shape[1] == 0:
            raise ValueError("empty bag: features have N = 0 patches")
        if mask is None:
            return torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
        mask = mask.to(device=features.device, dtype=torch.bool)
        if mask.shape != features.shape[:2]:
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match features {tuple(features.shape[:2])}")
        if not bool(mask.any(dim=1).all()):
            raise ValueError("a bag in the batch has no real patch (mask all False)")
        if self.config.compat == "histgen-v1" and not bool(mask.all()):
            raise ValueError(
                "compat='histgen-v1' reproduces the reference, which has no padding: use batch_size=1 "
                "(or bags of equal size), or compat='default' for padded batches"
            )
        return mask

    def prototype_indices(self, mask: torch.Tensor) -> torch.Tensor:
        """Patch index of each visual prototype: ``[B, K] long``, evenly spaced over each bag's real patches."""
        k = self.config.prototype_num
        if self.config.compat == "histgen-v1":
            idx = torch.linspace(0, mask.shape[1] - 1, steps=k).long().to(mask.device)
            return idx.expand(mask.shape[0], k)
        lengths = mask.sum(dim=1)
        rows = [torch.linspace(0, int(n) - 1, steps=k).long() for n in lengths.tolist()]
        # the default variant packs real patches first; a left-aligned mask is required
        return torch.stack(rows).to(mask.device)

    def embed_patches(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Projection, visual embedding and the visual side of the cross-modal context: ``[B, N, d_model]``."""
        x = self.visual_embed(self.projection(self.normalise_inputs(features)))
        idx = self.prototype_indices(mask)
        prototypes = torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        responses = self.context(prototypes, self.memory_matrix)
        return x + self.visual_context_attn(x, responses, responses)

    def encode(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> EncodedSlide:
        """Encode bags into region tokens.

        Args:
            features: ``[B, N, in_dim]`` float patch features.
            mask: ``[B, N] bool`` (True = real patch, real patches first) or None for unpadded bags.

        Returns:
            ``EncodedSlide`` with ``region_tokens [B, R, d_model]``, ``region_mask [B, R]`` and
            ``patch_weights [B, R * (region_size - 1)]``.
        """
        mask = self._check_inputs(features, mask)
        if self.config.compat != "histgen-v1":
            _check_left_aligned(mask)
        if self.config.gradient_checkpointing and self.training and torch.is_grad_enabled():
            x = checkpoint(self.embed_patches, features, mask, use_reentrant=False)
        else:
            x = self.embed_patches(features, mask)
        encoded = self.encoder(x, mask)
        if self.findings is None:
            return encoded
        found = self.findings(x, mask)
        tokens = torch.cat([encoded.region_tokens, found.tokens], dim=1)
        region_mask = torch.cat([encoded.region_mask, mask.new_ones(mask.shape[0], found.tokens.shape[1])], dim=1)
        return EncodedSlide(tokens, region_mask, encoded.patch_weights, found.logits)

    def _decoder_region_mask(self, encoded: EncodedSlide) -> torch.Tensor | None:
        return None if self.config.compat == "histgen-v1" else encoded.region_mask

    # ------------------------------------------------------------------ scoring
    def forward(
        self, features: torch.Tensor, target_ids: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Teacher-forced log-probabilities, see :meth:`score`."""
        encoded = self.encode(features, mask)
        memory_kv = self.context.project_memory(self.memory_matrix)
        logprobs = self.decoder(
            target_ids[:, :-1], encoded.region_tokens, self._decoder_region_mask(encoded), self.context, memory_kv
        )
        if encoded.finding_logits is None:
            return logprobs
        return ReportScores(logprobs, encoded.finding_logits)

    def score(
        self, features: torch.Tensor, target_ids: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Teacher-forced log-probabilities of the next token.

        Args:
            features: ``[B, N, in_dim]``.
            target_ids: ``[B, T] long``, ``[0, w1, ..., wn, 0, 0...]``.
            mask: ``[B, N] bool`` or None.

        Returns:
            ``[B, T-1, vocab_size + 1]`` log-probabilities for ``target_ids[:, 1:]`` given ``target_ids[:, :-1]``.
        """
        encoded = self.encode(features, mask)
        memory_kv = self.context.project_memory(self.memory_matrix)
        return self.decoder(
            target_ids[:, :-1], encoded.region_tokens, self._decoder_region_mask(encoded), self.context, memory_kv
        )

    # ------------------------------------------------------------------ decoding
    def start_decoding(self, encoded: EncodedSlide) -> tuple[DecoderCache, tuple[torch.Tensor, torch.Tensor]]:
        """Empty decoder cache and projected memory for step-wise decoding."""
        cache = self.decoder.start(encoded.region_tokens, self._decoder_region_mask(encoded))
        return cache, self.context.project_memory(self.memory_matrix)

    def decode_step(
        self, ids: torch.Tensor, cache: DecoderCache, memory_kv: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, DecoderCache]:
        """One cached decoding step: ``ids [B]`` -> log-probabilities ``[B, V+1]``."""
        return self.decoder.step(ids, cache, self.context, memory_kv)

    @torch.no_grad()
    def generate(
        self,
        features: torch.Tensor,
        mask: torch.Tensor | None = None,
        beam_size: int | None = None,
        max_len: int | None = None,
        block_trigrams: bool = True,
    ) -> torch.Tensor:
        """Decode reports.

        Args:
            features: ``[B, N, in_dim]``.
            mask: ``[B, N] bool`` or None.
            beam_size: beam width (default ``config.beam_size``); 1 is greedy decoding.
            max_len: longest report in tokens (default ``config.max_seq_length``).
            block_trigrams: greedy only: penalise repeated trigrams, as the reference's greedy
                sampler does by default (its beam search never does).

        Returns:
            ``[B, max_len] long`` token ids, 0-padded after the end token.
        """
        from scripts.decoding import beam_search, greedy_search

        beam_size = self.config.beam_size if beam_size is None else beam_size
        max_len = self.config.max_seq_length if max_len is None else max_len
        if beam_size < 1 or max_len < 1:
            raise ValueError(f"beam_size and max_len must be >= 1, got {beam_size}, {max_len}")
        was_training = self.training
        self.eval()
        try:
            encoded = self.encode(features, mask)
            if beam_size == 1:
                return greedy_search(self, encoded, max_len, block_trigrams=block_trigrams)
            return beam_search(self, encoded, beam_size, max_len)
        finally:
            self.train(was_training)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_reference_checkpoint(
        cls, checkpoint_path: str | Path, config_path: str | Path, **overrides: Any
    ) -> HistGen:
        """Build a model from a reference HistGen trainer checkpoint (``model_best.pth``).

        Args:
            checkpoint_path: the reference trainer's ``{'epoch', 'state_dict', ...}`` file.
            config_path: JSON with the hyper-parameters (keys of ``HistGenConfig``).
            overrides: e.g. ``compat="default"`` to load the weights into the corrected network.
                The default is ``compat="histgen-v1"``, which reproduces the reference outputs.
        """
        from .reference_checkpoint import load_reference_state_dict

        overrides.setdefault("compat", "histgen-v1")
        config = HistGenConfig.from_json(config_path, **overrides)
        model = cls(config)
        model.load_state_dict(load_reference_state_dict(checkpoint_path, config))
        return model.eval()


def _check_left_aligned(mask: torch.Tensor) -> None:
    lengths = mask.sum(dim=1, keepdim=True)
    expected = torch.arange(mask.shape[1], device=mask.device)[None] < lengths
    if not torch.equal(mask, expected):
        raise ValueError("mask must be left-aligned: real patches first, padding at the end of each bag")
