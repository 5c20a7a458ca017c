"""Gated attention pooling of a bag of tokens into one vector (Ilse, Tomczak and Welling, ICML 2018)."""

from __future__ import annotations

import torch
from torch import nn


class GatedAttentionPool(nn.Module):
    """``a = softmax_i(w^T (tanh(V h_i) * sigmoid(U h_i)))``, ``z = sum_i a_i h_i`` over the real tokens.

    Args:
        dim: token width d.
        attention_dim: width of the attention branches.
        dropout: dropout on the attention branches.
    """

    def __init__(self, dim: int, attention_dim: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        self.value = nn.Sequential(nn.Linear(dim, attention_dim), nn.Tanh(), nn.Dropout(dropout))
        self.gate = nn.Sequential(nn.Linear(dim, attention_dim), nn.Sigmoid(), nn.Dropout(dropout))
        self.score = nn.Linear(attention_dim, 1)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Pool ``tokens [B, M, d]`` over the tokens where ``mask [B, M] bool`` is True.

        Returns:
            ``pooled [B, d]`` and ``weights [B, M]`` (0 at masked tokens, rows sum to 1).
        """
        scores = self.score(self.value(tokens) * self.gate(tokens)).squeeze(-1)
        if mask is not None:
            if not bool(mask.any(dim=1).all()):
                raise ValueError("a bag in the batch has no real token (mask all False)")
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        return torch.bmm(weights.unsqueeze(1), tokens).squeeze(1), weights
