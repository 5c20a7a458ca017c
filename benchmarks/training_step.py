"""One teacher-forced training step of HistGen, as the training benchmarks time it."""

from __future__ import annotations

import torch


def teacher_forced_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, feats: torch.Tensor,
                        target: torch.Tensor) -> torch.Tensor:
    """Zero the gradients, score ``target [B, T]`` given ``feats [B, N, D]``, back-propagate the mean NLL of
    the next tokens, clip the gradients at 0.1 (as training does) and step; returns the loss."""
    optimizer.zero_grad()
    logprobs = model(feats, target).logprobs
    loss = -logprobs.gather(2, target[:, 1:, None]).mean()
    loss.backward()
    torch.nn.utils.clip_grad_value_(model.parameters(), 0.1)
    optimizer.step()
    return loss
