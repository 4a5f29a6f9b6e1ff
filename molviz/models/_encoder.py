"""The auto-encoder's 3D convolutional encoder and the auto-decoder's latent table."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn


@dataclass
class EncoderConfig:
    in_channels: int = 1
    latent_dim: int = 512
    width: int = 32                  # channels of the first block; doubled per block
    blocks: int = 3                  # the reference used three 3x3x3 conv blocks
    downsample: bool = True          # stride 2 in blocks after the first (reference: none)
    norm: Literal["batch", "group"] = "group"  # GroupNorm: no train/eval gap with batch 4

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EncoderConfig:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    return nn.GroupNorm(min(8, channels), channels)


class Encoder3D(nn.Module):
    """Field volume -> latent: conv blocks, global average pooling, linear head.

    Examples
    --------
    >>> enc = Encoder3D(EncoderConfig(in_channels=3, latent_dim=8, width=4))
    >>> enc(torch.zeros(2, 3, 16, 16, 16)).shape
    torch.Size([2, 8])
    """

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        blocks = []
        c_in = cfg.in_channels
        for i in range(cfg.blocks):
            c_out = cfg.width * 2**i
            stride = 2 if (cfg.downsample and i > 0) else 1
            blocks += [nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1), _norm(cfg.norm, c_out), nn.ReLU()]
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(c_in, cfg.latent_dim)

    def forward(self, field: torch.Tensor) -> torch.Tensor:
        h = self.features(field)                  # (B, C, N, N, N) -> (B, W, n, n, n)
        return self.head(h.mean(dim=(2, 3, 4)))   # (B, W) -> (B, L)


class LatentTable(nn.Module):
    """One trainable latent per item (auto-decoder, Park et al. 2019)."""

    def __init__(self, n_items: int, latent_dim: int, *, init_std: float = 0.01):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(n_items, latent_dim) * init_std)

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self.latents[index]                # (B,) -> (B, L)
