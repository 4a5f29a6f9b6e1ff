"""Marching cubes in torch, so isosurfaces are extracted where the volume was decoded.

On a GPU the dense volume of a 128^3 update (11 channels: 92 MB of float32) costs
more to bring to the host than to decode: a fresh host buffer alone takes ~45 ms
of page faults to fill (measured on the development CPU: 58 ms into a fresh
torch buffer, 13 ms into a reused one). Extracting the surfaces on the device
and copying only their vertices and triangles back avoids that copy.

The surface is the marching-cubes surface of :mod:`molviz.mesh`'s backends: one
vertex on every cell edge whose end values straddle the level (``v > level`` is
inside), placed by linear interpolation, so the vertex *set* equals scikit-image's
and VTK's. Only the triangulation inside a cell may differ. The case table is
built here, not copied: each cube face with crossings gets segments that cut
off its inside corners (on a face whose diagonal corners are inside, each
inside corner is cut off on its own, so the choice depends only on the face
and two cells sharing it agree: the surface is closed); the segments chain into
loops around the cube, and each loop is fanned into triangles.

All channels are extracted in one pass (a few dozen kernels whatever the
channel count). Normals are minus the field's gradient (central differences,
one-sided at the border), interpolated along the edge: they point out of the
region above the level, and triangles wind counter-clockwise seen from their
normals' side, as in :func:`molviz.mesh.isosurface`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from molviz.errors import InputError

# "1": extract isosurfaces on the engine's device, "0": on the host from the volume; unset: on a GPU only
SURFACES_ON_DEVICE_ENV = "MOLVIZ_SURFACES_ON_DEVICE"

# Corner c of a cell is at offset (c & 1, c >> 1 & 1, c >> 2 & 1) along (x, y, z).
_CORNERS = [(c & 1, c >> 1 & 1, c >> 2 & 1) for c in range(8)]
# Edge e runs from corner EDGES[e][0] along axis EDGES[e][1] (to corner start | 1 << axis).
_EDGES = [(c, a) for a in range(3) for c in range(8) if not c >> a & 1]


@dataclass
class Surface:
    """One channel's isosurface: numpy arrays, ready for :func:`molviz.mesh.polydata`."""

    points: np.ndarray      # (V, 3) float32, angstrom (or voxel units without a grid)
    faces: np.ndarray       # (F, 3) int64 indices into points
    normals: np.ndarray     # (V, 3) float32, unit, out of the region above the level
    level: float            # the absolute level
    peak: float = float("nan")  # the channel's maximum on the grid (the app's level slider range)

    @property
    def n_points(self) -> int:
        return len(self.points)


def prefer_device_surfaces(device: torch.device) -> bool:
    """Whether isosurfaces should be extracted on ``device`` rather than on the host: on a GPU, yes (the
    volume's copy to the host costs more than its decode); on the CPU, no (the host path decodes
    adaptively and VTK is faster). ``MOLVIZ_SURFACES_ON_DEVICE=1`` or ``0`` overrides."""
    env = os.environ.get(SURFACES_ON_DEVICE_ENV, "auto").strip()
    return env == "1" if env in ("0", "1") else torch.device(device).type == "cuda"


def _edge_index(c0: int, c1: int) -> int:
    lo, hi = min(c0, c1), max(c0, c1)
    return _EDGES.index((lo, (hi ^ lo).bit_length() - 1))


def _face_cycles() -> list[list[int]]:
    """The 6 cube faces as corner cycles, counter-clockwise seen from outside the cube."""
    faces = []
    for a in range(3):
        u, v = (a + 1) % 3, (a + 2) % 3            # u x v = a
        for side in (0, 1):
            ring = [(0, 0), (1, 0), (1, 1), (0, 1)]  # CCW in (u, v), seen from +a
            cyc = []
            for pu, pv in ring:
                xyz = [0, 0, 0]
                xyz[a], xyz[u], xyz[v] = side, pu, pv
                cyc.append(xyz[0] | xyz[1] << 1 | xyz[2] << 2)
            faces.append(cyc if side == 1 else cyc[::-1])
    return faces


@lru_cache(maxsize=1)
def case_table() -> tuple[np.ndarray, np.ndarray]:
    """(256,) triangles per case and (256, T, 3) their edges (-1 padded), built from the faces.

    Examples
    --------
    >>> n, tris = case_table()
    >>> int(n[0]), int(n[255]), int(n[1])   # empty, full, one corner inside: one triangle
    (0, 0, 1)
    """
    faces = _face_cycles()
    per_case: list[list[tuple[int, int, int]]] = []
    for case in range(256):
        inside = [bool(case >> c & 1) for c in range(8)]
        nxt: dict[int, int] = {}
        for cyc in faces:
            # Walking the face counter-clockwise, a run of inside corners is entered through
            # one crossed edge and left through another; the segment joins them (entry -> exit).
            for k in range(4):
                p, q = cyc[k], cyc[(k + 1) % 4]
                if not inside[p] and inside[q]:                  # entering a run at edge (p, q)
                    m = (k + 1) % 4
                    while inside[cyc[(m + 1) % 4]]:
                        m = (m + 1) % 4
                    nxt[_edge_index(p, q)] = _edge_index(cyc[m], cyc[(m + 1) % 4])
        tris: list[tuple[int, int, int]] = []
        seen: set[int] = set()
        for start in sorted(nxt):
            if start in seen:
                continue
            loop = [start]
            seen.add(start)
            while nxt[loop[-1]] != start:
                loop.append(nxt[loop[-1]])
                seen.add(loop[-1])
            # Each shared cube edge is an entry on one face and an exit on the other, so the
            # loops close. They run counter-clockwise seen from outside the inside region.
            tris += [(loop[0], loop[i], loop[i + 1]) for i in range(1, len(loop) - 1)]
        per_case.append(tris)
    most = max(len(t) for t in per_case)
    n = np.array([len(t) for t in per_case], np.int64)
    table = np.full((256, most, 3), -1, np.int64)
    for case, tris in enumerate(per_case):
        if tris:
            table[case, :len(tris)] = tris
    return n, table


@lru_cache(maxsize=8)
def _tables(device: torch.device):
    n, table = case_table()
    edge_axis = torch.tensor([a for _, a in _EDGES], dtype=torch.int64, device=device)
    edge_start = torch.tensor([_CORNERS[c] for c, _ in _EDGES], dtype=torch.int64, device=device)  # (12, 3)
    return torch.as_tensor(n, device=device), torch.as_tensor(table, device=device), edge_axis, edge_start


def resolve_levels(volume: torch.Tensor, levels, mode: str = "absolute") -> torch.Tensor:
    """(C,) absolute levels of a (C, nx, ny, nz) volume, on its device; same rules as
    :func:`molviz.mesh.resolve_level` (``"fraction"`` of the maximum, ``"percent"`` of voxels above)."""
    C = volume.shape[0]
    lv = torch.as_tensor(np.broadcast_to(np.asarray(levels, np.float64), (C,)).copy(),
                         dtype=torch.float32, device=volume.device)
    if mode == "absolute":
        return lv
    flat = volume.reshape(C, -1)
    if mode == "fraction":
        return lv * flat.amax(dim=1)
    if mode == "percent":
        if not bool(torch.all((lv > 0) & (lv < 100))):
            raise InputError(f"percent levels {np.asarray(levels).tolist()} must lie in (0, 100): "
                             "e.g. 1 for the level that encloses 1 % of the voxels")
        s = flat.sort(dim=1).values                                   # numpy's 'linear' percentile
        pos = (1.0 - lv / 100.0) * (flat.shape[1] - 1)
        lo = pos.floor().long().clamp(0, flat.shape[1] - 1)
        hi = (lo + 1).clamp(max=flat.shape[1] - 1)
        rows = torch.arange(C, device=volume.device)
        frac = pos - lo.float()
        return s[rows, lo] + frac * (s[rows, hi] - s[rows, lo])
    raise InputError(f"level mode {mode!r} is unknown: use 'absolute', 'fraction' or 'percent'")


@torch.no_grad()
def marching_cubes(volume: torch.Tensor, levels: torch.Tensor, *, origin=(0.0, 0.0, 0.0),
                   spacing=(1.0, 1.0, 1.0)) -> list[Surface]:
    """Isosurfaces of every channel of ``volume`` (C, nx, ny, nz) at ``levels`` (C,), on its device.

    A NaN level skips its channel (an empty surface). ``origin`` is the centre of voxel
    (0, 0, 0) and ``spacing`` the voxel size, so points come out in those units.

    Examples
    --------
    >>> x = torch.linspace(-1, 1, 24)
    >>> ball = torch.exp(-4 * (x[:, None, None]**2 + x[None, :, None]**2 + x[None, None, :]**2))
    >>> surf, = marching_cubes(ball[None], torch.tensor([0.5]))
    >>> surf.n_points > 0 and bool(surf.faces.max() < surf.n_points)
    True
    """
    if volume.ndim != 4:
        raise InputError(f"marching_cubes needs a (C, nx, ny, nz) volume; got shape {tuple(volume.shape)}")
    C, nx, ny, nz = volume.shape
    if min(nx, ny, nz) < 2:
        raise InputError(f"volume of shape {tuple(volume.shape)} is too thin: every axis needs 2 voxels")
    dev = volume.device
    vol = volume.float().contiguous()
    levels = torch.as_tensor(levels, dtype=torch.float32, device=dev).reshape(C)
    ntri_of, tri_of, edge_axis, edge_start = _tables(dev)

    # Case index of every cell: bit x + 2y + 4z set when corner (x, y, z) is inside (above
    # the level), built one axis at a time in uint8 (3 adds instead of 8 shifts and ors).
    inside = (vol > torch.nan_to_num(levels, nan=float("inf"))[:, None, None, None]).view(torch.uint8)
    case = inside[:, :-1] + inside[:, 1:] * 2                                          # bits 0-1: x
    case = case[:, :, :-1] + case[:, :, 1:] * 4                                        # bits 0-3: x, y
    case = case[..., :-1] + case[..., 1:] * 16                                         # bits 0-7: x, y, z
    del inside
    cell = torch.nonzero(((case - 1) < 254).reshape(-1)).squeeze(1)   # neither 0 nor 255 (uint8 wraps)
    kinds = case.reshape(-1)[cell].long()
    ntri = ntri_of[kinds]
    lv_host, peaks = torch.stack([levels, vol.reshape(C, -1).amax(dim=1)]).cpu().tolist()   # one sync
    empty = [Surface(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64),
                     np.zeros((0, 3), np.float32), lv_host[c], peaks[c]) for c in range(C)]
    if len(cell) == 0:
        return empty

    # Triangles as (cell, local edge) triples -> global edge ids (channel, axis, start voxel).
    keep = torch.arange(tri_of.shape[1], device=dev)[None, :] < ntri[:, None]          # (K, T)
    tri_edges = tri_of[kinds][keep]                                                     # (F, 3)
    tri_cell = cell[:, None].expand(-1, tri_of.shape[1])[keep]                          # (F,)
    nyz_c = (ny - 1) * (nz - 1)
    per_ch = (nx - 1) * nyz_c
    ch = tri_cell // per_ch
    rem = tri_cell % per_ch
    ijk = torch.stack([rem // nyz_c, (rem // (nz - 1)) % (ny - 1), rem % (nz - 1)], dim=1)   # (F, 3)
    start = ijk[:, None, :] + edge_start[tri_edges]                                     # (F, 3, 3)
    nvox = nx * ny * nz
    lin = (start[..., 0] * ny + start[..., 1]) * nz + start[..., 2]                     # (F, 3)
    gid = (ch[:, None] * 3 + edge_axis[tri_edges]) * nvox + lin
    uniq, inverse = torch.unique(gid.reshape(-1), return_inverse=True)                  # sorted: by channel
    faces = inverse.reshape(-1, 3)

    # One vertex per crossed edge, by linear interpolation; normals from the gradient.
    v_ch = uniq // (3 * nvox)
    axis = (uniq // nvox) % 3
    v_lin = uniq % nvox
    p0 = torch.stack([v_lin // (ny * nz), (v_lin // nz) % ny, v_lin % nz], dim=1)      # (V, 3)
    step = torch.tensor([ny * nz, nz, 1], device=dev)
    flat = vol.reshape(-1)
    base = v_ch * nvox
    a0 = base + v_lin
    a1 = a0 + step[axis]
    f0, f1 = flat[a0], flat[a1]
    lv = levels[v_ch]
    t = ((lv - f0) / (f1 - f0)).clamp(0, 1)
    pos = p0.float()
    pos[torch.arange(len(pos), device=dev), axis] += t
    sp = torch.tensor(spacing, dtype=torch.float32, device=dev)
    dims = torch.tensor([nx, ny, nz], device=dev)

    def grad(at_lin: torch.Tensor, at_ijk: torch.Tensor) -> torch.Tensor:
        out = []
        for a in range(3):
            up = (at_ijk[:, a] + 1).clamp(max=dims[a] - 1)
            dn = (at_ijk[:, a] - 1).clamp(min=0)
            hi = base + at_lin + (up - at_ijk[:, a]) * step[a]
            lo = base + at_lin + (dn - at_ijk[:, a]) * step[a]
            out.append((flat[hi] - flat[lo]) / ((up - dn).float() * sp[a]))
        return torch.stack(out, dim=1)

    p1 = p0.clone()
    p1[torch.arange(len(p1), device=dev), axis] += 1
    g = torch.lerp(grad(v_lin, p0), grad(v_lin + step[axis], p1), t[:, None])
    normals = -g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)
    points = pos * sp + torch.tensor(origin, dtype=torch.float32, device=dev)

    # Split by channel: vertices and faces are both sorted by channel.
    v_count = torch.bincount(v_ch, minlength=C)
    f_count = torch.bincount(ch, minlength=C)
    v_off = torch.cumsum(v_count, 0) - v_count
    faces = faces - v_off[ch][:, None]
    points, normals, faces = points.cpu().numpy(), normals.cpu().numpy(), faces.cpu().numpy()
    v_count, f_count = v_count.cpu().tolist(), f_count.cpu().tolist()
    out, vs, fs = [], 0, 0
    for c in range(C):
        nv, nf = v_count[c], f_count[c]
        if nf == 0:
            out.append(empty[c])
        else:
            out.append(Surface(points[vs:vs + nv], faces[fs:fs + nf], normals[vs:vs + nv], lv_host[c], peaks[c]))
        vs, fs = vs + nv, fs + nf
    return out
