"""The upper bound: a gated-attention MIL classifier (ABMIL) per finding, trained in-process on the same bags.

One :class:`scripts.transfer.mil_networks.ABMIL` per finding (input standardised on the train bags,
class-weighted cross-entropy, Adam), trained on the train split, the epoch kept by validation balanced
accuracy, scored on the test split. It shows what the features allow; the report model should come close.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from scripts.transfer.mil_networks import ABMIL

__all__ = ["AbmilScore", "train_abmil"]


@dataclass(frozen=True)
class AbmilScore:
    """Test scores of one finding's ABMIL.

    Attributes:
        accuracy: share of test slides classified right.
        balanced_accuracy: mean recall over the classes present in the test split.
        best_epoch: the epoch kept (by validation balanced accuracy).
    """

    accuracy: float
    balanced_accuracy: float
    best_epoch: int


def _balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    recalls = [float((predicted[labels == c] == c).mean()) for c in np.unique(labels)]
    return float(np.mean(recalls)) if recalls else math.nan


def _predict(model: ABMIL, bags: Sequence[torch.Tensor]) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.asarray([int(model(bag.unsqueeze(0)).argmax(1)) for bag in bags])


def train_abmil(
    bags: Mapping[str, Sequence[torch.Tensor]],
    labels: Mapping[str, Sequence[str]],
    classes: Sequence[str],
    epochs: int = 20,
    learning_rate: float = 5e-4,
    seed: int = 0,
) -> AbmilScore:
    """Train and score one finding's ABMIL.

    Args:
        bags: split (``train``, ``val``, ``test``) -> ``[N_i, D]`` float tensors.
        labels: split -> the finding's value per bag (same order).
        classes: the finding's values (class order).
        epochs: passes over the train bags (one bag per step).
        learning_rate: Adam's.
        seed: torch seed for the initialisation and the order of the bags.
    """
    index = {c: i for i, c in enumerate(classes)}
    y = {split: np.asarray([index[v] for v in values]) for split, values in labels.items()}
    torch.manual_seed(seed)
    dim = int(bags["train"][0].shape[1])
    model = ABMIL(dim, len(classes), hidden_dim=64, attention_dim=32, dropout=0.25, input_norm=True)
    model.fit_input_norm(bags["train"])
    counts = np.bincount(y["train"], minlength=len(classes)).astype(np.float64)
    weights = torch.tensor(np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(classes), 0.0),
                           dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    best = (-1.0, 0, {k: v.detach().clone() for k, v in model.state_dict().items()})
    for epoch in range(1, epochs + 1):
        model.train()
        for i in torch.randperm(len(bags["train"]), generator=generator).tolist():
            optimizer.zero_grad()
            logits = model(bags["train"][i].unsqueeze(0))
            loss_fn(logits, torch.tensor([int(y["train"][i])])).backward()
            optimizer.step()
        score = _balanced_accuracy(y["val"], _predict(model, bags["val"]))
        if score > best[0]:
            best = (score, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[2])
    predicted = _predict(model, bags["test"])
    return AbmilScore(float((predicted == y["test"]).mean()), _balanced_accuracy(y["test"], predicted), best[1])
