"""``builtin-small``: a tiny fixed-weight encoder for the demo and the tests (no file, no training).

Weights are drawn from a seeded generator when the encoder is built, so every machine gets the same
encoder and the same ``checksum``. The features are pooled statistics of fixed random filters, which is
enough to tell H&E-like textures apart with a linear model:

- colour (32): per-channel mean and standard deviation of the normalised input, plus the mean of 26
  rectified random colour projections of the 2x2-pooled pixels (a soft colour histogram);
- texture (3 x 32): the spatial means of three stacked random convolutions (5x5 stride 2 on zero-mean
  filters with absolute-value rectification, then two 3x3 stride 2 with ReLU), i.e. edge/blob energy at
  receptive fields of 5, 9 and 17 input pixels.

Input: 64 x 64 (the transform resizes any patch), normalised with mean 0.5 and std 0.25 per channel.
Output: 128-d float32. Throughput on 2 CPU cores: see ``tests/encoders/test_encoders.py`` and the report.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from scripts.encoders.checkpoint_files import state_checksum
from scripts.encoders.patch_encoder import PatchEncoder, make_patch_transform

__all__ = ["BUILTIN_SMALL_NAME", "BuiltinSmallEncoder"]

BUILTIN_SMALL_NAME = "builtin-small"
_MEAN = (0.5, 0.5, 0.5)
_STD = (0.25, 0.25, 0.25)


class BuiltinSmallEncoder(PatchEncoder):
    """Fixed random-feature encoder: [B, 3, S, S] float -> [B, 128] float32.

    Args:
        seed: seed of the weights (the checksum follows it).
        input_size: side the transform resizes to (default 64).
        width: channels of each texture stage (embed_dim = 32 + 3 * width).
    """

    def __init__(self, seed: int = 0, input_size: int = 64, width: int = 32, name: str = BUILTIN_SMALL_NAME) -> None:
        super().__init__(name, 32 + 3 * width, input_size, make_patch_transform(input_size, _MEAN, _STD), "")
        gen = torch.Generator().manual_seed(int(seed))

        def normal(*shape: int, fan_in: int) -> torch.Tensor:
            return torch.randn(*shape, generator=gen) / fan_in**0.5

        colour = normal(26, 3, fan_in=3)
        conv1 = normal(width, 3, 5, 5, fan_in=75)
        conv1 -= conv1.mean(dim=(2, 3), keepdim=True)  # zero-mean: responds to texture, not to flat colour
        self.register_buffer("colour_weight", colour)
        self.register_buffer("colour_bias", 0.5 * torch.randn(26, generator=gen))
        self.register_buffer("conv1_weight", conv1)
        self.register_buffer("conv2_weight", normal(width, width, 3, 3, fan_in=9 * width))
        self.register_buffer("conv2_bias", 0.1 * torch.randn(width, generator=gen))
        self.register_buffer("conv3_weight", normal(width, width, 3, 3, fan_in=9 * width))
        self.register_buffer("conv3_bias", 0.1 * torch.randn(width, generator=gen))
        self.checksum = state_checksum(self.state_dict())

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """batch: [B, 3, S, S] float (normalised) -> [B, 32 + 3 * width] float32."""
        self._check_input(batch)
        x = batch.float().contiguous(memory_format=torch.channels_last)
        moments = torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)
        # colour: a matmul on the 2x2-pooled pixels (a 3-channel 1x1 conv is slow on the CPU)
        pixels = F.avg_pool2d(x, 2).flatten(2).transpose(1, 2)  # [B, H*W/4, 3]
        colour = torch.addmm(self.colour_bias, pixels.reshape(-1, 3), self.colour_weight.T)
        colour = colour.relu_().reshape(pixels.shape[0], -1, self.colour_bias.numel()).mean(dim=1)
        h1 = F.conv2d(x, self.conv1_weight, stride=2, padding=2).abs_()
        h2 = F.conv2d(h1, self.conv2_weight, self.conv2_bias, stride=2, padding=1).relu_()
        h3 = F.conv2d(h2, self.conv3_weight, self.conv3_bias, stride=2, padding=1).relu_()
        pooled = [h.mean(dim=(2, 3)) for h in (h1, h2, h3)]
        return torch.cat([moments, colour, *pooled], dim=1)
