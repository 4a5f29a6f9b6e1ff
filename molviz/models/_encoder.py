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
    box_scale: bool = False          # also read the box edge (per-molecule boxes hide a molecule's size)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EncoderConfig:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


BOX_EDGE_REF = 10.0   # angstrom: box_scale feeds log(edge / BOX_EDGE_REF) to the encoder


def box_scale(box: torch.Tensor) -> torch.Tensor:
    """The encoder's size input for boxes (B, 2, 3) of first and last voxel centre: log(mean edge / 10 A), (B,).

    Examples
    --------
    >>> box_scale(torch.tensor([[[-5.0, -5, -5], [5, 5, 5]]]))
    tensor([0.])
    """
    return torch.log((box[:, 1] - box[:, 0]).mean(dim=1) / BOX_EDGE_REF)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    return nn.GroupNorm(min(8, channels), channels)


class Encoder3D(nn.Module):
    """Field volume -> latent: conv blocks, global average pooling, linear head.

    Per-molecule ("fit") boxes rescale every molecule to fill its grid, so the field alone
    does not say how big a molecule is. With ``box_scale`` the encoder also reads the box
    edge, as a constant extra input channel and next to the pooled features, and its
    latents keep the physical size (``forward`` then needs ``box``; without ``box_scale`` it
    ignores it, so callers may always pass it).

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
        c_in = cfg.in_channels + int(cfg.box_scale)
        for i in range(cfg.blocks):
            c_out = cfg.width * 2**i
            stride = 2 if (cfg.downsample and i > 0) else 1
            blocks += [nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1), _norm(cfg.norm, c_out), nn.ReLU()]
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(c_in + int(cfg.box_scale), cfg.latent_dim)

    def forward(self, field: torch.Tensor, box: torch.Tensor | None = None) -> torch.Tensor:
        if not self.cfg.box_scale:
            h = self.features(field)                  # (B, C, N, N, N) -> (B, W, n, n, n)
            return self.head(h.mean(dim=(2, 3, 4)))   # (B, W) -> (B, L)
        if box is None:
            raise ValueError("this encoder reads the box size (box_scale): pass box, (B, 2, 3) first and last "
                             "voxel centre in angstrom")
        s = box_scale(box.to(field.device, field.dtype))                               # (B,)
        const = s[:, None, None, None, None].expand(-1, 1, *field.shape[2:])          # (B, 1, N, N, N)
        h = self.features(torch.cat([field, const], dim=1)).mean(dim=(2, 3, 4))      # (B, W)
        return self.head(torch.cat([h, s[:, None]], dim=1))                          # (B, W + 1) -> (B, L)


class LatentTable(nn.Module):
    """One trainable latent per item (auto-decoder, Park et al. 2019)."""

    def __init__(self, n_items: int, latent_dim: int, *, init_std: float = 0.01):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(n_items, latent_dim) * init_std)

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self.latents[index]                # (B,) -> (B, L)
