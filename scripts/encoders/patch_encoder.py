"""The one interface every patch encoder offers, and the input transform they share.

An encoder is a ``torch.nn.Module`` with five attributes the slide-feature extractor relies on:

- ``name``: what built it, e.g. ``"builtin-small"``, ``"timm:vit_small_patch16_224"``, ``"uni"``;
- ``embed_dim``: D of the output;
- ``input_size``: side of the square image ``forward`` expects;
- ``transform``: uint8 RGB patches ``[B, 3, H, W]`` (any H = W) -> normalised float ``[B, 3, S, S]``,
  running on whatever device the batch is on (a MONAI ``Compose``, see ``scripts.encoders.patch_preprocessing``);
- ``checksum``: 16 hex digits of the SHA-256 of the weights file (or of a built-in's deterministic state),
  stored with the features so that a re-run with other weights is detected.

Example:
    >>> enc = build_encoder("builtin-small")            # from scripts.encoders
    >>> patches = torch.randint(0, 256, (8, 3, 224, 224), dtype=torch.uint8)
    >>> enc(enc.transform(patches)).shape
    torch.Size([8, 128])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.transforms import Compose
from torchvision.transforms import InterpolationMode

from scripts.encoders.patch_preprocessing import encoder_preprocessing

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "PatchEncoder", "make_patch_transform"]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def make_patch_transform(
    input_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    crop_pct: float = 1.0,
    interpolation: InterpolationMode = InterpolationMode.BICUBIC,
) -> Compose:
    """uint8 ``[B, 3, H, W]`` RGB -> float ``[B, 3, input_size, input_size]``, normalised: an encoder's own steps.

    Steps: resize (antialiased) to ``input_size / crop_pct``; centre-crop ``input_size`` when
    ``crop_pct < 1``; scale to [0, 1]; clamp; subtract ``mean`` and divide by ``std`` per channel. Resizing
    happens on the uint8 image, as PIL does in the reference pipelines (and several times faster on the CPU
    than resizing floats). The result is a MONAI ``Compose`` of batch transforms that run on the batch's device
    (:func:`scripts.encoders.patch_preprocessing.encoder_preprocessing`). Float input is taken as already in [0, 1].

    Args:
        input_size: output side in pixels.
        mean, std: per-channel normalisation (RGB, in [0, 1] units).
        crop_pct: fraction of the resized image kept by the centre crop (1.0: no crop).
        interpolation: resize interpolation.
    """
    return encoder_preprocessing(input_size, mean, std, crop_pct, interpolation)


class PatchEncoder(torch.nn.Module):
    """Base class: a patch feature extractor with the attributes the feature extractor records.

    Subclasses implement ``forward(batch [B, 3, input_size, input_size] float) -> [B, embed_dim] float32``.

    Args:
        name: the encoder's name as given to ``build_encoder``.
        embed_dim: D of the output.
        input_size: side of the square input ``forward`` expects.
        transform: uint8 ``[B, 3, H, W]`` -> float ``[B, 3, input_size, input_size]``.
        checksum: 16 hex digits identifying the weights.
    """

    def __init__(self, name: str, embed_dim: int, input_size: int, transform, checksum: str) -> None:
        super().__init__()
        self.name = name
        self.embed_dim = int(embed_dim)
        self.input_size = int(input_size)
        self.transform = transform
        self.checksum = checksum

    def forward(self, batch: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_input(self, batch: torch.Tensor) -> None:
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(
                f"encoder {self.name}: expected a batch [B, 3, {self.input_size}, {self.input_size}], "
                f"got {list(batch.shape)}"
            )
        if not batch.is_floating_point():
            raise TypeError(
                f"encoder {self.name}: expected a float batch (apply encoder.transform first), got {batch.dtype}"
            )

    def extra_repr(self) -> str:
        return f"name={self.name!r}, embed_dim={self.embed_dim}, input_size={self.input_size}, checksum={self.checksum}"
