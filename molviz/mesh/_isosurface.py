"""Isosurfaces of decoded volumes, in angstrom, with outward point normals.

Two backends compute the same marching-cubes surface:

- ``"vtk"``: VTK's flying edges (``vtkFlyingEdges3D`` through
  ``pyvista.ImageData.contour(method="flying_edges")``).
- ``"skimage"``: scikit-image's Lewiner marching cubes.

``backend="auto"`` picks VTK, the faster one by measurement: ms per surface
(with normals), min of 3, density field of a FreeSolv-size molecule (RDKit
conformer, beta 0.75) at level 0.5, 2-core AMD EPYC shared with other jobs
(load ~5), 2026-11-26, ``molviz bench engine`` mesh rows:

    volume   skimage    vtk
    32^3        1.5     1.9
    64^3       10.5     3.5
    128^3     116.     39.
    256^3     621.    168.

VTK is handed the C-order array as a (z, y, x) image (no Fortran-order copy:
that copy alone cost more than the contouring at 256^3) and the coordinates
are swapped back.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from molviz.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pyvista


class GridLike(Protocol):
    """What isosurface needs from a :class:`molviz.fields.Grid` (mesh never imports torch)."""

    origin: tuple[float, float, float]  # centre of voxel (0, 0, 0), angstrom
    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]


LevelMode = Literal["absolute", "fraction", "percent"]
Backend = Literal["auto", "vtk", "skimage"]
BACKENDS = ("vtk", "skimage")
DEFAULT_BACKEND = "vtk"  # measured faster at every size above; see the module docstring


def resolve_level(volume: np.ndarray, level: float, mode: LevelMode = "fraction") -> float:
    """Turn a level given in ``mode`` into an absolute value of ``volume``.

    Parameters
    ----------
    volume : np.ndarray
        The channel's values, any shape.
    level : float
        ``"absolute"``: the value itself. ``"fraction"``: a fraction of the
        volume's maximum (0.5 = half the peak). ``"percent"``: the value that
        encloses this percentage of the voxels (ChimeraX's initial level
        encloses 1 %), i.e. ``level`` percent of voxels lie above it.
    mode : {"absolute", "fraction", "percent"}

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> round(resolve_level(np.arange(100.0), 10, "percent"), 6)
    89.1
    """
    level = float(level)
    if mode == "absolute":
        return level
    if mode == "fraction":
        return level * float(np.max(volume))
    if mode == "percent":
        if not 0.0 < level < 100.0:
            raise InputError(f"percent level {level} is outside (0, 100): give e.g. level=1 "
                             "for the level that encloses 1 % of the voxels")
        return float(np.percentile(volume, 100.0 - level))
    raise InputError(f"level mode {mode!r} is unknown: use 'absolute', 'fraction' or 'percent'")


def isosurface(
    volume: np.ndarray,
    grid: GridLike,
    *,
    level: float,
    mode: LevelMode = "fraction",
    backend: Backend = "auto",
) -> "pyvista.PolyData":
    """The isosurface of one channel at ``level``, in angstrom, with point normals.

    Parameters
    ----------
    volume : np.ndarray
        (Nx, Ny, Nz) values indexed ``[x, y, z]`` on ``grid``'s voxel centres.
    grid : molviz.fields.Grid
        Where the voxels are: ``origin`` (centre of voxel 0), ``spacing``.
    level : float
        The surface's level, read according to ``mode``.
    mode : {"absolute", "fraction", "percent"}
        See :func:`resolve_level`.
    backend : {"auto", "vtk", "skimage"}
        ``"auto"`` is VTK flying edges (measured faster).

    Returns
    -------
    pyvista.PolyData
        Triangles in angstrom with point array ``"Normals"`` pointing out of the
        region above the level. Empty (0 points) when the level is outside the
        volume's range.

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> x = np.linspace(-1, 1, 32)
    >>> vol = np.exp(-4 * (x[:, None, None]**2 + x[None, :, None]**2 + x[None, None, :]**2))
    >>> g = SimpleNamespace(origin=(-1.0,) * 3, spacing=(2 / 31,) * 3, shape=(32,) * 3)
    >>> isosurface(vol, g, level=0.5).n_points > 0
    True
    """
    import pyvista as pv

    vol = np.asarray(volume)
    if vol.ndim != 3:
        raise InputError(f"isosurface needs one channel, an (Nx, Ny, Nz) array; got shape {vol.shape}: "
                         "index the channel first, e.g. volume[c]")
    if min(vol.shape) < 2:
        raise InputError(f"volume of shape {vol.shape} is too thin for marching cubes: "
                         "every axis needs at least 2 voxels")
    if tuple(grid.shape) != vol.shape:
        raise InputError(f"volume shape {vol.shape} does not match grid shape {tuple(grid.shape)}")
    if not np.all(np.isfinite(vol)):
        raise InputError("volume has NaN or infinite values: decode again or clean it with np.nan_to_num")
    vol = vol.astype(np.float32, copy=False)
    value = resolve_level(vol, level, mode)
    lo, hi = float(vol.min()), float(vol.max())
    if not lo < value < hi:  # no voxel pair straddles the level
        return pv.PolyData()
    name = DEFAULT_BACKEND if backend == "auto" else backend
    if name == "vtk":
        return _vtk_surface(vol, grid, value)
    if name == "skimage":
        return _skimage_surface(vol, grid, value)
    raise InputError(f"isosurface backend {backend!r} is unknown: use 'auto', 'vtk' or 'skimage'")


def polydata(surface) -> "pyvista.PolyData":
    """A PyVista mesh from anything with ``points`` (V, 3), ``faces`` (F, 3) and ``normals`` (V, 3),
    e.g. a :class:`molviz.engine.Surface` extracted on the GPU (:meth:`molviz.engine.Engine.surfaces`).

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> tri = SimpleNamespace(points=np.eye(3, dtype=np.float32), faces=np.array([[0, 1, 2]]),
    ...                       normals=np.full((3, 3), 3 ** -0.5, np.float32))
    >>> polydata(tri).n_cells
    1
    """
    import pyvista as pv

    faces = np.asarray(surface.faces)
    if len(faces) == 0:
        return pv.PolyData()
    cells = np.empty((len(faces), 4), dtype=np.int64)
    cells[:, 0] = 3
    cells[:, 1:] = faces
    out = pv.PolyData(np.asarray(surface.points, np.float32), cells.ravel())
    out.point_data["Normals"] = np.asarray(surface.normals, np.float32)
    out.point_data.active_normals_name = "Normals"
    return out


def _vtk_surface(vol: np.ndarray, grid: GridLike, value: float) -> "pyvista.PolyData":
    import pyvista as pv

    # VTK runs its first axis fastest. Rather than copying the C-order [x, y, z] array into
    # Fortran order (a strided copy that cost more than the contouring at 256^3), hand VTK
    # the array as-is as a (z, y, x) image and swap the coordinates back afterwards.
    image = pv.ImageData(dimensions=vol.shape[::-1], spacing=tuple(map(float, grid.spacing[::-1])),
                         origin=tuple(map(float, grid.origin[::-1])))
    image.point_data["values"] = np.ascontiguousarray(vol).ravel()
    surf = image.contour([value], scalars="values", method="flying_edges", compute_normals=True,
                         compute_scalars=False)
    if surf.n_points == 0:
        return pv.PolyData()
    points = np.ascontiguousarray(np.asarray(surf.points)[:, ::-1])
    normals = np.ascontiguousarray(np.asarray(surf.point_data["Normals"])[:, ::-1])
    faces = np.asarray(surf.faces).reshape(-1, 4)
    # Swapping x and z is a reflection: reverse each triangle to keep outward winding. Flying
    # edges' normals are minus the gradient: they point out of the higher-valued region.
    out = pv.PolyData(points, np.column_stack([faces[:, :1], faces[:, :0:-1]]).ravel())
    out.point_data["Normals"] = normals
    out.point_data.active_normals_name = "Normals"
    return out


def _skimage_surface(vol: np.ndarray, grid: GridLike, value: float) -> "pyvista.PolyData":
    from skimage.measure import marching_cubes

    verts, faces, normals, _ = marching_cubes(vol, value, spacing=tuple(map(float, grid.spacing)))
    # skimage winds inward; wind outward like VTK and the normals
    return polydata(SimpleNamespace(points=verts + np.asarray(grid.origin, dtype=verts.dtype),
                                    faces=faces[:, ::-1], normals=normals))
