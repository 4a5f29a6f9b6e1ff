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

from molviz.fields._grid import Grid, axis_centres


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


_BATCH_FLOATS = 1 << 23   # floats in the largest temporary of one batch of table_grids (32 MB)


def table_grids(xyz, channel, width, offsets, n_channels: int, boxes, resolution: int, *, beta: float,
                divisors=None, items=None, device="cpu") -> torch.Tensor:
    """Eq. 1 on each item's ``resolution``^3 box grid, many items at once: (B, C, N, N, N) float32.

    Item ``i`` is rows ``offsets[i]:offsets[i + 1]`` of the tables with box ``boxes[i]`` (first and
    last voxel centre) and, when given, ``divisors[i]``; ``items`` picks which (default all).
    What :func:`grid_field` gives each item (tested), without its per-item, per-channel loop: the
    1-D factors of every atom (floored at exp(-25) as there), then per item one matrix product
    ``(gx gy)^T @ (onehot(channel) gz)`` over its atoms, batched as
    :func:`molviz.fields._sampler.padded_batches` (an item's numbers do not depend on its batch).
    Every atom counts everywhere (no cutoff), so it differs from :func:`grid_field` by at most that
    one's cutoff bound (1e-4 of a channel's peak, far less in practice). Small molecules are where
    it pays (a library's encoding spent its time in per-item overhead); tables over
    :data:`~molviz.fields._sampler.SMALL_TABLE` rows go through :func:`grid_field` one by one.
    """
    from molviz.fields._sampler import SMALL_TABLE, padded_batches

    offsets = np.asarray(offsets, np.int64)
    items = np.arange(len(offsets) - 1) if items is None else np.asarray(items, np.int64).reshape(-1)
    R, C, dev = int(resolution), int(n_channels), torch.device(device)
    xyz = np.asarray(xyz, np.float32).reshape(-1, 3)
    channel = np.asarray(channel, np.int64).reshape(-1)
    width = np.asarray(width, np.float32).reshape(-1)
    boxes = np.asarray(boxes, np.float64)
    out = torch.zeros(len(items), C, R, R, R, dtype=torch.float32, device=dev)
    n = offsets[items + 1] - offsets[items]
    for k in np.nonzero(n > SMALL_TABLE)[0]:
        i = int(items[k])
        a, b = offsets[i], offsets[i + 1]
        out[k] = grid_field(xyz[a:b], channel[a:b], width[a:b], C, boxes[i], R, beta=beta, device=dev)
    for A, k in padded_batches(n, lambda A: _BATCH_FLOATS // max(A * R * R, A * C * R, C * R ** 3)):
        out[k] = _small_grids(xyz, channel, width, offsets, items[k], C, boxes, R, beta, A, dev)
    if divisors is not None:
        div = torch.as_tensor(np.asarray(divisors, np.float32)[items], device=dev)
        out /= div.reshape(len(items), C, 1, 1, 1)
    return out


def _small_grids(xyz, channel, width, offsets, items, C: int, boxes, R: int, beta: float, A: int,
                 dev) -> torch.Tensor:
    """Raw fields (B, C, R, R, R) of small tables, each padded to ``A`` atom rows."""
    from molviz.fields._sampler import padded_rows

    B = len(items)
    row, valid = padded_rows(offsets, items, A)
    a = torch.as_tensor(xyz[row], device=dev)                                   # (B, A, 3)
    inv = torch.as_tensor(beta / (width[row] * width[row]), dtype=torch.float32, device=dev)
    ok = torch.as_tensor(valid, device=dev)
    t = np.stack([np.stack([axis_centres(boxes[i, 0, k], boxes[i, 1, k], R) for k in range(3)], axis=-1)
                  for i in items])                                              # (B, R, 3) voxel centres
    t = torch.as_tensor(t.astype(np.float32), device=dev)
    g = [torch.exp((-(t[:, None, :, k] - a[:, :, None, k]) ** 2 * inv[:, :, None]).clamp_(min=-25.0))
         for k in range(3)]                                                     # (B, A, R) each
    gxy = (g[0][:, :, :, None] * (g[1] * ok[:, :, None])[:, :, None, :]).reshape(B, A, R * R)
    onehot = torch.nn.functional.one_hot(torch.as_tensor(np.where(valid, channel[row], 0), device=dev), C)
    cz = (onehot.to(torch.float32)[:, :, :, None] * g[2][:, :, None, :]).reshape(B, A, C * R)
    f = torch.bmm(gxy.transpose(1, 2), cz)                                      # (B, R*R, C*R)
    return f.reshape(B, R, R, C, R).permute(0, 3, 1, 2, 4)


def item_divisors(xyz, channel, width, n_channels: int, *, beta: float, device="cpu") -> np.ndarray:
    """The ``normalize="max"`` divisors of one item: each channel's continuous maximum (1 if empty).

    Resolution-independent (:func:`molviz.fields.peaks_from_table`), so the field at any
    super-resolution is divided by the same numbers the network was trained with.
    """
    from molviz.fields._sampler import peaks_from_table
    return peaks_from_table(xyz, channel, width, n_channels, beta=beta, device=device).cpu().numpy().astype(np.float32)
