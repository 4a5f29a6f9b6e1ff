"""Slice planes (molviz.view.slices), two linked viewports (Scene, molviz.view.compare) and the app's slice and
side-by-side reactions, headless (the chromium tests are in test_app_daily.py)."""
from __future__ import annotations

import uuid

import numpy as np
import pytest

from molviz.fields import Grid
from molviz.view.scene import Atoms, ChannelStyle, Layer, Scene, SceneOptions, build_scene
from molviz.view.slices import SliceSpec, colormap_rgb, slice_parts, slice_values, value_bar, value_range


def _gaussian(n: int = 24):
    grid = Grid.from_box((-2, -2, -2), (2, 2, 2), n)
    x, y, z = np.meshgrid(*grid.axes(), indexing="ij")
    vol = np.exp(-(x**2 + y**2 + z**2))[None].astype(np.float32)             # (1, n, n, n)
    return vol, grid


def test_colormap_ends_and_middle():
    rgb = colormap_rgb(np.array([-1.0, 0.0, 0.5, 1.0, 2.0, np.nan]), 0.0, 1.0)
    assert rgb.dtype == np.uint8 and rgb.shape == (6, 3)
    assert tuple(rgb[0]) == tuple(rgb[1]) == (0x44, 0x01, 0x54)           # viridis' dark purple, clamped below
    assert tuple(rgb[3]) == tuple(rgb[4]) == (0xFD, 0xE7, 0x25)           # its yellow, clamped above
    assert tuple(rgb[2]) == (0x21, 0x90, 0x8D)                            # teal in the middle
    assert tuple(rgb[5]) == tuple(rgb[0])                                 # NaN reads as the lowest
    with pytest.raises(ValueError, match="viridis"):
        colormap_rgb(np.zeros(2), 0, 1, "jet")


def test_slice_values_interpolate_between_voxel_planes():
    vol = np.arange(4 * 3 * 2, dtype=np.float32).reshape(4, 3, 2)
    first, f = slice_values(vol, "x", 0.0)
    assert f == 0.0 and np.array_equal(first, vol[0])
    last, f = slice_values(vol, "x", 1.0)
    assert f == 3.0 and np.array_equal(last, vol[3])
    mid, f = slice_values(vol, "x", 0.5)                                  # 1.5: halfway between planes 1 and 2
    np.testing.assert_allclose(mid, 0.5 * (vol[1] + vol[2]))
    z, _ = slice_values(vol, "z", 1.0)
    assert z.shape == (4, 3) and np.array_equal(z, vol[:, :, 1])


def test_slice_plane_lies_where_asked_and_carries_its_values():
    vol, grid = _gaussian()
    scale = value_range(vol, 0)
    assert scale[0] == 0.0 and scale[1] == pytest.approx(float(vol.max()))
    for axis in "xyz":
        parts = slice_parts([(vol, grid)], SliceSpec(channel=0, axis=axis, position=0.25), scale)
        mesh, kwargs = parts["L0:slice"]
        a = "xyz".index(axis)
        pts = np.asarray(mesh.points)
        want = grid.lo[a] + 0.25 * (grid.hi[a] - grid.lo[a])
        np.testing.assert_allclose(pts[:, a], want, atol=1e-5)
        assert mesh.n_points == 24 * 24 and kwargs == dict(scalars="rgb", rgb=True, lighting=False)
        # the values at the points are the volume's there (the centre of the plane: the peak along it)
        values = np.asarray(mesh.point_data["value"])
        others = [b for b in range(3) if b != a]
        centre = np.argmin(np.sum(pts[:, others] ** 2, axis=1))
        r2 = float(np.sum(pts[centre] ** 2))
        assert values[centre] == pytest.approx(np.exp(-r2), abs=0.02)
    assert slice_parts([(None, grid)], SliceSpec(), scale) == {}            # a viewport without a volume


def test_two_layers_draw_as_two_linked_viewports_with_labels_and_a_slice():
    vol, grid = _gaussian()
    atoms = Atoms(np.array([[0, 0, 0], [1.1, 0, 0]], np.float32), np.array([6, 8]))
    layers = [Layer(vol, grid, ["density"], atoms, label="decoded (model)"),
              Layer(vol * 0.8, grid, ["density"], atoms, label="ground truth")]
    built = build_scene(layers, [ChannelStyle(level=0.5, opacity=0.8)], SceneOptions())
    assert built.layer_labels == ["decoded (model)", "ground truth"]
    scene = Scene(window_size=(400, 200))
    scene.show(built, reset_camera=True)
    assert scene.split
    img = scene.screenshot()
    left, right = img[:, :200], img[:, 200:]
    ink = [float(np.mean(np.any(h < 245, axis=-1))) for h in (left, right)]
    assert min(ink) > 0.05, ink                                           # a copy in each half
    scene.orbit(150)                                                      # one camera: both still in view
    img = scene.screenshot()
    assert min(float(np.mean(np.any(h < 245, axis=-1))) for h in (img[:, :200], img[:, 200:])) > 0.05
    # a slice plane in each viewport, one value bar
    scale = value_range(vol, 0, vol * 0.8)
    scene.set_slice(slice_parts([(vol, grid), (vol * 0.8, grid)], SliceSpec(axis="z"), scale),
                    value_bar("density", *scale))
    assert {"L0:slice", "L1:slice"} <= set(scene.built.actors)
    sliced = scene.screenshot()
    assert np.mean(np.any(np.abs(sliced.astype(int) - img) > 12, axis=-1)) > 0.01
    # a label-only right viewport (no stored item): nothing drawn there but its label
    only = build_scene([layers[0], Layer(None, grid, ["density"], label="no stored item")],
                       [ChannelStyle(level=0.5)], SceneOptions())
    assert not any(n.startswith("L1:") for n in only.actors)
    scene.show(only)
    scene.set_slice({}, None)
    assert scene.split and not any(":slice" in n for n in scene.built.actors)
    one = build_scene(layers[:1], [ChannelStyle(level=0.5)], SceneOptions())
    scene.show(one)
    assert not scene.split
    scene.close()


# ----------------------------------------------------------------------------- in the app (no browser)
pytest.importorskip("trame")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from app_bundles import make_small_bundle
    from trame.app import get_server

    from molviz.app import MolvizApp

    path = make_small_bundle(tmp_path_factory.mktemp("bundles") / "freesolv-small")
    server = get_server(f"molviz-test-{uuid.uuid4().hex[:8]}", client_type="vue3")
    app = MolvizApp(server, bundle=path, window_size=(320, 240))
    app.state.ready()
    app.on_server_ready()
    return app


def _set(app, **values):
    for k, v in values.items():
        app.state[k] = v
    app.state.flush()


def test_app_slice_reads_the_view_and_moves_without_a_decode(app):
    _set(app, view_source="item", item_index=0, compare="reconstruction", resolution_choice="64")
    _set(app, slice_on=True, slice_channel=0, slice_axis="z", slice_position=0.5)
    view = app.current
    assert view.volume is not None and not view.extra.get("adaptive")    # a slice asks for every voxel
    assert "L0:slice" in app.scene.built.actors and app.state.slice_text
    points = np.asarray(app.scene.built.actors["L0:slice"][0].points)
    decoded = app.ex.engine.stats.decoded_points
    _set(app, slice_position=0.9, slice_axis="x")
    assert app.current is view and app.ex.engine.stats.decoded_points == decoded    # no decode for a move
    moved = np.asarray(app.scene.built.actors["L0:slice"][0].points)
    assert not np.allclose(moved[:, 0].mean(), points[:, 0].mean())
    _set(app, slice_channel=99)                                          # refused; the last good one stays
    assert app.state.error_show and app.state.slice_channel == 0
    _set(app, error_show=False, slice_on=False)
    assert not any(":slice" in n for n in app.scene.built.actors)


def test_app_side_by_side_of_an_interpolation_compares_with_the_nearest_item(app):
    _set(app, view_source="item", item_index=0, compare="side_by_side", endpoint_a=0, endpoint_b=1)
    assert app.scene.split and app.scene.built.layer_labels == ["decoded (model)", "ground truth"]
    _set(app, interp_t=0.4)
    assert app.state.view_source == "interpolation"
    labels = app.scene.built.layer_labels
    near = app.current.extra["nearest"]
    assert labels[0] == "decoded (model)  t = 0.40" and labels[1] == f"nearest stored item: {near.label}"
    assert near.item is not None
    assert any(n.startswith("L1:ch:") for n in app.scene.built.actors)
    _set(app, slice_on=True)
    assert {"L0:slice", "L1:slice"} <= set(app.scene.built.actors)
    _set(app, slice_on=False, compare="reconstruction", view_source="item")
    assert not app.scene.split


def test_app_refinement_percentage_counts_the_decoded_chunks(app):
    chunk = app.ex.engine.chunk_points
    r = app._progress_begin(64, dense=True)
    assert r.expected == -(-64 ** 3 // chunk) and app._progress_percent() == 0.0     # not started yet
    r.started = True
    ask = r.counting(lambda: False)
    for _ in range(int(r.expected) // 2):
        assert ask() is False
    assert 45 <= app._progress_percent() <= 55
    app._progress_end(r, finished=True)
    assert app._refining is None and not app.state.refine_progress
    # adaptive: learned from the last one at that resolution, scaled by the surface area for another
    a = app._progress_begin(64, dense=False)
    a.started, a.chunks = True, 40
    app._progress_end(a, finished=True)
    assert app._expected_chunks("adaptive", 64) == 40 and app._expected_chunks("adaptive", 128) == 160


def test_app_a_view_asked_before_the_slice_was_on_is_followed_by_a_dense_one(app):
    _set(app, slice_on=False, compare="reconstruction", view_source="item", item_index=1)
    _set(app, resolution_choice="custom", resolution_custom=80)
    assert app.current.extra.get("adaptive")                  # absolute levels at 80^3: decoded near the surfaces
    with app.state.suppress_change_listeners("slice_on"):     # switched on while that decode ran (lanes run inline
        app.state.slice_on = True                             # here, so the order is played by hand)
    app._good["slice_on"] = True
    app._after_show()
    assert not app.current.extra.get("adaptive") and app.current.extra["request"].dense
    assert "L0:slice" in app.scene.built.actors and "adaptive" not in app.state.slice_text
    _set(app, slice_on=False, resolution_choice="64")
    assert not any(":slice" in n for n in app.scene.built.actors)


def test_app_png_carries_the_value_bar_when_the_browser_renders(app):
    """Rendered in the browser, the value bar is HTML over the view; a PNG (rendered by the server) still
    has it, as with server-side rendering, and the scene the browser gets stays without it."""
    import io

    from PIL import Image

    def png() -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(app.screenshot_png())).convert("RGB")).astype(np.int16)

    _set(app, view_source="item", item_index=0, compare="reconstruction", resolution_choice="32",
         screenshot_size="view", screenshot_transparent=False)
    _set(app, slice_on=True, slice_channel=0, slice_axis="z", slice_position=0.5)
    remote = png()
    _set(app, view_mode="local")
    assert app.state.view_mode == "local" and app.scene._slice_bar is None and app.state.slice_bar
    local = png()
    assert app.scene._slice_bar is None                                   # taken out again
    strip = (slice(None), slice(int(remote.shape[1] * 0.8), None))        # the right edge: the bar
    assert np.abs(local[strip] - remote[strip]).mean() < 3.0
    _set(app, view_mode="remote")
    app.scene.set_value_bar(None)                                         # what the PNG had been without it
    bare = png()
    assert np.abs(bare[strip] - remote[strip]).mean() > np.abs(local[strip] - remote[strip]).mean() + 1.0
    _set(app, slice_on=False)
