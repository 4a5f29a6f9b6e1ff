"""Write meshes (PLY, OBJ, glTF) and volumes (CCP4/MRC, NPZ), atomically.

Every writer writes a temporary file in the destination folder and renames it
over the target (``os.replace``), so an interrupted export never leaves a
half-written file under the user's name.
"""
from __future__ import annotations

import contextlib
import json
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from molviz._io import atomic_path as _atomic_path
from molviz.errors import InputError
from molviz.mesh._isosurface import GridLike

if TYPE_CHECKING:  # pragma: no cover
    import pyvista

MESH_FORMATS = (".ply", ".obj", ".gltf", ".glb")
VOLUME_FORMATS = (".ccp4", ".mrc", ".map", ".npz")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix); rename it to ``path`` on success."""
    final = Path(path).expanduser()
    if not final.parent.is_dir():
        raise InputError(f"cannot write {str(path)!r}: folder {str(final.parent)!r} does not exist")
    with _atomic_path(final, mkdir=False) as tmp:
        yield tmp


def export_mesh(mesh: "pyvista.PolyData", path: str | os.PathLike, *,
                color: Sequence[float] | None = None) -> Path:
    """Write a triangle mesh as PLY (binary), OBJ, glTF (.gltf, embedded buffer) or GLB.

    Parameters
    ----------
    mesh : pyvista.PolyData
        Triangles in angstrom; point normals ("Normals") are written where the
        format has them (PLY, glTF).
    path : path-like
        Target file; its suffix picks the format.
    color : sequence of 3 floats in [0, 1], optional
        glTF material colour (base colour factor).

    Returns
    -------
    Path

    Examples
    --------
    >>> import pyvista as pv, tempfile
    >>> export_mesh(pv.Sphere(), tempfile.mkdtemp() + "/s.glb").suffix
    '.glb'
    """
    final = Path(path).expanduser()
    suffix = final.suffix.lower()
    if suffix not in MESH_FORMATS:
        raise InputError(f"cannot export a mesh as {str(path)!r}: use one of {', '.join(MESH_FORMATS)}")
    tri = mesh.triangulate() if mesh.n_cells and not mesh.is_all_triangles else mesh
    with atomic_path(final) as tmp:
        if suffix in (".gltf", ".glb"):
            _write_gltf(tri, tmp, binary=suffix == ".glb", color=color)
        elif tri.n_points == 0:  # VTK's writers write nothing for an empty mesh
            tmp.write_text(_EMPTY_PLY if suffix == ".ply" else "# molviz: empty isosurface\n")
        else:
            tri.save(str(tmp), binary=True) if suffix == ".ply" else tri.save(str(tmp))
    return final


_EMPTY_PLY = ("ply\nformat ascii 1.0\ncomment molviz: empty isosurface\nelement vertex 0\n"
              "property float x\nproperty float y\nproperty float z\nelement face 0\n"
              "property list uchar int vertex_indices\nend_header\n")


def _triangles(mesh: "pyvista.PolyData") -> np.ndarray:
    if mesh.n_cells == 0:
        return np.zeros((0, 3), np.uint32)
    faces = np.asarray(mesh.faces).reshape(-1, 4)
    return faces[:, 1:].astype(np.uint32)


def _write_gltf(mesh: "pyvista.PolyData", path: Path, *, binary: bool,
                color: Sequence[float] | None) -> None:
    """A glTF 2.0 asset with one triangle primitive (POSITION, NORMAL, indices).

    Written with numpy because VTK's glTF writer needs a render window (and
    crashes offscreen in VTK 9.7); viewers (Blender, three.js) and VTK's glTF
    reader open the result.
    """
    points = np.ascontiguousarray(mesh.points, dtype=np.float32)
    tris = np.ascontiguousarray(_triangles(mesh))
    has_normals = "Normals" in mesh.point_data and len(points) > 0
    normals = np.ascontiguousarray(mesh.point_data["Normals"], dtype=np.float32) if has_normals else None
    chunks, views, accessors = [], [], []
    offset = 0

    def add(data: np.ndarray, target: int, accessor: dict) -> int:
        nonlocal offset
        raw = data.tobytes()
        pad = (-len(raw)) % 4
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(raw), "target": target})
        chunks.append(raw + b"\0" * pad)
        offset += len(raw) + pad
        accessors.append({"bufferView": len(views) - 1, **accessor})
        return len(accessors) - 1

    attributes: dict[str, int] = {}
    primitive: dict = {"attributes": attributes, "mode": 4, "material": 0}
    if len(points):
        attributes["POSITION"] = add(points, 34962, {
            "componentType": 5126, "count": len(points), "type": "VEC3",
            "min": points.min(0).tolist(), "max": points.max(0).tolist()})
        if normals is not None:
            attributes["NORMAL"] = add(normals, 34962, {"componentType": 5126, "count": len(normals),
                                                        "type": "VEC3"})
    if len(tris):
        primitive["indices"] = add(tris.ravel(), 34963, {"componentType": 5125, "count": tris.size,
                                                          "type": "SCALAR"})
    blob = b"".join(chunks) or b"\0" * 4  # VTK's reader wants a BIN chunk even for an empty asset
    rgb = list(map(float, color)) if color is not None else [0.8, 0.8, 0.8]
    doc: dict = {
        "asset": {"version": "2.0", "generator": "molviz"},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0, "name": "isosurface"}],
        "meshes": [{"primitives": [primitive] if attributes else []}],
        "materials": [{"pbrMetallicRoughness": {"baseColorFactor": [*rgb[:3], 1.0],
                                                "metallicFactor": 0.0, "roughnessFactor": 0.8},
                       "doubleSided": True}],
    }
    if not attributes:  # an empty surface: a valid asset with a node and no geometry
        doc["nodes"] = [{"name": "isosurface (empty)"}]
        doc.pop("meshes")
    doc["buffers"] = [{"byteLength": len(blob)}]
    if views:
        doc["bufferViews"] = views
        doc["accessors"] = accessors
    if binary:
        js = json.dumps(doc, separators=(",", ":")).encode()
        js += b" " * ((-len(js)) % 4)
        body = struct.pack("<II", len(js), 0x4E4F534A) + js
        body += struct.pack("<II", len(blob), 0x004E4942) + blob
        path.write_bytes(struct.pack("<III", 0x46546C67, 2, 12 + len(body)) + body)
    else:
        import base64
        doc["buffers"][0]["uri"] = "data:application/octet-stream;base64," + base64.b64encode(blob).decode()
        path.write_text(json.dumps(doc))


def export_volume(volume: np.ndarray, grid: GridLike, path: str | os.PathLike, *,
                  channel_names: Sequence[str] | None = None) -> Path:
    """Write a volume as a CCP4/MRC map (gemmi) or an NPZ.

    Parameters
    ----------
    volume : np.ndarray
        (Nx, Ny, Nz) for a map; (Nx, Ny, Nz) or (C, Nx, Ny, Nz) for NPZ.
    grid : molviz.fields.Grid
        ``origin`` (centre of voxel 0, angstrom), ``spacing``, ``shape``.
    path : path-like
        ``.ccp4``/``.mrc``/``.map``: a float32 map whose cell is ``shape * spacing``
        and whose origin places voxel (0, 0, 0) at ``grid.origin``: the header's
        ORIGIN words (49-51) hold it in angstrom, and NXSTART.. hold
        ``origin / spacing`` when that is a whole number of voxels, so ChimeraX
        (which reads ORIGIN) and CCP4 programs (which read NSTART) agree.
        ``.npz``: the layout of ``molviz featurize``: ``field`` (C, Nx, Ny, Nz)
        float32, ``origin``, ``spacing``, ``shape``, ``channels``.
    channel_names : sequence of str, optional
        Names stored in the NPZ.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> from types import SimpleNamespace
    >>> g = SimpleNamespace(origin=(1.0, 2.0, 3.0), spacing=(0.5,) * 3, shape=(4, 5, 6))
    >>> export_volume(np.zeros((4, 5, 6), np.float32), g, tempfile.mkdtemp() + "/v.mrc").suffix
    '.mrc'
    """
    final = Path(path).expanduser()
    suffix = final.suffix.lower()
    if suffix not in VOLUME_FORMATS:
        raise InputError(f"cannot export a volume as {str(path)!r}: use one of {', '.join(VOLUME_FORMATS)}")
    vol = np.asarray(volume, dtype=np.float32)
    shape = tuple(int(n) for n in grid.shape)
    if vol.shape[-3:] != shape or vol.ndim not in (3, 4):
        raise InputError(f"volume shape {vol.shape} does not fit grid shape {shape}: "
                         "give (Nx, Ny, Nz) or, for .npz, (C, Nx, Ny, Nz)")
    origin = np.asarray(grid.origin, dtype=np.float64)
    spacing = np.asarray(grid.spacing, dtype=np.float64)
    with atomic_path(final) as tmp:
        if suffix == ".npz":
            field = vol if vol.ndim == 4 else vol[None]
            names = list(channel_names) if channel_names is not None else [f"channel {i}" for i in range(len(field))]
            if len(names) != len(field):
                raise InputError(f"{len(names)} channel names for {len(field)} channels")
            with open(tmp, "wb") as f:
                np.savez_compressed(f, field=field, origin=origin.astype(np.float32),
                                    spacing=spacing.astype(np.float32), shape=np.asarray(shape, np.int64),
                                    channels=np.asarray(names, dtype=str))
        else:
            if vol.ndim != 3:
                raise InputError(f"a {suffix} map holds one channel; got shape {vol.shape}: pass volume[c]")
            _write_ccp4(vol, origin, spacing, tmp)
    return final


def _write_ccp4(vol: np.ndarray, origin: np.ndarray, spacing: np.ndarray, path: Path) -> None:
    import gemmi

    cell = spacing * np.asarray(vol.shape)
    ccp4 = gemmi.Ccp4Map()
    ccp4.grid = gemmi.FloatGrid(np.ascontiguousarray(vol), gemmi.UnitCell(*cell, 90, 90, 90),
                                gemmi.SpaceGroup("P 1"))
    ccp4.update_ccp4_header(2, True)  # mode 2 (float32), recompute min/max/mean/rms
    start = origin / spacing
    if np.all(np.abs(start - np.round(start)) < 1e-4):
        for word, s in zip((5, 6, 7), np.round(start).astype(int)):
            ccp4.set_header_i32(word, int(s))
    for word, o in zip((50, 51, 52), origin):
        ccp4.set_header_float(word, float(o))
    ccp4.write_ccp4_map(str(path))
