"""Isosurfaces and exports of decoded volumes. Never imports torch.

Examples
--------
>>> import numpy as np
>>> from types import SimpleNamespace
>>> from molviz.mesh import isosurface, export_mesh
>>> x = np.linspace(-1, 1, 24)
>>> vol = np.exp(-4 * (x[:, None, None]**2 + x[None, :, None]**2 + x[None, None, :]**2))
>>> grid = SimpleNamespace(origin=(-1.0,) * 3, spacing=(2 / 23,) * 3, shape=(24,) * 3)
>>> isosurface(vol, grid, level=50, mode="percent").n_points > 0
True
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from molviz._lazy import lazy_exports

_EXPORTS = {
    "_export": ("MESH_FORMATS", "VOLUME_FORMATS", "atomic_path", "export_mesh", "export_scene", "export_volume",
                "gltf_bytes", "safe_name", "save_volume_npz", "write_maps",),
    "_isosurface": ("BACKENDS", "DEFAULT_BACKEND", "isosurface", "polydata", "resolve_level",),
}

if TYPE_CHECKING:  # pragma: no cover  (what the lazy exports resolve to, for type checkers and IDEs)
    from molviz.mesh._export import (  # noqa: F401
        MESH_FORMATS,
        VOLUME_FORMATS,
        atomic_path,
        export_mesh,
        export_scene,
        export_volume,
        gltf_bytes,
        safe_name,
        save_volume_npz,
        write_maps,
    )
    from molviz.mesh._isosurface import BACKENDS, DEFAULT_BACKEND, isosurface, polydata, resolve_level  # noqa: F401

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
