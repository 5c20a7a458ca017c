"""Slide-level models for transfer: HistGen's report-pretrained encoder with a pooled head, and ABMIL.

- :class:`HistGenMIL`: ``features [B, N, in_dim]`` -> HistGen's visual side (projection, cross-modal context,
  local-global encoder) -> region tokens ``[B, R, d_model]`` -> gated attention over the real regions
  (``region_mask``) -> slide embedding ``[B, d_model]`` -> linear head ``[B, num_outputs]``.
- :class:`ABMIL`: the baseline on the raw patch features: ``features`` (optionally standardised per dimension)
  -> linear + ReLU -> gated attention over the real patches -> linear head.

Outputs are logits: class logits for subtyping, per-bin hazard logits for survival.

:class:`HistGenMILBundleNet` and :class:`ABMILBundleNet` are the same networks behind MONAI's bundle interface
(the ``network_def`` of the bundles' ``inference.json``): ``forward`` takes channel-first bags ``[B, D, N]`` as
``metadata.json``'s ``network_data_format`` describes them (see :mod:`scripts.networks.bundle_net`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from scripts.flags import as_flag
from scripts.networks import HistGenConfig, SlideEncoder, channel_last_bags
from scripts.networks.input_norm import feature_statistics

from .attention_pooling import GatedAttentionPool

__all__ = ["ABMIL", "MIL_MODELS", "ABMILBundleNet", "HistGenMIL", "HistGenMILBundleNet", "build_mil_network"]

MIL_MODELS: tuple[str, ...] = ("histgen", "abmil")


class HistGenMIL(nn.Module):
    """HistGen's slide encoder, gated attention over region tokens, linear head.

    ``encoder`` is a :class:`scripts.networks.SlideEncoder`: its parameter names are a report model's without
    the ``decoder.*`` entries, so a report ``model.pt`` loads into it
    (:func:`scripts.transfer.load_pretrained_encoder`).
    ``encoder.config`` keeps the report model's full hyper-parameters (``vocab_size`` included).

    Args:
        config: the encoder's hyper-parameters (a report model's ``model_config.json`` for pretrained weights).
        num_outputs: classes, or survival time bins.
        attention_dim: width of the region attention.
        dropout: dropout of the attention branches and before the head.
    """

    def __init__(self, config: HistGenConfig, num_outputs: int, attention_dim: int = 64, dropout: float = 0.25
                 ) -> None:
        super().__init__()
        self.encoder = SlideEncoder(config)
        self.pool = GatedAttentionPool(config.d_model, attention_dim, dropout)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(config.d_model, num_outputs))
        self.encoder_frozen = False

    def freeze_encoder(self) -> None:
        """Stop training the encoder: no gradients, and eval mode (no dropout) even in ``train()``."""
        self.encoder_frozen = True
        self.encoder.requires_grad_(False)
        self.encoder.eval()

    def train(self, mode: bool = True) -> HistGenMIL:
        super().train(mode)
        if self.encoder_frozen:
            self.encoder.eval()
        return self

    def embed(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``features [B, N, in_dim]``, ``mask [B, N]`` -> embedding ``[B, d_model]``, region weights ``[B, R]``."""
        encoding = self.encoder(features, mask)
        return self.pool(encoding.region_tokens, encoding.region_mask)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, num_outputs]``."""
        return self.head(self.embed(features, mask)[0])


class ABMIL(nn.Module):
    """Gated-attention MIL on patch features (Ilse et al. 2018).

    Args:
        in_dim: patch feature size D.
        num_outputs: classes, or survival time bins.
        hidden_dim: width of the patch embedding.
        attention_dim: width of the attention branches.
        dropout: dropout after the embedding, in the attention and before the head.
        input_norm: standardise each feature dimension with the buffers ``input_mean``/``input_std``
            (identity until :meth:`fit_input_norm`), as HistGen's ``input_norm`` does.
    """

    __constants__ = ["input_norm"]  # TorchScript compiles only the branch in use: the buffers exist when it is true

    def __init__(self, in_dim: int, num_outputs: int, hidden_dim: int = 128, attention_dim: int = 64,
                 dropout: float = 0.25, input_norm: bool = False) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.input_norm = bool(input_norm)
        if self.input_norm:
            self.register_buffer("input_mean", torch.zeros(in_dim))
            self.register_buffer("input_std", torch.ones(in_dim))
        self.embed_patches = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Dropout(dropout))
        self.pool = GatedAttentionPool(hidden_dim, attention_dim, dropout)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_dim, num_outputs))

    @torch.no_grad()
    def fit_input_norm(self, bags: Iterable[Any]) -> ABMIL:
        """Set ``input_mean``/``input_std`` to the per-dimension statistics of every patch of ``bags``
        (``[N, D]`` tensors or items with ``"features"``)."""
        if not self.input_norm:
            raise ValueError("this ABMIL was built with input_norm=False; set it to True to fit the statistics")
        mean, std, _ = feature_statistics(bags, self.in_dim)
        self.input_mean.copy_(mean)
        self.input_std.copy_(std)
        return self

    def embed(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``features [B, N, D]``, ``mask [B, N]`` -> slide embedding ``[B, hidden]``, patch weights ``[B, N]``."""
        if features.dim() != 3 or features.shape[-1] != self.in_dim:
            raise ValueError(f"features must be [B, N, {self.in_dim}], got {list(features.shape)}")  # list: TorchScript
        if self.input_norm:
            features = (features - self.input_mean) / self.input_std
        return self.pool(self.embed_patches(features), mask)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, num_outputs]``."""
        return self.head(self.embed(features, mask)[0])


class HistGenMILBundleNet(HistGenMIL):
    """:class:`HistGenMIL` with MONAI's ``forward``: ``bags [B, D, N]`` (+ ``mask [B, N]``) -> logits ``[B, C]``.

    Same parameters as :class:`HistGenMIL` (a fold's ``model.pt`` loads into it); :meth:`embed` keeps ``[B, N, D]``.
    """

    def forward(self, bags: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.embed(channel_last_bags(bags), mask)[0])


class ABMILBundleNet(ABMIL):
    """:class:`ABMIL` with MONAI's ``forward``: ``bags [B, D, N]`` (+ ``mask [B, N]``) -> logits ``[B, C]``.

    Same parameters and buffers as :class:`ABMIL`; :meth:`embed` keeps ``[B, N, D]``.
    """

    def forward(self, bags: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.embed(channel_last_bags(bags), mask)[0])


def build_mil_network(
    model: str,
    in_dim: int,
    num_outputs: int,
    histgen: HistGenConfig | dict[str, Any] | None = None,
    abmil: dict[str, Any] | None = None,
    pool: dict[str, Any] | None = None,
    channels_first: bool = False,
) -> HistGenMIL | ABMIL:
    """The model named by ``model`` (``"histgen"`` or ``"abmil"``).

    Args:
        model: which model.
        in_dim: feature size D of the bags (overrides ``histgen["in_dim"]``).
        num_outputs: classes or time bins.
        histgen: :class:`HistGenConfig` or its fields, for ``"histgen"``.
        abmil: ``ABMIL`` keyword arguments (``hidden_dim``, ``attention_dim``, ``dropout``, ``input_norm``), for
            ``"abmil"``.
        pool: ``HistGenMIL`` keyword arguments (``attention_dim``, ``dropout``), for ``"histgen"``.
        channels_first: build the MONAI-interface class (:class:`HistGenMILBundleNet`, :class:`ABMILBundleNet`),
            whose ``forward`` takes ``[B, D, N]`` bags.
    """
    if model == "histgen":
        values = histgen.to_dict() if isinstance(histgen, HistGenConfig) else dict(histgen or {})
        if values.get("in_dim", in_dim) != in_dim:
            raise ValueError(f"the HistGen encoder expects in_dim={values['in_dim']} but the features have "
                             f"D={in_dim}")
        if "input_norm" in values:  # "--histgen#input_norm false" arrives as a string
            values["input_norm"] = as_flag(values["input_norm"], "histgen#input_norm")
        config = HistGenConfig.from_dict(values, in_dim=in_dim)
        return (HistGenMILBundleNet if channels_first else HistGenMIL)(config, num_outputs, **(pool or {}))
    if model == "abmil":
        options = dict(abmil or {})
        if "input_norm" in options:
            options["input_norm"] = as_flag(options["input_norm"], "abmil#input_norm")
        return (ABMILBundleNet if channels_first else ABMIL)(in_dim, num_outputs, **options)
    raise ValueError(f"model must be one of {MIL_MODELS}, got {model!r}")


def network_spec(network: nn.Module) -> dict[str, Any]:
    """What :func:`build_mil_network` needs to rebuild ``network`` (saved beside fold models)."""
    if isinstance(network, HistGenMIL):
        pool = network.pool
        return {"model": "histgen", "in_dim": network.encoder.config.in_dim,
                "num_outputs": network.head[-1].out_features,
                "histgen": dataclasses.asdict(network.encoder.config),
                "pool": {"attention_dim": pool.score.in_features, "dropout": pool.value[-1].p}}
    if isinstance(network, ABMIL):
        return {"model": "abmil", "in_dim": network.in_dim, "num_outputs": network.head[-1].out_features,
                "abmil": {"hidden_dim": network.embed_patches[0].out_features,
                          "attention_dim": network.pool.score.in_features, "dropout": network.pool.value[-1].p,
                          "input_norm": network.input_norm}}
    raise TypeError(f"not a transfer MIL network: {type(network).__name__}")
