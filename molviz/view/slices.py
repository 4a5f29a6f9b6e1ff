"""Axis-aligned slice planes of one channel through a decoded volume: colour-mapped planes for the 3D scene
and the colour map's value bar. No trame, no decoding: a slice reads the volume a view already holds, so
moving it costs a few milliseconds on any thread.

The plane's colours are baked into an RGB point array (the scene draws RGB arrays as they are, in the
browser's local rendering too), unlit so that a colour reads as its value on the bar at any angle.

Examples
--------
>>> import numpy as np
>>> from molviz.fields import Grid
>>> grid = Grid.from_box((-2, -2, -2), (2, 2, 2), 16)
>>> vol = np.random.default_rng(0).random((1, 16, 16, 16)).astype(np.float32)   # (C, Nx, Ny, Nz)
>>> spec = SliceSpec(channel=0, axis="z", position=0.5)
>>> parts = slice_parts([(vol, grid)], spec, value_range(vol, 0))
>>> list(parts), parts["L0:slice"][0].n_points
(['L0:slice'], 256)
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pyvista

    from molviz.fields import Grid

Axis = Literal["x", "y", "z"]

# Colour maps as evenly spaced anchors from low to high (linear in between). viridis: perceptually
# uniform and readable in grey and by most colour-blind viewers; "diverging" for signed fields.
COLORMAPS = {
    "viridis": ("#440154", "#472c7a", "#3b518b", "#2c718e", "#21908d", "#27ad81", "#5cc863", "#aadc32", "#fde725"),
    "greys": ("#000000", "#ffffff"),
    "diverging": ("#3b4cc0", "#dddddd", "#b40426"),
}


@dataclass(frozen=True)
class SliceSpec:
    """Which slice to draw."""

    channel: int = 0
    axis: Axis = "z"
    position: float = 0.5               # 0..1 from the box's first voxel centre to its last along ``axis``
    colormap: str = "viridis"


def _anchors(name: str) -> np.ndarray:
    if name not in COLORMAPS:
        raise ValueError(f"colour map {name!r}: give one of {', '.join(COLORMAPS)}")
    return np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in COLORMAPS[name]], np.float64)


def colormap_rgb(values: np.ndarray, lo: float, hi: float, colormap: str = "viridis") -> np.ndarray:
    """``values`` (any shape) mapped to colours: (..., 3) uint8, ``lo`` and below the first anchor,
    ``hi`` and above the last."""
    anchors = _anchors(colormap)                                                    # (K, 3)
    u = (np.asarray(values, np.float64) - lo) / max(hi - lo, 1e-12)
    u = np.clip(np.nan_to_num(u, nan=0.0), 0.0, 1.0) * (len(anchors) - 1)
    k = np.minimum(u.astype(np.int64), len(anchors) - 2)
    w = (u - k)[..., None]
    return np.round((1.0 - w) * anchors[k] + w * anchors[k + 1]).astype(np.uint8)


def value_range(volume: np.ndarray, channel: int, *more: np.ndarray) -> tuple[float, float]:
    """The colour scale of a channel: from min(0, lowest value) to its highest value over ``volume`` and
    ``more`` volumes (C, Nx, Ny, Nz), so a slice keeps its scale while it moves, and two viewports
    (decoded and truth) share one."""
    lo, hi = 0.0, 0.0
    for vol in (volume, *more):
        if vol is None:
            continue
        v = np.asarray(vol[channel])
        lo, hi = min(lo, float(np.nanmin(v))), max(hi, float(np.nanmax(v)))
    return lo, (hi if hi > lo else lo + 1.0)


def slice_values(volume: np.ndarray, axis: Axis, position: float) -> tuple[np.ndarray, float]:
    """The plane of ``volume`` (Nx, Ny, Nz) at ``position`` (0..1) along ``axis``, linearly interpolated
    between the two nearest voxel planes (so it moves smoothly), and its fractional voxel index.
    Returns the (two remaining axes, in x, y, z order) values and the index."""
    a = "xyz".index(axis)
    n = volume.shape[a]
    f = float(np.clip(position, 0.0, 1.0)) * (n - 1)
    i0 = min(int(np.floor(f)), max(n - 2, 0))
    w = f - i0
    first = np.take(volume, i0, axis=a)
    if n == 1 or w == 0.0:
        return np.asarray(first, np.float32), f
    return ((1.0 - w) * first + w * np.take(volume, i0 + 1, axis=a)).astype(np.float32), f


def slice_plane(volume: np.ndarray, grid: Grid, axis: Axis, position: float, *, lo: float, hi: float,
                colormap: str = "viridis", offset=(0.0, 0.0, 0.0)) -> pyvista.PolyData:
    """One channel's slice (``volume``: (Nx, Ny, Nz) on ``grid``) as a triangulated plane through the voxel
    centres, with the values (point array ``"value"``) and their colours (``"rgb"``, uint8)."""
    import pyvista as pv

    a = "xyz".index(axis)
    values, f = slice_values(np.asarray(volume), axis, position)
    dims = [int(n) for n in grid.shape]
    origin = np.asarray(grid.origin, np.float64) + np.asarray(offset, np.float64)
    origin[a] += f * grid.spacing[a]
    dims[a] = 1
    plane = pv.ImageData(dimensions=dims, spacing=grid.spacing, origin=tuple(origin))
    flat = values.ravel(order="F")                            # VTK's point order: the first axis fastest
    plane.point_data["value"] = flat
    plane.point_data["rgb"] = colormap_rgb(flat, lo, hi, colormap)
    mesh = plane.extract_surface(algorithm="dataset_surface").triangulate()
    mesh.point_data.active_scalars_name = None
    return mesh


def slice_parts(layers: Sequence[tuple[np.ndarray | None, Grid]], spec: SliceSpec,
                scale: tuple[float, float], *, offsets: Sequence | None = None) -> dict[str, tuple[Any, dict]]:
    """Slice planes of ``spec.channel`` through each layer's volume ((C, Nx, Ny, Nz) with its grid; None:
    no plane there), as :attr:`molviz.view.scene.BuiltScene.actors` entries ``L{i}:slice`` for
    :meth:`molviz.view.scene.Scene.set_slice`; ``scale``: the colour map's (low, high), e.g. from
    :func:`value_range`."""
    lo, hi = scale
    out: dict[str, tuple[Any, dict]] = {}
    for i, (volume, grid) in enumerate(layers):
        if volume is None or not 0 <= spec.channel < len(volume):
            continue
        offset = offsets[i] if offsets is not None else (0.0, 0.0, 0.0)
        mesh = slice_plane(volume[spec.channel], grid, spec.axis, spec.position, lo=lo, hi=hi,
                           colormap=spec.colormap, offset=offset)
        out[f"L{i}:slice"] = (mesh, dict(scalars="rgb", rgb=True, lighting=False))
    return out


def value_bar(title: str, lo: float, hi: float, *, colormap: str = "viridis", labels: int = 5):
    """The colour map's value bar (a VTK 2D actor) at the right edge of a viewport, ``title`` above it."""
    from vtkmodules.vtkCommonCore import vtkLookupTable
    from vtkmodules.vtkRenderingAnnotation import vtkScalarBarActor

    colours = colormap_rgb(np.linspace(0.0, 1.0, 256), 0.0, 1.0, colormap) / 255.0
    table = vtkLookupTable()
    table.SetNumberOfTableValues(len(colours))
    table.SetRange(float(lo), float(hi))
    for i, (r, g, b) in enumerate(colours):
        table.SetTableValue(i, float(r), float(g), float(b), 1.0)
    table.Build()
    bar = vtkScalarBarActor()
    bar.SetLookupTable(table)
    bar.SetTitle(str(title))
    bar.SetNumberOfLabels(int(labels))
    bar.SetLabelFormat("%.2f")
    bar.SetOrientationToVertical()
    bar.SetBarRatio(0.35)
    bar.UnconstrainedFontSizeOn()               # fixed point sizes: readable, never the bar's height
    bar.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
    bar.SetPosition(0.86, 0.15)
    bar.SetWidth(0.09)
    bar.SetHeight(0.6)
    bar.SetMaximumWidthInPixels(80)
    for prop, size in ((bar.GetTitleTextProperty(), 16), (bar.GetLabelTextProperty(), 13)):
        prop.SetColor(0.2, 0.2, 0.2)
        prop.SetFontSize(size)
        prop.SetShadow(False)
        prop.SetItalic(False)
    bar.GetTitleTextProperty().SetBold(True)
    bar.GetLabelTextProperty().SetBold(False)
    return bar


__all__ = ["COLORMAPS", "SliceSpec", "colormap_rgb", "slice_parts", "slice_plane", "slice_values", "value_bar",
           "value_range"]
