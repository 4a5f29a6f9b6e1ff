"""Reconstruction metrics, exactly as the paper and REFERENCE.md define them."""
from __future__ import annotations

import math

import numpy as np
import torch


def psnr(pred, target, *, max_value: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB: 20 log10(MAX / sqrt(MSE)), MSE over every voxel and channel.

    Fields are normalised to [0, 1], so MAX = 1 (the paper's protocol). Identical inputs give inf.

    Examples
    --------
    >>> round(psnr(np.zeros(4), np.full(4, 0.1)), 6)
    20.0
    """
    mse = mse_of(pred, target)
    return math.inf if mse == 0 else 20.0 * math.log10(max_value / math.sqrt(mse))


def mse_of(pred, target) -> float:
    if isinstance(pred, torch.Tensor) or isinstance(target, torch.Tensor):
        p = torch.as_tensor(pred).double()
        t = torch.as_tensor(target, device=p.device).double()
        if p.shape != t.shape:
            raise ValueError(f"shapes differ: {tuple(p.shape)} vs {tuple(t.shape)}")
        return float(torch.mean((p - t) ** 2))
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if p.shape != t.shape:
        raise ValueError(f"shapes differ: {p.shape} vs {t.shape}")
    return float(np.mean((p - t) ** 2))


def psnr_per_channel(pred, target, *, channel_axis: int = 0, max_value: float = 1.0) -> list[float]:
    """PSNR of each channel separately (same definition, MSE over that channel's voxels)."""
    p = np.moveaxis(np.asarray(pred, dtype=np.float64), channel_axis, 0)
    t = np.moveaxis(np.asarray(target, dtype=np.float64), channel_axis, 0)
    return [psnr(a, b, max_value=max_value) for a, b in zip(p, t)]
