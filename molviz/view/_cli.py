"""``molviz render`` and ``molviz animate``: pictures and movies without a browser (offscreen VTK)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from molviz.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render", help="render one item to a PNG, headless (offscreen VTK)",
        description="Example: molviz render assets/models/freesolv --item ethanol --resolution 128 --out shot.png",
    )
    p.add_argument("bundle", help="bundle folder, or the name of a shipped model")
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
    p.add_argument("bundle", help="bundle folder, or the name of a shipped model")
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
    p.add_argument("--atoms", choices=("auto", "fade", "field"), default="auto",
                   help="field: each frame draws the atoms its decoded field implies (molviz.fields.find_atoms, "
                        "about a second per frame on a CPU); fade: the two ends' atoms fade into each other; "
                        "auto (default): field for molecules of up to 200 atoms, fade for larger systems")
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
    """The app's default look (:func:`molviz.view.looks.default_styles`)."""
    from molviz.view.looks import default_styles
    try:
        return default_styles(explorer.channel_names, explorer.present_channels(atoms), level=level, mode=mode)
    except InputError as exc:
        raise InputError(f"--{exc}") from None


def _render(args: argparse.Namespace) -> int:
    from molviz.fields import MAX_RESOLUTION
    from molviz.mesh import atomic_path
    from molviz.models import resolve_bundle
    from molviz.view.explore import Explorer
    from molviz.view.limits import Limits, clean_resolution
    from molviz.view.looks import view_layers
    from molviz.view.scene import Scene, SceneOptions, build_scene, png_bytes

    if not 1 <= args.scale <= 4:
        raise InputError(f"--scale {args.scale}: give 1 to 4")
    size = _size(args.size)
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise InputError(f"--out {args.out!r}: render writes PNG; end the name with .png")
    ex = Explorer.open(resolve_bundle(args.bundle))
    n = clean_resolution(args.resolution, Limits(max_resolution=MAX_RESOLUTION), n_channels=len(ex.channel_names))
    i = ex.resolve_item(args.item)
    t0 = time.perf_counter()
    view = ex.item_view(i, n, truth=args.show != "reconstruction")
    styles = _styles(ex, view.atoms, args.level, args.level_mode)
    built = build_scene(view_layers(view, ex.channel_names, args.show), styles, SceneOptions(show_atoms=not args.no_atoms))
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
    from molviz.fields import MAX_RESOLUTION
    from molviz.models import resolve_bundle
    from molviz.view.explore import Explorer
    from molviz.view.limits import Limits, clean_resolution
    from molviz.view.movie import MovieConfig, render_movie
    from molviz.view.scene import SceneOptions

    if not 1 <= args.frames <= 100_000:
        raise InputError(f"--frames {args.frames}: give 1 to 100000")
    if not 1 <= args.fps <= 120:
        raise InputError(f"--fps {args.fps}: give 1 to 120")
    out = Path(args.out)
    if out.suffix.lower() not in (".mp4", ".gif"):
        raise InputError(f"--out {args.out!r}: animate writes .mp4 (H.264) or .gif; change the extension")
    ex = Explorer.open(resolve_bundle(args.bundle))
    n = clean_resolution(args.resolution, Limits(max_resolution=MAX_RESOLUTION), n_channels=len(ex.channel_names))
    a, b = ex.item_endpoint(ex.resolve_item(args.src)), ex.item_endpoint(ex.resolve_item(args.dst))
    styles = _styles(ex, a.atoms, args.level, args.level_mode)
    cfg = MovieConfig(frames=args.frames, fps=args.fps, size=_size(args.size), resolution=n, mode=args.mode,
                      round_trip=args.round_trip, orbit=args.orbit, atoms=args.atoms)
    t0 = time.perf_counter()

    def progress(k: int, total: int) -> None:
        if sys.stderr.isatty() or k == total or k % max(1, total // 10) == 0:
            print(f"\rframe {k}/{total}", end="" if k < total else "\n", file=sys.stderr, flush=True)

    path = render_movie(ex, a, b, out, styles=styles, options=SceneOptions(show_atoms=not args.no_atoms),
                        config=cfg, progress=progress)
    print(f"wrote {path} ({args.frames} frames, {a.label} -> {b.label}, {time.perf_counter() - t0:.1f} s)")
    return 0
