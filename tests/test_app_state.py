"""The app's state logic without a browser: set state, flush, check what the engine did and what the view holds.

Without a running event loop the app's worker lanes run jobs inline, so each
``flush()`` leaves the view updated; one test drives the real asyncio path.
"""
from __future__ import annotations

import asyncio
import io
import math
import uuid

import numpy as np
import pytest

pytest.importorskip("trame")

from app_bundles import ROOT, make_small_bundle  # noqa: E402


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory):
    return make_small_bundle(tmp_path_factory.mktemp("bundles") / "freesolv-small")


def _new_app(bundle_path, **kwargs):
    from trame.app import get_server

    from molviz.app import MolvizApp

    server = get_server(f"molviz-test-{uuid.uuid4().hex[:8]}", client_type="vue3")
    app = MolvizApp(server, bundle=bundle_path, window_size=(320, 240), **kwargs)
    app.state.ready()           # what starting the server does: flush, callbacks live
    app.on_server_ready()       # refine the first (coarse) picture to the chosen resolution
    # atoms found in an interpolation frame's own field (the default, "auto") are tests/test_app_atoms.py's:
    # here, with jobs inline, each frame would wait 20-40 s for them in the untrained test bundle's noise
    _set(app, atoms_source="true")
    return app


@pytest.fixture(scope="module")
def app(bundle_path):
    return _new_app(bundle_path)


def _set(app, **values):
    for k, v in values.items():
        app.state[k] = v
    app.state.flush()


def _reset(app):
    _set(app, error_show=False, error_text="", view_source="item", item_index=0, compare="reconstruction",
         resolution_choice="64")


def test_first_picture_is_the_default_item(app):
    assert app.first_picture_s is not None
    assert app.current is not None and app.current.item == 0
    assert app.current.volume.shape[1:] == (64, 64, 64)          # refined after the coarse first pass
    names = [n for n in app.scene.built.actors if ":ch:" in n]
    assert names, "no isosurface in the first picture"
    assert any(n.endswith(":atoms") for n in app.scene.built.actors)
    # the model picker holds names and indices only, never server paths
    assert all("/" not in o["title"] for o in app.state.model_options)


def test_the_slice_is_drawn_once_unseen_so_the_first_slice_need_not_compile_its_shaders(app):
    """Issue 20: llvmpipe compiles a slice's shaders on the first render that holds one (150 ms beside other
    jobs); a second after the first picture the app renders one unseen, then the scene, the window's size
    and its multisampling are as before."""
    _reset(app)
    window = app.scene.render_window
    size, samples, actors = tuple(window.GetSize()), window.GetMultiSamples(), set(app.scene.built.actors)
    app._slice_warm = False
    app._warm_slice()
    assert app._slice_warm
    assert (tuple(window.GetSize()), window.GetMultiSamples()) == (size, samples)
    assert set(app.scene.built.actors) == actors and app.scene._slice_bar is None
    assert not any(n.endswith(":slice") for n in app.scene.built.actors)


def test_level_change_recomputes_surface_without_decoding(app):
    _reset(app)
    ch = next(i for i in range(app.state.n_channels) if app.state[f"ch{i}_visible"])
    name = app.state.channel_names[ch]
    before_level = app.scene.built.levels[name]
    before_tris = app.scene.built.triangles[name]
    decoded = app.ex.engine.stats.decoded_points
    _set(app, **{f"ch{ch}_level": 0.8})
    assert app.scene.built.levels[name] > before_level
    assert app.scene.built.triangles[name] != before_tris
    assert app.ex.engine.stats.decoded_points == decoded        # restyle: volumes came from the cache
    _set(app, **{f"ch{ch}_mode": "percent"})                    # new mode: that mode's default level
    assert app.state[f"ch{ch}_level"] == 2.0 and app.state[f"ch{ch}_level_max"] == 50.0
    _set(app, **{f"ch{ch}_mode": "fraction"})


def test_resolution_asks_the_engine_for_that_grid(app):
    _reset(app)
    asked = []
    engine = app.ex.engine
    original = engine.decode

    def spy(latents, **kw):
        asked.append(kw["resolution"])
        return original(latents, **kw)

    engine.decode = spy
    try:
        _set(app, resolution_choice="custom", resolution_custom=40)
    finally:
        engine.decode = original
    assert 40 in asked
    assert app.current.volume.shape[1:] == (40, 40, 40)
    assert app.current.grid.shape == (40, 40, 40)
    _set(app, resolution_choice="64")


@pytest.mark.parametrize("key, value", [
    ("resolution_custom", -5), ("resolution_custom", float("nan")), ("resolution_custom", 10**9),
    ("resolution_custom", "../../etc/passwd"), ("item_index", "../../etc/passwd"), ("item_index", 10**9),
    ("item_index", float("nan")), ("model_index", "../../etc/passwd"), ("model_index", 7),
    ("ch0_level", float("nan")), ("ch0_level", 1e300), ("ch0_color", "url(javascript:alert(1))"),
    ("clip_axis", "../x"), ("interp_t", float("inf")), ("compare", "/etc/passwd"), ("fps", 10**9),
    ("endpoint_a", -7), ("view_source", "../../"),
])
def test_hostile_values_are_refused_and_the_view_stays(app, key, value):
    _reset(app)
    if key == "resolution_custom":
        _set(app, resolution_choice="custom", resolution_custom=48)
    view, built = app.current, app.scene.built
    good = app.state[key]
    _set(app, error_show=False, **{key: value})
    assert app.state.error_show, f"{key}={value!r} was not refused"
    assert app.state.error_text
    assert app.state[key] == good                       # the last good value is back in the page
    assert app.current is view and app.scene.built is built
    _set(app, resolution_choice="64")


def test_refusal_messages_say_what_to_fix(app):
    _reset(app)
    _set(app, resolution_choice="custom", resolution_custom=4096)
    assert "limit of 256" in app.state.error_text
    _set(app, resolution_choice="64", error_show=False)
    app.state.smiles = "C1CC(("
    app.encode_smiles()
    assert "not a valid SMILES" in app.state.error_text
    app.state.smiles = "/etc/passwd"
    app.encode_smiles()
    assert "file path" in app.state.error_text
    app.state.export_frames = 10**9
    with pytest.raises(Exception, match="frames must be a whole number from 2 to 600"):
        app._export_config()
    app.state.export_frames = 60


def test_interpolation_slider_moves_between_endpoints(app):
    _reset(app)
    _set(app, endpoint_a=0, endpoint_b=3, interp_mode="slerp")
    _set(app, interp_t=0.5)
    assert app.state.view_source == "interpolation"
    assert app.current.extra["t"] == 0.5
    a = app.ex.decode(app.ex.latent(0), app.current.volume.shape[1])
    assert not np.allclose(app.current.volume, a)
    _set(app, interp_t=1.0)
    n = app.current.volume.shape[1]
    b = app.ex.decode(app.ex.latent(3), n)
    np.testing.assert_allclose(app.current.extra["latent"], app.ex.latent(3), atol=1e-6)
    # the view may be an adaptive decode (exact near the surfaces only): compare the frame's dense decode
    frame = app.ex.engine.decode(app.current.extra["latent"], resolution=n, cache=False)[0]
    np.testing.assert_allclose(frame, b, atol=1e-5)


def test_side_by_side_shows_truth_and_psnr(app):
    _reset(app)
    _set(app, compare="side_by_side")
    actors = app.scene.built.actors
    assert any(n.startswith("L1:ch:") for n in actors) and any(n.startswith("L0:ch:") for n in actors)
    assert app.current.truth is not None
    expected = 20 * math.log10(1 / math.sqrt(float(np.mean((app.current.volume - app.current.truth) ** 2))))
    assert f"{expected:.1f} dB" in app.state.psnr_text
    _set(app, compare="truth")
    assert not any(n.startswith("L1:") for n in app.scene.built.actors)


def test_encoded_smiles_lands_on_map_with_neighbours(app):
    _reset(app)
    app.state.smiles = "CCO"
    app.encode_smiles()
    assert app.state.has_encoded
    assert app.state.view_source == "encoded"
    assert len(app.state.neighbours) == 5
    assert "nearest-neighbour placement" in app.state.placement_text
    # its surfaces come from the encoder's latent refined against its atoms; neighbours and the map
    # from the encoder's latent, where the stored ones live
    enc = app.encoded
    assert enc.map_latent is not None and not np.allclose(enc.latent, enc.map_latent)
    assert f"refined {app.ex.refine_steps} steps" in app.state.placement_text
    assert [n["index"] for n in app.state.neighbours] == [i for i, _ in app.ex.neighbours(enc.map_latent, 5)]
    np.testing.assert_allclose(app.current.extra["latent"], enc.latent)
    assert app.current.label.startswith("encoded")
    data = app.state.map_figure["data"]
    assert any(tr.get("marker", {}).get("symbol") == "star" for tr in data)


def test_map_click_shows_item_and_picks_endpoints(app):
    _reset(app)
    app.on_map_click({"points": [{"curveNumber": 0, "pointIndex": 4, "customdata": 4}]})
    assert app.state.item_index == 4 and app.current.item == 4
    _set(app, map_pick_mode="endpoints")
    app.on_map_click({"points": [{"curveNumber": 0, "customdata": 2}]})
    app.on_map_click({"points": [{"curveNumber": 0, "customdata": 5}]})
    assert (app.state.endpoint_a, app.state.endpoint_b) == (2, 5)
    traces = app.state.map_figure["data"]
    assert any(tr.get("mode") == "lines+markers" for tr in traces)          # the path is drawn
    app.on_map_click({"points": [{"curveNumber": 0, "customdata": "../../etc/passwd"}]})   # ignored
    app.on_map_hover({"points": [{"curveNumber": 0, "customdata": 1}]})
    assert "<svg" in app.state.hover_svg
    _set(app, map_pick_mode="view")


def test_screenshot_is_supersampled_png(app):
    from PIL import Image

    _reset(app)
    app.state.screenshot_scale = 2
    png = app.screenshot_png()
    img = Image.open(io.BytesIO(png))
    assert img.size == (640, 480)


def test_async_lane_drops_stale_requests(bundle_path):
    app = _new_app(bundle_path)

    async def scrub():
        _set(app, endpoint_a=0, endpoint_b=2)
        for t in np.linspace(0.05, 0.6, 12):
            _set(app, interp_t=float(round(t, 3)))
        await app.idle()

    asyncio.run(scrub())
    assert app.current.extra["t"] == pytest.approx(0.6)
    assert app.current.volume.shape[1] == 64                       # refined after the scrub stopped
    assert app.view_lane.dropped > 0                                # superseded work was skipped


def test_model_picker_switches_between_bundles_by_index(bundle_path, tmp_path):
    import shutil

    other = tmp_path / "models" / "second"
    shutil.copytree(bundle_path, other)
    app = _new_app(bundle_path, models_dir=tmp_path / "models")
    titles = [o["title"] for o in app.state.model_options]
    assert "second" in titles and all("/" not in t for t in titles)
    first = app.explorer
    _set(app, model_index=titles.index("second"))
    assert app.explorer is not first and app.explorer.bundle.path == other.resolve()
    assert app.current is not None and app.current.item == 0
    _set(app, error_show=False, model_index=str(other))          # a path is not an index: refused
    assert app.state.error_show and app.explorer.bundle.path == other.resolve()


def test_play_advances_t(bundle_path):
    app = _new_app(bundle_path)

    async def play():
        _set(app, endpoint_a=1, endpoint_b=2, fps=30)
        _set(app, playing=True)
        await asyncio.sleep(1.0)
        _set(app, playing=False)
        await app.idle()

    asyncio.run(play())
    assert app.state.interp_t > 0.05
    assert app.state.view_source == "interpolation"
    assert app.current.extra["t"] == pytest.approx(app.state.interp_t, abs=1e-6)


def test_an_unreadable_bundle_is_refused_and_the_view_stays(bundle_path, tmp_path):
    broken = tmp_path / "models" / "broken"
    broken.mkdir(parents=True)
    (broken / "bundle.json").write_text("{not json")
    (broken / "weights.safetensors").write_bytes(b"\x80\x04pickle")
    app = _new_app(bundle_path, models_dir=tmp_path / "models")
    titles = [o["title"] for o in app.state.model_options]
    view, explorer = app.current, app.explorer
    _set(app, error_show=False, model_index=titles.index("broken"))
    assert app.state.error_show and "broken" in app.state.error_text
    assert app.explorer is explorer and app.current is view
    assert app.state.model_index == titles.index(explorer.bundle.path.name)


def test_map_search_rings_matching_items(app):
    _reset(app)
    _set(app, map_search="methyl")
    names = [app.ex.item_label(i) for i in range(app.ex.n_items)]
    expected = sum("methyl" in n.lower() or "methyl" in str(app.ex.bundle.items[i].get("smiles", "")).lower()
                   for i, n in enumerate(names))
    assert app.state.map_found == expected > 0
    rings = [tr for tr in app.state.map_figure["data"] if tr.get("marker", {}).get("symbol") == "circle-open"
             and tr.get("marker", {}).get("color") == "#F2A541"]
    assert rings and len(rings[0]["x"]) == expected
    _set(app, map_search="")
    assert app.state.map_found == 0


def _deferred_app(bundle):
    from trame.app import get_server

    from molviz.app import MolvizApp

    server = get_server(f"molviz-test-{uuid.uuid4().hex[:8]}", client_type="vue3")
    app = MolvizApp(server, bundle=bundle, window_size=(320, 240), defer_first_model=True)
    app.state.ready()
    return app


def test_serve_opens_the_first_model_after_the_server_is_up(bundle_path):
    """``molviz serve`` defers the model (torch, decoding) until the page is served: the browser loads
    its scripts meanwhile. Coarse picture first, then the chosen resolution; the map loads after it."""
    app = _deferred_app(bundle_path)
    assert app.explorer is None and app.current is None
    assert app.state.busy and not app.state.map_load

    async def start():
        app.on_server_ready()
        _set(app, model_index=0)              # a pick while the model opens changes nothing
        await app.idle()

    asyncio.run(start())
    assert app.explorer is not None and app.explorer.bundle.path == bundle_path.resolve()
    assert app.current is not None and app.current.item == 0
    assert app.current.volume.shape[1] == 64                    # refined after the coarse first picture
    assert app.first_picture_s is not None and app.state.map_load


def test_serve_shows_why_a_broken_first_model_did_not_open(bundle_path, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(bundle_path, broken)
    (broken / "weights.safetensors").write_bytes(b"\x00" * 64)
    app = _deferred_app(broken)

    async def start():
        app.on_server_ready()
        await app.idle()

    asyncio.run(start())
    assert app.explorer is None and app.state.error_show
    assert "broken" in app.state.error_text or "safetensors" in app.state.error_text
    assert app.state.map_load and not app.state.busy


def test_reconstructions_from_48_up_are_decoded_adaptively_with_the_dense_surfaces(app):
    """Absolute levels, reconstruction only: the surfaces come from an adaptive decode, triangle for
    triangle those of the dense volume (molviz.engine's bound); with truth shown, dense again."""
    from molviz.view.scene import closed_isosurface

    _reset(app)
    n = len(app.explorer.channel_names)
    _set(app, **{f"ch{c}_mode": "absolute" for c in range(n)})
    _set(app, endpoint_a=0, endpoint_b=2, view_source="interpolation", interp_t=0.4137, resolution_choice="64")
    assert app.current.volume.shape[1] == 64 and app.current.extra["adaptive"]
    dense = app.explorer.engine.decode(app.current.extra["latent"], resolution=64, cache=False)[0]
    names = app.explorer.channel_names
    shown = [c for c in range(len(names)) if app.state[f"ch{c}_visible"] and dense[c].max() > 0.1]
    assert shown
    levels = {}            # levels inside each channel's range (the test bundle is barely trained)
    for c in shown:
        lo, hi = max(float(dense[c].min()), 0.0), float(dense[c].max())
        levels[f"ch{c}_level"] = round(lo + 0.5 * (hi - lo), 3)
    _set(app, **levels)    # one change of several levels: one adaptive decode
    view, built = app.current, app.scene.built
    assert view.extra["adaptive"] and "adaptive" in app.state.view_caption
    for c in shown:
        name = names[c]
        want = closed_isosurface(dense[c], view.grid, built.levels[name])     # what the scene draws
        assert want.n_cells > 0 and built.triangles[name] == want.n_cells, (
            name, built.levels, float(dense[c].min()), float(dense[c].max()), app.state[f"ch{c}_level"])
    _set(app, view_source="item", compare="truth")
    assert not app.current.extra["adaptive"] and app.current.truth is not None
    _reset(app)


def test_surfaces_on_the_device_replace_the_volume_and_match_the_host_surfaces(bundle_path, monkeypatch):
    """What the app does on a GPU (forced here on the CPU): reconstructions at absolute levels come back as
    meshes extracted where they were decoded, with the vertices of the host's marching cubes."""
    from molviz.mesh import isosurface

    monkeypatch.setenv("MOLVIZ_SURFACES_ON_DEVICE", "1")
    app = _new_app(bundle_path)
    assert app.explorer.surfaces_on_device
    n = len(app.explorer.channel_names)
    _set(app, **{f"ch{c}_mode": "absolute" for c in range(n)})
    _set(app, endpoint_a=0, endpoint_b=2, view_source="interpolation", interp_t=0.37, resolution_choice="64")
    assert app.current.volume is None and len(app.current.surfaces) == n
    dense = app.explorer.engine.decode(app.current.extra["latent"], resolution=64, cache=False)[0]
    for c in range(n):     # levels inside each channel's range (the test bundle is barely trained)
        lo, hi = max(float(dense[c].min()), 0.0), float(dense[c].max())
        _set(app, **{f"ch{c}_level": round(lo + 0.5 * (hi - lo), 3)})
    view, built = app.current, app.scene.built
    assert view.volume is None and "surfaces on CPU" in app.state.view_caption
    names = app.explorer.channel_names
    drawn = 0
    for c in range(n):
        if not app.state[f"ch{c}_visible"]:
            continue
        assert view.peak(c) == pytest.approx(float(dense[c].max()), abs=1e-5)
        want = isosurface(dense[c], view.grid, level=built.levels[names[c]], mode="absolute")
        assert view.surfaces[c].n_points == want.n_points
        assert built.triangles[names[c]] == pytest.approx(want.n_cells, rel=0.01)
        drawn += want.n_cells > 0
    assert drawn
    # side by side needs both volumes: dense again, with the truth
    _set(app, view_source="item", compare="side_by_side")
    assert app.current.volume is not None and app.current.surfaces is None and app.current.truth is not None


def test_surfaces_download_is_a_glb_of_the_scene(app, tmp_path):
    import pyvista as pv

    _reset(app)
    data = app.surfaces_glb()
    assert data[:4] == b"glTF"
    path = tmp_path / "s.glb"
    path.write_bytes(data)
    blocks = pv.read(path)
    surfaces = {n: m for n, (m, _) in app.scene.built.actors.items() if ":ch:" in n}
    meshes = [b for b in blocks.recursive_iterator() if b is not None and b.n_points]
    # every isosurface on screen, plus the atoms' balls and bonds, with their vertex counts
    assert len(meshes) == len(surfaces) + 2
    assert sorted(m.n_points for m in meshes) == sorted(
        [m.n_points for m in surfaces.values()] + [app.scene.built.actors[k][0].n_points
                                                  for k in ("L0:atoms", "L0:bonds")])


def test_maps_download_zips_one_ccp4_per_visible_channel(app, monkeypatch):
    import io
    import zipfile

    import gemmi

    _reset(app)
    n = len(app.explorer.channel_names)
    _set(app, **{f"ch{c}_mode": "absolute" for c in range(n)})
    _set(app, endpoint_a=0, endpoint_b=2, view_source="interpolation", interp_t=0.5, resolution_choice="64")
    view = app.current
    assert view.extra["adaptive"]                      # an adaptive view: the maps are decoded densely again
    dense = app.explorer.engine.decode(view.extra["latent"], resolution=64, cache=False)[0]
    visible = [c for c in range(n) if app.state[f"ch{c}_visible"]]
    with zipfile.ZipFile(io.BytesIO(app.maps_zip())) as zf:
        names = sorted(zf.namelist())
        assert len(names) == len(visible) and all(x.endswith(".ccp4") for x in names)
        c = visible[0]
        entry = next(x for x in names if x.endswith(f"_{app.explorer.channel_names[c]}.ccp4"))
        tmp = zf.extract(entry, path=str(__import__("tempfile").mkdtemp()))
    m = gemmi.read_ccp4_map(tmp)
    assert np.allclose(np.array(m.grid, copy=False), dense[c], atol=1e-5)
    assert [m.header_float(w) for w in (50, 51, 52)] == pytest.approx(list(view.grid.origin), abs=1e-3)
    # too big for a download: a message, no file
    monkeypatch.setattr("molviz.app._app.MAX_MAPS_BYTES", 1000)
    assert app.maps_zip() is None and "lower the resolution" in app.state.error_text
    _reset(app)


def test_a_level_change_reuses_the_voxels_the_last_adaptive_decode_evaluated(app):
    """Dragging a level at 64^3 and up: the next adaptive decode takes the voxels the previous one
    decoded from it, and still draws the dense volume's surface."""
    from molviz.view.scene import closed_isosurface

    _reset(app)
    n = len(app.explorer.channel_names)
    _set(app, **{f"ch{c}_mode": "absolute" for c in range(n)})
    _set(app, endpoint_a=1, endpoint_b=2, view_source="interpolation", interp_t=0.29, resolution_choice="64")
    z = app.current.extra["latent"]
    dense = app.explorer.engine.decode(z, resolution=64, cache=False)[0]
    c = next(c for c in range(n) if app.state[f"ch{c}_visible"] and dense[c].max() > 0.1)
    lo, hi = max(float(dense[c].min()), 0.0), float(dense[c].max())
    _set(app, **{f"ch{c}_level": round(lo + 0.5 * (hi - lo), 3)})
    stats = app.explorer.engine.stats
    before = stats.decoded_points
    _set(app, **{f"ch{c}_level": round(lo + 0.45 * (hi - lo), 3)})
    assert app.current.extra["adaptive"]
    reused_run = stats.decoded_points - before
    levels = np.full(n, np.nan)
    levels[c] = app.scene.built.levels[app.explorer.channel_names[c]]
    for k in range(n):
        if app.state[f"ch{k}_visible"] and k != c:
            levels[k] = app.scene.built.levels[app.explorer.channel_names[k]]
    fresh = app.explorer.engine.decode_adaptive(z, resolution=64, levels=levels)
    assert 0 < reused_run < 0.6 * fresh.n_decoded
    want = closed_isosurface(dense[c], app.current.grid, levels[c])
    assert app.scene.built.triangles[app.explorer.channel_names[c]] == want.n_cells > 0
    _reset(app)


def test_display_toggles_switch_the_shown_scene_without_rebuilding_it(app):
    """Atoms, outline and clip are actor visibility and a GPU clip plane: no decode, no new meshes (issue 20)."""
    _reset(app)
    built = app.built
    actors = app.scene._actors
    _set(app, show_atoms=False, show_outline=False, clip_axis="x", clip_position=0.3)
    assert app.built is built                                   # nothing rebuilt
    assert not actors["L0:atoms"].GetVisibility() and not actors["L0:outline"].GetVisibility()
    surf = next(a for n, a in actors.items() if ":ch:" in n)
    assert surf.GetMapper().GetClippingPlanes().GetNumberOfItems() == 1
    _set(app, show_atoms=True, show_outline=True, clip_axis="none")
    assert actors["L0:atoms"].GetVisibility() and surf.GetMapper().GetClippingPlanes().GetNumberOfItems() == 0
    # a later picture keeps the switches
    _set(app, show_atoms=False)
    _set(app, item_index=1)
    assert app.built is not built and not app.scene._actors["L0:atoms"].GetVisibility()
    _set(app, show_atoms=True)


def test_the_psnr_chip_shows_above_64_from_sampled_voxels(app):
    """Adaptive decodes (from 48 up) keep no dense volume; the chip's PSNR comes from a voxel sample."""
    _reset(app)
    _set(app, resolution_choice="128")
    assert app.current.volume.shape[1:] == (128,) * 3 and app.current.truth is None
    assert "dB at 128\u00b3 (sampled" in app.state.psnr_text
    psnr, n = app.current.extra["psnr_sampled"]
    assert 4000 < n < 70000
    # the sample estimates the full-grid PSNR
    dense = app.ex.item_view(0, 128, truth=True).psnr
    assert abs(psnr - dense) < 0.5
    _reset(app)
    assert app.state.psnr_text.startswith("PSNR") and "sampled" not in app.state.psnr_text


def test_interpolation_atoms_fade_and_field_atoms_join_the_picture(app):
    """Different molecules at the ends: both atom sets drawn, A at 1 - t and B at t (no snap at 0.5)."""
    from molviz.view.explore import frame_atoms

    a, b = app.ex.item_endpoint(0), app.ex.item_endpoint(2)
    for t in (0.49, 0.51):
        atoms, fade = frame_atoms(a.atoms, b.atoms, t)
        assert atoms is None and [(tag, round(w, 2)) for _, w, tag in fade] == [("a", round(1 - t, 2)),
                                                                                 ("b", round(t, 2))]
    _reset(app)
    _set(app, endpoint_a=0, endpoint_b=2, interp_t=0.5)
    names = set(app.scene._actors)
    assert {"L0:atoms:a", "L0:atoms:b"} <= names and "L0:atoms" not in names
    _reset(app)        # atoms found in the field: tests/test_app_daily.py (the untrained test bundle's field is noise)


def test_colour_and_opacity_change_the_actors_on_screen_without_a_rebuild(app):
    _reset(app)
    ch = next(i for i in range(app.state.n_channels) if app.state[f"ch{i}_visible"])
    name = app.state.channel_names[ch]
    built = app.built
    _set(app, **{f"ch{ch}_color": "#123456", f"ch{ch}_opacity": 0.4})
    assert app.built is built                                    # nothing rebuilt
    prop = app.scene._actors[f"L0:ch:{name}"].GetProperty()
    assert prop.GetOpacity() == pytest.approx(0.4)
    assert np.allclose(prop.GetColor(), (0x12 / 255, 0x34 / 255, 0x56 / 255), atol=1e-3)
    assert built.actors[f"L0:ch:{name}"][1]["color"] == "#123456"   # exports follow
    _set(app, **{f"ch{ch}_color": "#909090", f"ch{ch}_opacity": 0.9})


def test_a_movie_draws_the_atoms_the_view_draws(app):
    """The export's atoms follow the Display panel: each frame's field atoms unless "true" is asked."""
    _reset(app)
    assert app._export_config()[0].atoms == "fade"              # this module shows the true atoms
    _set(app, atoms_source="auto")
    assert app._export_config()[0].atoms == "auto"              # field atoms for small molecules
    _set(app, atoms_source="field")
    assert app._export_config()[0].atoms == "field"
    _set(app, atoms_source="true")


def test_auto_looks_for_field_atoms_in_small_molecules_only():
    """A protein's interpolation frames and movies keep the true atoms under "auto": its field at 32^3
    does not resolve them, and looking for hundreds took minutes per frame (the 2JUY ensemble)."""
    from molviz.view.explore import Explorer, field_atoms_by_default

    small = Explorer.open(ROOT / "assets" / "models" / "freesolv")
    protein = Explorer.open(ROOT / "assets" / "models" / "nmr-2juy")
    for ex, want in ((small, True), (protein, False)):
        view = ex.frame(ex.item_endpoint(0), ex.item_endpoint(1), 0.5, resolution=8)
        assert field_atoms_by_default(view) is want
