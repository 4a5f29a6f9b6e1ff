"""The 3D scene, without trame: isosurfaces per channel, balls and sticks, outline, clip plane.

The browser app and the headless commands (``molviz render``, ``molviz animate``)
draw the same pictures through this module. It has two halves:

- :func:`build_scene` is pure computation (isosurfaces, glyphs, clipping). It
  touches no render window, so it may run in a worker thread.
- :class:`Scene` owns a VTK render window and swaps the built actors in. Render
  calls stay on the thread that created the scene (an OpenGL context is per thread).

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

from molviz.chem._elements import COVALENT_RADII, ELEMENT_COLORS, UNKNOWN_ELEMENT_COLOR, element_color
from molviz.fields._channels import PROPERTY_COLORS, channel_color, channel_element  # noqa: F401  (re-exported)

if TYPE_CHECKING:  # pragma: no cover
    import pyvista

    from molviz.chem import Structure
    from molviz.fields import Grid

LevelMode = Literal["absolute", "fraction", "percent", "sigma"]

# Element colours and radii: molviz.chem's periodic table; channel colours: molviz.fields.
DEFAULT_ELEMENT_COLOR = UNKNOWN_ELEMENT_COLOR


@dataclass
class ChannelStyle:
    """How one channel is drawn."""

    visible: bool = True
    level: float = 0.5                          # interpreted by ``mode``
    mode: LevelMode = "fraction"                # absolute value, fraction of max, percent enclosed, or
                                                # standard deviations above the channel's mean ("sigma")
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

    volume: np.ndarray | None               # (C, Nx, Ny, Nz) float32
    grid: Grid
    names: Sequence[str]
    atoms: Atoms | None = None
    label: str = ""
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)   # shift in the scene (a second layer has its own
                                                            # viewport, so it needs none)
    # Per channel, surfaces already extracted at the styles' absolute levels (molviz.engine.Surface,
    # from the engine's device); used instead of the volume, which may then be None.
    surfaces: Sequence | None = None
    # More atoms drawn beside ``atoms``: (atoms, opacity, tag), e.g. the two ends of an interpolation
    # fading into each other ("a", "b"), or atoms found in the decoded field ("field")
    more_atoms: Sequence[tuple[Atoms, float, str]] = ()


@dataclass
class SceneOptions:
    """Scene-wide switches."""

    show_atoms: bool = True
    show_outline: bool = True
    clip_axis: Literal["none", "x", "y", "z"] = "none"
    clip_position: float = 0.5              # fraction of the box along clip_axis; keeps the lower side
    ball_scale: float = 0.45                # atom ball radius = this x covalent radius... (x2 for H)
    atoms: Literal["true", "field", "both"] = "true"   # which atoms show: stored/typed, found in the field, both
    background: str = "white"


@dataclass
class BuiltScene:
    """Meshes ready to hand to :class:`Scene` (computed off the render thread)."""

    actors: dict[str, tuple[Any, dict]] = field(default_factory=dict)   # name -> (mesh, ACTOR_KEYWORDS)
    labels: list[tuple[str, tuple[float, float, float]]] = field(default_factory=list)
    triangles: dict[str, int] = field(default_factory=dict)              # channel name -> triangles (layer 0)
    levels: dict[str, float] = field(default_factory=dict)               # channel name -> absolute level used
    bounds: tuple[float, ...] | None = None
    boxes: list[tuple[float, ...]] = field(default_factory=list)        # each layer's box (xmin, xmax, ...)
    # each layer's label, in layer order ("" for none): two layers are drawn as two linked viewports
    # (left, right; one camera), each with its label in the corner
    layer_labels: list[str] = field(default_factory=list)


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
    r = np.array([COVALENT_RADII.get(int(z), 1.5) for z in atoms.numbers])
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
    radius = np.array([COVALENT_RADII.get(int(z), 1.5) for z in atoms.numbers], np.float32) * ball_scale
    radius[np.asarray(atoms.numbers) == 1] *= 1.3
    rgb = np.array([_hex_rgb(element_color(z)) for z in atoms.numbers],
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


def closed_isosurface(volume: np.ndarray, grid: Grid, level: float, *, strays: bool = False) -> pyvista.PolyData:
    """The isosurface of ``volume`` at the absolute ``level``, closed where it meets the box, without stray
    fragments on the box faces.

    The volume is padded by one voxel far below the level before marching cubes, so a surface cut by
    the box gets a cap on the box face (to float precision) instead of an open rim one sees into.
    Pieces that lie within one voxel of a box face (the network's small overshoots at the border,
    closed into flat wafers by the padding) are dropped unless ``strays``.
    """
    from molviz.fields import Grid
    from molviz.mesh import isosurface

    vol = np.asarray(volume, np.float32)
    top = float(vol.max())
    low = float(level) - 1e4 * max(top - float(level), 1e-3)
    padded = np.pad(vol, 1, mode="constant", constant_values=low)
    sp = np.asarray(grid.spacing, np.float64)
    big = Grid(origin=tuple(np.asarray(grid.origin, np.float64) - sp), spacing=tuple(sp),
               shape=tuple(int(n) + 2 for n in grid.shape))
    mesh = isosurface(padded, big, level=float(level), mode="absolute")
    if strays or mesh.n_points == 0:
        return mesh
    return _drop_face_wafers(mesh, grid)


def _drop_face_wafers(mesh, grid: Grid):
    """``mesh`` without the connected pieces that are thinner than 1.5 voxels against a box face."""
    from vtkmodules.vtkFiltersCore import vtkPolyDataConnectivityFilter

    conn = vtkPolyDataConnectivityFilter()
    conn.SetInputData(mesh)
    conn.SetExtractionModeToAllRegions()
    conn.ColorRegionsOn()
    conn.Update()
    n_regions = conn.GetNumberOfExtractedRegions()
    if n_regions <= 1:
        return mesh
    import pyvista as pv
    from vtkmodules.util.numpy_support import vtk_to_numpy

    out = pv.wrap(conn.GetOutput())
    region = vtk_to_numpy(out.GetPointData().GetArray("RegionId"))
    pts = np.asarray(out.points)
    lo, hi = np.asarray(grid.lo, np.float64), np.asarray(grid.hi, np.float64)
    thin = 1.5 * np.asarray(grid.spacing, np.float64)
    keep = []
    for r in range(n_regions):
        p = pts[region == r]
        if not len(p):
            continue
        pmin, pmax = p.min(0), p.max(0)
        at_face = ((pmax - lo) <= thin) | ((hi - pmin) <= thin)       # the whole piece hugs a face
        if not at_face.any():
            keep.append(r)
    if len(keep) == n_regions:
        return mesh
    tri = np.asarray(out.faces).reshape(-1, 4)[:, 1:]                    # marching cubes: triangles only
    cells = np.flatnonzero(np.isin(region[tri[:, 0]], keep))
    kept = out.extract_cells(cells).extract_surface(algorithm="dataset_surface")
    kept.clear_data()
    return kept


def atom_actors(atoms: Atoms, layer: str = "L0", suffix: str = "", *, opacity: float = 1.0,
                options: SceneOptions | None = None, bounds=None, offset=(0.0, 0.0, 0.0),
                rgb: tuple[int, int, int] | None = None) -> dict[str, tuple[Any, dict]]:
    """Balls and sticks of ``atoms`` as :attr:`BuiltScene.actors` entries ``{layer}:atoms{suffix}`` and
    ``{layer}:bonds{suffix}``; ``rgb`` paints every ball one colour (found atoms without a true match)."""
    options = options or SceneOptions()
    balls, sticks = ball_and_stick(atoms, ball_scale=options.ball_scale, offset=offset)
    out: dict[str, tuple[Any, dict]] = {}
    if bounds is not None:
        balls = _clip(balls, options, bounds)
    if balls is not None and balls.n_points:
        if rgb is not None:
            balls["rgb"] = np.tile(np.asarray(rgb, np.uint8), (balls.n_points, 1))
        out[f"{layer}:atoms{suffix}"] = (balls, dict(scalars="rgb", rgb=True, smooth_shading=True, specular=0.4,
                                                     show_scalar_bar=False, opacity=float(opacity)))
    if sticks is not None:
        sticks = _clip(sticks, options, bounds) if bounds is not None else sticks
        if sticks.n_points:
            out[f"{layer}:bonds{suffix}"] = (sticks, dict(color="#B4B4B4", smooth_shading=True,
                                                          opacity=float(opacity)))
    return out


def layer_part_label(actor_name: str) -> str:
    """The user-facing name of a built scene's actor: ``"L0:ch:C"`` -> ``"C"``, ``"L1:ch:C"`` ->
    ``"truth:C"`` (the second layer of a side-by-side), ``"L0:atoms"`` -> ``"atoms"``."""
    layer, _, rest = actor_name.partition(":")
    rest = rest[3:] if rest.startswith("ch:") else rest
    return rest if layer == "L0" else f"truth:{rest}"


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
        Actor name -> (mesh, drawing keywords, see ``ACTOR_KEYWORDS``), plus the
        triangle count and absolute level of each channel of the first layer.
    """
    import pyvista as pv

    from molviz.mesh import polydata, resolve_level

    options = options or SceneOptions()
    out = BuiltScene()
    all_bounds = []
    for li, layer in enumerate(layers):
        offset = np.asarray(layer.offset, np.float64)
        bounds = _box_bounds(layer.grid, offset)
        all_bounds.append(bounds)
        out.boxes.append(tuple(float(b) for b in bounds))
        out.layer_labels.append(layer.label)
        for c, (name, style) in enumerate(zip(layer.names, styles)):
            if not style.visible or (layer.volume is None and layer.surfaces is None):   # a label-only layer
                continue
            if layer.surfaces is not None:
                level, mesh = layer.surfaces[c].level, polydata(layer.surfaces[c])
            else:
                vol = layer.volume[c]
                level = (float(vol.mean() + style.level * vol.std()) if style.mode == "sigma"
                         else resolve_level(vol, style.level, style.mode))
                mesh = None
            if li == 0:
                out.levels[name] = float(level)
            if mesh is None:
                if not np.isfinite(level) or level >= float(vol.max()) or level <= float(vol.min()):
                    if li == 0:
                        out.triangles[name] = 0
                    continue
                mesh = closed_isosurface(vol, layer.grid, level)
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
        sets = [(layer.atoms, 1.0, "")] if layer.atoms is not None else []
        for atoms, opacity, tag in [*sets, *layer.more_atoms]:
            if not options.show_atoms or atoms is None or not len(atoms.coords) or opacity < 0.02:
                continue
            suffix = f":{tag}" if tag else ""
            out.actors.update(atom_actors(atoms, f"L{li}", suffix, opacity=opacity, options=options, bounds=bounds,
                                          offset=offset))
        if options.show_outline and (layer.volume is not None or layer.surfaces is not None or sets):
            out.actors[f"L{li}:outline"] = (pv.Box(bounds=bounds).outline(), dict(color="#606060", line_width=1))
        if layer.label:
            top = (0.5 * (bounds[0] + bounds[1]), bounds[3], bounds[5])
            out.labels.append((layer.label, top))
    # point normals here, in the builder's thread: Scene.show (on the app's event loop) then only wraps
    for name, (mesh, kwargs) in list(out.actors.items()):
        if kwargs.get("smooth_shading"):
            out.actors[name] = (_pv_wrap(_with_point_normals(mesh)), kwargs)
    # frame what there is to see (surfaces and atoms); the box only when it is empty
    content = [mesh.bounds for name, (mesh, _) in out.actors.items() if not name.endswith(":outline")]
    b = np.array(content if content else all_bounds, dtype=np.float64).reshape(-1, 6)
    if len(b):
        out.bounds = (b[:, 0].min(), b[:, 1].max(), b[:, 2].min(), b[:, 3].max(), b[:, 4].min(), b[:, 5].max())
    return out


def displayed(built: BuiltScene, options: SceneOptions) -> BuiltScene:
    """``built`` as :meth:`Scene.set_display` shows it: hidden parts dropped, meshes clipped (for exports
    of a scene built with every part)."""
    keep: dict[str, tuple[Any, dict]] = {}
    for name, (mesh, kwargs) in built.actors.items():
        layer, _, part = name.partition(":")
        kind, _, tag = part.partition(":")
        shown_atoms = options.show_atoms and options.atoms in ("field" if tag.startswith("field") else "true", "both")
        if (kind in ("atoms", "bonds") and not shown_atoms) or (part == "outline" and not options.show_outline):
            continue
        li = int(layer[1:]) if layer[1:].isdigit() else 0
        if part != "outline" and li < len(built.boxes):
            mesh = _clip(mesh, options, built.boxes[li])
        if mesh is not None and mesh.n_points:
            keep[name] = (mesh, kwargs)
    return BuiltScene(actors=keep, labels=built.labels, triangles=built.triangles, levels=built.levels,
                      bounds=built.bounds, boxes=built.boxes, layer_labels=built.layer_labels)


def content_points(built: BuiltScene | None, *, limit: int = 50_000) -> np.ndarray:
    """The points of a built scene's surfaces and atoms (not its outlines), at most ``limit`` of them
    (evenly thinned): what a camera fit should frame. (P, 3) float64."""
    if built is None:
        return np.zeros((0, 3))
    parts = [np.asarray(mesh.points, np.float64) for name, (mesh, _) in built.actors.items()
             if not name.endswith(":outline") and mesh.n_points]
    if not parts:
        return np.zeros((0, 3))
    pts = np.concatenate(parts)
    return pts[:: max(1, len(pts) // limit)]


# The keywords of BuiltScene.actors that Scene draws (a small subset of PyVista's ``add_mesh``).
ACTOR_KEYWORDS = ("color", "opacity", "smooth_shading", "style", "specular", "line_width", "scalars", "rgb",
                  "show_scalar_bar", "lighting")
SPECULAR_POWER = 100.0      # PyVista's default
LABEL_FONT_SIZE = 11
LABEL_COLOR = "#333333"


class Scene:
    """An offscreen VTK render window whose actors are swapped by name (the app's and the CLI's picture).

    Plain VTK rather than ``pyvista.Plotter``: importing ``pyvista.plotting`` pulls in
    matplotlib, about 0.9 s on the way to the app's first picture. The look follows
    PyVista's defaults: light kit, MSAA, Phong shading with specular power 100.

    Examples
    --------
    >>> scene = Scene(window_size=(320, 240))          # doctest: +SKIP
    >>> scene.show(built); png = scene.screenshot()    # doctest: +SKIP
    """

    def __init__(self, *, window_size: tuple[int, int] = (1024, 768), background: str = "white",
                 off_screen: bool = True) -> None:
        import vtkmodules.vtkRenderingFreeType  # noqa: F401  (text rendering)
        import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (the OpenGL classes behind vtkRenderWindow & co.)
        from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
        from vtkmodules.vtkRenderingCore import vtkLightKit, vtkRenderer, vtkRenderWindow
        from vtkmodules.vtkRenderingUI import vtkGenericRenderWindowInteractor

        self._renderer = vtkRenderer()
        self._renderer.SetBackground(*color_rgb(background))
        self._renderer.AutomaticLightCreationOff()
        vtkLightKit().AddLightsToRenderer(self._renderer)
        self._window = vtkRenderWindow()
        self._window.SetOffScreenRendering(bool(off_screen))
        self._window.SetMultiSamples(4)             # FXAA is unsupported on EGL; SSAA costs 4x
        self._window.SetSize(*map(int, window_size))
        self._window.AddRenderer(self._renderer)
        # the right one of two linked viewports (a side-by-side comparison): its own props, the left's camera
        self._right = vtkRenderer()
        self._right.SetBackground(*color_rgb(background))
        self._right.AutomaticLightCreationOff()
        vtkLightKit().AddLightsToRenderer(self._right)
        self._right.SetActiveCamera(self._renderer.GetActiveCamera())
        self._right.AddViewProp(_divider())
        self._split = False
        # trame's remote view turns the camera through the interactor; a generic one needs no display
        self._interactor = vtkGenericRenderWindowInteractor()
        style = vtkInteractorStyleTrackballCamera()
        # a drag in one viewport fits the shared camera's depth range to that viewport's props; both count
        style.AddObserver("InteractionEvent", lambda *_: self._reset_clipping())
        self._interactor.SetInteractorStyle(style)
        self._interactor.LightFollowCameraOff()
        self._interactor.SetRenderWindow(self._window)
        self._actors: dict[str, Any] = {}
        self._label_actor = None
        self.built: BuiltScene | None = None
        self._camera_set = False
        self._display: SceneOptions | None = None    # set_display's switches, kept across show()
        self._captions: list = []                    # set_captions' text actors
        self._corner_labels: list = []               # each viewport's label (two linked viewports)
        self._slice_bar = None                       # set_slice's value bar

    @property
    def split(self) -> bool:
        """True while the window shows two linked viewports (the built scene has two layers)."""
        return self._split

    def _set_split(self, split: bool) -> None:
        """One viewport, or two side by side (left: layer 0, right: layer 1) that share one camera, so a
        turn moves both and neither copy hides behind the other."""
        if split == self._split:
            return
        self._split = split
        if split:
            self._renderer.SetViewport(0.0, 0.0, 0.5, 1.0)
            self._right.SetViewport(0.5, 0.0, 1.0, 1.0)
            self._window.AddRenderer(self._right)
        else:
            self._window.RemoveRenderer(self._right)
            self._renderer.SetViewport(0.0, 0.0, 1.0, 1.0)

    def _renderer_of(self, name: str):
        """The renderer that draws the actor ``name``: layer 1 ("L1:...") on the right when split."""
        return self._right if self._split and name.startswith("L1:") else self._renderer

    def _remove(self, actor) -> None:
        self._renderer.RemoveViewProp(actor)
        self._right.RemoveViewProp(actor)

    def _reset_clipping(self) -> None:
        """The shared camera's near and far planes around what both viewports show."""
        if not self._split:
            self._renderer.ResetCameraClippingRange()
            return
        b = np.array([r.ComputeVisiblePropBounds() for r in (self._renderer, self._right)], np.float64)
        b = b[b[:, 0] <= b[:, 1]]                       # an empty renderer reports inverted bounds
        if len(b):
            self._renderer.ResetCameraClippingRange(b[:, 0].min(), b[:, 1].max(), b[:, 2].min(), b[:, 3].max(),
                                                    b[:, 4].min(), b[:, 5].max())

    @property
    def render_window(self):
        """The vtkRenderWindow (trame's remote and local views are built on it)."""
        return self._window

    def show(self, built: BuiltScene, *, reset_camera: bool | None = None) -> None:
        """Replace the scene's actors by ``built``'s (names no longer there are removed)."""
        actors = {name: _actor(name, mesh, kwargs) for name, (mesh, kwargs) in built.actors.items()}
        for actor in self._actors.values():
            self._remove(actor)
        self._set_split(len(built.layer_labels) > 1)
        for name, actor in actors.items():      # in order: translucent surfaces draw in this order
            self._renderer_of(name).AddActor(actor)
        self._actors = actors
        self.built = built
        if self._display is not None:
            self.set_display(self._display)
        for actor in [self._label_actor, *self._corner_labels]:
            if actor is not None:
                self._remove(actor)
        self._label_actor, self._corner_labels = None, []
        if self._split:                         # each viewport says what it shows, in its top-left corner
            pairs = [(r, t) for r, t in zip((self._renderer, self._right), built.layer_labels) if t]
            size = min((_label_size(t, *r.GetSize()) for r, t in pairs), default=12)   # one size for both
            for renderer, text in pairs:
                self._corner_labels.append(_corner_text(text, size))
                renderer.AddViewProp(self._corner_labels[-1])
        elif built.labels:
            self._label_actor = _label("   |   ".join(t for t, _ in built.labels))
            self._renderer.AddViewProp(self._label_actor)
        if reset_camera or (reset_camera is None and not self._camera_set and built.bounds is not None):
            self.reset_camera()

    def set_display(self, options: SceneOptions) -> None:
        """Atoms, outline and clip plane of the scene on screen, changed without rebuilding any mesh.

        Actor visibility and mapper clipping planes (the GPU clips; the side below the plane is kept, as
        :func:`build_scene` keeps it), so these switches answer at once even while a decode runs. Build
        the scene with atoms and outline (and no clip) for them to have something to show; the switches
        stay in force for every later :meth:`show`.
        """
        from vtkmodules.vtkCommonDataModel import vtkPlane

        self._display = options
        boxes = self.built.boxes if self.built is not None else []
        for name, actor in self._actors.items():
            layer, _, part = name.partition(":")
            kind, _, tag = part.partition(":")
            if kind in ("atoms", "bonds"):
                which = "field" if tag.startswith("field") else "true"
                actor.SetVisibility(bool(options.show_atoms) and options.atoms in (which, "both"))
            elif part == "outline":
                actor.SetVisibility(bool(options.show_outline))
                continue
            mapper = actor.GetMapper()
            mapper.RemoveAllClippingPlanes()
            li = int(layer[1:]) if layer[1:].isdigit() else 0
            if options.clip_axis == "none" or li >= len(boxes):
                continue
            axis = "xyz".index(options.clip_axis)
            lo, hi = boxes[li][2 * axis], boxes[li][2 * axis + 1]
            origin, normal = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
            origin[axis] = lo + float(np.clip(options.clip_position, 0.0, 1.0)) * (hi - lo)
            normal[axis] = -1.0                  # VTK keeps the side the normal points to
            plane = vtkPlane()
            plane.SetOrigin(origin)
            plane.SetNormal(normal)
            mapper.AddClippingPlane(plane)

    def restyle_channel(self, name: str, *, color: str | None = None, opacity: float | None = None,
                        representation: str | None = None) -> bool:
        """Colour, opacity or surface/wireframe of channel ``name``'s surfaces (every layer) on the shown
        scene, without rebuilding them; the built scene's keywords follow (exports). False when the
        channel has no surface on screen."""
        hit = False
        for actor_name, actor in self._actors.items():
            if actor_name.partition(":")[2] != f"ch:{name}":
                continue
            prop = actor.GetProperty()
            kwargs = self.built.actors[actor_name][1] if self.built is not None and actor_name in self.built.actors \
                else {}
            if color is not None:
                prop.SetColor(*color_rgb(color))
                kwargs["color"] = color
            if opacity is not None:
                prop.SetOpacity(float(opacity))
                kwargs["opacity"] = float(opacity)
            if representation is not None:
                prop.SetRepresentationToWireframe() if representation == "wireframe" else prop.SetRepresentationToSurface()
                kwargs["style"] = representation
            hit = True
        return hit

    def add_actors(self, parts: dict[str, tuple[Any, dict]], *, replace: str | None = None) -> None:
        """Add (or replace) actors of the shown scene, e.g. atoms found in its field once they are known;
        :meth:`set_display`'s switches apply to them. ``replace``: first remove the actors whose name
        contains this text."""
        if replace:
            for name in [n for n in self._actors if replace in n]:
                self._remove(self._actors.pop(name))
                if self.built is not None:
                    self.built.actors.pop(name, None)
        for name, (mesh, kwargs) in parts.items():
            if name in self._actors:
                self._remove(self._actors[name])
            actor = _actor(name, mesh, kwargs)
            self._renderer_of(name).AddActor(actor)
            self._actors[name] = actor
            if self.built is not None:
                self.built.actors[name] = (mesh, kwargs)
        if self._display is not None:
            self.set_display(self._display)

    def set_slice(self, parts: dict[str, tuple[Any, dict]], bar=None) -> None:
        """Show the slice planes ``parts`` (:func:`molviz.view.slices.slice_parts`, actor names
        ``L{layer}:slice``) in place of any shown before, and ``bar`` (a 2D prop, the colour map's value
        bar) at the right edge of the view; ``{}`` and None take them away. :meth:`show` drops the
        planes with the rest of the old scene; the bar stays until the next call."""
        self.add_actors(parts, replace=":slice")
        self.set_value_bar(bar)

    def set_value_bar(self, bar=None) -> None:
        """Show ``bar`` (the slice's value bar, a 2D prop) at the right edge of the view in place of any
        shown before (None: none), leaving the slice planes as they are."""
        if self._slice_bar is not None:
            self._remove(self._slice_bar)
        self._slice_bar = bar
        if bar is not None:
            (self._right if self._split else self._renderer).AddViewProp(bar)

    def set_captions(self, *, title: str = "", names: str = "", note: str = "") -> None:
        """Text drawn over the picture, sized to the window: ``title`` large at the top left, ``names`` (the
        endpoints of a movie) below it, ``note`` (t) at the bottom left. Empty strings draw nothing."""
        from vtkmodules.vtkRenderingCore import vtkTextActor

        for actor in self._captions:
            self._renderer.RemoveViewProp(actor)
        self._captions = []
        h = self._window.GetSize()[1]
        for text, size, y, bold in ((title, 0.055, 0.97, True), (names, 0.035, 0.97 - (0.075 if title else 0.0),
                                                                 False), (note, 0.035, 0.03, False)):
            if not text:
                continue
            actor = vtkTextActor()
            actor.SetInput(str(text))
            prop = actor.GetTextProperty()
            prop.SetFontSize(max(10, int(round(size * h))))
            prop.SetColor(*color_rgb(LABEL_COLOR))
            prop.SetBold(bold)
            prop.SetVerticalJustificationToTop() if y > 0.5 else prop.SetVerticalJustificationToBottom()
            actor.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
            actor.SetPosition(0.025, y)
            self._renderer.AddViewProp(actor)
            self._captions.append(actor)

    def fit(self, points: np.ndarray | None = None, *, fill: float = 0.9, direction=None, up=None) -> None:
        """Point the camera as :meth:`reset_camera` does, then move it so that ``points`` ((P, 3); default:
        the shown surfaces' and atoms' points) span ``fill`` of the window's width or height, whichever is
        tighter. VTK's own reset fits a bounding sphere, which leaves a molecule small in a wide frame."""
        self._aim()
        if direction is not None:                      # look along this direction instead of the default
            camera = self._renderer.GetActiveCamera()
            camera.SetFocalPoint(0.0, 0.0, 0.0)
            camera.SetPosition(*(-np.asarray(direction, np.float64) / np.linalg.norm(direction)))
            camera.SetViewUp(*(up if up is not None else (0.0, 1.0, 0.0)))
        pts = content_points(self.built) if points is None else np.asarray(points, np.float64).reshape(-1, 3)
        if not len(pts):
            return
        camera = self._renderer.GetActiveCamera()
        focal = 0.5 * (pts.min(0) + pts.max(0))
        forward = np.asarray(camera.GetDirectionOfProjection(), np.float64)
        up = np.asarray(camera.GetViewUp(), np.float64)
        up = up - forward * np.dot(up, forward)
        up /= np.linalg.norm(up)
        right = np.cross(forward, up)
        rel = pts - focal
        x, y = rel @ right, rel @ up
        focal = focal + right * 0.5 * (x.max() + x.min()) + up * 0.5 * (y.max() + y.min())   # centre the picture
        rel = pts - focal
        w, h = self._renderer.GetSize()                  # the (left) viewport's pixels
        tan_h = np.tan(np.radians(camera.GetViewAngle()) / 2.0)      # VTK's view angle is the vertical one
        tan_w = tan_h * w / max(h, 1)
        # each point fits when the camera is far enough from the point's own depth (perspective)
        toward = -(rel @ forward)                                      # > 0: nearer the camera than the focus
        distance = float(np.max(np.maximum(np.abs(rel @ right) / (fill * tan_w),
                                           np.abs(rel @ up) / (fill * tan_h)) + toward))
        camera.SetFocalPoint(*focal)
        camera.SetPosition(*(focal - forward * distance))
        self._reset_clipping()
        self._camera_set = True

    def camera_preset(self, name: str) -> None:
        """``"front"`` (along -z), ``"side"`` (along -x), ``"top"`` (down -y), each fitted to the content;
        ``"fit"`` keeps the direction and fits (:meth:`fit`)."""
        directions = {"front": ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0)), "side": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
                      "top": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0))}
        if name not in (*directions, "fit"):
            raise ValueError(f"camera preset {name!r}: give one of front, side, top, fit")
        camera = self._renderer.GetActiveCamera()
        if name == "fit":
            position, focal, up = camera.GetPosition(), camera.GetFocalPoint(), camera.GetViewUp()
        else:
            (dx, dy, dz), up = directions[name]
            focal, position = (0.0, 0.0, 0.0), (dx, dy, dz)
        self.fit(fill=0.85, direction=(np.asarray(focal) - np.asarray(position)), up=up)

    def reset_camera(self) -> None:
        """Front view tilted a little, fitted to the scene (two linked viewports: fitted to the content of
        each half, as :meth:`fit` does; the bounding-sphere fit leaves it small in a narrow viewport)."""
        if self._split and len(content_points(self.built)):
            self.fit(fill=0.8)
        else:
            self._aim()

    def _aim(self) -> None:
        """The default direction, the scene's bounds fitted by VTK (bounding sphere) and zoomed to the window."""
        camera = self._renderer.GetActiveCamera()
        camera.SetFocalPoint(0.0, 0.0, 0.0)
        camera.SetPosition(0.35, 0.45, 1.0)     # only the direction counts: ResetCamera moves along it
        camera.SetViewUp(0.0, 1.0, 0.0)
        if self.built is not None and self.built.bounds is not None:
            self._renderer.ResetCamera(*self.built.bounds)
        else:
            self._renderer.ResetCamera()
        self._reset_clipping()
        w, h = self._renderer.GetSize()
        # VTK fits the vertical view angle: a narrow window (or viewport) needs more room sideways
        camera.Zoom(0.85 * min(1.0, w / max(h, 1)))
        self._camera_set = True

    def orbit(self, degrees: float) -> None:
        """Turn the camera about the view-up axis through the focal point."""
        self._renderer.GetActiveCamera().Azimuth(degrees)
        self._reset_clipping()

    def screenshot(self, *, scale: int = 1, window_size: tuple[int, int] | None = None) -> np.ndarray:
        """Render and return the picture as (H, W, 3) uint8; ``scale`` supersamples (2 = twice the pixels)."""
        from vtkmodules.util.numpy_support import vtk_to_numpy
        from vtkmodules.vtkRenderingCore import vtkWindowToImageFilter

        scale = max(1, int(scale))
        if window_size is not None:
            self._window.SetSize(*map(int, window_size))
        if not self._camera_set:
            self.reset_camera()
        grab = vtkWindowToImageFilter()
        grab.SetInput(self._window)
        grab.SetScale(scale)                    # renders scale x scale tiles
        grab.SetInputBufferTypeToRGB()
        grab.ReadFrontBufferOn()                # the resolved MSAA picture, as drawn
        grab.ShouldRerenderOff()
        grab.FixBoundaryOn()
        # trame switches the interactor's rendering off (it renders on its own schedule);
        # the tiles of a supersampled capture render through the interactor
        enabled = self._interactor.GetEnableRender()
        self._interactor.EnableRenderOn()
        try:
            self._window.Render()
            grab.Update()
            if scale > 1:
                self._window.Render()           # the tiles left the last one in the window
        finally:
            self._interactor.SetEnableRender(enabled)
        image = grab.GetOutput()
        w, h, _ = image.GetDimensions()
        rgb = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(h, w, 3)
        return np.ascontiguousarray(rgb[::-1])  # VTK's rows run bottom-up

    def picture(self, *, size: tuple[int, int] | None = None, scale: int = 1,
                transparent: bool = False) -> np.ndarray:
        """A picture of ``size`` (width, height) pixels (default: the window's times ``scale``) with the
        same framing, as (H, W, 3) uint8, or (H, W, 4) with a transparent background.

        Transparency by two renders, on white and on black: a pixel's alpha is what the background
        changes in it, so translucent surfaces keep their translucency (no alpha bit planes needed).
        """
        w0, h0 = self._window.GetSize()
        if size is not None:
            # the window takes the asked size for this picture (VTK keeps the vertical view angle: a wider
            # picture shows more at the sides); a picture wider than 4096 renders in 2 x 2 tiles
            scale = 2 if max(size) > 4096 else 1
            self._window.SetSize(int(size[0]) // scale, int(size[1]) // scale)
        try:
            if not transparent:
                img = self.screenshot(scale=scale)
            else:
                bg = self._renderer.GetBackground()
                for r in (self._renderer, self._right):
                    r.SetBackground(1.0, 1.0, 1.0)
                white = self.screenshot(scale=scale).astype(np.float32)
                for r in (self._renderer, self._right):
                    r.SetBackground(0.0, 0.0, 0.0)
                black = self.screenshot(scale=scale).astype(np.float32)
                for r in (self._renderer, self._right):
                    r.SetBackground(*bg)
                alpha = np.clip(1.0 - (white - black).max(axis=-1) / 255.0, 0.0, 1.0)      # (H, W)
                rgb = np.where(alpha[..., None] > 0, black / np.maximum(alpha[..., None], 1e-6), 0.0)
                img = np.concatenate([np.clip(rgb, 0, 255), 255.0 * alpha[..., None]], -1).round().astype(np.uint8)
        finally:
            self._window.SetSize(w0, h0)
        return img

    def close(self) -> None:
        self._renderer.RemoveAllViewProps()
        self._right.RemoveAllViewProps()
        self._actors, self._label_actor, self._captions, self._corner_labels = {}, None, [], []
        self._interactor.SetRenderWindow(None)
        self._window.Finalize()


def _actor(name: str, mesh, kwargs: dict):
    """A VTK actor drawing ``mesh`` as the keywords of :attr:`BuiltScene.actors` say."""
    unknown = sorted(set(kwargs) - set(ACTOR_KEYWORDS))
    if unknown:
        msg = (f"actor {name!r}: Scene does not draw with {', '.join(unknown)}; "
               f"the keywords it knows are {', '.join(ACTOR_KEYWORDS)}")
        raise ValueError(msg)
    try:
        return _make_actor(mesh, **kwargs)
    except ValueError as exc:
        raise ValueError(f"actor {name!r}: {exc}") from None


def _make_actor(mesh, *, color: str | None = None, opacity: float = 1.0, smooth_shading: bool = False,
                style: Literal["surface", "wireframe"] = "surface", specular: float = 0.0,
                line_width: float = 1.0, scalars: str | None = None, rgb: bool = False,
                show_scalar_bar: bool = False, lighting: bool = True):
    from vtkmodules.vtkCommonCore import VTK_UNSIGNED_CHAR
    from vtkmodules.vtkCommonDataModel import vtkPolyData
    from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

    if style not in ("surface", "wireframe"):
        raise ValueError(f"style={style!r}: give 'surface' or 'wireframe'")
    if show_scalar_bar:
        raise ValueError("show_scalar_bar=True: Scene draws no scalar bars; pass False")
    if bool(rgb) != (scalars is not None):
        raise ValueError(f"scalars={scalars!r}, rgb={rgb!r}: Scene colours points only by an RGB array, "
                         "give both scalars=NAME and rgb=True (or neither)")
    shown = vtkPolyData()
    shown.ShallowCopy(mesh)                     # active arrays change below; the caller's mesh stays as it is
    mapper = vtkPolyDataMapper()
    if scalars is not None:
        array = shown.GetPointData().GetArray(scalars)
        if array is None or array.GetDataType() != VTK_UNSIGNED_CHAR or array.GetNumberOfComponents() != 3:
            raise ValueError(f"scalars={scalars!r}: needs a point array of that name with (N, 3) uint8 RGB")
        shown.GetPointData().SetActiveScalars(scalars)
        mapper.SetScalarModeToUsePointData()
        mapper.SetColorModeToDirectScalars()
    else:
        mapper.ScalarVisibilityOff()
        # pyvista makes each new array active (isosurface normals too); trame would ship
        # them to vtk.js as scalars rather than normals, and local rendering would shade flat
        shown.GetPointData().SetActiveScalars(None)
    if smooth_shading:
        shown = _with_point_normals(shown)
    mapper.SetInputData(shown)
    actor = vtkActor()
    actor.SetMapper(mapper)
    prop = actor.GetProperty()
    if color is not None:
        prop.SetColor(*color_rgb(color))
    prop.SetOpacity(float(opacity))
    prop.SetSpecular(float(specular))
    prop.SetSpecularPower(SPECULAR_POWER)
    prop.SetLineWidth(float(line_width))
    prop.SetLighting(bool(lighting))            # unlit: a slice's colours read as their values at any angle
    if style == "wireframe":
        prop.SetRepresentationToWireframe()
    if smooth_shading:
        prop.SetInterpolationToPhong()
    else:
        prop.SetInterpolationToFlat()
    return actor


def _pv_wrap(mesh):
    import pyvista as pv
    return mesh if isinstance(mesh, pv.PolyData) else pv.wrap(mesh)


def _with_point_normals(mesh):
    """``mesh`` with point normals for smooth shading: its own if it has them (tubes do), else computed."""
    from vtkmodules.vtkFiltersCore import vtkPolyDataNormals

    if mesh.GetPointData().GetNormals() is not None or mesh.GetNumberOfPolys() + mesh.GetNumberOfStrips() == 0:
        return mesh
    normals = vtkPolyDataNormals()
    normals.SetInputData(mesh)
    normals.ComputeCellNormalsOff()
    normals.SplittingOff()                      # split edges would show seams on isosurfaces
    normals.Update()
    return normals.GetOutput()


def _label(text: str):
    """Text centred at the upper edge, sized to the window (PyVista's ``add_text(position="upper_edge")``)."""
    from vtkmodules.vtkRenderingAnnotation import vtkCornerAnnotation

    actor = vtkCornerAnnotation()
    actor.SetText(vtkCornerAnnotation.UpperEdge, text)
    actor.SetLinearFontScaleFactor(LABEL_FONT_SIZE // 2)
    actor.SetMaximumFontSize(2 * LABEL_FONT_SIZE)  # it grows with the window; a caption, not a title
    actor.GetTextProperty().SetColor(*color_rgb(LABEL_COLOR))
    return actor


def _label_size(text: str, width: int, height: int) -> int:
    """Font size of a viewport's label: from the viewport's height, smaller where a long text (an item's
    name) would not fit its width."""
    fits = 0.92 * width / (0.56 * max(len(str(text)), 1))          # a bold sans character: ~0.56 em wide
    return max(10, int(min(0.024 * height, fits)))


def _corner_text(text: str, size: int):
    """A viewport's label in its top-left corner (two linked viewports: what each one shows)."""
    from vtkmodules.vtkRenderingCore import vtkTextActor

    actor = vtkTextActor()
    actor.SetInput(str(text))
    prop = actor.GetTextProperty()
    prop.SetFontSize(int(size))
    prop.SetColor(*color_rgb(LABEL_COLOR))
    prop.SetBold(True)
    prop.SetVerticalJustificationToTop()
    actor.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
    actor.SetPosition(0.03, 0.975)
    return actor


def _divider():
    """A thin grey line down the left edge of a viewport (between two linked viewports)."""
    from vtkmodules.vtkCommonCore import vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
    from vtkmodules.vtkRenderingCore import vtkActor2D, vtkCoordinate, vtkPolyDataMapper2D

    points = vtkPoints()
    points.InsertNextPoint(0.0, 0.0, 0.0)
    points.InsertNextPoint(0.0, 1.0, 0.0)
    lines = vtkCellArray()
    lines.InsertNextCell(2)
    lines.InsertCellPoint(0)
    lines.InsertCellPoint(1)
    line = vtkPolyData()
    line.SetPoints(points)
    line.SetLines(lines)
    where = vtkCoordinate()
    where.SetCoordinateSystemToNormalizedViewport()
    mapper = vtkPolyDataMapper2D()
    mapper.SetInputData(line)
    mapper.SetTransformCoordinate(where)
    actor = vtkActor2D()
    actor.SetMapper(mapper)
    actor.GetProperty().SetColor(*color_rgb("#BBBBBB"))
    actor.GetProperty().SetLineWidth(2.0)
    return actor


def color_rgb(color: str) -> tuple[float, float, float]:
    """``"#RRGGBB"`` or a CSS colour name as RGB in 0..1."""
    if isinstance(color, str) and len(color) == 7 and color.startswith("#"):
        try:
            return tuple(c / 255.0 for c in _hex_rgb(color))
        except ValueError:
            pass
    elif isinstance(color, str):
        from vtkmodules.vtkCommonColor import vtkNamedColors

        named = vtkNamedColors()
        if named.ColorExists(color):
            return tuple(named.GetColor3d(color))
    msg = f"colour {color!r}: give '#RRGGBB' (e.g. '#3050F8') or a CSS colour name (e.g. 'white')"
    raise ValueError(msg)


def png_bytes(image: np.ndarray) -> bytes:
    """Encode an (H, W, 3) uint8 image (or (H, W, 4) with alpha) as PNG bytes."""
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
           "ball_and_stick", "blank_fraction", "bonds", "atom_actors", "build_scene", "channel_color", "channel_element", "content_points",
           "displayed",
           "png_bytes", "side_by_side_offset"]
