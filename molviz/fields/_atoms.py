"""Atoms back from a field: greedy deconvolution with the known blob shape, then matching.

An element channel (a :class:`~molviz.fields.Channel` with exactly one element) holds

    f_c(x) = sum_i exp(-beta |x - a_i|^2 / r^2) / D_c

(Eq. 1; ``r`` the element's width, ``D_c`` the channel's divisor: its maximum
before normalisation). In ``raw = D_c f_c`` every atom is a Gaussian of height 1
and standard deviation ``sigma = r / sqrt(2 beta)``. Two such Gaussians closer
than ``2 sigma`` merge into one peak: at beta 0.75 a carbon (r = 1) has
sigma = 0.82 A, so two bonded carbons (1.39-1.54 A apart) make a single maximum
between them, and local maxima alone miss much of a carbon skeleton (see
:func:`local_maxima`). :func:`find_atoms` fits the blobs instead, a sparse
deconvolution with the known shape in the spirit of the sliding Frank-Wolfe
algorithm (Denoyelle et al., Inverse Problems 2019):

1. add a blob at the residual's highest voxel (sub-voxel start: a parabola
   through the three voxels along each axis), as high as that voxel;
2. refit the positions and heights of every blob near it jointly (L-BFGS on
   the squared error over a window of +-3 sigma), so merged neighbours slide
   apart, and subtract the refitted blobs from the residual;
3. when no residual voxel reaches ``threshold``, split the highest blob of
   height >= ``split`` (two merged atoms fitted by one blob get height ~2) in
   two along the main axis of its local second moment, and refit;
4. report the blobs of height >= ``min_amplitude``: one atom each.

On a true field (the exact model) this recovers every atom to a few thousandths
of an angstrom; on a decoded field it finds the atoms the network drew.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from molviz.errors import InputError
from molviz.fields._channels import Channel
from molviz.fields._grid import Grid

SUPPORT_TOL = 1e-5        # a blob counts as zero beyond the radius where it falls below this


@dataclass(frozen=True)
class FoundAtoms:
    """Atoms found in a field, one row each.

    ``amplitude`` is the fitted height of the atom's blob in atoms: 1 is one
    atom drawn at full height (a true field gives 1 for every atom).
    """

    xyz: np.ndarray          # (K, 3) float32, angstrom
    element: np.ndarray      # (K,) int64 atomic number
    channel: np.ndarray      # (K,) int64 index of the element channel it was found in
    amplitude: np.ndarray    # (K,) float32

    def __len__(self) -> int:
        return len(self.xyz)


def element_channels(channels: Sequence[Channel]) -> dict[int, int]:
    """Channel index -> atomic number, for the channels with exactly one element.

    Density channels (``elements`` None) and multi-element channels are left out:
    their blobs do not say which element an atom is.

    Examples
    --------
    >>> from molviz.fields import parse_channels
    >>> element_channels(parse_channels("freesolv"))[1]            # channel 1 is carbon
    6
    """
    out = {}
    for c, ch in enumerate(channels):
        if not isinstance(ch, Channel):
            raise InputError(f"channels[{c}] is {type(ch).__name__}, not a Channel; pass "
                             "molviz.fields.parse_channels(...) or Channel.from_dict(d) for each channel_defs entry")
        if ch.elements is not None and len(ch.elements) == 1:
            out[c] = int(next(iter(ch.elements)))
    return out


def element_atoms(xyz, channel, channels: Sequence[Channel]) -> tuple[np.ndarray, np.ndarray]:
    """The atoms of an atom table that element channels draw: xyz (A, 3) float64, element (A,) int64.

    An atom table has one row per (atom, channel); only the rows of element
    channels are atoms to recover (an atom drawn by two element channels, say
    ``C`` and ``ligand:C``, counts once).

    Examples
    --------
    >>> from molviz.chem import load
    >>> from molviz.fields import atom_table, parse_channels
    >>> chans = parse_channels("freesolv")
    >>> xyz, el = element_atoms(*atom_table(load("CCO"), chans)[:2], chans)   # ethanol
    >>> sorted(el.tolist())
    [1, 1, 1, 1, 1, 1, 6, 6, 8]
    """
    elements = element_channels(channels)
    xyz = np.asarray(xyz, np.float64).reshape(-1, 3)
    channel = np.asarray(channel, np.int64).reshape(-1)
    keep = np.isin(channel, list(elements))
    rows = np.concatenate([xyz[keep], np.array([elements[int(c)] for c in channel[keep]], np.float64)[:, None]], 1)
    rows = np.unique(rows, axis=0) if len(rows) else rows.reshape(0, 4)
    return rows[:, :3], rows[:, 3].astype(np.int64)


class _Deconvolver:
    """The residual of one channel and the blobs fitted so far (module docstring, steps 1-3)."""

    def __init__(self, raw: torch.Tensor, grid: Grid, a: float, *, iters: int, min_distance: float = 1.0,
                 min_amplitude: float = 0.5):
        self.R = raw.clone()                                                # (Nx, Ny, Nz) residual
        dt, dev = raw.dtype, raw.device
        self.axes = [torch.as_tensor(ax, dtype=dt, device=dev) for ax in grid.axes()]
        self.lo = torch.as_tensor(grid.lo, dtype=dt, device=dev)
        self.hi = torch.as_tensor(grid.hi, dtype=dt, device=dev)
        self.origin, self.spacing, self.shape = grid.origin, grid.spacing, grid.shape
        self.a, self.sigma = a, 1.0 / math.sqrt(2.0 * a)
        self.r_support = math.sqrt(math.log(1.0 / SUPPORT_TOL) / a)
        self.r_fit = 3.0 * self.sigma
        self.r_group = 4.0 * self.sigma          # blobs this close share voxels and are refitted together
        self.iters = iters
        self.min_distance, self.min_amplitude = min_distance, min_amplitude
        self.pos = torch.zeros(0, 3, dtype=dt, device=dev)
        self.amp = torch.zeros(0, dtype=dt, device=dev)
        self.tried = torch.zeros(0, dtype=torch.bool, device=dev)   # split tried and undone

    def window(self, pos: torch.Tensor, radius: float) -> tuple[slice, slice, slice]:
        lo = pos.amin(0).tolist() if len(pos) else [0.0] * 3
        hi = pos.amax(0).tolist() if len(pos) else [0.0] * 3
        out = []
        for d in range(3):
            i0 = math.floor((lo[d] - radius - self.origin[d]) / self.spacing[d])
            i1 = math.ceil((hi[d] + radius - self.origin[d]) / self.spacing[d]) + 1
            out.append(slice(max(0, i0), min(self.shape[d], max(0, i1))))
        return tuple(out)  # type: ignore[return-value]

    def render(self, pos: torch.Tensor, amp: torch.Tensor, win) -> torch.Tensor:
        """Sum of the blobs (pos (k, 3), heights (k,)) on the voxels of ``win``: separable Gaussians."""
        g = [torch.exp(-self.a * (self.axes[d][win[d]][None, :] - pos[:, d:d + 1]) ** 2) for d in range(3)]
        return torch.einsum("k,ki,kj,kl->ijl", amp, g[0], g[1], g[2])           # (k,) (k, n*) -> (nx, ny, nz)

    def add(self, pos: torch.Tensor, amp: torch.Tensor, sign: float) -> None:
        if len(pos):
            win = self.window(pos, self.r_support)
            self.R[win] += sign * self.render(pos, amp, win)

    def group(self, centre: torch.Tensor) -> torch.Tensor:
        return torch.nonzero(((self.pos - centre) ** 2).sum(1) <= self.r_group ** 2).squeeze(1)

    def refit(self, idx: torch.Tensor) -> None:
        """Refit the blobs ``idx`` jointly against the residual plus themselves, over +-3 sigma."""
        p0, a0 = self.pos[idx], self.amp[idx]
        self.add(p0, a0, +1.0)
        win = self.window(p0, self.r_fit)
        target = self.R[win]
        p = p0.clone().requires_grad_(True)
        s = a0.clamp_min(1e-6).sqrt().clone().requires_grad_(True)        # height = s^2 >= 0
        opt = torch.optim.LBFGS([p, s], max_iter=self.iters, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-10, tolerance_change=1e-14)

        def closure():
            opt.zero_grad()
            loss = ((self.render(p, s * s, win) - target) ** 2).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        new_p = torch.maximum(torch.minimum(p.detach(), self.hi), self.lo)
        new_a = (s.detach() ** 2)
        if not bool(torch.isfinite(new_p).all() and torch.isfinite(new_a).all()):
            new_p, new_a = p0, a0
        self.pos[idx], self.amp[idx] = new_p, new_a
        self.add(new_p, new_a, -1.0)

    def peak_start(self, flat: int) -> torch.Tensor:
        """Sub-voxel start at a voxel: a parabola through it and its two neighbours on each axis."""
        ijk = np.unravel_index(flat, self.shape)
        out = []
        for d in range(3):
            i = int(ijk[d])
            x = self.origin[d] + i * self.spacing[d]
            if 0 < i < self.shape[d] - 1:
                lo_, hi_ = list(ijk), list(ijk)
                lo_[d], hi_[d] = i - 1, i + 1
                vm, v0, vp = float(self.R[tuple(lo_)]), float(self.R[ijk]), float(self.R[tuple(hi_)])
                curv = vm - 2 * v0 + vp
                if curv < 0:
                    x += self.spacing[d] * min(0.5, max(-0.5, 0.5 * (vm - vp) / curv))
            out.append(x)
        return torch.tensor(out, dtype=self.R.dtype, device=self.R.device)

    def push(self, pos: torch.Tensor, amp: torch.Tensor, tried: bool = False) -> None:
        self.pos = torch.cat([self.pos, pos.reshape(-1, 3)])
        self.amp = torch.cat([self.amp, amp.reshape(-1)])
        self.tried = torch.cat([self.tried, torch.full((len(amp.reshape(-1)),), tried, device=self.tried.device)])

    def drop(self, keep: torch.Tensor) -> None:
        gone = ~keep
        self.add(self.pos[gone], self.amp[gone], +1.0)
        self.pos, self.amp, self.tried = self.pos[keep], self.amp[keep], self.tried[keep]

    def split(self, k: int) -> None:
        """Replace blob k by two, +-delta along the main axis of the local second moment, and refit."""
        p, amp = self.pos[k], self.amp[k]
        win = self.window(p[None], self.r_fit)
        t = (self.R[win] + self.render(p[None], amp[None], win)).clamp_min(0)
        xs = torch.meshgrid(*[self.axes[d][win[d]] for d in range(3)], indexing="ij")
        pts = torch.stack([x.reshape(-1) for x in xs], 1)                   # (V, 3)
        w = t.reshape(-1)
        mu = (w[:, None] * pts).sum(0) / w.sum()
        d = pts - mu
        cov = (w[:, None, None] * d[:, :, None] * d[:, None, :]).sum(0) / w.sum()
        vals, vecs = torch.linalg.eigh(cov)
        delta = math.sqrt(max(float(vals[-1]) - self.sigma ** 2, (0.5 * self.sigma) ** 2))
        keep = torch.ones(len(self.pos), dtype=torch.bool, device=self.pos.device)
        keep[k] = False
        self.drop(keep)
        pair = torch.stack([mu + delta * vecs[:, -1], mu - delta * vecs[:, -1]])
        n0 = len(self.pos)
        self.push(pair, torch.stack([amp / 2, amp / 2]))
        self.add(pair, torch.stack([amp / 2, amp / 2]), -1.0)
        self.refit(self.group(mu))
        a, b = self.pos[n0], self.pos[n0 + 1]
        if (float(((a - b) ** 2).sum()) < max(0.5 * self.sigma, self.min_distance) ** 2
                or float(self.amp[n0:].min()) < self.min_amplitude):       # slid back together: one blob
            keep = torch.ones(len(self.pos), dtype=torch.bool, device=self.pos.device)
            keep[n0:] = False
            merged_a = self.amp[n0] + self.amp[n0 + 1]
            merged_p = (self.amp[n0] * a + self.amp[n0 + 1] * b) / merged_a
            self.drop(keep)
            self.push(merged_p, merged_a, tried=True)
            self.add(merged_p[None], merged_a[None], -1.0)

    def run(self, *, threshold: float, split: float, max_atoms: int) -> None:
        for _ in range(3 * max_atoms):
            flat = int(torch.argmax(self.R))
            if float(self.R.reshape(-1)[flat]) >= threshold and len(self.pos) < max_atoms:
                p = self.peak_start(flat)
                self.push(p, self.R.reshape(-1)[flat].clone())
                self.add(p[None], self.amp[-1:], -1.0)
                self.refit(self.group(p))
            else:
                cand = (self.amp >= split) & ~self.tried
                if not bool(cand.any()) or len(self.pos) >= max_atoms:
                    break
                self.split(int(torch.argmax(torch.where(cand, self.amp, torch.zeros_like(self.amp)))))
            faint = self.amp < 1e-3
            if bool(faint.any()):
                self.drop(~faint)

    def polish(self, sweeps: int) -> None:
        """Refit every blob's group in turn, highest first: local refits leave the far ends of a group
        half-converged."""
        for _ in range(sweeps):
            for k in torch.argsort(self.amp, descending=True).tolist():
                if k < len(self.pos):
                    self.refit(self.group(self.pos[k]))


def find_atoms(field, grid: Grid, channels: Sequence[Channel], *, beta: float, scale=None,
               threshold: float = 0.5, min_amplitude: float = 0.5, split: float = 1.1, min_distance: float = 1.0,
               max_atoms: int = 5000, iters: int = 30, polish: int = 2, device: str | torch.device | None = None) -> FoundAtoms:
    """Atoms drawn in a field: greedy deconvolution of each element channel (module docstring).

    Parameters
    ----------
    field : (C, Nx, Ny, Nz) array or tensor
        A true or decoded field on ``grid``, normalised as the bundle's (each channel
        divided by ``scale``).
    grid : Grid
        Where the voxels are (angstrom). A grid finer than the training one helps
        a decoded field; a true field needs only voxels no wider than about sigma.
    channels : sequence of Channel
        One per field channel; only element channels (:func:`element_channels`) are read.
    beta : float
        The field's beta (bundle config).
    scale : (C,) array, optional
        The divisor of each channel (the bundle's ``divisors`` of the item): one
        atom's blob peaks at ``1 / scale[c]``. None: the field is not normalised.
    threshold : float
        Keep adding blobs while a residual voxel reaches this height, in atoms.
    min_amplitude : float
        A fitted blob is an atom from this height on, in atoms.
    split : float
        A blob this high (in atoms) may be two merged atoms: try splitting it once. The split
        stands only if both halves stay >= ``min_amplitude`` high and ``min_distance`` apart.
    min_distance : float
        Angstrom; two atoms of one element are never closer (the shortest, N#N and C#C
        triple bonds, are 1.1-1.2 A; bonded hydrogens 1.5 A and more).
    max_atoms : int
        Per channel, a guard against fitting noise forever.
    iters : int
        L-BFGS iterations per local refit.
    polish : int
        Sweeps of local refits over all blobs at the end.

    Returns
    -------
    FoundAtoms
        Positions (angstrom), elements, channels and fitted heights.

    Examples
    --------
    Two carbons 1.5 A apart make one peak at beta 0.75; the fit finds both:

    >>> from molviz.fields import Grid, field_from_table, parse_channels
    >>> chans = parse_channels("freesolv")
    >>> xyz = np.array([[-0.75, 0.1, 0.0], [0.75, 0.0, 0.0]], np.float32)
    >>> grid = Grid.from_box((-4, -4, -4), (4, 4, 4), 33)
    >>> f = field_from_table(xyz, [1, 1], [1.0, 1.0], 11, grid, beta=0.75)
    >>> found = find_atoms(f, grid, chans, beta=0.75)
    >>> found.element.tolist(), np.round(np.sort(found.xyz[:, 0]), 2).tolist()
    ([6, 6], [-0.75, 0.75])
    """
    if beta <= 0:
        raise InputError(f"beta must be > 0, got {beta}")
    f = field if isinstance(field, torch.Tensor) else torch.as_tensor(np.require(field, requirements="W"))
    dev = torch.device(device) if device is not None else f.device
    f = f.to(device=dev, dtype=torch.float64)
    if f.ndim != 4 or tuple(f.shape[1:]) != tuple(grid.shape) or f.shape[0] != len(channels):
        raise InputError(f"field of shape {tuple(f.shape)} does not fit {len(channels)} channels on a "
                         f"{grid.shape} grid; pass the (C, Nx, Ny, Nz) field the grid was sampled on")
    div = np.ones(len(channels)) if scale is None else np.asarray(scale, np.float64).reshape(-1)
    if div.shape != (len(channels),) or not np.all(div > 0):
        raise InputError(f"scale needs {len(channels)} positive divisors (the bundle's divisors of the item), "
                         f"got shape {div.shape}")
    xyz, element, chan, amp = [], [], [], []
    for c, z in element_channels(channels).items():
        if float(f[c].max()) * div[c] < threshold:
            continue
        r = float(channels[c].widths(np.array([z]))[0])
        solver = _Deconvolver(f[c] * div[c], grid, beta / (r * r), iters=iters, min_distance=min_distance,
                               min_amplitude=min_amplitude)
        solver.run(threshold=threshold, split=split, max_atoms=max_atoms)
        solver.polish(polish)
        keep = solver.amp >= min_amplitude
        xyz.append(solver.pos[keep].cpu().numpy())
        amp.append(solver.amp[keep].cpu().numpy())
        element.append(np.full(int(keep.sum()), z, np.int64))
        chan.append(np.full(int(keep.sum()), c, np.int64))
    if not xyz:
        return FoundAtoms(np.zeros((0, 3), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64),
                          np.zeros(0, np.float32))
    return FoundAtoms(np.concatenate(xyz).astype(np.float32), np.concatenate(element),
                      np.concatenate(chan), np.concatenate(amp).astype(np.float32))


def local_maxima(field, grid: Grid, *, threshold: float = 0.5) -> list[np.ndarray]:
    """Voxels higher than their 26 neighbours and ``threshold``, per channel: [(K_c, 3) angstrom].

    The naive detector, kept to show what :func:`find_atoms` is for: merged
    blobs give one maximum for several atoms.

    Examples
    --------
    >>> from molviz.fields import Grid, field_from_table
    >>> grid = Grid.from_box((-4, -4, -4), (4, 4, 4), 33)
    >>> xyz = np.array([[-0.75, 0.0, 0.0], [0.75, 0.0, 0.0]], np.float32)
    >>> f = field_from_table(xyz, [0, 0], [1.0, 1.0], 1, grid, beta=0.75)
    >>> len(local_maxima(f, grid)[0])                                     # two carbons, one peak
    1
    """
    f = torch.as_tensor(np.asarray(field) if not isinstance(field, torch.Tensor) else field).double()
    pooled = torch.nn.functional.max_pool3d(f[None], 3, stride=1, padding=1)[0]
    out = []
    for c in range(f.shape[0]):
        ijk = torch.nonzero((f[c] >= pooled[c]) & (f[c] >= threshold)).cpu().numpy()
        out.append(grid.lo + ijk * np.asarray(grid.spacing))
    return out


def match_atoms(found_xyz, found_element, true_xyz, true_element, *,
                tolerance: float = 0.5) -> dict[str, float | int | bool | None]:
    """Match found atoms to true ones one to one within ``tolerance`` angstrom, closest pairs first.

    Greedy by distance, whatever the elements: all pairs closer than
    ``tolerance`` in increasing distance, each taken unless one of its atoms is
    already matched (with atoms of one element >= 1 A apart and a tolerance of
    0.5 A this equals an optimal assignment except in contrived cases).

    Returns
    -------
    dict
        ``n_true``, ``n_found``, ``n_matched``;
        ``recall`` = matched / true (None without true atoms);
        ``precision`` = matched / found (None when nothing was found: undefined, not 0);
        ``element_accuracy`` = share of matched pairs of the same element (None without matches);
        ``rmsd`` = root mean square distance of matched pairs, angstrom (None without matches);
        ``complete`` = every true heavy atom (Z > 1) matched by one of its element
        (None without heavy atoms).

    Examples
    --------
    >>> true = np.array([[0.0, 0, 0], [1.5, 0, 0]])
    >>> m = match_atoms(true + [0.3, 0, 0], [6, 6], true, [6, 6])
    >>> m["recall"], m["precision"], round(m["rmsd"], 3), m["complete"]
    (1.0, 1.0, 0.3, True)
    >>> match_atoms(np.zeros((0, 3)), [], true, [6, 6])["precision"] is None
    True
    """
    fx = np.asarray(found_xyz, np.float64).reshape(-1, 3)
    tx = np.asarray(true_xyz, np.float64).reshape(-1, 3)
    fe = np.asarray(found_element, np.int64).reshape(-1)
    te = np.asarray(true_element, np.int64).reshape(-1)
    if len(fe) != len(fx) or len(te) != len(tx):
        raise InputError(f"match_atoms: {len(fx)} found positions but {len(fe)} elements, {len(tx)} true "
                         f"positions but {len(te)} elements; give one element per atom")
    pairs: list[tuple[int, int, float]] = []
    if len(fx) and len(tx):
        d = np.sqrt(((fx[:, None, :] - tx[None, :, :]) ** 2).sum(-1))           # (F, T)
        fi, ti = np.nonzero(d <= tolerance)
        used_f, used_t = set(), set()
        for k in np.argsort(d[fi, ti], kind="stable"):
            a, b = int(fi[k]), int(ti[k])
            if a not in used_f and b not in used_t:
                used_f.add(a)
                used_t.add(b)
                pairs.append((a, b, float(d[a, b])))
    n = len(pairs)
    same = [fe[a] == te[b] for a, b, _ in pairs]
    heavy = te > 1
    ok = np.zeros(len(tx), bool)
    for (a, b, _), s in zip(pairs, same):
        ok[b] = s
    return {
        "n_true": int(len(tx)), "n_found": int(len(fx)), "n_matched": n,
        "recall": n / len(tx) if len(tx) else None,
        "precision": n / len(fx) if len(fx) else None,
        "element_accuracy": float(np.mean(same)) if n else None,
        "rmsd": math.sqrt(sum(d * d for *_, d in pairs) / n) if n else None,
        "complete": bool(ok[heavy].all()) if heavy.any() else None,
    }
