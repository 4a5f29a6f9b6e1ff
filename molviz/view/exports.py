"""Downloads of what a view shows: the scene's meshes as one GLB, the visible channels as CCP4 maps.

Pure computation on a built scene or a :class:`molviz.view.explore.View`; the app only hands
the bytes to the browser.
"""
from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from molviz.errors import InputError

MAX_MAPS_BYTES = 512 << 20          # largest map download (float32 voxels over all visible channels)


def scene_glb(built) -> bytes:
    """Every mesh of a built scene (:class:`molviz.view.scene.BuiltScene`) in one binary glTF:
    isosurfaces in their colours and opacities, atoms in their element colours, bonds; outlines
    left out. Meshes are named by channel (``C``; the truth layer of a side-by-side ``truth:C``)."""
    from molviz.mesh import gltf_bytes
    from molviz.view.scene import color_rgb, layer_part_label
    parts = []
    for name, (mesh, kw) in built.actors.items():
        if name.endswith(":outline") or mesh is None or mesh.n_points == 0:
            continue
        part = {"name": layer_part_label(name), "mesh": mesh, "opacity": float(kw.get("opacity", 1.0))}
        if kw.get("rgb") and kw.get("scalars") in mesh.point_data:
            part["vertex_colors"] = np.asarray(mesh.point_data[kw["scalars"]])
        else:
            part["color"] = color_rgb(kw.get("color", "#cccccc"))
        parts.append(part)
    return gltf_bytes(parts, binary=True)


def maps_zip(explorer, view, channels: Sequence[int], *, max_bytes: int = MAX_MAPS_BYTES) -> bytes:
    """The reconstruction's ``channels`` at the view's grid as CCP4 maps in a zip (one per channel,
    ``<item>_<channel>.ccp4``), decoded densely where the view was adaptive or device-side."""
    from molviz.mesh import export_volume, safe_name
    names = explorer.channel_names
    n = int(np.prod(view.grid.shape))
    if len(channels) * n * 4 > max_bytes:
        raise InputError(f"{len(channels)} maps of {view.grid.shape[0]}^3 voxels are "
                         f"{len(channels) * n * 4 / 2**20:.0f} MB, more than the {max_bytes >> 20} MB a download "
                         "may hold: lower the resolution or hide channels")
    vol = explorer.dense_volume(view)
    stem = safe_name(view.label.split("\u00b7")[0].strip())[:60].strip("-") or "molviz"
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="molviz-maps-") as tmp, \
            zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for c in channels:
            fname = f"{stem}_{safe_name(names[c])}.ccp4"
            zf.write(export_volume(vol[c], view.grid, Path(tmp) / fname), fname)
    return buf.getvalue()
