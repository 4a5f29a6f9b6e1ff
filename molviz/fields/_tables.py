"""Fields of atom tables on a box's voxel grid: what training, evaluation and encoding sample.

An atom table is one row per (atom, channel it belongs to): centre (A, 3), channel
index (A,), width (A,) (:func:`molviz.fields.atom_table`). A box is ``(lo, hi)`` in
angstrom, the first and last voxel centres (:mod:`molviz.fields._grid`'s convention);
its ``resolution``^3 voxel centres are :meth:`Grid.points`, the network sees them as
:func:`normalized_coords`.
"""
from __future__ import annotations

import numpy as np
import torch

from molviz.fields._grid import Grid


def grid_points(lo, hi, resolution: int, *, device="cpu") -> torch.Tensor:
    """Voxel centres of the ``resolution``^3 grid from ``lo`` to ``hi`` (inclusive): (N^3, 3) float32,
    C order over [x, y, z] (:meth:`Grid.points`).

    Examples
    --------
    >>> grid_points((0, 0, 0), (1, 1, 1), 2)[:3].tolist()
    [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    """
    return torch.as_tensor(Grid.from_box(lo, hi, resolution).points(), device=device)


def normalized_coords(resolution: int, *, device="cpu") -> torch.Tensor:
    """The same voxel centres in the network's [-1, 1]^3 coordinates: (N^3, 3)."""
    return grid_points((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0), resolution, device=device)


def table_field(xyz, channel, width, n_channels: int, points: torch.Tensor, *, beta: float,
                divisors=None) -> torch.Tensor:
    """Eq. 1 at ``points`` (P, 3) angstrom from one atom table, divided by ``divisors``: (P, C) float32."""
    from molviz.fields._sampler import field_from_table
    scale = None if divisors is None else np.asarray(divisors, np.float32)
    return field_from_table(xyz, channel, width, n_channels, points, beta=beta, scale=scale,
                            device=points.device).float()


def grid_field(xyz, channel, width, n_channels: int, box, resolution: int, *, beta: float,
               divisors=None, device="cpu") -> torch.Tensor:
    """Eq. 1 on the ``resolution``^3 grid whose first/last voxel centres are ``box``: (C, N, N, N)."""
    from molviz.fields._sampler import field_from_table
    grid = Grid.from_box(np.asarray(box[0], np.float64), np.asarray(box[1], np.float64), resolution)
    scale = None if divisors is None else np.asarray(divisors, np.float32)
    return field_from_table(xyz, channel, width, n_channels, grid, beta=beta, scale=scale,
                            device=device).float()


def item_divisors(xyz, channel, width, n_channels: int, *, beta: float, device="cpu") -> np.ndarray:
    """The ``normalize="max"`` divisors of one item: each channel's continuous maximum (1 if empty).

    Resolution-independent (:func:`molviz.fields.peaks_from_table`), so the field at any
    super-resolution is divided by the same numbers the network was trained with.
    """
    from molviz.fields._sampler import peaks_from_table
    return peaks_from_table(xyz, channel, width, n_channels, beta=beta, device=device).cpu().numpy().astype(np.float32)
