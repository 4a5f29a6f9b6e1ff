"""Write meshes (PLY, OBJ, glTF) and volumes (CCP4/MRC, NPZ), atomically.

Every writer writes a temporary file in the destination folder and renames it
over the target (``os.replace``), so an interrupted export never leaves a
half-written file under the user's name.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
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
    path.write_bytes(gltf_bytes([{"name": "isosurface", "mesh": mesh, "color": color}], binary=binary))


def export_scene(parts: Sequence[dict], path: str | os.PathLike) -> Path:
    """Write several meshes, each with its own name and colour, as one glTF (.gltf) or GLB (.glb) asset.

    Parameters
    ----------
    parts : sequence of dict
        ``{"name": str, "mesh": pyvista.PolyData, "color": (r, g, b) in [0, 1], "opacity": float,
        "vertex_colors": (V, 3) uint8 or float, optional}``; see :func:`gltf_bytes`.
    path : path-like

    Examples
    --------
    >>> import pyvista as pv, tempfile
    >>> parts = [{"name": "C", "mesh": pv.Sphere(), "color": (0.5, 0.5, 0.5)},
    ...          {"name": "O", "mesh": pv.Sphere(center=(2, 0, 0)), "color": (1, 0, 0), "opacity": 0.5}]
    >>> export_scene(parts, tempfile.mkdtemp() + "/scene.glb").suffix
    '.glb'
    """
    final = Path(path).expanduser()
    suffix = final.suffix.lower()
    if suffix not in (".gltf", ".glb"):
        raise InputError(f"cannot export a scene as {str(path)!r}: use .glb or .gltf")
    with atomic_path(final) as tmp:
        tmp.write_bytes(gltf_bytes(parts, binary=suffix == ".glb"))
    return final


def gltf_bytes(parts: Sequence[dict], *, binary: bool = True) -> bytes:
    """A glTF 2.0 asset: one node, mesh and material per part (POSITION, NORMAL, indices, and
    COLOR_0 where a part has ``vertex_colors``); opacity below 1 blends.

    Written with numpy because VTK's glTF writer needs a render window (and
    crashes offscreen in VTK 9.7); viewers (Blender, three.js, PowerPoint's 3D
    models) and VTK's glTF reader open the result.
    """
    chunks, views, accessors = [], [], []
    nodes, meshes, materials = [], [], []
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

    for part in parts:
        tri_mesh = part["mesh"]
        if tri_mesh.n_cells and not tri_mesh.is_all_triangles:
            tri_mesh = tri_mesh.triangulate()
        points = np.ascontiguousarray(tri_mesh.points, dtype=np.float32)
        tris = np.ascontiguousarray(_triangles(tri_mesh))
        name = str(part.get("name", "mesh"))
        if not len(points) or not len(tris):  # an empty surface: a node without geometry
            nodes.append({"name": f"{name} (empty)"})
            continue
        attributes = {"POSITION": add(points, 34962, {
            "componentType": 5126, "count": len(points), "type": "VEC3",
            "min": points.min(0).tolist(), "max": points.max(0).tolist()})}
        if "Normals" in tri_mesh.point_data:
            normals = np.ascontiguousarray(tri_mesh.point_data["Normals"], dtype=np.float32)
            attributes["NORMAL"] = add(normals, 34962, {"componentType": 5126, "count": len(normals), "type": "VEC3"})
        vc = part.get("vertex_colors")
        if vc is not None:
            vc = np.asarray(vc)
            vc = (vc / 255.0 if vc.dtype == np.uint8 else vc)[:, :3].astype(np.float32)
            attributes["COLOR_0"] = add(np.ascontiguousarray(vc), 34962, {"componentType": 5126, "count": len(vc),
                                                                          "type": "VEC3"})
        indices = add(tris.ravel(), 34963, {"componentType": 5125, "count": tris.size, "type": "SCALAR"})
        rgb = list(map(float, part.get("color") or (0.8, 0.8, 0.8)))
        alpha = float(part.get("opacity", 1.0))
        material: dict = {"name": name, "doubleSided": True,
                          "pbrMetallicRoughness": {"baseColorFactor": [*rgb[:3], alpha] if vc is None
                                                   else [1.0, 1.0, 1.0, alpha],
                                                   "metallicFactor": 0.0, "roughnessFactor": 0.8}}
        if alpha < 1.0:
            material["alphaMode"] = "BLEND"
        materials.append(material)
        meshes.append({"name": name, "primitives": [{"attributes": attributes, "indices": indices, "mode": 4,
                                                     "material": len(materials) - 1}]})
        nodes.append({"mesh": len(meshes) - 1, "name": name})
    blob = b"".join(chunks) or b"\0" * 4  # VTK's reader wants a BIN chunk even for an empty asset
    doc: dict = {"asset": {"version": "2.0", "generator": "molviz"},
                 "scene": 0, "scenes": [{"nodes": list(range(len(nodes)))}], "nodes": nodes,
                 "buffers": [{"byteLength": len(blob)}]}
    if meshes:
        doc.update(meshes=meshes, materials=materials, bufferViews=views, accessors=accessors)
    if binary:
        js = json.dumps(doc, separators=(",", ":")).encode()
        js += b" " * ((-len(js)) % 4)
        body = struct.pack("<II", len(js), 0x4E4F534A) + js
        body += struct.pack("<II", len(blob), 0x004E4942) + blob
        return struct.pack("<III", 0x46546C67, 2, 12 + len(body)) + body
    import base64
    doc["buffers"][0]["uri"] = "data:application/octet-stream;base64," + base64.b64encode(blob).decode()
    return json.dumps(doc).encode()


def safe_name(name: str) -> str:
    """A channel or item name as a file-name part: runs of anything but letters, digits, ``_.-``
    become one ``-`` (``"ligand:C"`` -> ``"ligand-C"``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(name))


def save_volume_npz(path: str | os.PathLike, field: np.ndarray, *, origin, spacing,
                    channels: Sequence[str], **extra) -> Path:
    """Write volumes in molviz's one NPZ layout (``molviz featurize``, ``molviz decode``, the app), atomically.

    Layout (``np.load(path, allow_pickle=False)``): ``field`` float32, (C, Nx, Ny, Nz) for one
    volume or (M, C, Nx, Ny, Nz) for a stack; ``origin`` and ``spacing`` float32, (3,) or (M, 3):
    the centre of voxel (0, 0, 0) and the step, angstrom, voxel (i, j, k) at ``origin + (i, j, k) *
    spacing``; ``shape`` int64 (3,); ``channels`` str (C,); plus plain-array ``extra`` entries
    (``beta``, ``normalize``, ``name``, ``names``, ``smiles``).

    Examples
    --------
    >>> import tempfile
    >>> p = save_volume_npz(tempfile.mkdtemp() + "/v.npz", np.zeros((1, 2, 2, 2)), origin=(0, 0, 0),
    ...                     spacing=(1, 1, 1), channels=["C"], beta=0.75)
    >>> sorted(np.load(p).files)
    ['beta', 'channels', 'field', 'origin', 'shape', 'spacing']
    """
    field = np.asarray(field, np.float32)
    if field.ndim not in (4, 5):
        raise InputError(f"volume NPZ: field has shape {field.shape}; give (C, Nx, Ny, Nz) or (M, C, Nx, Ny, Nz)")
    names = [str(c) for c in channels]
    if len(names) != field.shape[-4]:
        raise InputError(f"{len(names)} channel names for {field.shape[-4]} channels")
    arrays = {"field": field, "origin": np.asarray(origin, np.float32), "spacing": np.asarray(spacing, np.float32),
              "shape": np.asarray(field.shape[-3:], np.int64), "channels": np.asarray(names, dtype=str)}
    for key, value in extra.items():
        value = np.asarray(value)
        if value.dtype == object:
            raise InputError(f"volume NPZ entry {key!r} must be a plain array (numbers or strings)")
        arrays[key] = value
    final = Path(path).expanduser()
    with atomic_path(final) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    return final


def write_maps(out: str | os.PathLike, field: np.ndarray, grid: GridLike, names: Sequence[str]) -> list[Path]:
    """One CCP4/MRC map per channel of ``field`` (C, Nx, Ny, Nz): ``<stem>_<channel><suffix>``
    beside ``out`` (:func:`export_volume`'s convention). Returns the paths written."""
    out = Path(out)
    if len(field) != len(names):
        raise InputError(f"{len(names)} channel names for {len(field)} channels")
    return [export_volume(vol, grid, out.with_name(f"{out.stem}_{safe_name(name)}{out.suffix}"))
            for vol, name in zip(field, names)]


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
    if suffix == ".npz":
        field = vol if vol.ndim == 4 else vol[None]
        names = list(channel_names) if channel_names is not None else [f"channel {i}" for i in range(len(field))]
        return save_volume_npz(final, field, origin=origin, spacing=spacing, channels=names)
    if vol.ndim != 3:
        raise InputError(f"a {suffix} map holds one channel; got shape {vol.shape}: pass volume[c]")
    with atomic_path(final) as tmp:
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
