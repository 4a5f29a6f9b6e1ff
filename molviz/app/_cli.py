"""``molviz serve``, ``molviz render`` and ``molviz animate`` (heavy imports inside the handlers)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from molviz.errors import InputError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="open the browser app (trame) on a model bundle",
        description="Serve the molviz viewer. Binds 127.0.0.1 unless --host says otherwise. One process "
        "serves one user (all tabs share one view); run one process per user to serve several. "
        "Example: molviz serve assets/models/6ega --port 8081",
    )
    p.add_argument("bundle", nargs="?", help="bundle folder to open first (default: assets/models/freesolv)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind (default 127.0.0.1, this machine only; 0.0.0.0 exposes the app)")
    p.add_argument("--models-dir", metavar="DIR", help="a folder of bundles to offer in the model picker")
    p.add_argument("--access-key", metavar="KEY",
                   help="require ?secret=KEY in the page URL (the websocket refuses clients without it)")
    p.add_argument("--max-resolution", type=int, default=256, help="largest voxels per axis a client may ask for")
    p.add_argument("--max-frames", type=int, default=600, help="largest movie a client may export (frames)")
    p.add_argument("--desktop", action="store_true",
                   help="open in a desktop window (needs pywebview and a Qt or GTK web view: "
                        "pip install 'molviz[desktop]')")
    p.add_argument("--open", action="store_true", help="open the system browser at start")
    p.set_defaults(func=_serve)

    p = sub.add_parser(
        "render", help="render one item to a PNG, headless (offscreen VTK)",
        description="Example: molviz render assets/models/freesolv --item ethanol --resolution 128 --out shot.png",
    )
    p.add_argument("bundle")
    p.add_argument("--item", default="0", help="index, name, id or SMILES of a stored item (default 0)")
    p.add_argument("--resolution", type=int, default=96)
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--size", default="1280x960", help="WIDTHxHEIGHT in pixels (default 1280x960)")
    p.add_argument("--scale", type=int, default=1, help="supersampling factor (1-4)")
    p.add_argument("--show", choices=("reconstruction", "truth", "side_by_side"), default="reconstruction")
    p.add_argument("--level", type=float, default=None,
                   help="isosurface level (default: 0.2 absolute, 0.3 for density channels)")
    p.add_argument("--level-mode", choices=("absolute", "fraction", "percent"), default="absolute",
                   help="absolute field value (fields lie in [0, 1]), fraction of each channel's maximum, "
                        "or percent of voxels enclosed")
    p.add_argument("--no-atoms", action="store_true")
    p.set_defaults(func=_render)

    p = sub.add_parser(
        "animate", help="render an interpolation movie (MP4 H.264 yuv420p, or GIF), headless",
        description="Example: molviz animate assets/models/nmr-2juy --from 0 --to 23 --frames 60 --out movie.mp4",
    )
    p.add_argument("bundle")
    p.add_argument("--from", dest="src", required=True, help="start item (index, name, id or SMILES)")
    p.add_argument("--to", dest="dst", required=True, help="end item")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--fps", type=int, default=24)
    p.add_argument("--out", required=True, help=".mp4 or .gif")
    p.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT (1280x720 or 1920x1080 for slides)")
    p.add_argument("--resolution", type=int, default=48, help="voxels per axis of each frame")
    p.add_argument("--mode", choices=("linear", "slerp"), default="linear")
    p.add_argument("--round-trip", action="store_true", help="A -> B -> A")
    p.add_argument("--orbit", type=float, default=0.0, help="degrees the camera turns over the movie")
    p.add_argument("--level", type=float, default=None, help="isosurface level (as for render)")
    p.add_argument("--level-mode", choices=("absolute", "fraction", "percent"), default="absolute")
    p.add_argument("--no-atoms", action="store_true")
    p.set_defaults(func=_animate)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--size {text!r}: give WIDTHxHEIGHT, e.g. 1280x720") from None
    if not (16 <= w <= 7680 and 16 <= h <= 4320):
        raise InputError(f"--size {text!r}: width and height must be 16..7680 x 16..4320 pixels")
    return w, h


def _styles(explorer, atoms, level: float | None, mode: str = "absolute"):
    """The app's default look: element channels present in the item, density only when no element is."""
    from molviz.app._app import LEVEL_DEFAULTS, PROPERTY_LEVEL
    from molviz.app.scene import ChannelStyle, channel_color
    top = 100.0 if mode == "percent" else 1.0
    if level is not None and not 0.0 < level <= top:
        raise InputError(f"--level {level}: give a value in (0, {top:g}] for --level-mode {mode}")
    present = explorer.present_channels(atoms)
    names = explorer.channel_names
    props = [n.split(":")[-1] in ("density", "electronegativity") for n in names]
    any_element = any(p and not q for p, q in zip(present, props))

    def lvl(prop: bool) -> float:
        if level is not None:
            return level
        return PROPERTY_LEVEL if prop and mode == "absolute" else LEVEL_DEFAULTS[mode]

    return [ChannelStyle(visible=bool(p) and (not q or not any_element), level=lvl(q), mode=mode,
                         color=channel_color(n), opacity=0.35 if q else 0.9) for n, p, q in zip(names, present, props)]


def _render(args: argparse.Namespace) -> int:
    from molviz.app._app import _layers
    from molviz.app.explore import Explorer
    from molviz.app.limits import Limits, clean_resolution
    from molviz.app.scene import Scene, SceneOptions, build_scene, png_bytes
    from molviz.mesh import atomic_path

    if not 1 <= args.scale <= 4:
        raise InputError(f"--scale {args.scale}: give 1 to 4")
    size = _size(args.size)
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise InputError(f"--out {args.out!r}: render writes PNG; end the name with .png")
    ex = Explorer.open(args.bundle)
    n = clean_resolution(args.resolution, Limits(max_resolution=512), n_channels=len(ex.channel_names))
    i = ex.resolve_item(args.item)
    t0 = time.perf_counter()
    view = ex.item_view(i, n, truth=args.show != "reconstruction")
    styles = _styles(ex, view.atoms, args.level, args.level_mode)
    built = build_scene(_layers(view, ex.channel_names, args.show), styles, SceneOptions(show_atoms=not args.no_atoms))
    scene = Scene(window_size=size)
    scene.show(built, reset_camera=True)
    data = png_bytes(scene.screenshot(scale=args.scale))
    scene.close()
    with atomic_path(out) as tmp:
        Path(tmp).write_bytes(data)
    psnr = f", PSNR {view.psnr:.2f} dB" if view.psnr is not None else ""
    print(f"wrote {out} ({ex.item_label(i)}, {n}^3{psnr}, {time.perf_counter() - t0:.1f} s)")
    return 0


def _animate(args: argparse.Namespace) -> int:
    from molviz.app.explore import Explorer
    from molviz.app.limits import Limits, clean_resolution
    from molviz.app.movie import MovieConfig, render_movie
    from molviz.app.scene import SceneOptions

    if not 1 <= args.frames <= 100_000:
        raise InputError(f"--frames {args.frames}: give 1 to 100000")
    if not 1 <= args.fps <= 120:
        raise InputError(f"--fps {args.fps}: give 1 to 120")
    out = Path(args.out)
    if out.suffix.lower() not in (".mp4", ".gif"):
        raise InputError(f"--out {args.out!r}: animate writes .mp4 (H.264) or .gif; change the extension")
    ex = Explorer.open(args.bundle)
    n = clean_resolution(args.resolution, Limits(max_resolution=512), n_channels=len(ex.channel_names))
    a, b = ex.item_endpoint(ex.resolve_item(args.src)), ex.item_endpoint(ex.resolve_item(args.dst))
    styles = _styles(ex, a.atoms, args.level, args.level_mode)
    cfg = MovieConfig(frames=args.frames, fps=args.fps, size=_size(args.size), resolution=n, mode=args.mode,
                      round_trip=args.round_trip, orbit=args.orbit)
    t0 = time.perf_counter()

    def progress(k: int, total: int) -> None:
        if sys.stderr.isatty() or k == total or k % max(1, total // 10) == 0:
            print(f"\rframe {k}/{total}", end="" if k < total else "\n", file=sys.stderr, flush=True)

    path = render_movie(ex, a, b, out, styles=styles, options=SceneOptions(show_atoms=not args.no_atoms),
                        config=cfg, progress=progress)
    print(f"wrote {path} ({args.frames} frames, {a.label} -> {b.label}, {time.perf_counter() - t0:.1f} s)")
    return 0


def _check_desktop() -> None:
    """--desktop needs pywebview and one of its GUI backends; without one the window would fail in a
    child process while the server ran on, windowless."""
    from importlib.util import find_spec

    if find_spec("webview") is None:
        missing = "pywebview"
    elif not any(_has_module(m) for m in ("PyQt6.QtWebEngineWidgets", "PyQt5.QtWebEngineWidgets",
                                          "PySide6.QtWebEngineWidgets", "gi")):
        missing = "a web view for pywebview (PyQt6-WebEngine, or GTK's WebKit through PyGObject)"
    else:
        return
    raise InputError(f"--desktop needs {missing}, which is not installed; install it with "
                     "`pip install 'molviz[desktop]'` (pywebview with Qt), or run without --desktop and open "
                     "the printed URL in a browser")


def _has_module(name: str) -> bool:
    from importlib.util import find_spec

    try:
        return find_spec(name) is not None
    except ImportError:           # the parent package is absent
        return False


def _serve(args: argparse.Namespace) -> int:
    from molviz.app.limits import Limits

    if args.desktop:
        _check_desktop()
    if args.host not in LOCAL_HOSTS:
        print(f"WARNING: molviz serve binds {args.host}: anyone who can reach this machine on port {args.port} "
              "can use the app" + ("" if args.access_key else " (consider --access-key)") + ".", file=sys.stderr)
    if not 8 <= args.max_resolution <= 512:
        raise InputError("--max-resolution: give 8 to 512")
    if not 2 <= args.max_frames <= 100_000:
        raise InputError("--max-frames: give 2 to 100000")
    t0 = time.perf_counter()
    print("molviz: starting the viewer (loading trame, VTK and the model)", flush=True)
    # trame parses sys.argv itself: hand it only what molviz decided
    sys.argv = [sys.argv[0], "--server"] + (["--authKey", args.access_key] if args.access_key else [])
    import logging
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("molviz: %(message)s"))
    logging.getLogger("molviz.app").addHandler(handler)
    logging.getLogger("molviz.app").setLevel(logging.INFO)
    from molviz.app._app import MolvizApp

    app = MolvizApp(bundle=args.bundle, models_dir=args.models_dir,
                    limits=Limits(max_resolution=args.max_resolution, max_frames=args.max_frames),
                    defer_first_model=True)

    @app.server.controller.add("on_server_ready")
    def _ready(**_):
        query = f"?secret={args.access_key}" if args.access_key else ""
        print(f"molviz: serving {app.catalog[0].name} at http://{args.host}:{app.server.port}/{query} "
              f"({time.perf_counter() - t0:.1f} s to serve; the model opens now)", flush=True)
        app.on_server_ready()

    window = dict(width=1440, height=900, min_size=(960, 640)) if args.desktop else {}  # pywebview's 800 x 600 crams the panels
    try:
        app.server.start(port=args.port, host=args.host, open_browser=args.open, timeout=0,
                         exec_mode="desktop" if args.desktop else "main", show_connection_info=False, **window)
    finally:
        _close_windows()
    return 0


def _close_windows() -> None:
    """Stop trame's desktop window process once the server is down.

    trame starts the pywebview window as a non-daemon multiprocessing child, which the interpreter
    joins at exit: a server stopped by a signal would otherwise wait for ever on a window that keeps
    rendering.
    """
    import multiprocessing

    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    for child in children:
        child.join(5)
        if child.is_alive():
            child.kill()
            child.join(5)


__all__ = ["register"]
