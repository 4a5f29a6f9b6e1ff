"""Regular grids and the paper's box.

Convention (one for all of molviz): voxel ``(i, j, k)`` has its centre at
``origin + (i, j, k) * spacing``; arrays are indexed ``[x, y, z]`` (C order, z
fastest). ``lo`` and ``hi`` are the first and last voxel *centres*, so
``with_resolution(n)`` keeps the sampled box ``lo..hi`` fixed and only changes the
spacing (super-resolution compares the same box at a finer grid).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from molviz.errors import InputError

# Voxels per axis, for every grid molviz makes or decodes (featurize, training, decoding, the app):
# 2 is the least that has a first and a last voxel centre; beyond 1024 a single channel is 4 GB.
MIN_RESOLUTION, MAX_RESOLUTION = 2, 1024


def axis_centres(lo: float, hi: float, n: int) -> np.ndarray:
    """The ``n`` voxel centres from ``lo`` to ``hi`` inclusive along one axis, float64:
    ``lo + i * (hi - lo) / (n - 1)``. The one formula of the convention; :meth:`Grid.axes`,
    training targets and the engine's decoding coordinates all come from it.

    Examples
    --------
    >>> axis_centres(-1.0, 1.0, 5).tolist()
    [-1.0, -0.5, 0.0, 0.5, 1.0]
    """
    if n < 2:
        return np.array([float(lo)] * n, dtype=np.float64)
    return float(lo) + np.arange(n, dtype=np.float64) * ((float(hi) - float(lo)) / (n - 1))


def check_shape(n: int | Sequence[int]) -> tuple[int, ...]:
    """One int -> (n, n, n); a sequence -> tuple of ints."""
    return (int(n),) * 3 if np.isscalar(n) else tuple(int(v) for v in n)  # type: ignore[arg-type]


def check_resolution(n: int | Sequence[int]) -> tuple[int, int, int]:
    """Validate a resolution (one int or three) against MIN_RESOLUTION..MAX_RESOLUTION per axis."""
    shape = check_shape(n)
    if len(shape) != 3 or any(not MIN_RESOLUTION <= v <= MAX_RESOLUTION for v in shape):
        raise InputError(f"resolution {n!r}: give one int or three, each {MIN_RESOLUTION}..{MAX_RESOLUTION} "
                         "voxels per axis")
    return shape  # type: ignore[return-value]


@dataclass(frozen=True)
class Grid:
    """A regular 3D grid of voxel centres (angstrom).

    Examples
    --------
    >>> g = Grid.from_box((0, 0, 0), (3, 3, 3), (4, 4, 4))
    >>> g.spacing, g.points().shape
    ((1.0, 1.0, 1.0), (64, 3))
    """

    origin: tuple[float, float, float]   # centre of voxel (0, 0, 0), angstrom
    spacing: tuple[float, float, float]  # angstrom between neighbouring voxel centres
    shape: tuple[int, int, int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "origin", tuple(float(v) for v in self.origin))
        object.__setattr__(self, "spacing", tuple(float(v) for v in self.spacing))
        object.__setattr__(self, "shape", tuple(int(v) for v in self.shape))
        if any(s <= 0 for s in self.spacing) or any(n < 1 for n in self.shape):
            raise InputError(f"grid needs positive spacing and shape, got {self.spacing}, {self.shape}")

    @property
    def lo(self) -> np.ndarray:
        """Centre of the first voxel, (3,) float64."""
        return np.asarray(self.origin, dtype=np.float64)

    @property
    def hi(self) -> np.ndarray:
        """Centre of the last voxel, (3,) float64."""
        return self.lo + (np.asarray(self.shape) - 1) * np.asarray(self.spacing)

    @property
    def n_points(self) -> int:
        return int(np.prod(self.shape))

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Voxel-centre coordinates along x, y and z (float64)."""
        x, y, z = (axis_centres(o, o + s * (n - 1), n) for o, s, n in zip(self.origin, self.spacing, self.shape))
        return x, y, z

    def points(self) -> np.ndarray:
        """All voxel centres, (Nx*Ny*Nz, 3) float32, C order (z fastest)."""
        x, y, z = self.axes()
        pts = np.stack(np.meshgrid(x, y, z, indexing="ij"), axis=-1)
        return pts.reshape(-1, 3).astype(np.float32)

    def with_resolution(self, n: int | Sequence[int]) -> Grid:
        """Same ``lo..hi`` box sampled with ``n`` voxels per axis."""
        return Grid.from_box(self.lo, self.hi, check_resolution(n))

    @classmethod
    def from_box(cls, lo: Sequence[float], hi: Sequence[float], shape: int | Sequence[int]) -> Grid:
        """Grid whose first and last voxel centres are ``lo`` and ``hi``."""
        shape3 = check_shape(shape)
        lo_, hi_ = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
        if (lo_.shape != (3,) or hi_.shape != (3,) or len(shape3) != 3 or np.any(hi_ <= lo_)
                or min(shape3) < 2):
            raise InputError(f"box lo={lo_} hi={hi_} shape={shape3}: need hi > lo and >= 2 voxels per axis")
        spacing = (hi_ - lo_) / (np.asarray(shape3) - 1)
        return cls(tuple(lo_), tuple(spacing), shape3)  # type: ignore[arg-type]

    def to_dict(self) -> dict:
        return {"origin": list(self.origin), "spacing": list(self.spacing), "shape": list(self.shape)}


def _all_coords(structures, conformer: int | None) -> np.ndarray:
    if not isinstance(structures, Sequence):
        structures = [structures]
    if not structures:
        raise InputError("fit_grid needs at least one structure")
    out = []
    for s in structures:
        c = np.asarray(s.coords, dtype=np.float64)
        c = c[None] if c.ndim == 2 else c
        out.append(c.reshape(-1, 3) if conformer is None else c[conformer])
    xyz = np.concatenate(out)
    if len(xyz) == 0 or not np.isfinite(xyz).all():
        raise InputError("fit_grid: structures have no atoms or non-finite coordinates")
    return xyz


def blob_margin(width: float, beta: float, level: float = 0.5) -> float:
    """Distance at which a blob of ``width`` falls to ``level``: exp(-beta m^2/r^2) = level."""
    return float(width) * math.sqrt(math.log(1.0 / level) / float(beta))


def fit_grid(structures, channels=None, *, resolution: int = 32, beta: float = 0.25,
             margin: float | None = None, conformer: int | None = None) -> Grid:
    """The paper's box: a cube centred on the centroid, covering every atom plus a margin.

    half-width = max distance of any atom from the centroid + ``margin``; by default
    the margin is where the widest blob of the channels' atoms falls below 0.5,
    ``m = r_max * sqrt(ln 2 / beta)``. With several structures, or conformers
    (``conformer=None``: all), one box covers them all (an ensemble shares a grid).

    Parameters
    ----------
    structures : Structure or sequence of Structure
    channels : spec or list of Channel, optional
        Gives the widest width (default: vdW widths of every atom).
    resolution : int
        Voxels per axis, 8..512.

    Examples
    --------
    >>> grid = fit_grid(structure, "paper-6ega", resolution=32, beta=0.25)  # doctest: +SKIP
    """
    shape = check_resolution(resolution)
    if beta <= 0:
        raise InputError(f"beta must be > 0, got {beta}")
    xyz = _all_coords(structures, conformer)
    centre = xyz.mean(axis=0)
    radius = float(np.sqrt(((xyz - centre) ** 2).sum(axis=1)).max())
    if margin is None:
        margin = blob_margin(_widest(structures, channels), beta)
    half = max(radius + float(margin), 1e-3)
    return Grid.from_box(centre - half, centre + half, shape)


def _widest(structures, channels) -> float:
    from molviz.fields._channels import Channel, parse_channels

    seq = structures if isinstance(structures, Sequence) else [structures]
    chans = parse_channels(channels, seq) if channels is not None else [
        Channel("all", None, None, "vdw")]
    widest = 0.0
    for s in seq:
        for ch in chans:
            mask = ch.select(s.atomic_numbers, s.components)
            if mask.any():
                widest = max(widest, float(ch.widths(np.asarray(s.atomic_numbers)[mask]).max()))
    return widest if widest > 0 else 1.0


def spacing_grid(structure, *, spacing: float, resolution: int, conformer: int | None = None) -> Grid:
    """A cube of ``resolution`` voxels per axis at fixed ``spacing`` (A), centred on the centroid.

    Fixed spacing makes voxels comparable across molecules (the paper's fit box
    rescales every molecule to fill it).

    Examples
    --------
    >>> grid = spacing_grid(structure, spacing=0.5, resolution=48)  # doctest: +SKIP
    """
    shape = check_resolution(resolution)
    if not spacing > 0:
        raise InputError(f"spacing must be > 0 angstrom, got {spacing}")
    centre = _all_coords(structure, conformer).mean(axis=0)
    origin = centre - (np.asarray(shape) - 1) / 2.0 * float(spacing)
    return Grid(tuple(origin), (float(spacing),) * 3, shape)  # type: ignore[arg-type]


def rule_grid(structure, channels, *, rule: str, resolution: int, beta: float, spacing: float | None = None,
              shared: Grid | None = None) -> Grid:
    """The training grid of one conformer under a bundle's box rule: the one place that applies it.

    ``rule`` is ``"fit"`` (the paper's box around this structure), ``"spacing"`` (a cube of
    ``resolution`` voxels at ``spacing`` angstrom, centred) or ``"shared"`` (``shared``: one box
    for every conformer of an ensemble, so a new conformer lives in it too).

    Examples
    --------
    >>> from molviz.chem import Structure
    >>> s = Structure(coords=np.zeros((1, 1, 3), np.float32), atomic_numbers=np.array([6]),
    ...               components=np.array(["ligand"]), atom_names=np.array(["C"]),
    ...               residue_names=np.array(["LIG"]), name="C")
    >>> rule_grid(s, None, rule="spacing", resolution=5, beta=0.75, spacing=0.5).lo.tolist()
    [-1.0, -1.0, -1.0]
    """
    if rule == "shared":
        if shared is None:
            raise InputError("box rule 'shared' needs the shared grid (the first item's box)")
        return shared
    if rule == "spacing":
        if not spacing:
            raise InputError("box rule 'spacing' needs a spacing in angstrom (e.g. --spacing 0.5)")
        return spacing_grid(structure, spacing=spacing, resolution=resolution)
    if rule != "fit":
        raise InputError(f"box rule {rule!r}: choose fit, shared or spacing")
    return fit_grid(structure, channels, resolution=resolution, beta=beta)
