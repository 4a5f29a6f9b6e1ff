"""Desktop mode: ``molviz serve --desktop`` opens trame's pywebview window.

Runs where pywebview and PyQt6-WebEngine are installed (``pip install 'molviz[desktop]'``); the
window is drawn offscreen (``QT_QPA_PLATFORM=offscreen``, software WebGL) and read through
QtWebEngine's remote-debugging port with the Chrome DevTools protocol: the page's text and a
screenshot of the window. Playwright cannot attach to QtWebEngine, so the protocol is spoken raw.
"""
from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from app_bundles import serving

from molviz.app._cli import _has_module


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc)."""
    parent = {int(d.name): int(st[1]) for d in Path("/proc").iterdir() if d.name.isdigit()
              and (st := _stat(int(d.name))) is not None}
    found, frontier = set(), {pid}
    while frontier:
        frontier = {c for c, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return found


def _running(pids: set[int]) -> set[int]:
    """Those of ``pids`` still alive (zombies count as ended)."""
    return {p for p in pids if (st := _stat(p)) is not None and st[0] != "Z"}


async def _page_text_and_png(ws_url: str, wait_for: str, timeout: float = 90) -> tuple[str, bytes]:
    """Poll the page's text until it holds ``wait_for`` (or the timeout), then take a screenshot."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(ws_url, max_msg_size=0) as ws:
            ids = iter(range(1, 1_000_000))

            async def call(method: str, **params) -> dict:
                i = next(ids)
                await ws.send_json({"id": i, "method": method, "params": params})
                async for msg in ws:
                    reply = json.loads(msg.data)
                    if reply.get("id") == i:
                        return reply["result"]
                raise ConnectionError("the web view closed its debugging socket")

            deadline = time.monotonic() + timeout
            while True:
                text = (await call("Runtime.evaluate", expression="document.body.innerText",
                                   returnByValue=True))["result"]["value"]
                if wait_for in text or time.monotonic() > deadline:
                    break
                await asyncio.sleep(1)
            png = base64.b64decode((await call("Page.captureScreenshot", format="png"))["data"])
    return text, png


@pytest.mark.slow
@pytest.mark.skipif(not (_has_module("webview") and _has_module("PyQt6.QtWebEngineWidgets")),
                    reason="desktop mode needs pywebview and PyQt6-WebEngine (pip install 'molviz[desktop]')")
def test_desktop_window_shows_the_app(tmp_path):
    from PIL import Image

    debug = _free_port()
    env = {"QT_QPA_PLATFORM": "offscreen", "QTWEBENGINE_REMOTE_DEBUGGING": f"127.0.0.1:{debug}",
           "QTWEBENGINE_CHROMIUM_FLAGS": "--no-sandbox --ignore-gpu-blocklist --enable-unsafe-swiftshader"}
    log = tmp_path / "serve.log"
    window: set[int] = set()
    try:
        with serving(["--desktop"], log, env=env) as proc:
            deadline = time.monotonic() + 180   # the app logs its first picture once the window's client renders
            while "first picture ready" not in log.read_text():
                window |= _descendants(proc.pid)
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
            pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{debug}/json", timeout=10))
            page = next(p for p in pages if p["type"] == "page")
            assert page["title"] == "molviz" and page["url"].startswith("http://localhost:")
            text, png = asyncio.run(_page_text_and_png(page["webSocketDebuggerUrl"], wait_for="PSNR"))
            window |= _descendants(proc.pid)
            assert window, "no window process"
            proc.terminate()
            proc.wait(timeout=30)           # stopping the app closes its window: nothing is left rendering
        deadline = time.monotonic() + 10
        while _running(window) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _running(window), f"window processes outlived the app: {_running(window)}"
    finally:                                # never leave a window rendering behind a failed test
        for pid in _running(window):
            os.kill(pid, signal.SIGKILL)
    assert "freesolv" in text and "methyl hexanoate" in text and "PSNR" in text, text[:500]
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert img.shape[:2] == (900, 1440)                       # the window size molviz asks for
    # the 3D view (centre column) holds a rendered molecule: not one flat colour
    view = img[200:700, 500:1000]
    assert len(np.unique(view.reshape(-1, 3), axis=0)) > 50


def test_desktop_without_a_web_view_says_how_to_fix(tmp_path, repo_root):
    """pywebview alone (no Qt or GTK web view) would fail in its window process while the server ran on."""
    if any(_has_module(m) for m in ("PyQt6.QtWebEngineWidgets", "PyQt5.QtWebEngineWidgets",
                                    "PySide6.QtWebEngineWidgets", "gi")):
        pytest.skip("a web view backend is installed here")
    (tmp_path / "webview").mkdir()
    (tmp_path / "webview" / "__init__.py").write_text("")  # an importable pywebview without a backend
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "molviz", "serve", "--desktop"], cwd=repo_root, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "web view" in r.stderr and "molviz[desktop]" in r.stderr, r.stderr
