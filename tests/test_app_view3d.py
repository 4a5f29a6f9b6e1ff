"""The 3D view's extras in a real browser (issue 20): the first-run help, a slice plane with its colour map,
side by side as two linked viewports, the refinement's percentage, tooltips and labels at two window sizes.

One ``molviz serve`` and one chromium page for the module, tests in order; the app is driven by clicks and
drags only (state is read to check what happened). Headless parts: tests/test_slices.py.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from app_bundles import SHIPPED, serving
from app_bundles import inked as _inked
from app_bundles import open_panel as _open_panel
from app_bundles import page_state as _state
from app_bundles import settle as _idle
from app_bundles import shot as _shot
from app_bundles import view_pixels as _view
from app_bundles import wait_until as _wait

from molviz.app._bench import ARGS, CHROMIUM, free_port
from molviz.view.slices import COLORMAPS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (/usr/bin/chromium); `apt-get install chromium`",
                allow_module_level=True)
if not (SHIPPED / "bundle.json").is_file():
    pytest.skip("the shipped bundle assets/models/freesolv is not here", allow_module_level=True)
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("log") / "serve.log"
    with serving([str(SHIPPED), "--port", str(port)], log) as proc:
        yield {"url": f"http://127.0.0.1:{port}/", "proc": proc, "log": log}


def _ready(pg, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and (_inked(_view(pg)) < 0.02 or _state(pg, "busy")):
        pg.wait_for_timeout(250)


@pytest.fixture(scope="module")
def page(server):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(viewport={"width": 1500, "height": 900})     # a first visit: empty storage
        pg = context.new_page()
        pg.goto(server["url"])
        _ready(pg)
        yield pg
        browser.close()


def _differs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.any(np.abs(a - b) > 12, axis=-1))) if a.shape == b.shape else 1.0


def _pick(page, testid: str, option: str) -> None:
    page.locator(f"[data-testid={testid}]").click()
    page.locator(".v-overlay--active .v-list-item").filter(
        has=page.locator(".v-list-item-title", has_text=option)).first.click()
    page.wait_for_timeout(300)


def _viridis_share(img: np.ndarray) -> float:
    """Share of pixels within a small distance of viridis' purple-to-green anchors (no surface, atom or line
    of the scene has these colours; the bright yellow end is left out: sulfur is yellow)."""
    anchors = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in COLORMAPS["viridis"][:7]], np.int16)
    d = np.abs(img[:, :, None, :] - anchors[None, None]).max(-1).min(-1)          # (H, W)
    return float(np.mean(d < 22))


def _slider_click(page, testid: str, fraction: float) -> None:
    track = page.locator(f"[data-testid={testid}] .v-slider-track")
    track.scroll_into_view_if_needed()
    box = track.bounding_box()
    page.mouse.click(box["x"] + fraction * box["width"], box["y"] + box["height"] / 2)


def test_first_run_help_shows_once_and_remembers_its_dismissal(page):
    card = page.locator("[data-testid=first-run]")
    card.wait_for(state="visible", timeout=10_000)
    text = card.inner_text()
    assert "three areas" in text and "latent map" in text and "3D view" in text
    _shot(page, "view3d-01-first-run.png")
    page.locator("[data-testid=first-run-more]").click()
    page.locator("[data-testid=help-dialog]").wait_for(state="visible", timeout=5000)
    page.locator("[data-testid=help-dialog] .v-btn", has_text="close").click()
    page.locator("[data-testid=first-run-done]").click()
    card.wait_for(state="hidden", timeout=5000)
    assert page.evaluate("window.localStorage.getItem('molviz-help-seen')") == "1"
    page.reload()
    _ready(page)
    page.wait_for_timeout(1500)
    assert not card.is_visible(), "the first-run help came back after it was dismissed"


def test_slice_plane_draws_and_moves(page):
    _idle(page)
    _open_panel(page, "Display")
    before = _view(page)
    assert _viridis_share(before) < 0.002
    switch = page.locator("[data-testid=slice-on] input")
    switch.scroll_into_view_if_needed()
    switch.click()
    _wait(page, lambda: _state(page, "slice_on") and _state(page, "slice_text"), what="the slice")
    _pick(page, "slice-channel", "C")
    _wait(page, lambda: (_state(page, "slice_text") or "").startswith("C at z"), what="the C slice")
    _idle(page)
    _wait(page, lambda: _viridis_share(_view(page)) > 0.01, timeout=30, what="the colour map in the picture")
    first = _view(page)
    assert _differs(first, before) > 0.01
    text = page.locator("[data-testid=slice-text]").inner_text()
    assert "C at z = 0.50" in text and "colours" in text
    _shot(page, "view3d-02-slice.png")
    # moved along its axis: the picture changes, and no decode starts for it
    decoded = _state(page, "resolution_shown")
    _slider_click(page, "slice-position", 0.2)
    _wait(page, lambda: abs(_state(page, "slice_position") - 0.2) < 0.03, what="the new position")
    _wait(page, lambda: _differs(_view(page), first) > 0.005, timeout=20, what="the moved slice")
    assert not _state(page, "busy") and _state(page, "resolution_shown") == decoded
    assert _viridis_share(_view(page)) > 0.005
    page.locator("[data-testid=slice-axis-x]").click()
    _wait(page, lambda: (_state(page, "slice_text") or "").startswith("C at x"), what="the x slice")
    _shot(page, "view3d-03-slice-moved.png")


def _halves(img: np.ndarray) -> tuple[float, float]:
    w = img.shape[1]
    return _inked(img[:, : w // 2 - 2]), _inked(img[:, w // 2 + 2:])


def test_side_by_side_is_two_linked_viewports(page):
    _idle(page)
    _open_panel(page, "Display")
    _pick(page, "compare", "side by side")
    _wait(page, lambda: "side by side" in (_state(page, "view_caption") or ""), what="the side-by-side view")
    _idle(page)
    page.wait_for_timeout(1000)
    img = _view(page)
    left, right = _halves(img)
    assert left > 0.03 and right > 0.03, (left, right)
    assert _viridis_share(img[:, : img.shape[1] // 2]) > 0.003 and _viridis_share(img[:, img.shape[1] // 2:]) > 0.003
    _shot(page, "view3d-04-side-by-side.png")
    # a drag in the left half turns both (one camera): both halves change and both still show the molecule
    box = page.locator("[data-testid=view3d]").bounding_box()
    x, y = box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.5
    page.mouse.move(x, y)
    page.mouse.down()
    for k in range(1, 11):
        page.mouse.move(x + 16 * k, y + 4 * k)
        page.wait_for_timeout(40)
    page.mouse.up()
    page.wait_for_timeout(1500)
    turned = _view(page)
    w = img.shape[1]
    assert _differs(turned[:, : w // 2], img[:, : w // 2]) > 0.01
    assert _differs(turned[:, w // 2:], img[:, w // 2:]) > 0.01, "the right viewport did not follow the camera"
    left, right = _halves(turned)
    assert left > 0.03 and right > 0.03, (left, right)
    _shot(page, "view3d-05-side-by-side-turned.png")
    # rendered in the browser (vtk.js draws no VTK text): the labels and the value bar come as HTML
    local = page.locator(".v-switch", has_text="render in the browser").locator("input")
    local.click()
    _wait(page, lambda: _state(page, "view_mode") == "local", what="local rendering")
    overlays = page.locator("[data-testid=view-overlays]")
    overlays.wait_for(state="visible", timeout=10_000)
    text = overlays.inner_text()
    assert "decoded (model)" in text and "ground truth" in text and "C" in text, text
    local.click()
    _wait(page, lambda: _state(page, "view_mode") == "remote", what="server-side rendering")
    overlays.wait_for(state="detached", timeout=10_000)
    # an interpolation frame: compared with the nearest stored item
    _open_panel(page, "Interpolation")
    _slider_click(page, "interp-t", 0.4)
    _wait(page, lambda: _state(page, "view_source") == "interpolation", what="the interpolation")
    _idle(page)
    page.wait_for_timeout(1000)
    left, right = _halves(_view(page))
    assert left > 0.03 and right > 0.03, (left, right)
    _shot(page, "view3d-06-side-by-side-interpolation.png")
    page.locator("[data-testid=back-to-item]").click()
    _idle(page)
    _open_panel(page, "Display")
    _pick(page, "compare", "reconstruction")
    page.locator("[data-testid=slice-on] input").click()
    _wait(page, lambda: not _state(page, "slice_on"), what="the slice off")
    _idle(page)
    _wait(page, lambda: _viridis_share(_view(page)) < 0.002, timeout=20, what="the slice to go")


def test_the_bench_sees_the_pictures_the_browser_draws_itself(page):
    """`molviz bench app --view-mode local`: rendered in the browser (vtk.js, WebGL) no image arrives, so the
    bench's answer is the next frame that draws the view's canvas; a drag and a toggle each give one, and
    the canvas shows the molecule before and after. No time is asserted (the figures are the bench's)."""
    from molviz.app._bench import _drag, answer_ms, set_view_mode

    _idle(page)
    _open_panel(page, "Display")
    set_view_mode(page, "local")
    page.wait_for_timeout(1000)
    before = _view(page)
    assert _inked(before) > 0.03, "the browser drew no molecule"
    _shot(page, "view3d-05b-local.png")
    box = page.locator("[data-testid=view3d]").bounding_box()
    detail: dict = {}
    assert answer_ms(page, lambda: _drag(page, box, 60), detail=detail) < float("inf")
    assert detail["still_ms"] < float("inf") and detail["robot_ms"] >= 0, detail
    page.wait_for_timeout(500)
    turned = _view(page)
    assert _differs(turned, before) > 0.01 and _inked(turned) > 0.03
    outline = page.locator("[data-testid=display-outline] input")
    assert answer_ms(page, outline.click) < float("inf")
    _wait(page, lambda: _state(page, "show_outline") is False, what="the outline off")
    assert answer_ms(page, outline.click) < float("inf")
    set_view_mode(page, "remote")
    _idle(page)
    assert answer_ms(page, lambda: _drag(page, box, -60)) < float("inf")
    _idle(page)


def test_a_refinement_shows_its_percentage_and_can_be_stopped(page):
    _idle(page)
    _pick(page, "resolution", "256")
    text = page.locator("[data-testid=busy-text]")
    _wait(page, lambda: "%" in (text.inner_text() if text.is_visible() else ""), timeout=60,
          what="the refinement's percentage")
    assert "256" in text.inner_text()
    _shot(page, "view3d-07-refine-progress.png")
    first = int(_state(page, "refine_progress"))
    page.wait_for_timeout(1500)
    if _state(page, "busy"):
        assert int(_state(page, "refine_progress")) >= first
        page.locator("[data-testid=cancel-view]").click()
    _wait(page, lambda: not _state(page, "busy"), timeout=5, what="the decode to stop")
    assert not _state(page, "refine_progress")
    _pick(page, "resolution", "64")
    _idle(page)


# For every visible control in the toolbar, the panels and the map's header: what a hover at its centre finds
# (the element there or an ancestor with a title: the browser's tooltip), and every label that does not fit.
AUDIT = """(() => {
  const areas = [...document.querySelectorAll("header, nav, [data-testid=latent-map] > div:first-child")];
  const missing = [], cut = [];
  const controls = ".v-input, .v-btn, .v-chip, input[type=color]";
  for (const area of areas) {
    for (const root of area.querySelectorAll(controls)) {
      if (!root.offsetParent || root.closest(".v-input") !== root && root.closest(".v-input")) continue;
      if (root.matches(".v-btn--disabled, .v-input--disabled")) continue;     // no pointer events: no tooltip
      const r = root.getBoundingClientRect();
      if (r.width < 2 || r.height < 2 || r.bottom < 0 || r.top > window.innerHeight) continue;
      const at = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
      if (!at || !root.contains(at) && !at.contains(root)) continue;           // covered: not hoverable now
      if (!at.closest("[title]")) missing.push((root.innerText || root.className).slice(0, 50).replace(/\\n/g, " | "));
    }
    const ar = area.getBoundingClientRect();
    for (const el of area.querySelectorAll(".v-btn__content, .v-list-item-title, .v-expansion-panel-title, "
                                           + ".v-selection-control .v-label, .v-field-label, .v-toolbar-title")) {
      if (!el.offsetParent || getComputedStyle(el).visibility === "hidden" || getComputedStyle(el).opacity === "0") continue;
      const r = el.getBoundingClientRect();
      if (el.scrollWidth > el.clientWidth + 1 || r.right > ar.right + 1 || r.right > window.innerWidth)
        cut.push(el.innerText.slice(0, 50));
    }
  }
  return {missing: [...new Set(missing)], cut: [...new Set(cut)]};
})()"""


@pytest.mark.parametrize("size", [(1400, 900), (1920, 1080)])
def test_every_control_has_a_tooltip_and_no_label_is_cut(page, size):
    page.set_viewport_size({"width": size[0], "height": size[1]})
    page.wait_for_timeout(800)
    for title in ("Channels", "Display", "Interpolation", "Encode a molecule"):
        _open_panel(page, title)
    page.wait_for_timeout(500)
    found = page.evaluate(AUDIT)
    _shot(page, f"view3d-08-page-{size[0]}x{size[1]}.png")
    assert not found["missing"], f"controls without a tooltip: {found['missing']}"
    assert not found["cut"], f"labels cut off: {found['cut']}"
