"""End to end in a real browser: ``molviz serve`` in a subprocess, Debian's chromium driven by Playwright.

Playwright never downloads a browser here: it launches /usr/bin/chromium (CI
installs it with apt; without it these tests skip with the reason). The tests
share one server and one page and run in file order, like a user's session.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from app_bundles import bundle_for_tests, serving
from app_bundles import inked as _inked
from app_bundles import open_panel as _open_panel
from app_bundles import page_state as _state
from app_bundles import shot as _shot
from app_bundles import view_pixels as _view

from molviz.app._bench import ARGS, CHROMIUM, free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]


if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (/usr/bin/chromium); `apt-get install chromium` "
                "(.ci/run does it)", allow_module_level=True)
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    bundle = bundle_for_tests(tmp_path_factory.mktemp("bundles"))
    port = free_port()
    log = tmp_path_factory.mktemp("log") / "serve.log"
    t0 = time.perf_counter()
    with serving([str(bundle), "--port", str(port)], log) as proc:
        yield {"url": f"http://127.0.0.1:{port}/", "t0": t0, "proc": proc, "log": log}


@pytest.fixture(scope="module")
def page(server):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(viewport={"width": 1500, "height": 900}, accept_downloads=True)
        pg = context.new_page()
        pg.goto(server["url"])
        yield pg
        browser.close()


def _wait_for_change(page, before: np.ndarray, *, timeout: float = 60.0, min_diff: float = 0.003) -> np.ndarray:
    deadline = time.time() + timeout
    while time.time() < deadline:
        page.wait_for_timeout(300)
        now = _view(page)
        if now.shape == before.shape and np.mean(np.any(np.abs(now - before) > 12, axis=-1)) > min_diff:
            page.wait_for_timeout(1500)               # let the refined picture arrive too
            return _view(page)
    pytest.fail("the 3D view did not change")


def _download(page, testid: str, folder, *, timeout_ms: int = 120_000):
    """Click the button ``data-testid=testid`` and save the file the browser downloads into ``folder``."""
    button = page.locator(f"[data-testid={testid}]")
    button.scroll_into_view_if_needed()
    with page.expect_download(timeout=timeout_ms) as info:
        button.click()
    path = folder / info.value.suggested_filename
    info.value.save_as(path)
    return path


def test_page_shows_the_default_molecule(page, server):
    deadline = time.time() + 90
    while time.time() < deadline and _inked(_view(page)) < 0.02:
        page.wait_for_timeout(250)
    first = time.perf_counter() - server["t0"]
    img = _view(page)
    assert _inked(img) > 0.02, "the 3D view is blank"
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 100          # shaded surfaces, not a flat fill
    print(f"first picture in the browser {first:.1f} s after launching molviz serve")
    page.wait_for_timeout(2000)
    _shot(page, "01-first-picture.png")


def test_moving_a_channel_level_changes_the_picture(page):
    ch = next(i for i in range(_state(page, "n_channels")) if _state(page, f"ch{i}_visible"))
    _open_panel(page, "Channels")
    before = _view(page)
    slider = page.locator(f"[data-testid=ch{ch}_level] .v-slider-track")
    box = slider.bounding_box()
    page.mouse.click(box["x"] + 0.85 * box["width"], box["y"] + box["height"] / 2)
    _wait_for_change(page, before)
    assert _state(page, f"ch{ch}_level") > 0.7
    _shot(page, "02-level-moved.png")


def test_moving_the_interpolation_slider_changes_the_picture(page):
    _open_panel(page, "Interpolation")
    page.wait_for_timeout(500)
    before = _view(page)
    track = page.locator("[data-testid=interp-t] .v-slider-track")
    track.scroll_into_view_if_needed()
    box = track.bounding_box()
    page.mouse.click(box["x"] + 0.6 * box["width"], box["y"] + box["height"] / 2)
    _wait_for_change(page, before)
    assert _state(page, "view_source") == "interpolation"
    assert 0.4 < _state(page, "interp_t") < 0.8
    _shot(page, "03-interpolation.png")


def test_latent_map_renders_and_a_click_loads_that_item(page):
    points = page.locator("[data-testid=latent-map] .scatterlayer .trace").first.locator(".point")
    assert points.count() >= 4, "the latent map shows no points"
    start = _state(page, "item_index")
    # the most isolated point, so that the click cannot land on a neighbour
    xy = np.array(page.evaluate("(() => { const d = window.trame.state.get('map_items')[0]; "
                                "return [Array.from(d.x), Array.from(d.y)]; })()"), dtype=float).T
    xy = (xy - xy.min(0)) / np.maximum(np.ptp(xy, axis=0), 1e-9)
    dist = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(len(xy)) * 9
    order = np.argsort(-dist.min(1))
    target = int(next(k for k in order if k != start))
    box = points.nth(target).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    before = _view(page)
    page.mouse.move(x, y)
    page.wait_for_timeout(400)
    page.mouse.click(x, y)
    _wait_for_change(page, before)
    assert _state(page, "item_index") == target
    assert _state(page, "view_source") == "item"
    _shot(page, "04-map-click.png")


def test_gif_export_downloads_with_the_requested_frames(page, tmp_path):
    import imageio.v3 as iio

    frames = 6
    page.evaluate(f"""() => {{ const s = window.trame.state;
        s.set('export_format', 'gif'); s.set('export_size', '480p'); s.set('export_frames', {frames}); }}""")
    page.wait_for_timeout(500)
    _open_panel(page, "Interpolation")
    path = _download(page, "export", tmp_path, timeout_ms=240_000)
    assert path.suffix == ".gif"
    movie = iio.imread(path, index=None)
    assert movie.shape[0] == frames
    assert movie.shape[1:3] == (480, 854)


def test_png_screenshot_downloads_supersampled(page, tmp_path):
    from PIL import Image

    page.evaluate("window.trame.state.set('screenshot_scale', 2)")
    page.wait_for_timeout(500)
    path = _download(page, "screenshot", tmp_path)
    img = Image.open(path)
    assert path.suffix == ".png" and img.format == "PNG"
    view = page.locator("[data-testid=view3d]").bounding_box()
    assert img.size[0] >= 1.5 * view["width"] * 0.9          # twice the pixels of the view (server window)
    assert _inked(np.asarray(img.convert("RGB")).astype(np.int16)) > 0.01


def test_surfaces_and_maps_download_from_the_display_panel(page, tmp_path):
    import zipfile

    import gemmi
    import pyvista as pv

    _open_panel(page, "Display")
    glb = _download(page, "download-glb", tmp_path)
    assert glb.suffix == ".glb" and glb.read_bytes()[:4] == b"glTF"
    assert sum(b.n_points for b in pv.read(glb).recursive_iterator() if b is not None) > 100
    maps = _download(page, "download-maps", tmp_path)
    with zipfile.ZipFile(maps) as zf:
        names = zf.namelist()
        assert names and all(n.endswith(".ccp4") for n in names)
        zf.extractall(tmp_path / "maps")
    res = _state(page, "resolution_shown")
    assert tuple(gemmi.read_ccp4_map(str(tmp_path / "maps" / names[0])).grid.shape) == (res,) * 3


def test_hostile_client_state_is_refused_and_the_server_stays_up(page, server):
    before = _view(page)
    for key, value in [("resolution_choice", "custom"), ("resolution_custom", -5),
                       ("resolution_custom", 10**9), ("item_index", "../../etc/passwd"),
                       ("model_index", "/etc/passwd"), ("ch0_level", "NaN"), ("export_frames", 10**9)]:
        page.evaluate("([k, v]) => window.trame.state.set(k, v)", [key, value])
        page.wait_for_timeout(400)
    page.wait_for_timeout(1500)
    assert page.locator("[data-testid=error]").is_visible() or _state(page, "error_show")
    assert _state(page, "resolution_custom") != -5
    assert isinstance(_state(page, "item_index"), int)
    assert server["proc"].poll() is None                            # the server is alive
    page.evaluate("window.trame.state.set('resolution_choice', '64')")
    page.wait_for_timeout(1000)
    assert np.mean(np.any(np.abs(_view(page) - before) > 12, axis=-1)) < 0.5   # the picture stayed
