"""``molviz bench app``: seconds from launching the app to the first picture in a real browser.

What a user does: with the browser open, type the command, open the printed
address, wait for the molecule. The benchmark starts Debian's chromium through
Playwright (not timed: the user's browser is running already), then starts the
clock and ``python launch.py`` (or ``python -m molviz serve`` with
``--bundle``) as a subprocess, retries the page until the server answers, and
stops the clock when the 3D view holds shaded pixels. It needs the test extras
(Playwright) and ``/usr/bin/chromium``.

Rows (seconds after the launch command started)
- ``server: <line>``: when each line of the server's output arrived (imports,
  model loaded, serving).
- ``page answered`` / ``page laid out``: the server first answered; the page's
  layout (with the 3D view) was mounted.
- ``first picture``: the 3D view first showed the molecule. Target: <= 10 s on
  a 2-core CPU (``TARGET_S``).
- ``latent map drawn``: the plotly map shows its points (loaded after the first
  picture on purpose, see :mod:`molviz.app.ui.lazy`).

Interaction rows (milliseconds, the last launch only): a 128^3 decode is started
by choosing that resolution in the toolbar, and while it runs the benchmark drags
the camera, toggles the outline and the atoms, moves a channel's opacity, and switches
a slice plane on, moves it twice and off (the Display panel), each timed from the browser's input to the next picture the 3D view receives
(``answer_ms``: a MutationObserver on the remote view's image, in page time; with ``--view-mode local``,
where the browser draws the scene itself (vtk.js, WebGL; chromium's software rasteriser here, on the
same two cores as the server), the next frame that draws the view's canvas).
Target: <= 200 ms each (``TARGET_MS``), with the decode still running. The clock starts when Playwright is
asked to click or drag; each row also says how much of that passed before the press reached the page
(Playwright's own checks) and when the first full-size picture came (a change answers with a half-size
frame first, as a camera drag does; :mod:`molviz.app._delivery`). A step starts once the previous one's
pictures have arrived, the full-size one included, so no row counts an earlier step's picture.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

TARGET_S = 10.0
TARGET_MS = 200.0                  # camera moves and display toggles while a decode runs
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(args: list[str], log: Path, *, ready: str = "serving", timeout: float = 180.0, env: dict | None = None):
    """Run ``molviz serve ARGS`` with its output in ``log`` until a line says ``ready`` ("serving", or
    "first picture ready"); yield the process, and stop it after. RuntimeError if it exits or times out."""
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "molviz", "serve", *args], stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    try:
        deadline = time.perf_counter() + timeout
        while ready not in log.read_text():
            if proc.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(f"molviz serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _inked(png: bytes) -> float:
    """Share of the view's pixels that are not the white background."""
    import numpy as np
    from PIL import Image
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)
    return float(np.mean(np.any(np.abs(img - 255) > 10, axis=-1)))


_WATCH = """() => {
    if (window.__molvizImages) return;
    window.__molvizImages = [];                 // when the view's picture changed (page time)
    window.__molvizLoaded = [];                 // [that time, the picture's width once loaded]
    window.__molvizFrames = [];                 // [when the page drew the view's canvas, its next frame began]
    window.__molvizInputs = [];                 // when the page got a press (the event's own time stamp)
    for (const kind of ['pointerdown', 'keydown'])
        document.addEventListener(kind, e => window.__molvizInputs.push(e.timeStamp), true);
    const root = document.querySelector('[data-testid=view3d]');
    new MutationObserver(records => {
        const t = performance.now();
        window.__molvizImages.push(t);
        for (const r of records)
            if (r.target.tagName === 'IMG')
                r.target.addEventListener('load', e => window.__molvizLoaded.push(
                    [t, e.target.naturalWidth, e.target.clientWidth]), {once: true});
    }).observe(root, {attributes: true, attributeFilter: ['src'], subtree: true, childList: true});
    // rendering in the browser (vtk.js): no image arrives; a frame is the WebGL calls drawing the view's
    // canvas, and it is on screen once chromium composites it (by the start of its next frame)
    let drawing = false;
    for (const proto of [WebGLRenderingContext.prototype, WebGL2RenderingContext.prototype])
        for (const name of ['clear', 'drawArrays', 'drawElements', 'drawArraysInstanced', 'drawElementsInstanced']) {
            const call = proto[name];
            if (!call) continue;
            proto[name] = function (...args) {
                if (!drawing && this.canvas && root.contains(this.canvas)) {
                    drawing = true;
                    const t = performance.now();
                    requestAnimationFrame(() => { drawing = false; window.__molvizFrames.push([t, performance.now()]); });
                }
                return call.apply(this, args);
            };
        }
}"""

# the picture on screen is a still frame (not a half-size answer whose still frame is still coming)
_STILL = "(() => { const l = window.__molvizLoaded.at(-1); return !l || l[1] >= 0.75 * l[2]; })()"


def _local(page) -> bool:
    return page.evaluate("window.trame.state.get('view_mode')") == "local"


def answer_ms(page, action, *, timeout: float = 30.0, detail: dict | None = None) -> float:
    """Milliseconds from ``action()`` (clicks, drags) to the next picture the 3D view shows. Rendered on the
    server (``view_mode`` remote): the next image the view receives. Rendered in the browser (local): the
    next frame that draws the view's WebGL canvas, counted when chromium begins the frame after those draw
    calls (the canvas is composited by then; the software rasteriser's own time in chromium's GPU process
    is not seen). The clock starts once earlier pictures have arrived (300 ms without one, and the last one
    a still frame, not a half-size answer whose still frame is on its way). ``detail`` (a dict) gets
    ``"still_ms"``: the time to the first full-size picture after the action (inf when none came within
    ``timeout``; the browser draws full size, so its first frame), and ``"robot_ms"``: how much of the
    answer Playwright took before the page got the press (its actionability checks; the rest is the
    page's and the server's)."""
    page.evaluate(_WATCH)
    local = _local(page)
    last = "(window.__molvizFrames.at(-1) || [0, 0])[1]" if local else "(window.__molvizImages.at(-1) || 0)"
    quiet_until = time.perf_counter() + timeout
    while time.perf_counter() < quiet_until:
        if page.evaluate(f"{last} < performance.now() - 300 && {_STILL}"):
            break
        page.wait_for_timeout(30)
    t0 = page.evaluate("performance.now()")
    action()
    answers = (f"window.__molvizFrames.filter(f => f[0] > {t0}).map(f => f[1])" if local
               else f"window.__molvizImages.filter(t => t > {t0})")
    deadline = time.perf_counter() + timeout
    first = float("inf")
    while time.perf_counter() < deadline:
        if first == float("inf"):
            after = page.evaluate(answers)
            if after:
                first = float(after[0] - t0)
                if detail is None:
                    return first
                if local:
                    detail["still_ms"] = first
                    break
        if detail is not None and first < float("inf"):
            full = page.evaluate(f"window.__molvizLoaded.filter(l => l[0] > {t0} && l[1] >= 0.75 * l[2])")
            if full:
                detail["still_ms"] = float(full[0][0] - t0)
                break
        page.wait_for_timeout(10)
    if detail is not None:
        detail.setdefault("still_ms", float("inf"))
        pressed = page.evaluate(f"window.__molvizInputs.filter(t => t > {t0})")
        detail["robot_ms"] = float(pressed[0] - t0) if pressed else float("nan")
    return first


def _state(page, key: str):
    return page.evaluate(f"window.trame.state.get({key!r})")


def _open_panel(page, title: str) -> None:
    header = page.locator(".v-expansion-panel-title", has_text=title)
    if "v-expansion-panel--active" not in (header.locator("xpath=..").get_attribute("class") or ""):
        header.click()
        page.wait_for_timeout(400)


def _drag(page, box, dx: float) -> None:
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y + 0.2 * dx, steps=4)
    page.mouse.up()


def set_view_mode(page, mode: str, *, timeout: float = 60.0) -> None:
    """Render on the server ("remote") or in the browser ("local"): flip the Display panel's switch as a
    user does, if needed, and wait until the view shows a picture drawn that way."""
    page.evaluate(_WATCH)
    _open_panel(page, "Display")
    if _state(page, "view_mode") != mode:
        page.locator("[data-testid=view-mode] input").click()
    deadline = time.perf_counter() + timeout
    while _state(page, "view_mode") != mode or (
            mode == "local" and not page.evaluate("window.__molvizFrames.length")):
        if time.perf_counter() > deadline:
            raise RuntimeError(f"the view did not switch to {mode} rendering within {timeout:.0f} s")
        page.wait_for_timeout(100)
    page.wait_for_timeout(1000)


def interaction_latencies(page, *, resolution: str = "128", timeout: float = 240.0,
                          view_mode: str | None = None) -> dict:
    """While a decode at ``resolution`` runs (chosen in the toolbar as a user does): camera drag, outline
    and atoms toggles, a channel's opacity, a slice plane switched on, moved and off, each timed by
    :func:`answer_ms`, rendered as ``view_mode`` says ("remote", "local"; None: as the app chose).
    ``decoding`` says whether the decode was still running after each answer (a latency measured after it
    ended proves nothing)."""
    out: dict = {}
    deadline = time.perf_counter() + timeout
    while _state(page, "busy") and time.perf_counter() < deadline:      # start from a settled view
        page.wait_for_timeout(200)
    if view_mode is not None:
        set_view_mode(page, view_mode)
    out["view mode"] = {"mode": _state(page, "view_mode")}
    _open_panel(page, "Display")
    _open_panel(page, "Channels")
    view = page.locator("[data-testid=view3d]").bounding_box()
    page.locator("[data-testid=resolution]").click()
    page.locator(".v-overlay--active .v-list-item", has_text=resolution).first.click()
    while not _state(page, "busy_text").startswith(f"decoding {resolution}") and time.perf_counter() < deadline:
        page.wait_for_timeout(50)
    page.wait_for_timeout(300)
    ch = next(i for i in range(_state(page, "n_channels")) if _state(page, f"ch{i}_visible"))
    track = page.locator(f"[data-testid=ch{ch}_opacity] .v-slider-track")

    def opacity(frac: float):
        track.scroll_into_view_if_needed()
        box = track.bounding_box()
        page.mouse.click(box["x"] + frac * box["width"], box["y"] + box["height"] / 2)

    switch = page.locator("[data-testid=display-outline] input")
    atoms = page.locator("[data-testid=display-atoms] input")
    slice_on = page.locator("[data-testid=slice-on] input")

    page.locator("[data-testid=slice-position]").scroll_into_view_if_needed()     # not timed
    bar = page.locator("[data-testid=slice-position] .v-slider-track")

    def slice_to(frac: float):
        box = bar.bounding_box()
        page.mouse.click(box["x"] + frac * box["width"], box["y"] + box["height"] / 2)

    steps = [("camera drag 1", lambda: _drag(page, view, 60)),
             ("outline off", switch.click), ("camera drag 2", lambda: _drag(page, view, -60)),
             ("outline on", switch.click), ("atoms off", atoms.click),
             ("camera drag 3", lambda: _drag(page, view, 40)), ("atoms on", atoms.click),
             # far from the thumb: a click within its focus ring (about 20 px) does not move it
             ("opacity 0.4", lambda: opacity(0.37)), ("opacity 0.95", lambda: opacity(0.97)),
             # a slice reads the volume on screen: it answers at once (and asks for a dense decode once)
             ("slice on", slice_on.click), ("slice moved", lambda: slice_to(0.3)),
             ("slice moved again", lambda: slice_to(0.7)), ("slice off", slice_on.click)]
    for name, action in steps:
        detail: dict = {}
        ms = answer_ms(page, action, detail=detail)
        out[name] = {"ms": ms, **detail, "decoding": bool(_state(page, "busy")) and
                     str(_state(page, "busy_text")).startswith("decoding")}
    while _state(page, "busy") and time.perf_counter() < deadline:
        page.wait_for_timeout(200)
    out["decode done"] = {"caption": _state(page, "view_caption"), "load": os.getloadavg()[0]}
    return out


def first_picture(command: list[str], port: int, *, timeout: float = 120.0, then=None) -> dict:
    """Run ``command`` (a server on ``port``) and time the first picture in chromium; ``then(page)``
    runs on the live page before it closes and its result is kept under ``"then"``."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    lines: list[tuple[float, str]] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result: dict = {"command": " ".join(command)}
    with sync_playwright() as p:
        # the user's browser is open already: start it (and a blank tab) before the clock
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 900})
        page.goto("about:blank")
        t0 = time.perf_counter()
        # its own process group: launch.py runs the server as a child, which a plain terminate() left running
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env, start_new_session=True)

        def read() -> None:
            for line in proc.stdout:
                lines.append((time.perf_counter() - t0, line.rstrip()))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            url = f"http://127.0.0.1:{port}/"
            while True:
                if proc.poll() is not None:
                    raise RuntimeError("the server exited:\n" + "\n".join(x for _, x in lines[-30:]))
                if time.perf_counter() - t0 > timeout:
                    raise RuntimeError(f"no page within {timeout:.0f} s")
                try:                 # a cheap probe: the browser opens the address once the port answers
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        pass
                except OSError:
                    time.sleep(0.05)
                    continue
                try:
                    page.goto(url, timeout=30000)
                    break
                except PlaywrightError:
                    time.sleep(0.1)
            result["page_requested_s"] = time.perf_counter() - t0
            view = page.locator("[data-testid=view3d]")
            view.wait_for(timeout=timeout * 1000)
            result["page_loaded_s"] = time.perf_counter() - t0
            while _inked(view.screenshot()) < 0.02:
                if time.perf_counter() - t0 > timeout:
                    raise RuntimeError(f"no picture within {timeout:.0f} s")
                time.sleep(0.05)
            result["first_picture_s"] = time.perf_counter() - t0
            points = page.locator("[data-testid=latent-map] .scatterlayer .trace .point")
            while points.count() < 4 and time.perf_counter() - t0 < timeout:
                time.sleep(0.1)
            result["map_s"] = time.perf_counter() - t0
            if then is not None:
                result["then"] = then(page)
        finally:
            browser.close()
            _stop_group(proc)
            reader.join(timeout=5)
    result["server_lines"] = [{"s": round(s, 2), "line": line} for s, line in lines]
    return result


def _stop_group(proc: subprocess.Popen) -> None:
    """Stop ``proc`` and the processes it started (its process group)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)
    deadline = time.perf_counter() + 20               # the server (launch.py's child) stops on its own time
    while time.perf_counter() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def run(args: argparse.Namespace) -> int:
    try:
        import playwright  # noqa: F401
    except ImportError:
        raise SystemExit("molviz bench app needs Playwright: pip install -e '.[test]'") from None
    if not CHROMIUM.exists():
        raise SystemExit("molviz bench app needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    repeats = 1 if getattr(args, "quick", False) else 3
    rows = []
    for k in range(repeats):
        port = free_port()
        if args.bundle:
            command = [sys.executable, "-m", "molviz", "serve", args.bundle[0], "--port", str(port)]
        else:
            command = [sys.executable, str(ROOT / "launch.py"), "--port", str(port)]
        last = k == repeats - 1
        mode = getattr(args, "view_mode", None)
        then = (lambda page: interaction_latencies(page, view_mode=mode)) if last else None
        r = first_picture(command, port, then=then)
        rows.append(r)
        print(f"run {k + 1}/{repeats}: {r['command']}")
        for line in r["server_lines"]:
            print(f"  {line['s']:6.2f} s  server: {line['line'][:110]}")
        print(f"  {r['page_requested_s']:6.2f} s  page answered")
        print(f"  {r['page_loaded_s']:6.2f} s  page laid out (3D view element present)")
        print(f"  {r['first_picture_s']:6.2f} s  first picture")
        print(f"  {r['map_s']:6.2f} s  latent map drawn")
        for name, row in (r.get("then") or {}).items():
            if "mode" in row:
                print(f"  interactions rendered {'in the browser' if row['mode'] == 'local' else 'on the server'}"
                      f" (view_mode {row['mode']})")
            elif "ms" in row:
                ok = "met" if row["ms"] <= TARGET_MS else "NOT met"
                during = "during the 128^3 decode" if row["decoding"] else "after the decode ended"
                print(f"  {row['ms']:7.0f} ms {name} ({during}; target <= {TARGET_MS:.0f} ms: {ok}; "
                      f"{row['robot_ms']:.0f} ms of it before the press reached the page; "
                      f"full-size picture after {row['still_ms']:.0f} ms)")
            else:
                print(f"  decode finished: {row['caption']} (load average {row['load']:.1f} on "
                      f"{os.cpu_count()} cores)")
    best = min(r["first_picture_s"] for r in rows)
    median = sorted(r["first_picture_s"] for r in rows)[len(rows) // 2]
    met = "met" if median <= TARGET_S else "not met"
    print(f"first picture: median {median:.2f} s, best {best:.2f} s over {repeats} launches "
          f"(target <= {TARGET_S:.0f} s: {met}; {os.cpu_count()} cores)")
    if args.json:
        Path(args.json).write_text(json.dumps({"target_s": TARGET_S, "median_s": median, "best_s": best,
                                               "cores": os.cpu_count(), "runs": rows}, indent=1))
    return 0


__all__ = ["ARGS", "CHROMIUM", "TARGET_MS", "TARGET_S", "answer_ms", "first_picture", "free_port",
           "interaction_latencies", "run", "serving", "set_view_mode"]
