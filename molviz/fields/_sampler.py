r"""The field of paper Eq. 1, sampled on grids and at arbitrary points (torch, CPU or CUDA).

Field
-----
For channel ``c`` and point ``p``::

    f_c(p) = sum_{a in c} exp(-beta * (|p - a|^2 / r_a^2 - 1)) / exp(beta)
           = sum_{a in c} exp(-beta * |p - a|^2 / r_a^2)

i.e. each atom's blob of Eq. 1 divided by its own peak ``exp(beta)``, as the
reference code did, so every atom peaks at 1. ``r_a`` is the atom's width from the
channel's table (:data:`~molviz.fields.ATOM_WIDTHS`, property / carbon's property,
used in angstrom). ``normalize="max"`` divides channel ``c`` by its *continuous*
maximum :func:`channel_peaks` (see there), so any sampling of the field lies in
[0, 1] and super-resolution grids share one divisor; ``"none"`` keeps the raw sum.
Paper defaults: beta 0.25 (6EGA), 0.75 (FreeSolv, NMR ensemble), ``normalize="max"``.

Cutoff and its error bound
--------------------------
Atom ``a`` is skipped at ``p`` only when ``t_a = |p - a| / r_a > u_c``. Assume every
ball of radius ``R >= u_c r_max`` holds at most ``rho (4/3) pi R^3`` atoms, with
``rho = 0.2`` atoms/A^3 (:data:`MAX_ATOM_DENSITY`; about twice the all-atom density
of proteins and organic liquids, ~0.1/A^3). Atoms with ``t_a <= t`` lie within
``r_max t`` of ``p`` (``r_max`` = widest atom of the channel), so their count is
``N(t) <= rho (4/3) pi r_max^3 t^3 =: Nb(t)``. With ``g(t) = exp(-beta t^2)``
decreasing, integration by parts gives the neglected sum::

    sum_{t_a > u} g(t_a) = int_u^inf (-g'(t)) (N(t) - N(u)) dt
                        <= rho (4/3) pi r_max^3 [u^3 e^{-beta u^2} + 3 I(u)],
    I(u) = int_u^inf t^2 e^{-beta t^2} dt
         = u e^{-beta u^2} / (2 beta) + sqrt(pi) / (4 beta^1.5) erfc(sqrt(beta) u).

``u_c`` is the smallest ``u`` with that bound <= ``tol`` (default 1e-4,
:data:`DEFAULT_TOL`). Every channel that has an atom peaks at >= 1 (at the atom),
so the error is below ``tol`` of the channel's peak, before and after
``normalize="max"``. Grid sampling skips an atom only where one coordinate
difference exceeds the channel's largest cutoff (a box containing the cutoff
sphere), point sampling by the distance to a block of points' bounding box: both
keep every atom within ``u_c r_a``, so both obey the bound; they may differ from
each other by up to ``tol``. The bound is checked against a random cloud at the
assumed density and against dense evaluation in ``tests/test_fields.py``.

Work: grids use separability, ``exp(-b|p-a|^2) = gx * gy * gz``: per atom the 1-D
factors, then for each chunk of x-slabs one matrix product over the atoms whose
x-window covers it, ``F[x] = (gx[:, x] gy)^T gz``, restricted to the y/z range those
atoms reach; cost ~ atoms x window x (y/z extent) multiply-adds in BLAS and no
per-voxel exp, i.e. it grows with atoms x voxels near each atom (per slab).
Points are Morton-sorted into blocks; each block meets only atoms within the
cutoff of its bounding box.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch

from molviz.errors import InputError
from molviz.fields._channels import Channel, parse_channels
from molviz.fields._grid import Grid

DEFAULT_TOL = 1e-4          # cutoff error bound, as a fraction of a channel's peak
MAX_ATOM_DENSITY = 0.2      # atoms / A^3 assumed by the bound (proteins ~0.1 with H)
Normalize = Literal["max", "none"]


# --------------------------------------------------------------------------- cutoff
def tail_bound(u: float, beta: float, r_max: float, density: float = MAX_ATOM_DENSITY) -> float:
    """Upper bound on the summed blobs of atoms with ``|p - a| / r_a > u`` (module docstring)."""
    e = math.exp(-beta * u * u)
    integral = u * e / (2 * beta) + math.sqrt(math.pi) / (4 * beta**1.5) * math.erfc(math.sqrt(beta) * u)
    return density * 4.0 / 3.0 * math.pi * r_max**3 * (u**3 * e + 3.0 * integral)


def cutoff_factor(beta: float, r_max: float, *, tol: float = DEFAULT_TOL,
                  density: float = MAX_ATOM_DENSITY) -> float:
    """Smallest ``u`` (in widths) with ``tail_bound(u) <= tol``; the cutoff is ``u * r_a``.

    Examples
    --------
    >>> round(cutoff_factor(0.25, 1.0), 2), round(cutoff_factor(2.0, 1.0), 2)
    (7.82, 2.43)
    """
    return _cutoff_factor(float(beta), float(r_max), float(tol), float(density))


@functools.lru_cache(maxsize=4096)
def _cutoff_factor(beta: float, r_max: float, tol: float, density: float) -> float:
    if tol <= 0:
        raise InputError(f"tol must be > 0, got {tol}")
    lo, hi = 0.0, 1.0
    while tail_bound(hi, beta, r_max, density) > tol:
        hi *= 2.0
        if hi > 1e6:
            raise InputError(f"no finite cutoff for beta={beta}, tol={tol}")
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if tail_bound(mid, beta, r_max, density) > tol:
            lo = mid
        else:
            hi = mid
    return hi


def cutoff_radii(width: torch.Tensor, channel: torch.Tensor, n_channels: int, *, beta: float,
                 tol: float = DEFAULT_TOL, density: float = MAX_ATOM_DENSITY
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-atom cutoff radius (A,) and per-channel error bound (C,), both float32."""
    r_max = torch.zeros(n_channels, dtype=torch.float32, device=width.device)
    if len(width):
        r_max = r_max.scatter_reduce(0, channel, width.float(), reduce="amax", include_self=True)
    u = torch.zeros(n_channels, dtype=torch.float32)
    bound = torch.zeros(n_channels, dtype=torch.float32)
    for c, r in enumerate(r_max.cpu().tolist()):
        if r > 0:
            u[c] = uc = cutoff_factor(beta, r, tol=tol, density=density)
            bound[c] = tail_bound(uc, beta, r, density)
    u = u.to(width.device)
    return (u[channel] * width).float(), bound.to(width.device)


# --------------------------------------------------------------------------- atom table
def atom_table(structure, channels: str | Sequence[Channel], *, conformer: int = 0
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row per (atom, channel it belongs to): what training samples from.

    Returns
    -------
    xyz : (A, 3) float32, angstrom
    channel : (A,) int64, index into ``channels``
    width : (A,) float32, angstrom (the channel's width table)

    Examples
    --------
    >>> xyz, ch, w = atom_table(structure, "paper-6ega")  # doctest: +SKIP
    """
    chans = parse_channels(channels, structure)
    coords = np.asarray(structure.coords, dtype=np.float32)
    coords = coords[None] if coords.ndim == 2 else coords
    if not -coords.shape[0] <= conformer < coords.shape[0]:
        raise InputError(f"{getattr(structure, 'name', 'structure')}: conformer {conformer} out of "
                         f"range, it has {coords.shape[0]}")
    xyz_all = coords[conformer]
    if not np.isfinite(xyz_all).all():
        raise InputError(f"{getattr(structure, 'name', 'structure')}: non-finite coordinates")
    z = np.asarray(structure.atomic_numbers, dtype=np.int64)
    comps = np.asarray(structure.components).astype(str)
    xyz, ch, wd = [], [], []
    for i, c in enumerate(chans):
        mask = c.select(z, comps)
        xyz.append(xyz_all[mask])
        ch.append(np.full(int(mask.sum()), i, dtype=np.int64))
        wd.append(c.widths(z[mask]))
    return (np.concatenate(xyz).astype(np.float32).reshape(-1, 3), np.concatenate(ch),
            np.concatenate(wd).astype(np.float32))


# --------------------------------------------------------------------------- helpers
def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` -> cuda when available, else cpu."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' requested but CUDA is not available; use device='cpu'")
    return dev


def _as_tensor(x, device, dtype) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(x), device=device, dtype=dtype)


def _part1by2(x: torch.Tensor) -> torch.Tensor:
    x = x & 0x3FF
    x = (x | (x << 16)) & 0x030000FF
    x = (x | (x << 8)) & 0x0300F00F
    x = (x | (x << 4)) & 0x030C30C3
    return (x | (x << 2)) & 0x09249249


def _morton_order(points: torch.Tensor) -> torch.Tensor:
    lo = points.min(0).values
    ext = (points.max(0).values - lo).max().clamp_min(1e-6)
    q = ((points - lo) / ext * 1023).long().clamp(0, 1023)
    code = _part1by2(q[:, 0]) | (_part1by2(q[:, 1]) << 1) | (_part1by2(q[:, 2]) << 2)
    return torch.argsort(code)


def _blocks(points: torch.Tensor, xyz: torch.Tensor, rc: torch.Tensor, block: int):
    """Yield (point indices, atom indices within the cutoff of the block's bounding box)."""
    order = _morton_order(points) if len(points) > block else torch.arange(len(points), device=points.device)
    for s in range(0, len(points), block):
        idx = order[s:s + block]
        p = points[idx]
        lo, hi = p.min(0).values, p.max(0).values
        gap = (lo - xyz).clamp_min(0) + (xyz - hi).clamp_min(0)  # (A, 3) distance to box per axis
        near = torch.nonzero((gap * gap).sum(1) <= rc * rc).squeeze(1)
        yield idx, near


def _pair_weights(p: torch.Tensor, a: torch.Tensor, inv_r2: torch.Tensor) -> torch.Tensor:
    """exp(-|p - a|^2 / r^2 * beta) for all pairs, (n, m); coordinates pre-centred."""
    d2 = (p[:, None, 0] - a[None, :, 0]) ** 2
    d2 += (p[:, None, 1] - a[None, :, 1]) ** 2
    d2 += (p[:, None, 2] - a[None, :, 2]) ** 2
    # floor at exp(-50): avoids denormals (slow on CPUs), adds < 2e-22 per pair
    return torch.exp_(d2.mul_(-inv_r2[None, :]).clamp_(min=-50.0))


def _max_pairs(device: torch.device) -> int:
    return 64_000_000 if device.type == "cuda" else 4_000_000


# --------------------------------------------------------------------------- point sampler
def _points_field(xyz, inv_r2, channel, rc, n_channels, points) -> torch.Tensor:
    """(P, C) un-normalised field at points; all tensors on one device."""
    dev = points.device
    out = torch.zeros(len(points), n_channels, dtype=torch.float32, device=dev)
    if len(xyz) == 0 or len(points) == 0:
        return out
    onehot = torch.nn.functional.one_hot(channel, n_channels).float()  # (A, C)
    block = 16384 if dev.type == "cuda" else 2048
    budget = _max_pairs(dev)
    for idx, near in _blocks(points, xyz, rc, block):
        if len(near) == 0:
            continue
        a, ir2, oh = xyz[near], inv_r2[near], onehot[near]
        step = max(1, budget // len(near))
        for s in range(0, len(idx), step):
            sub = idx[s:s + step]
            p = points[sub]
            centre = p.mean(0)
            w = _pair_weights(p - centre, a - centre, ir2)   # (n, m)
            out[sub] = w @ oh                                # (n, m) @ (m, C) -> (n, C)
    return out


# --------------------------------------------------------------------------- grid sampler
CHUNK_DIV = 8  # chunk = window / 8 x-slabs: fewest redundant products, few calls


def _grid_field(xyz, inv_r2, channel, rc, n_channels, grid: Grid) -> torch.Tensor:
    """(C, Nx, Ny, Nz) un-normalised field on a grid: separable factors + matrix products.

    Per atom the 1-D factors gx (A, Nx), gy (A, Ny), gz (A, Nz). Atoms are sorted by
    x, so the atoms within the channel's largest cutoff of a chunk of B x-slabs are
    one contiguous range; the chunk is one matrix product
    ``(gx[:, chunk] * gy)^T @ gz``: (B*Ny, K) @ (K, Nz) over those K atoms. Atoms are
    skipped only when their x-distance exceeds the cutoff (a slab containing the
    cutoff sphere), so the bound holds.
    """
    dev = xyz.device
    nx, ny, nz = grid.shape
    if dev.type == "cpu":  # numpy's allocator asks for huge pages: 3x faster first touch
        out = torch.from_numpy(np.zeros((n_channels, nx, ny, nz), dtype=np.float32))
    else:
        out = torch.zeros(n_channels, nx, ny, nz, dtype=torch.float32, device=dev)
    axes = [torch.as_tensor(ax, dtype=torch.float32, device=dev) for ax in grid.axes()]
    budget = _max_pairs(dev) * 4                            # floats per temporary
    for c in range(n_channels):
        sel = torch.nonzero(channel == c).squeeze(1)
        if len(sel) == 0:
            continue
        a = xyz[sel]
        order = torch.argsort(a[:, 0])
        a, ir2 = a[order], inv_r2[sel][order]
        reach = float(rc[sel].max())
        # 1-D factors, floored at exp(-25) so no product of three is a (slow) denormal;
        # the floor adds < 1e-32 per atom and voxel
        gx, gy, gz = (torch.exp((-((ax[None, :] - a[:, k:k + 1]) ** 2) * ir2[:, None]).clamp_(min=-25.0))
                      for k, ax in enumerate(axes))                       # (A, N) each
        window = 2.0 * reach / grid.spacing[0] + 1.0        # slabs an atom touches
        chunk = int(max(1, min(window // CHUNK_DIV, budget // max(1, len(a) * ny))))
        starts = torch.arange(0, nx, chunk, device=dev)
        stops = (starts + chunk).clamp(max=nx)
        lo = torch.searchsorted(a[:, 0].contiguous(), axes[0][starts] - reach)
        hi = torch.searchsorted(a[:, 0].contiguous(), axes[0][stops - 1] + reach, right=True)
        a_np = a.cpu().numpy()
        for i0, i1, k0, k1 in zip(starts.tolist(), stops.tolist(), lo.tolist(), hi.tolist()):
            if k1 <= k0:
                continue
            # only the y/z voxels within reach of this chunk's atoms can be non-negligible
            (j0, j1), (l0, l1) = (_index_range(a_np[k0:k1, d], reach, grid.origin[d],
                                               grid.spacing[d], grid.shape[d]) for d in (1, 2))
            if j1 <= j0 or l1 <= l0:
                continue
            ymat = gx[k0:k1, i0:i1, None] * gy[k0:k1, None, j0:j1]       # (K, B, Y)
            prod = ymat.view(k1 - k0, -1).T @ gz[k0:k1, l0:l1]            # (B*Y, K) @ (K, Z)
            out[c, i0:i1, j0:j1, l0:l1] = prod.view(i1 - i0, j1 - j0, l1 - l0)
    return out


def _index_range(coord: np.ndarray, reach: float, origin: float, spacing: float, n: int
                 ) -> tuple[int, int]:
    """Voxel index range [start, stop) within ``reach`` of any of the coordinates."""
    start = math.ceil((float(coord.min()) - reach - origin) / spacing)
    stop = math.floor((float(coord.max()) + reach - origin) / spacing) + 1
    return max(0, start), min(n, stop)


# --------------------------------------------------------------------------- peaks
def peaks_from_table(xyz, channel, width, n_channels: int, *, beta: float, tol: float = DEFAULT_TOL,
                     density: float = MAX_ATOM_DENSITY, max_iter: int = 100, step_tol: float = 1e-3,
                     device: str | torch.device | None = None) -> torch.Tensor:
    """Continuous maximum of each channel's field, (C,) float32: the ``normalize="max"`` divisor.

    Start at every atom centre of the channel and run fixed-point (mean-shift)
    ascent on the weighted Gaussian sum,
    ``x <- sum_i w_i(x) a_i / r_i^2 / sum_i w_i(x) / r_i^2`` with
    ``w_i = exp(-beta |x - a_i|^2 / r_i^2)``: the zero of the gradient. Each step
    never decreases f (exp is convex: f(x') - f(x) >= sum_i w_i beta/r_i^2
    (|x - a_i|^2 - |x' - a_i|^2), maximised at x', where it is >= 0), so the
    maximum of f over the converged points and the atom centres is a resolution-
    independent divisor. Tables up to :data:`SMALL_TABLE` rows (small molecules) run
    exact all-pairs ascent for all channels at once, taking Newton steps where the
    field is concave and stopping each seed once it is within 1e-7 of its local maximum
    (:func:`_batched_small_peaks`; :func:`peaks_of_tables` does many molecules at once);
    larger ones run per channel with
    neighbour lists and the cutoff, whose bound is then added so the divisor is >= the
    maximum found. A channel without atoms gets 1 (its field is all zeros).

    Large tables do not ascend from every atom (:func:`_channel_peak`): the field at each
    atom is a lower bound of the maximum, and an upper bound of the field within
    :data:`SEED_RADIUS` of each atom (its near atoms, plus the tail bound for the rest)
    says which atoms' neighbourhoods could beat it; only those are ascended, best first,
    in blocks of bounded memory, dropping the ones the rising maximum rules out. The
    result is the all-seeds ascent's (tested), at a cost ~ atoms x near atoms.

    Examples
    --------
    >>> from molviz.chem import load
    >>> xyz, ch, w = atom_table(load("O"), "freesolv")               # water: H and O and density
    >>> peaks = peaks_from_table(xyz, ch, w, 11, beta=0.75)
    >>> tuple(peaks.shape), float(peaks[4])                          # F: no atoms, divisor 1
    ((11,), 1.0)
    """
    dev = resolve_device(device) if device is not None else (
        xyz.device if isinstance(xyz, torch.Tensor) else torch.device("cpu"))
    xyz = _as_tensor(xyz, dev, torch.float32).reshape(-1, 3)
    channel = _as_tensor(channel, dev, torch.long).reshape(-1)
    width = _as_tensor(width, dev, torch.float32).reshape(-1)
    peaks = torch.ones(n_channels, dtype=torch.float32, device=dev)
    if len(xyz) == 0:
        return peaks
    inv_r2 = beta / (width * width)
    if len(xyz) <= SMALL_TABLE:
        # the code peaks_of_tables runs, with the same padding: one molecule's divisors whichever way
        (A, items), = padded_batches(np.array([len(xyz)]), lambda A: 1)
        return torch.from_numpy(_batched_small_peaks(
            xyz.cpu().numpy(), channel.cpu().numpy(), width.cpu().numpy(), np.array([0, len(xyz)]), items, A,
            n_channels, beta=beta, max_iter=max_iter)[0]).to(dev)
    rc, bound = cutoff_radii(width, channel, n_channels, beta=beta, tol=tol, density=density)
    for c in range(n_channels):
        sel = torch.nonzero(channel == c).squeeze(1)
        if len(sel) == 0:
            continue
        found = _channel_peak(xyz[sel], inv_r2[sel], rc[sel], beta=beta, r_max=float(width[sel].max()),
                              density=density, max_iter=max_iter, step_tol=step_tol)
        peaks[c] = found + bound[c]
    return peaks


SMALL_TABLE = 512  # atom rows up to which peaks use exact all-pairs ascent, all channels at once


_BATCH_PAIRS = 1 << 19     # seed x atom pairs per batched ascent step (peaks_of_tables): ~2 MB per array
PAD_ROWS = 16              # a batch of small tables pads each to a multiple of this many rows


def padded_batches(counts: np.ndarray, per_batch: Callable[[int], int]):
    """Batches of the small tables (1 to :data:`SMALL_TABLE` rows) among ``counts`` (rows per item):
    ``(A, items)`` with every item's rows padded to ``A``, the next multiple of :data:`PAD_ROWS`, and
    at most ``per_batch(A)`` items. One padded size per batch, so an item's numbers do not depend on
    which others share its batch (or on how a library is split into parts)."""
    small = np.nonzero((counts > 0) & (counts <= SMALL_TABLE))[0]
    padded = -(-counts[small] // PAD_ROWS) * PAD_ROWS
    for A in np.unique(padded).tolist():
        same = small[padded == A]
        per = max(1, int(per_batch(A)))
        for start in range(0, len(same), per):
            yield A, same[start:start + per]


def padded_rows(offsets: np.ndarray, items: np.ndarray, A: int) -> tuple[np.ndarray, np.ndarray]:
    """Table rows of ``items`` padded to ``A`` each: (B, A) row indices (padding repeats the item's first
    row) and (B, A) True where the row is the item's own."""
    start = offsets[items][:, None]
    valid = np.arange(A)[None] < (offsets[items + 1] - offsets[items])[:, None]
    return np.where(valid, start + np.arange(A)[None], start), valid


def peaks_of_tables(xyz, channel, width, offsets, n_channels: int, *, beta: float, tol: float = DEFAULT_TOL,
                    density: float = MAX_ATOM_DENSITY, max_iter: int = 100,
                    step_tol: float = 1e-3) -> np.ndarray:
    """:func:`peaks_from_table` of many items at once: (N, C) float32, row ``i`` from rows
    ``offsets[i]:offsets[i + 1]`` of the tables.

    Small molecules (up to :data:`SMALL_TABLE` rows) ascend together (:func:`padded_batches`):
    each gets the numbers it gets alone, from a few large tensor operations per step instead of
    a few small ones per molecule (a library's preparation spent a third of its time on per-item
    overhead). Larger tables go one by one.

    Examples
    --------
    >>> from molviz.chem import load
    >>> tables = [atom_table(load(s), "freesolv") for s in ("O", "CCO")]
    >>> xyz = np.concatenate([t[0] for t in tables]); ch = np.concatenate([t[1] for t in tables])
    >>> w = np.concatenate([t[2] for t in tables]); off = np.cumsum([0] + [len(t[0]) for t in tables])
    >>> both = peaks_of_tables(xyz, ch, w, off, 11, beta=0.75)
    >>> bool(np.allclose(both[1], peaks_from_table(*tables[1], 11, beta=0.75).numpy(), rtol=1e-5))
    True
    """
    xyz = np.asarray(xyz, np.float32).reshape(-1, 3)
    channel = np.asarray(channel, np.int64).reshape(-1)
    width = np.asarray(width, np.float32).reshape(-1)
    offsets = np.asarray(offsets, np.int64)
    counts = np.diff(offsets)
    out = np.ones((len(counts), n_channels), np.float32)
    for i in np.nonzero(counts > SMALL_TABLE)[0]:
        a, b = offsets[i], offsets[i + 1]
        out[i] = peaks_from_table(xyz[a:b], channel[a:b], width[a:b], n_channels, beta=beta, tol=tol,
                                  density=density, max_iter=max_iter, step_tol=step_tol).numpy()
    for A, items in padded_batches(counts, lambda A: _BATCH_PAIRS // A ** 2):
        out[items] = _batched_small_peaks(xyz, channel, width, offsets, items, A, n_channels, beta=beta,
                                          max_iter=max_iter)
    return out


def _batched_small_peaks(xyz, channel, width, offsets, items, A: int, n_channels: int, *, beta: float,
                         max_iter: int, gap_tol: float = 1e-7) -> np.ndarray:
    """Peaks of ``items``' seeds ascended together against their own item's atoms (padded to ``A``).

    Every atom seeds an ascent in its channel. Where the field's Hessian is negative definite
    a seed takes the Newton step (``dx = -H^-1 g``, capped at :data:`_NEWTON_MAX` angstrom),
    elsewhere the mean-shift step (see :func:`peaks_from_table`). The quadratic model then says
    how far below its local maximum the seed is (``g . dx / 2``); a seed stops once that gap is
    below ``gap_tol`` of its value, so the few seeds that mean shift would move for all
    ``max_iter`` steps settle in a handful. Every value kept is the field at a point, so each
    peak is a lower bound of the true maximum, within ``gap_tol`` of it once converged.
    """
    B = len(items)
    row, valid = padded_rows(offsets, items, A)                        # (B, A)
    a = torch.from_numpy(xyz[row])                                     # (B, A, 3) atoms, padded
    ch = torch.from_numpy(np.where(valid, channel[row], -1))          # padding: channel -1, no partner
    inv_r2 = torch.from_numpy((beta / (width[row] * width[row])).astype(np.float32))
    item, seed = (torch.from_numpy(v) for v in np.nonzero(valid))
    x = a[item, seed].clone()                                          # (S, 3)
    seed_ch = ch[item, seed]
    best = torch.zeros(len(x), dtype=torch.float32)
    back = torch.zeros(len(x), 3)                  # where a seed's last step started, and the mean-shift
    back_shift = torch.zeros(len(x), 3)            # step from there: a step that lost height is redone so
    gain = torch.ones(len(x))                      # mean-shift steps are stretched while they gain height
    live = torch.arange(len(x))
    eye = torch.eye(3)
    for _ in range(max_iter):
        b = item[live]
        atoms, inv = a[b], inv_r2[b]                                   # (L, A, 3), (L, A)
        at = x[live]
        d = at[:, None, :] - atoms
        w = torch.exp((-(d * d).sum(-1) * inv).clamp_(min=-50.0)) * (ch[b] == seed_ch[live][:, None])
        f = w.sum(1)
        lost = f < best[live]                                          # the stretched or Newton step overshot
        best[live] = torch.maximum(best[live], f)
        wk = w * inv
        swk = wk.sum(1, keepdim=True).clamp_min(1e-30)
        shift = -(wk[:, :, None] * d).sum(1) / swk                      # mean-shift step
        grad = 2.0 * swk * shift
        neg_h = 2.0 * swk[:, :, None] * eye - 4.0 * torch.einsum("la,lai,laj->lij", wk * inv, d, d)
        chol, info = torch.linalg.cholesky_ex(neg_h)
        newton = torch.cholesky_solve(grad[:, :, None], chol)[:, :, 0]
        use = (info == 0) & (newton.norm(dim=1) <= _NEWTON_MAX)
        g = gain[live]
        step = torch.where(use[:, None], newton, g[:, None] * shift)
        done = (use & (0.5 * (grad * newton).sum(1) <= gap_tol * f)) & ~lost
        # a step that lost height: back to where it started, one plain mean-shift step (never loses)
        start = torch.where(lost[:, None], back[live], at)
        step = torch.where(lost[:, None], back_shift[live], step)
        gain[live] = torch.where(lost | use, torch.ones_like(g), (g * 2).clamp_(max=_MAX_GAIN))
        back[live] = start
        back_shift[live] = torch.where(lost[:, None], back_shift[live], shift)
        x[live] = start + step
        live = live[~done]
        if not len(live):
            break
    peaks = torch.zeros(B * n_channels, dtype=torch.float32).scatter_reduce(
        0, item * n_channels + seed_ch, best, reduce="amax", include_self=True).reshape(B, n_channels)
    present = torch.zeros(B * n_channels).scatter_add_(0, item * n_channels + seed_ch,
                                                       torch.ones(len(x))).reshape(B, n_channels) > 0
    return torch.where(present, peaks, torch.ones_like(peaks)).numpy()


_MAX_GAIN = 32.0     # the longest stretch of a mean-shift step (on ridges it creeps by 1e-3 A a step)
_NEWTON_MAX = 0.5     # angstrom: a longer Newton step is not trusted (the mean-shift step is taken)


SEED_RADIUS = 0.75    # angstrom: the neighbourhood of an atom whose field is bounded before ascent
_NEAR_TOL = 1e-2      # the per-atom bounds sum atoms out to this tail bound and add it
_SEED_BLOCK = 2048    # seeds ascended at once: memory ~ seeds x neighbours
DROP_AFTER = 2        # ascent steps after which a seed 5% below the best is dropped (the best
                      # starts at the field's maximum over atoms, so 2 steps do what 5 did)


def _channel_peak(a: torch.Tensor, inv_r2: torch.Tensor, rc: torch.Tensor, *, beta: float, r_max: float,
                  density: float, max_iter: int, step_tol: float) -> float:
    """:func:`_channel_max` from only the atoms whose neighbourhood can beat the best value found.

    ``low`` (the field at each atom, near atoms only) never exceeds the field, so its maximum
    is a lower bound of the peak; ``high`` bounds the exact field anywhere within
    :data:`SEED_RADIUS` of each atom. Seeds are the atoms with ``high`` above the best value,
    ascended in blocks of :data:`_SEED_BLOCK`, highest ``low`` first (the best value rises
    early, so the ascent drops more seeds); before each block the seeds that the risen best
    value rules out are dropped. Neighbour lists come from a cube index (no scan of every
    atom per block), so time and memory grow with atoms x neighbours.
    """
    slack = 1.0
    index = _CubeIndex(a, max(float(rc.max()) + slack, 4.0) / 2, span=2)
    low, high = _atom_bounds(a, inv_r2, beta=beta, r_max=r_max, density=density, rho=SEED_RADIUS)
    best = float(low.max())
    order = torch.argsort(low, descending=True)
    order = order[high[order] > best]
    for s in range(0, len(order), _SEED_BLOCK):
        block = order[s:s + _SEED_BLOCK]
        block = block[high[block] > best]
        if len(block):
            best = max(best, _channel_max(a, inv_r2, rc, max_iter=max_iter, step_tol=step_tol,
                                          seeds=a[block], best=best, index=index, slack=slack,
                                          drop_after=DROP_AFTER))
    return best


class _CubeIndex:
    """Atoms binned in cubes of side ``side`` (sorted by cube), for neighbour queries within
    ``side * span``: the (2 span + 1)^3 cubes around a point, as (2 span + 1)^2 contiguous rows."""

    def __init__(self, a: torch.Tensor, side: float, span: int = 1):
        self.side, self.span = float(side), int(span)   # queries reach ``span`` cubes: side * span
        self.lo = a.min(0).values
        ijk = ((a - self.lo) / self.side).floor().long()
        self.dims = [int(v) + 1 for v in ijk.max(0).values]
        key = self._key(ijk)
        self.order = torch.argsort(key)
        self.key = key[self.order].contiguous()
        steps = range(-self.span, self.span + 1)
        self.offsets = torch.tensor([(dx, dy) for dx in steps for dy in steps], device=a.device)

    def _key(self, ijk: torch.Tensor) -> torch.Tensor:
        return (ijk[..., 0] * self.dims[1] + ijk[..., 1]) * self.dims[2] + ijk[..., 2]

    def ranges(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, R) first and last+1 positions (in ``order``) of the atoms in the cubes around each
        point: R = (2 span + 1)^2 rows along z, each contiguous."""
        ijk = ((points - self.lo) / self.side).floor().long()
        rx = ijk[:, None, 0] + self.offsets[None, :, 0]
        ry = ijk[:, None, 1] + self.offsets[None, :, 1]
        z0 = (ijk[:, 2:3] - self.span).clamp(min=0)
        z1 = (ijk[:, 2:3] + self.span).clamp(max=self.dims[2] - 1)
        ok = (rx >= 0) & (rx < self.dims[0]) & (ry >= 0) & (ry < self.dims[1]) & (z1 >= z0)
        row = (rx.clamp(0, self.dims[0] - 1) * self.dims[1] + ry.clamp(0, self.dims[1] - 1)) * self.dims[2]
        first = torch.searchsorted(self.key, (row + z0).contiguous())
        last = torch.searchsorted(self.key, (row + z1).contiguous(), right=True)
        return first, torch.where(ok, last, first)

    def pairs(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every (point, atom) pair with the atom in the 27 cubes around the point, (E,) each."""
        first, last = self.ranges(points)
        length = (last - first).reshape(-1)
        point = torch.arange(len(points), device=points.device).repeat_interleave(len(self.offsets))
        point = point.repeat_interleave(length)
        start = torch.cumsum(length, 0) - length
        pos = torch.arange(int(length.sum()), device=points.device) - start.repeat_interleave(length)
        pos += first.reshape(-1).repeat_interleave(length)
        return point, self.order[pos]


def _atom_bounds(a: torch.Tensor, inv_r2: torch.Tensor, *, beta: float, r_max: float, density: float,
                 rho: float, cell: float = 8.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per atom: the field at it from its near atoms (a lower bound of the field there), and an
    upper bound of the exact field anywhere within ``rho`` of it, both (A,).

    Near atoms are those within ``u r_max + rho`` with ``tail_bound(u) = _NEAR_TOL``; the rest
    add at most that tail bound (module docstring), which the upper bound includes; a near
    atom adds at most its blob at ``(d - rho)_+``. Atoms are binned in cubes of side
    ``>= u r_max + rho``; each cube's atoms meet the atoms of the 27 cubes around it in one
    (n, m) block.
    """
    u = cutoff_factor(beta, r_max, tol=_NEAR_TOL, density=density)
    tail = tail_bound(u, beta, r_max, density)
    reach = u * r_max + rho
    index = _CubeIndex(a, max(cell, reach))
    a_s, ir2_s = a[index.order], inv_r2[index.order]
    a2 = (a_s * a_s).sum(1)
    cubes, counts = torch.unique_consecutive(index.key, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    first, last = index.ranges(a_s[starts])              # any atom of a cube stands for its cube
    first, last, starts = first.tolist(), last.tolist(), starts.tolist()
    low = torch.empty(len(a), dtype=torch.float32, device=a.device)
    high = torch.empty_like(low)
    for k, (s0, n) in enumerate(zip(starts, counts.tolist())):
        src = torch.cat([torch.arange(f, e, device=a.device) for f, e in zip(first[k], last[k]) if e > f])
        p, q, ir2 = a_s[s0:s0 + n], a_s[src], ir2_s[src]
        d2 = torch.addmm(a2[src][None], p, q.T, alpha=-2.0).add_(a2[s0:s0 + n, None]).clamp_min_(0.0)
        near = d2 <= reach * reach                                                     # (n, m)
        # floors at exp(-50): no denormals (slow); they change a sum by < 1e-18
        low[s0:s0 + n] = (torch.exp((d2 * -ir2).clamp_(min=-50.0)) * near).sum(1)
        gap = d2.sqrt_().sub_(rho).clamp_min_(0.0)
        high[s0:s0 + n] = (torch.exp(gap.square_().mul_(-ir2).clamp_(min=-50.0)) * near).sum(1)
    unsorted = torch.empty_like(index.order)
    unsorted[index.order] = torch.arange(len(a), device=a.device)
    return low[unsorted], high[unsorted] * (1.0 + 1e-5) + tail  # margin: float32 sums


def _channel_max(a: torch.Tensor, inv_r2: torch.Tensor, rc: torch.Tensor, *, max_iter: int,
                 step_tol: float, merge: float = 0.05, slack: float = 2.0,
                 seeds: torch.Tensor | None = None, best: float = 0.0,
                 index: _CubeIndex | None = None, drop_after: int = 5) -> float:
    """Largest f over mean-shift trajectories started at every atom of one channel (or at
    ``seeds``), at least ``best``.

    A seed stops when it moves less than ``step_tol`` A or its value rises by less
    than 1e-6 relative (a flat ridge), or, after 5 steps, when it is still more than
    5% below the best value found (a heuristic: ascent gains most of a mode's height
    in the first steps; tests compare it with exact ascent and fine grids). Seeds
    that meet within ``merge`` A are merged (same mode ahead). Each seed carries a
    neighbour list (atoms within cutoff + ``slack``), rebuilt for the seeds that moved
    more than ``slack`` since, so f at every visited point is the cutoff field
    (within the stated bound of the exact one).
    """
    x = (a if seeds is None else seeds).clone()
    f_old = torch.full((len(x),), -1.0, device=a.device)
    best = torch.tensor(float(best), device=a.device)
    a_ext = torch.cat([a, a.new_full((1, 3), 1e6)])          # padding atom, far away
    ir2_ext = torch.cat([inv_r2, inv_r2.new_ones(1)])
    nbr, built_at = _neighbour_lists(a, rc, x, slack, index), x.clone()
    for it in range(max_iter):
        stale = (x - built_at).norm(dim=1) > slack
        if bool(stale.any()):
            fresh = _neighbour_lists(a, rc, x[stale], slack, index)
            k = max(nbr.shape[1], fresh.shape[1])
            nbr = torch.nn.functional.pad(nbr, (0, k - nbr.shape[1]), value=len(a))
            nbr[stale] = torch.nn.functional.pad(fresh, (0, k - fresh.shape[1]), value=len(a))
            built_at[stale] = x[stale]
        an, ir2 = a_ext[nbr], ir2_ext[nbr]                     # (S, K, 3), (S, K)
        d = x[:, None, :] - an
        w = torch.exp((-(d * d).sum(-1) * ir2).clamp_(min=-50.0))  # (S, K)
        wr = w * ir2
        new = (wr[..., None] * an).sum(1) / wr.sum(1, keepdim=True).clamp_min(1e-30)
        f = w.sum(1)
        best = torch.maximum(best, f.max())
        # stop a seed when it stops moving or its value stops rising (flat ridges)
        keep = ((new - x).norm(dim=1) > step_tol) & (f - f_old > 1e-6 * f)
        if it >= drop_after:  # seeds still 5% below the best after 5 ascent steps rarely win: drop them
            keep &= f >= 0.95 * best
        x, f_old, nbr, built_at = new[keep], f[keep], nbr[keep], built_at[keep]
        if len(x) == 0:
            break
        if len(x) > 1:  # merge seeds that reached the same place
            _, first = _unique_rows(torch.round(x / merge).long())
            x, f_old, nbr, built_at = x[first], f_old[first], nbr[first], built_at[first]
    return float(best)


def _neighbour_lists(a: torch.Tensor, rc: torch.Tensor, points: torch.Tensor, slack: float,
                     index: _CubeIndex | None = None) -> torch.Tensor:
    """(S, K) indices of the atoms within ``rc + slack`` of each point; pad = ``len(a)``.
    With a cube index (side >= max rc + slack) candidates come from the 27 cubes around each
    point instead of a scan of every atom per block of points."""
    if index is not None and index.side * index.span >= float(rc.max()) + slack and len(points):
        row, atom = index.pairs(points)
        d = points[row] - a[atom]
        inside = (d * d).sum(1) <= (rc[atom] + slack) ** 2
        row, atom = row[inside], atom[inside]
        if len(row) == 0:
            return torch.full((len(points), 1), len(a), dtype=torch.long, device=points.device)
        count = torch.bincount(row, minlength=len(points))
        start = torch.cumsum(count, 0) - count                        # pairs are grouped by point
        rank = torch.arange(len(row), device=points.device) - start[row]
        out = torch.full((len(points), int(count.max())), len(a), dtype=torch.long, device=points.device)
        out[row, rank] = atom
        return out
    rows, cols, ids = [], [], []
    block = 4096 if points.device.type == "cuda" else 256
    for idx, near in _blocks(points, a, rc + slack, block):
        if len(near) == 0:
            continue
        d = points[idx][:, None, :] - a[near][None]
        inside = (d * d).sum(-1) <= (rc[near] + slack)[None] ** 2        # (n, m)
        r, c = torch.nonzero(inside, as_tuple=True)
        rank = torch.cumsum(inside, 1)[r, c] - 1
        rows.append(idx[r])
        cols.append(rank)
        ids.append(near[c])
    if not rows:
        return torch.full((len(points), 1), len(a), dtype=torch.long, device=points.device)
    rows_t, cols_t = torch.cat(rows), torch.cat(cols)
    out = torch.full((len(points), int(cols_t.max()) + 1), len(a), dtype=torch.long,
                     device=points.device)
    out[rows_t, cols_t] = torch.cat(ids)
    return out


def _unique_rows(key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique rows of an integer (n, 3) tensor and the index of one occurrence of each."""
    k = key - key.min(0).values
    span = k.max(0).values + 1
    code = (k[:, 0] * span[1] + k[:, 1]) * span[2] + k[:, 2]      # one int64 per row
    uniq, inverse = torch.unique(code, return_inverse=True)
    first = torch.full((len(uniq),), len(key), dtype=torch.long, device=key.device)
    first = first.scatter_reduce(0, inverse, torch.arange(len(key), device=key.device), reduce="amin")
    return uniq, first


# --------------------------------------------------------------------------- public torch API
def field_from_table(xyz, channel, width, n_channels: int, points_or_grid, *, beta: float,
                     scale=None, tol: float = DEFAULT_TOL, density: float = MAX_ATOM_DENSITY,
                     device: str | torch.device | None = None) -> torch.Tensor:
    """Eq. 1 field from an atom table, on any torch device: what training calls every step.

    Parameters
    ----------
    xyz, channel, width : arrays or tensors
        The atom table, (A, 3), (A,), (A,) (:func:`atom_table`).
    n_channels : int
    points_or_grid : (P, 3) tensor/array or Grid
    beta : float
    scale : None, "max", or (C,) tensor/array
        Divisor per channel: None keeps the raw sum, "max" computes
        :func:`peaks_from_table`, an array divides channel c by ``scale[c]``
        (pass :func:`channel_peaks` so every call shares one divisor).
    tol : float
        Cutoff error bound as a fraction of a channel's peak (module docstring).
    device : optional
        Defaults to the device of ``points`` (tensor) or ``xyz`` (tensor), else cpu.

    Returns
    -------
    torch.Tensor
        (P, C) for points, (C, Nx, Ny, Nz) for a Grid; float32.

    Examples
    --------
    >>> from molviz.chem import load
    >>> xyz, ch, w = atom_table(load("CCO"), "freesolv")           # ethanol, 11 channels
    >>> peaks = peaks_from_table(xyz, ch, w, 11, beta=0.75)
    >>> f = field_from_table(xyz, ch, w, 11, torch.zeros(5, 3), beta=0.75, scale=peaks)
    >>> tuple(f.shape), bool(f.max() <= 1)
    ((5, 11), True)
    """
    if beta <= 0:
        raise InputError(f"beta must be > 0, got {beta}")
    if device is not None:
        dev = resolve_device(device)
    elif isinstance(points_or_grid, torch.Tensor):
        dev = points_or_grid.device
    elif isinstance(xyz, torch.Tensor):
        dev = xyz.device
    else:
        dev = torch.device("cpu")
    xyz_t = _as_tensor(xyz, dev, torch.float32).reshape(-1, 3)
    ch_t = _as_tensor(channel, dev, torch.long).reshape(-1)
    w_t = _as_tensor(width, dev, torch.float32).reshape(-1)
    if len(ch_t) and (int(ch_t.min()) < 0 or int(ch_t.max()) >= n_channels):
        raise InputError(f"atom table channel index outside 0..{n_channels - 1}")
    if len(w_t) and not bool((w_t > 0).all()):
        raise InputError("atom table has a width <= 0; every atom needs a positive width")
    rc, _ = cutoff_radii(w_t, ch_t, n_channels, beta=beta, tol=tol, density=density)
    inv_r2 = beta / (w_t * w_t)
    if isinstance(points_or_grid, Grid):
        out = _grid_field(xyz_t, inv_r2, ch_t, rc, n_channels, points_or_grid)
        shape = (n_channels, 1, 1, 1)
    else:
        pts = _as_tensor(points_or_grid, dev, torch.float32).reshape(-1, 3)
        out = _points_field(xyz_t, inv_r2, ch_t, rc, n_channels, pts)
        shape = (1, n_channels)
    if scale is None:
        return out
    if isinstance(scale, str):
        if scale != "max":
            raise InputError(f"scale must be None, 'max' or a (C,) array, got {scale!r}")
        scale = peaks_from_table(xyz_t, ch_t, w_t, n_channels, beta=beta, tol=tol, density=density)
    div = _as_tensor(scale, dev, torch.float32).reshape(-1)
    if div.shape[0] != n_channels or not bool((div > 0).all()):
        raise InputError(f"scale needs {n_channels} positive divisors, got {tuple(div.shape)}")
    return out / div.reshape(shape)


def dense_field(xyz, channel, width, n_channels: int, points, *, beta: float,
                dtype=torch.float64, chunk: int = 4096,
                method: Literal["direct", "matmul"] = "direct") -> torch.Tensor:
    """All-pairs evaluation without a cutoff, (P, C): the reference the sampler is tested
    and timed against. Chunked over points so memory stays ~chunk x atoms.

    ``method="direct"`` forms every difference vector (exact; use with float64 as the
    reference); ``"matmul"`` gets squared distances from |p|^2 + |a|^2 - 2 p.a with one
    matrix product (the fast way to do all pairs; float32 rounding ~1e-4 A^2 at 50 A).
    """
    dev = points.device if isinstance(points, torch.Tensor) else torch.device("cpu")
    a = _as_tensor(xyz, dev, dtype).reshape(-1, 3)
    ch = _as_tensor(channel, dev, torch.long).reshape(-1)
    w = _as_tensor(width, dev, dtype).reshape(-1)
    p = _as_tensor(points, dev, dtype).reshape(-1, 3)
    onehot = torch.nn.functional.one_hot(ch, n_channels).to(dtype)
    inv_r2 = beta / (w * w)
    a2 = (a * a).sum(1)
    out = torch.zeros(len(p), n_channels, dtype=dtype, device=dev)
    for s in range(0, len(p), chunk):
        q = p[s:s + chunk]
        if method == "matmul":
            d2 = torch.addmm(a2[None, :], q, a.T, alpha=-2.0).add_((q * q).sum(1, keepdim=True))
        else:
            d2 = ((q[:, None, :] - a[None]) ** 2).sum(-1)
        # floor the exponent (exp(-50) float32, exp(-700) float64): denormals are slow
        floor = -50.0 if dtype == torch.float32 else -700.0
        out[s:s + chunk] = torch.exp((-d2.clamp_min_(0.0) * inv_r2[None]).clamp_min_(floor)) @ onehot
    return out


# --------------------------------------------------------------------------- structure level
def _prepare(structure, channels, conformer):
    chans = parse_channels(channels, structure)
    return chans, atom_table(structure, chans, conformer=conformer)


def _check_normalize(normalize: str) -> None:
    if normalize not in ("max", "none"):
        raise InputError(f"normalize must be 'max' or 'none', got {normalize!r}")


def channel_peaks(structure, channels, *, beta: float, conformer: int = 0,
                  device: str | torch.device = "cpu", tol: float = DEFAULT_TOL) -> np.ndarray:
    """The ``normalize="max"`` divisor of each channel, (C,) float32 (see :func:`peaks_from_table`).

    Examples
    --------
    >>> channel_peaks(structure, "paper-6ega", beta=0.25)  # doctest: +SKIP
    """
    chans, (xyz, ch, w) = _prepare(structure, channels, conformer)
    return peaks_from_table(xyz, ch, w, len(chans), beta=beta, tol=tol,
                            device=resolve_device(device)).cpu().numpy()


def sample_field(structure, channels, grid: Grid, *, beta: float, normalize: Normalize = "max",
                 conformer: int = 0, device: str | torch.device = "cpu", tol: float = DEFAULT_TOL,
                 scale=None) -> np.ndarray:
    """Sample Eq. 1 on a grid, (C, Nx, Ny, Nz) float32 numpy.

    Parameters
    ----------
    structure : molviz.chem.Structure
    channels : spec string or list of Channel
    grid : Grid (:func:`fit_grid`, :func:`spacing_grid`)
    beta : float
        Sharpness; the paper used 0.25 (6EGA) and 0.75 (FreeSolv, NMR).
    normalize : {"max", "none"}
        "max": divide each channel by :func:`channel_peaks` (values in [0, 1]).
    scale : (C,) array, optional
        Use this divisor instead of computing peaks (implies normalisation).

    Examples
    --------
    >>> s = molviz.load("6ega_protein.pdb", "6ega_ligand_J8A_withH.sdf")  # doctest: +SKIP
    >>> field = sample_field(s, "paper-6ega", fit_grid(s, "paper-6ega"), beta=0.25)  # doctest: +SKIP
    """
    _check_normalize(normalize)
    chans, (xyz, ch, w) = _prepare(structure, channels, conformer)
    dev = resolve_device(device)
    if scale is None and normalize == "max":
        scale = "max"
    out = field_from_table(xyz, ch, w, len(chans), grid, beta=beta, scale=scale, tol=tol, device=dev)
    return out.cpu().numpy()


def sample_points(structure, channels, points, *, beta: float, normalize: Normalize = "max",
                  conformer: int = 0, device: str | torch.device = "cpu", tol: float = DEFAULT_TOL,
                  scale=None) -> np.ndarray:
    """Sample Eq. 1 at arbitrary points (P, 3) angstrom, (P, C) float32 numpy.

    Same normalisation as :func:`sample_field`, so values equal the grid's at voxel centres
    (up to the cutoff bound).
    """
    _check_normalize(normalize)
    chans, (xyz, ch, w) = _prepare(structure, channels, conformer)
    dev = resolve_device(device)
    if scale is None and normalize == "max":
        scale = "max"
    out = field_from_table(xyz, ch, w, len(chans), np.asarray(points, dtype=np.float32),
                           beta=beta, scale=scale, tol=tol, device=dev)
    return out.cpu().numpy()


def sample_conformers(structure, channels, grid: Grid, *, beta: float, normalize: Normalize = "max",
                      conformers: Sequence[int] | None = None, device: str | torch.device = "cpu",
                      tol: float = DEFAULT_TOL) -> np.ndarray:
    """Sample several conformers on one grid in one batched pass, (M, C, Nx, Ny, Nz).

    Conformer m's channel c becomes channel ``m * C + c`` of a single atom table, so
    the whole ensemble is one sampler call; each conformer is normalised by its own
    peaks (the paper normalises per molecule).
    """
    _check_normalize(normalize)
    chans = parse_channels(channels, structure)
    n_conf = np.asarray(structure.coords).reshape(-1, len(structure.atomic_numbers), 3).shape[0]
    idx = list(range(n_conf)) if conformers is None else [int(i) for i in conformers]
    tables = [atom_table(structure, chans, conformer=i) for i in idx]
    n_c = len(chans)
    xyz = np.concatenate([t[0] for t in tables])
    ch = np.concatenate([t[1] + m * n_c for m, t in enumerate(tables)])
    w = np.concatenate([t[2] for t in tables])
    out = field_from_table(xyz, ch, w, n_c * len(idx), grid, beta=beta,
                           scale="max" if normalize == "max" else None, tol=tol,
                           device=resolve_device(device))
    return out.reshape(len(idx), n_c, *grid.shape).cpu().numpy()
