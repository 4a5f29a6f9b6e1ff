"""Reconstruction metrics, exactly as the paper and REFERENCE.md define them."""
from __future__ import annotations

import math

import numpy as np
import torch

from molviz.errors import InputError


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


# ----------------------------------------------------------------------------- shape metrics
# PSNR over the whole box rewards drawing nothing: most voxels are empty, so an all-zero
# prediction already scores 22-24 dB on FreeSolv. These look at the occupied part.

def _as_float(x) -> torch.Tensor:
    return x.detach().double() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, np.float64))


def iou(pred, target, *, level: float = 0.5) -> list[float | None]:
    """Voxel IoU of each channel's isosurface: |{pred >= level} & {target >= level}| / |... | ...|.

    Channels on axis 0. A channel where neither reaches ``level`` has no surface to
    compare: None (not 1, not 0). VoxMol and FuncMol report the mean at level 0.5.

    Examples
    --------
    >>> t = np.zeros((2, 4, 4, 4)); t[0, :2] = 1.0
    >>> p = np.zeros_like(t); p[0, :1] = 1.0
    >>> iou(p, t, level=0.5)                     # half of channel 0 found, channel 1 empty
    [0.5, None]
    """
    p = _as_float(pred)
    t = _as_float(target).to(p.device)
    if p.shape != t.shape:
        raise InputError(f"prediction {tuple(p.shape)} and truth {tuple(t.shape)} differ in shape; sample both "
                         "on the same grid (C, Nx, Ny, Nz)")
    pm = (p >= level).reshape(p.shape[0], -1)
    tm = (t >= level).reshape(t.shape[0], -1)
    inter = (pm & tm).sum(1).tolist()
    union = (pm | tm).sum(1).tolist()
    return [i / u if u else None for i, u in zip(inter, union)]


def spurious_density(pred, target, *, level: float = 0.5, empty: float = 0.05) -> tuple[float | None, int]:
    """Drawn where nothing is: of the voxels with ``pred >= level`` (all channels pooled), the
    share whose ``target < empty``, and their count.

    A voxel here is one (channel, x, y, z) value, so a spot drawn in the wrong
    element's channel counts even where another element's atom sits. None when
    nothing is drawn (no voxel reaches ``level``; the count is then 0).

    Examples
    --------
    >>> t = np.zeros((1, 4, 4, 4)); t[0, 0] = 1.0
    >>> p = t.copy(); p[0, 3, 0, :2] = 0.9           # 16 right voxels, 2 drawn in empty space
    >>> spurious_density(p, t)
    (0.1111111111111111, 2)
    """
    p = _as_float(pred)
    t = _as_float(target).to(p.device)
    if p.shape != t.shape:
        raise InputError(f"prediction {tuple(p.shape)} and truth {tuple(t.shape)} differ in shape; sample both "
                         "on the same grid (C, Nx, Ny, Nz)")
    drawn = p >= level
    n_drawn = int(drawn.sum())
    n_bad = int((drawn & (t < empty)).sum())
    return (n_bad / n_drawn if n_drawn else None), n_bad


def psnr_gain(pred, target, *, max_value: float = 1.0) -> float:
    """PSNR of ``pred`` minus the PSNR of an all-zero prediction: what the network adds to empty space.

    ``psnr(0, target) = 10 log10(MAX^2 / mean(target^2))`` is 22-24 dB for a FreeSolv
    molecule in its box; a gain of 0 dB means the decoding is no better than drawing
    nothing. An all-zero target has an infinite baseline: the gain is then nan.

    Examples
    --------
    >>> t = np.full(4, 0.1)
    >>> round(psnr_gain(np.full(4, 0.09), t), 6)     # 40 dB against a 20 dB baseline
    20.0
    """
    zero = torch.zeros_like(target) if isinstance(target, torch.Tensor) else np.zeros(np.shape(target))
    baseline = psnr(zero, target, max_value=max_value)
    return math.nan if math.isinf(baseline) else psnr(pred, target, max_value=max_value) - baseline
