"""Hardening (issue 7): hostile client state, the access key, the bind address, memory limits,
interrupted training, atomic bundles and exports.

The server tests run one real ``molviz serve`` subprocess (bundled NMR model, default
host, an access key) and drive it from Debian's chromium through Playwright, reusing
the helpers of ``test_app_browser``. Only addresses on this machine are ever contacted.
"""
from __future__ import annotations

import json
import math
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

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "assets" / "models" / "nmr-2juy"
KEY = "k3y-for-tests"


def _listening_addresses(port: int) -> list[str]:
    """Local addresses of TCP sockets listening on ``port``, read from /proc/net/tcp{,6} (no psutil)."""
    found = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.split(":")
            if state != "0A" or int(hexport, 16) != port:          # 0A: LISTEN
                continue
            raw = bytes.fromhex(addr)
            if v6:
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                found.append(socket.inet_ntop(socket.AF_INET6, raw))
            else:
                found.append(socket.inet_ntop(socket.AF_INET, raw[::-1]))
    return found


def _own_non_loopback_address() -> str | None:
    """An IPv4 address of this machine that is not loopback (from the routing choice; nothing is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))           # TEST-NET-1: connect() on UDP only picks a route
            addr = s.getsockname()[0]
    except OSError:
        return None
    return None if addr.startswith("127.") or addr == "0.0.0.0" else addr


def _http_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=20) as r:
        return r.status


# ============================================================================ live server
@pytest.fixture(scope="module")
def live(tmp_path_factory):
    if not (BUNDLE / "bundle.json").is_file():
        pytest.skip(f"bundled model {BUNDLE} is missing")
    from molviz.app._bench import free_port
    port = free_port()
    log = tmp_path_factory.mktemp("log") / "serve.log"
    args = [str(BUNDLE), "--port", str(port), "--access-key", KEY, "--max-resolution", "96", "--max-frames", "40"]
    with serving(args, log, env={"OMP_NUM_THREADS": "1"}) as proc:
        yield {"port": port, "url": f"http://127.0.0.1:{port}/", "proc": proc, "log": log}


@pytest.fixture(scope="module")
def browser():
    from test_app_browser import ARGS, CHROMIUM, sync_playwright  # skips without chromium / playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def _connected(page, timeout: float = 8.0) -> bool:
    """True once the page's trame client holds the server's state."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        n = page.evaluate("(() => { try { return window.trame.state.get('n_channels'); } catch (e) { return null; } })()")
        if n:
            return True
        page.wait_for_timeout(250)
    return False


@pytest.fixture(scope="module")
def page(live, browser):
    from app_bundles import inked as _inked
    from app_bundles import view_pixels as _view
    context = browser.new_context(viewport={"width": 1500, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    pg.goto(live["url"] + f"?secret={KEY}")
    assert _connected(pg, 60), "the page with the access key did not connect"
    deadline = time.time() + 90
    while time.time() < deadline and _inked(_view(pg)) < 0.02:
        pg.wait_for_timeout(250)
    pg.wait_for_timeout(2500)                       # the refined picture
    yield pg
    context.close()


@pytest.mark.browser
@pytest.mark.slow
def test_server_binds_loopback_only_by_default(live):
    addrs = _listening_addresses(live["port"])
    assert addrs, "no listening socket found for the server's port"
    assert all(a in ("127.0.0.1", "::1") for a in addrs), addrs
    other = _own_non_loopback_address()
    if other is not None:                             # this machine's own address: must refuse
        with pytest.raises(OSError):
            socket.create_connection((other, live["port"]), timeout=3).close()
    assert _http_status(live["url"]) == 200


def test_exposing_the_server_prints_a_warning():
    proc = subprocess.run([sys.executable, "-m", "molviz", "serve", "--host", "0.0.0.0", "--max-resolution", "1"],
                          capture_output=True, text=True, timeout=120)
    # refused before binding (bad limit), after the exposure warning was printed
    assert proc.returncode != 0
    assert "WARNING" in proc.stderr and "0.0.0.0" in proc.stderr and "--access-key" in proc.stderr


@pytest.mark.browser
@pytest.mark.slow
def test_access_key_is_required(live, browser, page):
    for query in ("", "?secret=wrong"):
        ctx = browser.new_context()
        pg = ctx.new_page()
        pg.goto(live["url"] + query)
        assert not _connected(pg, 6), f"a page with {query or 'no key'!r} got the app's state"
        assert pg.locator("[data-testid=view3d]").count() == 0
        ctx.close()
    assert _connected(page, 5)                        # the page with the key still works
    assert live["proc"].poll() is None


# (what is set, JavaScript value, key whose last good value must come back or None)
ATTACKS = [
    ("model_index", "'../../etc/passwd'", "model_index"),
    ("model_index", "'/etc/passwd'", "model_index"),
    ("model_index", "99", "model_index"),
    ("item_index", "'../../etc/passwd'", "item_index"),
    ("item_index", "'/etc/shadow'", "item_index"),
    ("item_index", "1e9", "item_index"),
    ("resolution_custom", "-5", "resolution_custom"),
    ("resolution_custom", "0", "resolution_custom"),
    ("resolution_custom", "1e9", "resolution_custom"),
    ("resolution_custom", "NaN", "resolution_custom"),
    ("resolution_custom", "'sixty-four'", "resolution_custom"),
    ("resolution_custom", "'/etc/passwd'", "resolution_custom"),
    ("resolution_custom", "200", "resolution_custom"),              # above this server's --max-resolution 96
    ("resolution_choice", "'../../etc/passwd'", "resolution_choice"),
    ("ch0_level", "NaN", "ch0_level"),
    ("ch0_level", "Infinity", "ch0_level"),
    ("ch0_level", "-Infinity", "ch0_level"),
    ("ch0_level", "'high'", "ch0_level"),
    ("ch0_color", "'url(javascript:alert(1))'", "ch0_color"),
    ("ch0_mode", "'../x'", "ch0_mode"),
    ("interp_t", "NaN", "interp_t"),
    ("interp_t", "1e9", "interp_t"),
    ("compare", "'/etc/passwd'", "compare"),
    ("clip_axis", "'../../'", "clip_axis"),
    ("view_source", "'/etc/passwd'", "view_source"),
    ("view_mode", "'file:///etc/passwd'", "view_mode"),
    ("fps", "1e9", "fps"),
    ("endpoint_a", "'../../etc/passwd'", "endpoint_a"),
    ("map_search", "'x'.repeat(100000)", "map_search"),
]


def _set_js(key: str, js_value: str) -> str:
    return f"window.trame.state.set({key!r}, {js_value})"


def _wait_error(page, timeout: float = 15.0) -> str | None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if page.evaluate("window.trame.state.get('error_show')"):
            return page.evaluate("window.trame.state.get('error_text')")
        page.wait_for_timeout(150)
    return None


def _clear_error(page) -> None:
    page.evaluate("window.trame.state.set('error_show', false)")
    page.wait_for_timeout(200)


def _open_panel(page, title: str) -> None:
    from app_bundles import open_panel
    open_panel(page, title)


@pytest.mark.browser
@pytest.mark.slow
def test_hostile_client_state_is_refused_and_the_view_stays(live, page):
    from app_bundles import inked as _inked
    from app_bundles import page_state as _state
    from app_bundles import view_pixels as _view

    page.evaluate("window.trame.state.set('resolution_choice', 'custom')")
    page.evaluate("window.trame.state.set('resolution_custom', 48)")
    deadline = time.time() + 60
    while time.time() < deadline and ("48\u00b3" not in (_state(page, "view_caption") or "") or _state(page, "busy")):
        page.wait_for_timeout(250)
    page.wait_for_timeout(1500)
    _clear_error(page)
    before = _view(page)
    caption = _state(page, "view_caption")
    report = []
    for key, js, restored in ATTACKS:
        good = _state(page, restored)
        page.evaluate(_set_js(key, js))
        text = _wait_error(page)
        report.append((key, js[:40], text))
        assert text, f"{key} = {js[:40]} was not refused"
        page.wait_for_timeout(300)
        now = _state(page, restored)
        assert now == good or (isinstance(good, float) and isinstance(now, float) and math.isclose(now, good)), \
            f"{key} = {js[:40]}: the page holds {str(now)[:60]!r}, not the last good {good!r}"
        _clear_error(page)
        assert live["proc"].poll() is None, f"the server died on {key} = {js[:40]}"

    # a huge SMILES typed into the encode box, and a 10^9-frame movie: refused at the button
    _open_panel(page, "Encode a molecule")
    page.evaluate(_set_js("smiles", "'C'.repeat(200000)"))
    page.wait_for_timeout(500)
    box = page.locator("[data-testid=smiles] input")
    box.scroll_into_view_if_needed()
    box.press("Enter")
    text = _wait_error(page)
    report.append(("smiles (Enter)", "'C' x 200000", text))
    assert text and "limit" in text
    _clear_error(page)
    page.evaluate(_set_js("smiles", "'../../etc/passwd'"))
    page.wait_for_timeout(300)
    box.press("Enter")
    text = _wait_error(page)
    report.append(("smiles (Enter)", "'../../etc/passwd'", text))
    assert text and "file path" in text
    _clear_error(page)
    _open_panel(page, "Interpolation")
    page.evaluate(_set_js("export_frames", "1e9"))
    page.wait_for_timeout(500)
    button = page.locator("[data-testid=export]")
    button.scroll_into_view_if_needed()
    button.click()
    text = _wait_error(page)
    report.append(("export_frames (export button)", "1e9", text))
    assert text and "frames" in text
    _clear_error(page)

    for key, value, text in report:
        print(f"| {key} | {value} | {str(text)[:110]} |")
    assert live["proc"].poll() is None
    assert _http_status(live["url"]) == 200
    log = live["log"].read_text()
    assert "Traceback" not in log, log[-3000:]
    assert _state(page, "view_caption") == caption            # the previous view stays
    after = _view(page)
    assert _inked(after) > 0.02
    assert np.mean(np.any(np.abs(after - before) > 12, axis=-1)) < 0.1


# ============================================================================ engine memory limit
def test_engine_refuses_a_volume_beyond_memory_and_names_the_largest_that_fits(monkeypatch):
    import molviz.engine._engine as eng_mod
    from molviz.engine import Engine
    from molviz.errors import ResourceLimitError
    from molviz.models import load_model

    if not (BUNDLE / "bundle.json").is_file():
        pytest.skip(f"bundled model {BUNDLE} is missing")
    bundle = load_model(BUNDLE)
    eng = Engine(bundle, device="cpu")
    C = eng.n_channels
    room = 64 << 20                                              # pretend 64 MiB of RAM are free
    monkeypatch.setattr(eng_mod, "_available_cpu_bytes", lambda: room)
    with pytest.raises(ResourceLimitError) as info:
        eng.decode(bundle.latents[0], resolution=256, cache=False)
    msg = str(info.value)
    largest = int(msg.split("largest that fits is resolution ")[1].split()[0])
    assert 4 * C * largest ** 3 <= 0.8 * room < 4 * C * (largest + 1) ** 3
    assert "256x256x256" in msg and f"{C} channels" in msg
    # and that size really decodes
    z = bundle.latents[0]
    assert eng.decode(z, resolution=min(largest, 48), cache=False).shape == (1, C) + (min(largest, 48),) * 3
    # a batch of latents: the largest shrinks with the batch
    with pytest.raises(ResourceLimitError, match=r"x 4 latent\(s\)") as info4:
        eng.decode(bundle.latents[:4], resolution=256, cache=False)
    largest4 = int(str(info4.value).split("largest that fits is resolution ")[1].split()[0])
    assert largest4 < largest and 4 * 4 * C * largest4 ** 3 <= 0.8 * room


def test_app_limits_refuse_resolution_times_channels_beyond_the_budget():
    from molviz.errors import ResourceLimitError
    from molviz.view.limits import Limits, clean_resolution
    lim = Limits(max_resolution=512, max_voxels_bytes=1 << 30)
    with pytest.raises(ResourceLimitError, match="largest that fits is 281"):
        clean_resolution(300, lim, n_channels=12)                 # 12 x 300^3 x 4 B = 1.2 GiB > 1 GiB
    assert clean_resolution(281, lim, n_channels=12) == 281       # 12 x 281^3 x 4 B < 1 GiB < 12 x 282^3 x 4 B
    with pytest.raises(ResourceLimitError):
        clean_resolution(282, lim, n_channels=12)


# ============================================================================ training: kill, resume
@pytest.mark.slow
def test_killed_training_resumes_from_its_last_checkpoint(tmp_path):
    pytest.importorskip("rdkit")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    npz, out = tmp_path / "p.npz", tmp_path / "run"
    base = [sys.executable, "-m", "molviz", "train", "nmr", "--quick", "--no-progress", "--threads", "1"]
    subprocess.run(base + ["--max-items", "2", "--box", "spacing", "--spacing", "1.0", "--hydrogens", "remove",
                           "--prepare-only", str(npz)], check=True, env=env, capture_output=True, timeout=300)
    steps = 400
    train = base + ["--data", str(npz), "--out", str(out), "--steps", str(steps), "--ckpt-every", "10",
                    "--eval-every", "1000"]
    meta = out / "checkpoint" / "state.json"
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(train, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 240
    while not meta.is_file():
        assert proc.poll() is None, (tmp_path / "first.log").read_text()[-2000:]
        assert time.time() < deadline, "no checkpoint within 240 s"
        time.sleep(0.05)
    time.sleep(0.3)
    assert proc.poll() is None, "the run finished before it could be killed; raise --steps"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed_at = json.loads(meta.read_text())["step"]
    assert 0 < killed_at < steps
    # the bundle folder is never half-written: either no bundle yet, or one that loads
    if (out / "bundle.json").exists():
        from molviz.models import load_model
        load_model(out)
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "a temporary file was left behind"

    done = subprocess.run(train + ["--resume"], env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"completed at step {steps}" in done.stdout
    assert json.loads(meta.read_text())["step"] == steps
    history = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines() if '"loss"' in x]
    logged = [h["step"] for h in history if "step" in h]
    assert min(s for s in logged if s > killed_at) <= killed_at + 1      # picked up right after the checkpoint
    from molviz.models import load_model
    assert load_model(out).latents.shape[0] == 2


# ============================================================================ atomic bundles
def _tiny_bundle(value: float):
    import torch

    from molviz.models import Bundle, ModulatedSiren, config_for_size
    cfg = config_for_size("XS", out_dim=2)
    torch.manual_seed(0)
    return Bundle(config={"name": f"b{value}"}, model=ModulatedSiren(cfg),
                  latents=torch.full((3, cfg.latent_dim), value), boxes=np.zeros((3, 2, 3), np.float32))


@pytest.mark.parametrize("where", ["save_pt", "replace_folder"])
def test_a_failed_bundle_save_leaves_the_old_bundle_intact(tmp_path, monkeypatch, where):
    import molviz.models._bundle as mb
    from molviz.models import load_model, save_bundle

    path = save_bundle(_tiny_bundle(1.0), tmp_path / "model")
    before = sorted(p.name for p in tmp_path.iterdir())
    real = getattr(mb, where)

    def broken(*args, **kwargs):
        if where == "save_pt":
            real(*args, **kwargs)                                    # bytes written, then the disk "fills"
        raise OSError(28, "No space left on device (injected)")

    monkeypatch.setattr(mb, where, broken)
    with pytest.raises(OSError, match="injected"):
        save_bundle(_tiny_bundle(2.0), path)
    monkeypatch.undo()
    again = load_model(path)
    assert float(again.latents[0, 0]) == 1.0 and again.config["name"] == "b1.0"
    assert sorted(p.name for p in tmp_path.iterdir()) == before          # no temporary folder left


# ============================================================================ atomic exports
def test_finished_exports_get_ordinary_file_modes(tmp_path):
    """Temporary files are made 0600 (mkstemp); the finished movie, map and npz follow the umask."""
    import numpy as np

    from molviz.mesh import save_volume_npz
    from molviz.view.movie import write_frames

    umask = os.umask(0o022)
    try:
        movie = write_frames([np.zeros((16, 16, 3), np.uint8)] * 2, tmp_path / "m.gif", fps=2)
        save_volume_npz(tmp_path / "f.npz", np.zeros((1, 2, 2, 2), np.float32), origin=(0, 0, 0),
                        spacing=(1, 1, 1), channels=["C"])
    finally:
        os.umask(umask)
    assert movie.stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "f.npz").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.npz", "m.gif"]   # no temporary file left


def test_an_interrupted_movie_export_leaves_no_file(tmp_path):
    from molviz.view.explore import Explorer
    from molviz.view.movie import MovieConfig, render_movie
    from molviz.view.scene import ChannelStyle

    if not (BUNDLE / "bundle.json").is_file():
        pytest.skip(f"bundled model {BUNDLE} is missing")
    ex = Explorer.open(BUNDLE)
    a, b = ex.item_endpoint(0), ex.item_endpoint(1)
    styles = [ChannelStyle(visible=True, level=0.2, mode="absolute") for _ in ex.channel_names]
    out = tmp_path / "movie.gif"
    out_old = tmp_path / "kept.gif"
    out_old.write_bytes(b"GIF89a old movie")

    def progress(k, n):
        if k == 2:
            raise KeyboardInterrupt("the user closed the tab (injected)")

    for target in (out, out_old):
        with pytest.raises(KeyboardInterrupt):
            render_movie(ex, a, b, target, styles=styles, progress=progress,
                         config=MovieConfig(frames=4, fps=4, size=(160, 120), resolution=16,
                                            atoms="fade"))
    assert not out.exists()
    assert out_old.read_bytes() == b"GIF89a old movie"             # an older file of that name is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.gif"]


@pytest.mark.parametrize("suffix", [".ccp4", ".npz", ".ply"])
def test_an_interrupted_mesh_or_volume_export_leaves_no_partial_file(tmp_path, monkeypatch, suffix):
    import molviz.mesh._export as me
    from molviz.fields import Grid
    from molviz.mesh import export_mesh, export_volume, isosurface

    grid = Grid(origin=(0.0, 0.0, 0.0), spacing=(0.5, 0.5, 0.5), shape=(12, 12, 12))
    x = np.linspace(-1, 1, 12, dtype=np.float32)
    vol = np.exp(-4 * (x[:, None, None] ** 2 + x[None, :, None] ** 2 + x[None, None, :] ** 2)).astype(np.float32)
    target = tmp_path / f"out{suffix}"

    def write(path):
        if suffix == ".ply":
            return export_mesh(isosurface(vol, grid, level=0.5), path)
        return export_volume(vol, grid, path)

    write(target)
    good = target.read_bytes()
    real_replace = os.replace

    def crash_before_rename(src, dst):
        Path(src).write_bytes(Path(src).read_bytes()[:10])        # a torn temporary file
        raise OSError(5, "I/O error (injected)")

    monkeypatch.setattr(me.os, "replace", crash_before_rename)
    with pytest.raises(OSError, match="injected"):
        write(target)
    with pytest.raises(OSError, match="injected"):
        write(tmp_path / f"new{suffix}")
    monkeypatch.setattr(me.os, "replace", real_replace)
    assert target.read_bytes() == good                               # the old export is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]   # no partial new file, no temp files
