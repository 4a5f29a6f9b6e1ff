"""The network's coordinate convention, in one place.

An item's box is ``lo..hi`` in angstrom: the first and last voxel *centres* of
its training grid. The network sees ``p_norm = 2 (p - lo) / (hi - lo) - 1``, so
the training grid's voxel centres run from -1 to 1 inclusive. A decode request
names a (sub-)box in these normalised coordinates (default ``(-1, 1)`` per
axis: the whole box) and a resolution; its voxel centres are
``axis_centres(box_lo, box_hi, n)`` per axis, flattened in C order over
``[x, y, z]`` (z fastest), which is :meth:`molviz.fields.Grid.points`' order.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from molviz.errors import InputError
from molviz.fields._grid import axis_centres, check_resolution

Box = tuple[tuple[float, float, float], tuple[float, float, float]]
FULL_BOX: Box = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))


def check_shape(resolution: int | Sequence[int]) -> tuple[int, int, int]:
    """One int or three, each within :data:`molviz.fields.MAX_RESOLUTION`'s range."""
    try:
        return check_resolution(resolution)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"resolution {resolution!r}: give one int or three") from None


def check_box(box) -> Box:
    """``(lo, hi)`` in normalised coordinates, each a scalar or 3 numbers, lo < hi."""
    if box is None:
        return FULL_BOX
    try:
        lo, hi = box
        lo3 = np.broadcast_to(np.asarray(lo, np.float64), (3,))
        hi3 = np.broadcast_to(np.asarray(hi, np.float64), (3,))
    except (TypeError, ValueError):
        raise InputError(f"box {box!r}: give (lo, hi) in normalised [-1, 1] coordinates, "
                         "each a number or 3 numbers, e.g. ((-0.5,) * 3, (0.5,) * 3)") from None
    if not (np.all(np.isfinite(lo3)) and np.all(np.isfinite(hi3)) and np.all(hi3 > lo3)):
        raise InputError(f"box {box!r}: need finite lo < hi on every axis")
    return tuple(map(float, lo3)), tuple(map(float, hi3))  # type: ignore[return-value]


def box_axes(shape: tuple[int, int, int], box: Box, *, device=None) -> list[torch.Tensor]:
    """Normalised voxel-centre coordinates along x, y and z (:func:`molviz.fields.axis_centres`), float32."""
    return [torch.as_tensor(axis_centres(lo, hi, n), dtype=torch.float32, device=device)
            for lo, hi, n in zip(box[0], box[1], shape)]


def flat_coords(axes: list[torch.Tensor], start: int, stop: int) -> torch.Tensor:
    """Coordinates of flat voxel indices ``start..stop`` (C order): (stop - start, 3).

    Built per chunk from the three axes, so a 512^3 decode never holds all its
    coordinates at once.
    """
    ny, nz = len(axes[1]), len(axes[2])
    idx = torch.arange(start, stop, device=axes[0].device)
    return torch.stack([axes[0][idx // (ny * nz)], axes[1][(idx // nz) % ny], axes[2][idx % nz]], dim=-1)


def index_coords(axes: list[torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
    """Coordinates of arbitrary flat voxel indices (C order): (len(idx), 3)."""
    ny, nz = len(axes[1]), len(axes[2])
    return torch.stack([axes[0][idx // (ny * nz)], axes[1][(idx // nz) % ny], axes[2][idx % nz]], dim=-1)


def sub_box_angstrom(item_box: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
    """Angstrom lo/hi of a normalised sub-box of an item whose box is ``item_box`` (2, 3)."""
    lo_a, hi_a = np.asarray(item_box[0], np.float64), np.asarray(item_box[1], np.float64)
    half = (hi_a - lo_a) / 2.0
    return lo_a + (np.asarray(box[0]) + 1.0) * half, lo_a + (np.asarray(box[1]) + 1.0) * half
