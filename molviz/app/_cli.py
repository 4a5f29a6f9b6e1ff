"""``molviz serve``: the browser app (trame loads inside the handler)."""
from __future__ import annotations

import argparse
import sys
import time

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
    p.add_argument("--max-upload-mb", type=float, default=20.0, metavar="MB",
                   help="largest structure file a client may upload (default 20)")
    p.add_argument("--desktop", action="store_true",
                   help="open in a desktop window (needs pywebview and a Qt or GTK web view: "
                        "pip install 'molviz[desktop]')")
    p.add_argument("--open", action="store_true", help="open the system browser at start")
    p.set_defaults(func=_serve)


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
    from molviz.view.limits import Limits

    if args.desktop:
        _check_desktop()
    if args.host not in LOCAL_HOSTS:
        print(f"WARNING: molviz serve binds {args.host}: anyone who can reach this machine on port {args.port} "
              "can use the app" + ("" if args.access_key else " (consider --access-key)") + ".", file=sys.stderr)
    from molviz.fields import MAX_RESOLUTION, MIN_RESOLUTION
    if not MIN_RESOLUTION <= args.max_resolution <= MAX_RESOLUTION:
        raise InputError(f"--max-resolution: give {MIN_RESOLUTION} to {MAX_RESOLUTION}")
    if not 2 <= args.max_frames <= 100_000:
        raise InputError("--max-frames: give 2 to 100000")
    if not 0.001 <= args.max_upload_mb <= 2048:
        raise InputError("--max-upload-mb: give 0.001 to 2048 (megabytes)")
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
                    limits=Limits(max_resolution=args.max_resolution, max_frames=args.max_frames,
                                  max_upload_mb=args.max_upload_mb),
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
