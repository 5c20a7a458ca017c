"""CLAM-style truncated ResNet-50: torchvision ``resnet50`` up to ``layer3``, global average pool, 1024-d.

CLAM's default patch features (``resnet50_baseline``) drop ``layer4`` and the classifier of an ImageNet
ResNet-50 and average-pool the 1024 channels of ``layer3``. The weights come from a local torchvision
``resnet50`` state dict (``layer4.*`` and ``fc.*`` in the file are ignored; a file without them, as CLAM's
truncated model saves, works too).

Note: CLAM feeds the patch at its native size (256 px in its presets); this encoder resizes to
``input_size`` (default 224). Pass ``input_size=256`` for CLAM's numbers on 256 px patches.
"""

from __future__ import annotations

import os

import torch
from torchvision.models import resnet50

from scripts.encoders.checkpoint_files import file_checksum, load_checked, read_state_dict, strip_prefixes
from scripts.encoders.patch_encoder import IMAGENET_MEAN, IMAGENET_STD, PatchEncoder, make_patch_transform

__all__ = ["RESNET50_TRUNC_NAME", "ResNet50Trunc", "build_resnet50_trunc"]

RESNET50_TRUNC_NAME = "resnet50-trunc"
_DROPPED = ("layer4.", "fc.")


class ResNet50Trunc(PatchEncoder):
    """ResNet-50 stem + layer1..layer3 + adaptive average pool: [B, 3, S, S] -> [B, 1024]."""

    def __init__(self, input_size: int = 224, checksum: str = "", name: str = RESNET50_TRUNC_NAME) -> None:
        transform = make_patch_transform(input_size, IMAGENET_MEAN, IMAGENET_STD)
        super().__init__(name, 1024, input_size, transform, checksum)
        net = resnet50(weights=None)
        # same attribute names as torchvision, so its state dict keys load unchanged
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3
        self.pool = torch.nn.AdaptiveAvgPool2d(1)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """batch: [B, 3, S, S] float -> [B, 1024] float32."""
        self._check_input(batch)
        x = self.maxpool(self.relu(self.bn1(self.conv1(batch))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.pool(x).flatten(1).float()


def build_resnet50_trunc(
    checkpoint: str | os.PathLike | None,
    *,
    input_size: int = 224,
    strict: bool = True,
    name: str = RESNET50_TRUNC_NAME,
) -> ResNet50Trunc:
    """The truncated ResNet-50 filled from a local torchvision ``resnet50`` state dict.

    Args:
        checkpoint: ``torch.save(torchvision.models.resnet50(...).state_dict(), path)`` or the same nested
            under ``"state_dict"``/``"model"``; ``module.`` prefixes are stripped.
        input_size: side the transform resizes to.
        strict: raise on missing or unexpected keys (besides the ignored ``layer4``/``fc``).
    """
    state = strip_prefixes(read_state_dict(checkpoint, encoder=name), ("module.",))
    state = {k: v for k, v in state.items() if not k.startswith(_DROPPED)}
    encoder = ResNet50Trunc(input_size, file_checksum(checkpoint), name)
    load_checked(encoder, state, encoder=name, source=checkpoint, strict=strict)
    return encoder
