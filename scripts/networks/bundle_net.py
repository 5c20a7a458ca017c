"""HistGen behind MONAI's bundle interface: ``forward`` takes a channel-first bag and returns the report ids.

MONAI's bundle tools (``verify_net_in_out``, ``ckpt_export``, MONAI Deploy) call ``network_def(x)`` with
``x [B, C, *spatial]`` as ``metadata.json``'s ``network_data_format`` describes it. A bag of ``N`` patch features
of size ``D`` is, in that convention, ``D`` channels over one spatial axis of ``N`` patches: ``[B, D, N]``.
:class:`HistGenBundleNet` is the ``network_def`` of ``configs/inference.json``: its ``forward`` decodes such a bag
into ``[B, 1, L]`` report ids (one channel of tokens). Its parameters are :class:`HistGen`'s, so a ``model.pt``
loads into it, and the library methods (``generate``, ``score``, ``encode``...) keep the ``[B, N, D]`` layout
that the bundle's datasets give.
"""

from __future__ import annotations

import torch

from .histgen import HistGen

__all__ = ["HistGenBundleNet", "channel_last_bags"]


def channel_last_bags(bags: torch.Tensor) -> torch.Tensor:
    """MONAI's channel-first bags ``[B, D, N]`` -> the networks' ``[B, N, D]`` (a view, no copy)."""
    if bags.dim() != 3:
        raise ValueError(f"bags must be channel-first [B, D, N], got {list(bags.shape)}")  # list: TorchScript
    return bags.transpose(1, 2)


class HistGenBundleNet(HistGen):
    """:class:`HistGen` whose ``forward`` is MONAI's: channel-first bags -> report token ids.

    ``forward(bags [B, D, N] float, mask [B, N] bool or None) -> [B, 1, L] int64``: beam search with the
    model's ``beam_size`` and ``max_seq_length`` (``L = max_seq_length``), 0-padded after the end token; the same
    ids as ``generate(bags.transpose(1, 2), mask)[:, None]``. Training scores reports with :meth:`score`
    (teacher forcing) on a plain :class:`HistGen`; this class is for inference and export.
    """

    def forward(self, bags: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        """``bags [B, D, N]`` -> report ids ``[B, 1, L]`` (see the class docstring)."""
        features = channel_last_bags(bags)
        return self.generate(features, mask, self.beam_size, self.max_seq_length, True).unsqueeze(1)
