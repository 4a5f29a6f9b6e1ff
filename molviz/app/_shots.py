"""The README's screenshots of the app, retaken in a real browser: ``python -m molviz.app._shots [OUT_DIR]``.

Starts ``molviz serve`` on the shipped FreeSolv bundle and Debian's chromium (Playwright, the test extras;
never a downloaded browser), clicks through the app as a user does and writes, at 1500 x 880:

- ``app-side-by-side.png``: reconstruction and ground truth as two linked viewports (one camera), turned a little;
- ``app-slice.png``: carbon tetrachloride's Cl channel sliced across z, with its value bar (the Cl surfaces
  translucent), the Display panel open;
- ``app-interpolation.png``: half-way from carbon tetrachloride to methanol, the path and t on the map;
- ``app-interpolation-side-by-side.png``: the same frame beside the nearest stored item.

Each is written only when its picture shows what it should (the 3D view is not blank); look at them before
committing.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from molviz.app._bench import ARGS, CHROMIUM, ROOT, free_port, serving

SIZE = (1500, 880)
BUNDLE = ROOT / "assets" / "models" / "freesolv"
OUT = ROOT / "assets" / "screenshots"


def _state(page, key: str):
    return page.evaluate(f"window.trame && window.trame.state ? window.trame.state.get({key!r}) : null")


def _wait(page, predicate, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        page.wait_for_timeout(200)
    raise TimeoutError(f"timed out waiting for {what}")


def _idle(page) -> None:
    page.wait_for_timeout(600)
    _wait(page, lambda: not _state(page, "busy"), what="the view to finish")
    page.wait_for_timeout(1200)                   # the refined picture reaches the page after the spinner goes


def _panel(page, title: str, open_: bool = True) -> None:
    header = page.locator(".v-expansion-panel-title", has_text=title)
    active = "v-expansion-panel--active" in (header.locator("xpath=..").get_attribute("class") or "")
    if active != open_:
        header.click()
        page.wait_for_timeout(400)


def _pick(page, testid: str, option: str) -> None:
    page.locator(f"[data-testid={testid}]").click()
    page.locator(".v-overlay--active .v-list-item").filter(
        has=page.locator(".v-list-item-title", has_text=option)).first.click()
    page.wait_for_timeout(300)


def _choose(page, testid: str, typed: str, option: str) -> None:
    box = page.locator(f"[data-testid={testid}] input")
    box.scroll_into_view_if_needed()
    box.click()
    box.fill(typed)
    page.wait_for_timeout(500)
    page.locator(".v-overlay--active .v-list-item").filter(
        has=page.locator(".v-list-item-title", has_text=option)).first.click()
    page.wait_for_timeout(300)


def _slider(page, testid: str, fraction: float) -> None:
    track = page.locator(f"[data-testid={testid}] .v-slider-track")
    track.scroll_into_view_if_needed()
    box = track.bounding_box()
    page.mouse.click(box["x"] + fraction * box["width"], box["y"] + box["height"] / 2)


def _drag(page, dx: float, dy: float) -> None:
    box = page.locator("[data-testid=view3d]").bounding_box()
    x, y = box["x"] + 0.25 * box["width"], box["y"] + 0.5 * box["height"]
    page.mouse.move(x, y)
    page.mouse.down()
    for k in range(1, 9):
        page.mouse.move(x + dx * k / 8, y + dy * k / 8)
        page.wait_for_timeout(40)
    page.mouse.up()
    page.wait_for_timeout(1500)


def _save(page, out: Path, name: str) -> None:
    import io

    import numpy as np
    from PIL import Image

    view = np.asarray(Image.open(io.BytesIO(page.locator("[data-testid=view3d]").screenshot())).convert("RGB"))
    ink = float(np.mean(np.any(np.abs(view.astype(int) - 255) > 10, axis=-1)))
    if ink < 0.02:
        raise RuntimeError(f"{name}: the 3D view is blank ({ink:.3f} inked); not written")
    page.screenshot(path=str(out / name))
    print(f"wrote {out / name} (3D view {ink:.0%} inked)")


def take(out: Path = OUT) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = out / ".serve.log"
    try:
        with serving([str(BUNDLE), "--port", str(port)], log), sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            context = browser.new_context(viewport={"width": SIZE[0], "height": SIZE[1]})
            context.add_init_script("window.localStorage.setItem('molviz-help-seen', '1')")  # a returning user
            page = context.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            _wait(page, lambda: _state(page, "resolution_shown") == 64 and not _state(page, "busy"),
                  what="the first picture")
            page.wait_for_timeout(2000)
            _panel(page, "Channels", open_=False)
            _panel(page, "Display")
            _pick(page, "compare", "side by side")
            _idle(page)
            _drag(page, 60, 25)
            _save(page, out, "app-side-by-side.png")
            _pick(page, "compare", "reconstruction")
            _idle(page)
            _choose(page, "item", "carbon tetra", "413: carbon tetrachloride")
            _idle(page)
            cl = _state(page, "channel_names").index("Cl")
            _panel(page, "Display", open_=False)
            _panel(page, "Channels")
            _slider(page, f"ch{cl}_opacity", 0.3)           # the Cl surfaces translucent: the slice shows through
            _panel(page, "Channels", open_=False)
            _panel(page, "Display")
            page.locator("[data-testid=slice-on] input").click()
            _pick(page, "slice-channel", "Cl")
            _idle(page)
            _save(page, out, "app-slice.png")
            page.locator("[data-testid=slice-on] input").click()
            _panel(page, "Display", open_=False)
            _panel(page, "Channels")
            _slider(page, f"ch{cl}_opacity", 1.0)
            _panel(page, "Channels", open_=False)
            _panel(page, "Interpolation")
            _choose(page, "endpoint-a", "carbon tetra", "413: carbon tetrachloride")
            _choose(page, "endpoint-b", "methanol", "37: methanol")
            _slider(page, "interp-t", 0.5)
            _wait(page, lambda: _state(page, "view_source") == "interpolation", what="the interpolation")
            _idle(page)
            _save(page, out, "app-interpolation.png")
            _panel(page, "Interpolation", open_=False)
            _panel(page, "Display")
            _pick(page, "compare", "side by side")
            _idle(page)
            _save(page, out, "app-interpolation-side-by-side.png")
            browser.close()
    finally:
        log.unlink(missing_ok=True)


if __name__ == "__main__":
    take(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
