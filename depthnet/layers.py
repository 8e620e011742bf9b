"""Building blocks of the stacked hourglass (Newell et al. 2016), as in the paper.

The residual block is face-alignment's / Newell's bottleneck: BN-ReLU-conv three times
(1x1 to half width, 3x3, 1x1 back) with a skip (a 1x1 convolution when widths differ). The
hourglass is recursive: ``Hourglass(depth, channels)`` keeps a full-resolution branch and
calls itself one level smaller on the pooled features, then adds the upsampled result.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["Residual", "Hourglass"]


class Residual(nn.Module):
    """``(B, c_in, H, W) -> (B, c_out, H, W)`` bottleneck residual block."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        mid = max(c_out // 2, 1)
        self.body = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), nn.Conv2d(c_in, mid, 1, bias=False),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, mid, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, c_out, 1),
        )
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


class Hourglass(nn.Module):
    """``(B, C, H, W) -> (B, C, H, W)``; H and W divisible by ``2 ** depth``."""

    def __init__(self, depth: int, channels: int):
        super().__init__()
        self.up = Residual(channels, channels)
        self.low1 = Residual(channels, channels)
        self.low2 = Hourglass(depth - 1, channels) if depth > 1 else Residual(channels, channels)
        self.low3 = Residual(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.low3(self.low2(self.low1(F.max_pool2d(x, 2))))
        return self.up(x) + F.interpolate(low, scale_factor=2, mode="nearest")
