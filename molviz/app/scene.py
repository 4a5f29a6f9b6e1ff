"""The 3D scene, without trame: isosurfaces per channel, balls and sticks, outline, clip plane.

The browser app and the headless commands (``molviz render``, ``molviz animate``)
draw the same pictures through this module. It has two halves:

- :func:`build_scene` is pure computation (isosurfaces, glyphs, clipping). It
  touches no render window, so it may run in a worker thread.
- :class:`Scene` owns a PyVista plotter and swaps the built actors in. Render
  calls stay on the thread that created the plotter (an OpenGL context is per thread).

Examples
--------
>>> import numpy as np
>>> from molviz.fields import Grid
>>> grid = Grid.from_box((-2, -2, -2), (2, 2, 2), 24)
>>> x, y, z = np.meshgrid(*grid.axes(), indexing="ij")
>>> vol = np.exp(-(x**2 + y**2 + z**2))[None].astype(np.float32)   # (C=1, 24, 24, 24)
>>> layer = Layer(volume=vol, grid=grid, names=["density"])
>>> built = build_scene([layer], [ChannelStyle(level=0.5)], SceneOptions(show_atoms=False))
>>> built.triangles["density"] > 0
True
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pyvista

    from molviz.chem import Structure
    from molviz.fields import Grid

LevelMode = Literal["absolute", "fraction", "percent"]

# Jmol's CPK colours (the usual "element colours"), hex RGB; unlisted elements are pink.
ELEMENT_COLORS = {
    1: "#FFFFFF", 2: "#D9FFFF", 3: "#CC80FF", 5: "#FFB5B5", 6: "#909090", 7: "#3050F8",
    8: "#FF0D0D", 9: "#90E050", 11: "#AB5CF2", 12: "#8AFF00", 14: "#F0C8A0", 15: "#FF8000",
    16: "#FFFF30", 17: "#1FF01F", 19: "#8F40D4", 20: "#3DFF00", 25: "#9C7AC7", 26: "#E06633",
    27: "#F090A0", 28: "#50D050", 29: "#C88033", 30: "#7D80B0", 34: "#FFA100", 35: "#A62929",
    53: "#940094",
}
DEFAULT_ELEMENT_COLOR = "#FF1493"
# Property channels (density, electronegativity) have no element: a fixed palette.
PROPERTY_COLORS = {"density": "#5B8FD9", "electronegativity": "#C77DDB"}
# Atom display radii (angstrom): a fraction of the covalent radius reads as "balls and sticks".
COVALENT_RADII = {1: 0.31, 5: 0.84, 6: 0.76, 7: 0.71, 8: 0.66, 9: 0.57, 14: 1.11, 15: 1.07,
                  16: 1.05, 17: 1.02, 26: 1.32, 27: 1.26, 29: 1.32, 30: 1.22, 34: 1.20,
                  35: 1.20, 53: 1.39}
_SYMBOL_Z = {"H": 1, "B": 5, "C": 6, "N": 7, "O": 8, "F": 9, "Si": 14, "P": 15, "S": 16,
             "Cl": 17, "Fe": 26, "Co": 27, "Cu": 29, "Zn": 30, "Se": 34, "Br": 35, "I": 53}


def channel_color(name: str) -> str:
    """Default colour of a channel: its element's CPK colour, or the property palette.

    Examples
    --------
    >>> channel_color("ligand:C"), channel_color("O"), channel_color("protein:density")
    ('#909090', '#FF0D0D', '#5B8FD9')
    """
    token = name.split(":")[-1]
    if token in _SYMBOL_Z:
        return ELEMENT_COLORS.get(_SYMBOL_Z[token], DEFAULT_ELEMENT_COLOR)
    for prop, color in PROPERTY_COLORS.items():
        if token.startswith(prop):
            return color
    return DEFAULT_ELEMENT_COLOR


def channel_element(name: str) -> int | None:
    """Atomic number a channel selects (``"ligand:C"`` -> 6), None for property channels."""
    return _SYMBOL_Z.get(name.split(":")[-1])


@dataclass
class ChannelStyle:
    """How one channel is drawn."""

    visible: bool = True
    level: float = 0.5                          # interpreted by ``mode``
    mode: LevelMode = "fraction"                # absolute value, fraction of max, or percent enclosed
    color: str = "#909090"
    opacity: float = 1.0
    representation: Literal["surface", "wireframe"] = "surface"


@dataclass
class Atoms:
    """Atoms to draw as balls and sticks (angstrom)."""

    coords: np.ndarray                      # (N, 3) float32
    numbers: np.ndarray                     # (N,) int64 atomic numbers
    components: np.ndarray | None = None    # (N,) str, molviz.chem.COMPONENTS

    @classmethod
    def from_structure(cls, structure: Structure, conformer: int = 0) -> Atoms:
        return cls(np.asarray(structure.coords[conformer], np.float32),
                   np.asarray(structure.atomic_numbers, np.int64),
                   np.asarray(structure.components).astype(str))


@dataclass
class Layer:
    """One volume (all channels) with its grid, its atoms and where it sits in the scene."""

    volume: np.ndarray                      # (C, Nx, Ny, Nz) float32
    grid: Grid
    names: Sequence[str]
    atoms: Atoms | None = None
    label: str = ""
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)   # side by side: shift along x


@dataclass
class SceneOptions:
    """Scene-wide switches."""

    show_atoms: bool = True
    show_outline: bool = True
    clip_axis: Literal["none", "x", "y", "z"] = "none"
    clip_position: float = 0.5              # fraction of the box along clip_axis; keeps the lower side
    ball_scale: float = 0.45                # atom ball radius = this x covalent radius... (x2 for H)
    background: str = "white"


@dataclass
class BuiltScene:
    """Meshes ready to hand to :class:`Scene` (computed off the render thread)."""

    actors: dict[str, tuple[Any, dict]] = field(default_factory=dict)   # name -> (mesh, add_mesh kwargs)
    labels: list[tuple[str, tuple[float, float, float]]] = field(default_factory=list)
    triangles: dict[str, int] = field(default_factory=dict)              # channel name -> triangles (layer 0)
    levels: dict[str, float] = field(default_factory=dict)               # channel name -> absolute level used
    bounds: tuple[float, ...] | None = None


def side_by_side_offset(grid: Grid, gap: float = 0.3) -> tuple[float, float, float]:
    """Shift along x that puts a second copy of ``grid``'s box beside the first."""
    width = float(grid.hi[0] - grid.lo[0])
    return (width * (1.0 + gap), 0.0, 0.0)


def bonds(atoms: Atoms, *, tolerance: float = 0.45) -> np.ndarray:
    """Covalent bonds by distance: pairs closer than the sum of covalent radii + ``tolerance``.

    Returns (B, 2) int64 atom indices.
    """
    xyz = np.asarray(atoms.coords, np.float64)
    if len(xyz) < 2:
        return np.zeros((0, 2), np.int64)
    pairs = _close_pairs(xyz, 2.3)
    if len(pairs) == 0:
        return np.zeros((0, 2), np.int64)
    r = np.array([COVALENT_RADII.get(int(z), 1.0) for z in atoms.numbers])
    d = np.linalg.norm(xyz[pairs[:, 0]] - xyz[pairs[:, 1]], axis=1)
    keep = d <= r[pairs[:, 0]] + r[pairs[:, 1]] + tolerance
    both_h = (atoms.numbers[pairs[:, 0]] == 1) & (atoms.numbers[pairs[:, 1]] == 1)
    return pairs[keep & ~both_h].astype(np.int64)


def _close_pairs(xyz: np.ndarray, cutoff: float) -> np.ndarray:
    """Index pairs (i < j) closer than ``cutoff``, by a cell list in numpy (scipy's KD-tree would cost
    ~0.5 s of import on the way to the app's first picture)."""
    cell = np.floor((xyz - xyz.min(0)) / cutoff).astype(np.int64)
    dims = cell.max(0) + 3                                   # one empty layer each side for the offsets
    cell += 1
    key = (cell[:, 0] * dims[1] + cell[:, 1]) * dims[2] + cell[:, 2]
    order = np.argsort(key, kind="stable")
    skey = key[order]
    found = []
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dz in (-1, 0, 1):
                nkey = key + (dx * dims[1] + dy) * dims[2] + dz
                lo = np.searchsorted(skey, nkey, side="left")
                hi = np.searchsorted(skey, nkey, side="right")
                count = hi - lo
                i = np.repeat(np.arange(len(xyz)), count)
                j = order[np.repeat(lo - np.cumsum(count) + count, count) + np.arange(count.sum())]
                keep = j > i
                i, j = i[keep], j[keep]
                d2 = ((xyz[i] - xyz[j]) ** 2).sum(1)
                found.append(np.stack([i, j], 1)[d2 < cutoff * cutoff])
    return np.concatenate(found).astype(np.int64)


def ball_and_stick(atoms: Atoms, *, ball_scale: float = 0.45,
                   offset=(0.0, 0.0, 0.0)) -> tuple[pyvista.PolyData, pyvista.PolyData | None]:
    """Balls (coloured by element, RGB point array ``"rgb"``) and grey sticks as two meshes."""
    import pyvista as pv

    xyz = np.asarray(atoms.coords, np.float32) + np.asarray(offset, np.float32)
    n = len(xyz)
    detail = 14 if n < 300 else 8 if n < 3000 else 5        # keep big structures light
    radius = np.array([COVALENT_RADII.get(int(z), 1.0) for z in atoms.numbers], np.float32) * ball_scale
    radius[np.asarray(atoms.numbers) == 1] *= 1.3
    rgb = np.array([_hex_rgb(ELEMENT_COLORS.get(int(z), DEFAULT_ELEMENT_COLOR)) for z in atoms.numbers],
                   np.uint8).reshape(-1, 3)
    cloud = pv.PolyData(xyz)
    cloud["radius"] = radius
    cloud["rgb"] = rgb
    sphere = pv.Sphere(radius=1.0, theta_resolution=detail, phi_resolution=detail)
    balls = cloud.glyph(geom=sphere, scale="radius", orient=False)
    pairs = bonds(atoms)
    if len(pairs) == 0:
        return balls, None
    lines = np.hstack([np.full((len(pairs), 1), 2), pairs]).ravel()
    # triangles, not strips: vtk.js (local rendering) draws tube strips badly
    sticks = pv.PolyData(xyz, lines=lines).tube(radius=0.11, n_sides=max(detail // 2, 5)).triangulate()
    return balls, sticks


def _hex_rgb(color: str) -> tuple[int, int, int]:
    c = color.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def _clip(mesh, options: SceneOptions, bounds):
    if options.clip_axis == "none" or mesh is None or mesh.n_points == 0:
        return mesh
    axis = "xyz".index(options.clip_axis)
    lo, hi = bounds[2 * axis], bounds[2 * axis + 1]
    origin = [0.0, 0.0, 0.0]
    origin[axis] = lo + float(np.clip(options.clip_position, 0.0, 1.0)) * (hi - lo)
    normal = [0.0, 0.0, 0.0]
    normal[axis] = 1.0
    return mesh.clip(normal=normal, origin=origin, invert=True)


def _box_bounds(grid: Grid, offset) -> tuple[float, ...]:
    lo, hi = np.asarray(grid.lo) + offset, np.asarray(grid.hi) + offset
    return (lo[0], hi[0], lo[1], hi[1], lo[2], hi[2])


def build_scene(layers: Sequence[Layer], styles: Sequence[ChannelStyle],
                options: SceneOptions | None = None) -> BuiltScene:
    """Compute every mesh of the scene (isosurfaces, atoms, outlines); no rendering.

    Parameters
    ----------
    layers : sequence of Layer
        Usually one (reconstruction or ground truth) or two (side by side).
    styles : sequence of ChannelStyle
        One per channel, shared by all layers.
    options : SceneOptions, optional

    Returns
    -------
    BuiltScene
        Actor name -> (mesh, keyword arguments of ``Plotter.add_mesh``), plus the
        triangle count and absolute level of each channel of the first layer.
    """
    import pyvista as pv

    from molviz.mesh import isosurface, resolve_level

    options = options or SceneOptions()
    out = BuiltScene()
    all_bounds = []
    for li, layer in enumerate(layers):
        offset = np.asarray(layer.offset, np.float64)
        bounds = _box_bounds(layer.grid, offset)
        all_bounds.append(bounds)
        for c, (name, style) in enumerate(zip(layer.names, styles)):
            if not style.visible:
                continue
            vol = layer.volume[c]
            level = resolve_level(vol, style.level, style.mode)
            if li == 0:
                out.levels[name] = float(level)
            if not np.isfinite(level) or level >= float(vol.max()) or level <= float(vol.min()):
                if li == 0:
                    out.triangles[name] = 0
                continue
            mesh = isosurface(vol, layer.grid, level=level, mode="absolute")
            if mesh.n_points and np.any(offset):
                mesh = mesh.translate(offset, inplace=False)
            mesh = _clip(mesh, options, bounds)
            if li == 0:
                out.triangles[name] = int(mesh.n_cells)
            if mesh.n_points == 0:
                continue
            kwargs = dict(color=style.color, opacity=float(style.opacity), smooth_shading=True,
                          style=style.representation, specular=0.3, line_width=1)
            out.actors[f"L{li}:ch:{name}"] = (mesh, kwargs)
        if options.show_atoms and layer.atoms is not None and len(layer.atoms.coords):
            balls, sticks = ball_and_stick(layer.atoms, ball_scale=options.ball_scale, offset=offset)
            balls = _clip(balls, options, bounds)
            if balls is not None and balls.n_points:
                out.actors[f"L{li}:atoms"] = (balls, dict(scalars="rgb", rgb=True, smooth_shading=True,
                                                          specular=0.4, show_scalar_bar=False))
            if sticks is not None:
                sticks = _clip(sticks, options, bounds)
                if sticks.n_points:
                    out.actors[f"L{li}:bonds"] = (sticks, dict(color="#B4B4B4", smooth_shading=True))
        if options.show_outline:
            out.actors[f"L{li}:outline"] = (pv.Box(bounds=bounds).outline(), dict(color="#606060", line_width=1))
        if layer.label:
            top = (0.5 * (bounds[0] + bounds[1]), bounds[3], bounds[5])
            out.labels.append((layer.label, top))
    # frame what there is to see (surfaces and atoms); the box only when it is empty
    content = [mesh.bounds for name, (mesh, _) in out.actors.items() if not name.endswith(":outline")]
    b = np.array(content if content else all_bounds, dtype=np.float64).reshape(-1, 6)
    if len(b):
        out.bounds = (b[:, 0].min(), b[:, 1].max(), b[:, 2].min(), b[:, 3].max(), b[:, 4].min(), b[:, 5].max())
    return out


class Scene:
    """A PyVista plotter whose actors are swapped by name (the app's and the CLI's render window).

    Examples
    --------
    >>> scene = Scene(window_size=(320, 240))          # doctest: +SKIP
    >>> scene.show(built); png = scene.screenshot()    # doctest: +SKIP
    """

    def __init__(self, *, window_size: tuple[int, int] = (1024, 768), background: str = "white",
                 off_screen: bool = True) -> None:
        import pyvista as pv

        self.plotter = pv.Plotter(off_screen=off_screen, window_size=list(window_size))
        self.plotter.set_background(background)
        self.plotter.enable_anti_aliasing("msaa", multi_samples=4)  # FXAA is unsupported on EGL; SSAA costs 4x
        self._names: set[str] = set()
        self._label_actor = None
        self.built: BuiltScene | None = None
        self._camera_set = False

    @property
    def render_window(self):
        return self.plotter.ren_win

    def show(self, built: BuiltScene, *, reset_camera: bool | None = None) -> None:
        """Replace the scene's actors by ``built``'s (same-name actors are replaced in place)."""
        for name in list(self._names - set(built.actors)):
            self.plotter.remove_actor(name, render=False)
        for name, (mesh, kwargs) in built.actors.items():
            self.plotter.add_mesh(mesh, name=name, render=False, reset_camera=False, **kwargs)
        self._names = set(built.actors)
        if self._label_actor is not None:
            self.plotter.remove_actor(self._label_actor, render=False)
            self._label_actor = None
        if built.labels:
            text = "   |   ".join(t for t, _ in built.labels)
            self._label_actor = self.plotter.add_text(text, position="upper_edge", font_size=11,
                                                      color="#333333", name="layer-labels")
        self.built = built
        if reset_camera or (reset_camera is None and not self._camera_set and built.bounds is not None):
            self.reset_camera()

    def reset_camera(self) -> None:
        """Front view tilted a little (side-by-side layers sit along x), fitted to the scene."""
        self.plotter.view_vector((0.35, 0.45, 1.0), viewup=(0.0, 1.0, 0.0), render=False)
        if self.built is not None and self.built.bounds is not None:
            self.plotter.reset_camera(bounds=self.built.bounds, render=False)
        else:
            self.plotter.reset_camera(render=False)
        w, h = self.plotter.window_size
        # VTK fits the vertical view angle: a narrow window needs more room sideways
        self.plotter.camera.zoom(0.85 * min(1.0, w / max(h, 1)))
        self._camera_set = True

    def orbit(self, degrees: float) -> None:
        """Turn the camera about the view-up axis through the focal point."""
        self.plotter.camera.azimuth = self.plotter.camera.azimuth + degrees

    def screenshot(self, *, scale: int = 1, window_size: tuple[int, int] | None = None) -> np.ndarray:
        """Render and return the picture as (H, W, 3) uint8; ``scale`` supersamples (2 = twice the pixels)."""
        if window_size is not None:
            self.plotter.window_size = list(window_size)
        self.plotter.render()
        return np.asarray(self.plotter.screenshot(return_img=True, scale=max(1, int(scale))))

    def close(self) -> None:
        self.plotter.close()


def png_bytes(image: np.ndarray) -> bytes:
    """Encode an (H, W, 3) uint8 image as PNG bytes."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def blank_fraction(image: np.ndarray, background=(255, 255, 255)) -> float:
    """Share of pixels equal to the background colour (1.0: an empty picture)."""
    img = np.asarray(image)[..., :3].astype(np.int16)
    return float(np.mean(np.all(np.abs(img - np.asarray(background)) <= 2, axis=-1)))


__all__ = ["Atoms", "BuiltScene", "ChannelStyle", "ELEMENT_COLORS", "Layer", "Scene", "SceneOptions",
           "ball_and_stick", "blank_fraction", "bonds", "build_scene", "channel_color", "channel_element",
           "png_bytes", "side_by_side_offset"]
