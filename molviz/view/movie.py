"""Interpolation movies (GIF, MP4) rendered offscreen: shared by ``molviz animate`` and the app.

MP4 is H.264 in yuv420p (what slide software and browsers play), written by
imageio-ffmpeg; GIF by Pillow through imageio. GIF frame delays are whole
hundredths of a second, so most rates (24 fps: 4.17 cs) cannot be one constant
delay; the delays alternate (4, 4, 5, ... cs at 24 fps) so that frame k starts at
k / fps to the nearest hundredth and the movie plays at the rate asked
(:func:`gif_durations_ms`). Files are written to a temporary
name in the target folder and renamed when complete, so a cancelled or failed
export never leaves a half-written movie under the requested name.

Examples
--------
>>> cfg = MovieConfig(frames=4, fps=24, size=(320, 240))
>>> [round(t, 2) for t in frame_times(cfg)]
[0.0, 0.33, 0.67, 1.0]
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from molviz._io import publish, temp_file_beside
from molviz.errors import InputError
from molviz.view.explore import field_atoms_by_default
from molviz.view.scene import ChannelStyle, Layer, Scene, SceneOptions, build_scene, content_points

if TYPE_CHECKING:  # pragma: no cover
    from molviz.view.explore import Endpoint, Explorer

MOVIE_SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
FORMATS = (".mp4", ".gif")


@dataclass
class MovieConfig:
    """One interpolation movie."""

    frames: int = 60                        # frames in the movie (a round trip doubles the path, not this)
    fps: int = 24                           # 24-30 plays smoothly in slides
    size: tuple[int, int] = (1280, 720)
    resolution: int = 48                    # voxels per axis of each decoded frame
    mode: Literal["linear", "slerp"] = "linear"
    round_trip: bool = False                # A -> B -> A
    orbit: float = 0.0                      # degrees the camera turns over the whole movie
    title: str = ""                         # drawn at the top of every frame, above the endpoints' names
    fill: float = 0.85                      # share of the frame's width or height the molecule spans
    atoms: Literal["auto", "fade", "field"] = "auto"  # "field": the atoms each frame's decoded field
                                            # implies (Explorer.implied_atoms: about a second per frame on a
                                            # CPU); "fade": the ends' atoms fading into each other; "auto":
                                            # field for small molecules, fade for proteins
                                            # (molviz.view.explore.field_atoms_by_default)


def frame_times(cfg: MovieConfig) -> list[float]:
    """The t of each frame: evenly spaced in [0, 1], or there and back for a round trip."""
    n = int(cfg.frames)
    if n < 1:
        raise InputError(f"a movie needs at least 1 frame, got {n}")
    if n == 1:
        return [0.0]
    if not cfg.round_trip:
        return [float(t) for t in np.linspace(0.0, 1.0, n)]
    # there and back: t rises then falls, both ends included once per direction
    up = np.linspace(0.0, 1.0, (n + 1) // 2 + 1)
    seq = np.concatenate([up, up[-2:0:-1]])
    seq = seq[:n] if len(seq) >= n else np.resize(seq, n)
    return [float(t) for t in seq]


def gif_durations_ms(n_frames: int, fps: float) -> list[int]:
    """Per-frame GIF delays (ms, whole hundredths of a second) whose running sum keeps frame k at k / fps.

    Examples
    --------
    >>> gif_durations_ms(6, 24)
    [40, 40, 50, 40, 40, 40]
    >>> sum(gif_durations_ms(24, 24))
    1000
    """
    starts = [int(np.floor(100.0 * k / fps + 0.5)) for k in range(int(n_frames) + 1)]   # centiseconds
    return [10 * max(1, b - a) for a, b in zip(starts, starts[1:])]


class MovieWriter:
    """Append RGB frames, then ``close()`` to move the finished file into place (atomic).

    A GIF plays at ``fps`` on average when ``n_frames`` is given (alternating delays, see
    :func:`gif_durations_ms`); without it, every delay is the nearest whole hundredth of a second.
    """

    def __init__(self, path: str | os.PathLike, *, fps: int = 24, n_frames: int | None = None) -> None:
        import imageio.v2 as imageio

        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in FORMATS:
            raise InputError(f"{self.path.name}: movies are written as {' or '.join(FORMATS)}; "
                             "change the file extension")
        self._tmp = temp_file_beside(self.path)
        self.n_frames = 0
        if suffix == ".mp4":
            self._writer = imageio.get_writer(self._tmp, format="FFMPEG", fps=int(fps), codec="libx264",
                                              pixelformat="yuv420p", quality=8, macro_block_size=8,
                                              ffmpeg_log_level="error")
        else:
            duration = (gif_durations_ms(n_frames, fps) if n_frames else 10 * max(1, round(100.0 / fps)))
            self._writer = imageio.get_writer(self._tmp, format="GIF", mode="I", duration=duration, loop=0)

    def append(self, frame: np.ndarray) -> None:
        self._writer.append_data(np.ascontiguousarray(np.asarray(frame, np.uint8)[..., :3]))
        self.n_frames += 1

    def close(self) -> Path:
        self._writer.close()
        publish(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            self._tmp.unlink(missing_ok=True)


def render_movie(explorer: Explorer, a: Endpoint, b: Endpoint, out: str | os.PathLike, *,
                 styles: Sequence[ChannelStyle], options: SceneOptions | None = None,
                 config: MovieConfig | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> Path:
    """Decode, draw and encode an A -> B interpolation into ``out`` (.mp4 or .gif).

    Renders in the calling thread with its own offscreen window, so the app can
    run it in a worker thread while the browser stays live.

    Raises
    ------
    InputError
        Bad extension or frame count.
    InterruptedError
        ``should_stop()`` returned True; no file is left behind.
    """
    cfg = config or MovieConfig()
    options = options or SceneOptions()
    times = frame_times(cfg)
    scene = Scene(window_size=cfg.size, background=options.background)
    writer = MovieWriter(out, fps=cfg.fps, n_frames=len(times))
    names = f"{a.label}  to  {b.label}"      # VTK's default font has no arrow

    if cfg.atoms not in ("auto", "fade", "field"):
        raise InputError(f"movie atoms must be 'auto', 'fade' or 'field', got {cfg.atoms!r}")

    def frame_scene(t: float):
        view = explorer.frame(a, b, t, mode=cfg.mode, resolution=cfg.resolution)
        field = cfg.atoms == "field" or (cfg.atoms == "auto" and field_atoms_by_default(view))
        if field and options.show_atoms:
            return build_scene([Layer(view.volume, view.grid, explorer.channel_names, explorer.implied_atoms(view))],
                               styles, options)
        return build_scene([Layer(view.volume, view.grid, explorer.channel_names, view.atoms,
                                  more_atoms=view.extra.get("more_atoms", ()))], styles, options)

    try:
        # the camera frames what the whole movie shows: the first and the last picture together
        ends = [frame_scene(times[0]), frame_scene(1.0 if cfg.round_trip or len(times) == 1 else times[-1])]
        framed = np.concatenate([content_points(e) for e in ends])
        step = cfg.orbit / max(len(times) - 1, 1)
        for k, t in enumerate(times):
            if should_stop is not None and should_stop():
                raise InterruptedError("export cancelled")
            built = ends[0] if k == 0 else frame_scene(t)
            scene.show(built, reset_camera=False)
            scene.set_captions(title=cfg.title, names=names, note=f"t = {t:.2f}")
            if k == 0:
                scene.fit(framed, fill=cfg.fill)
            elif step:
                scene.orbit(step)
            writer.append(scene.screenshot())
            if progress is not None:
                progress(k + 1, len(times))
    except BaseException:
        writer.abort()
        raise
    finally:
        scene.close()
    return writer.close()


def write_frames(frames: Iterable[np.ndarray], out: str | os.PathLike, *, fps: int = 24) -> Path:
    """Encode ready frames into ``out`` (.mp4 or .gif), atomically."""
    frames = list(frames) if str(out).lower().endswith(".gif") else frames   # GIF delays need the count
    writer = MovieWriter(out, fps=fps, n_frames=len(frames) if isinstance(frames, list) else None)
    try:
        for f in frames:
            writer.append(f)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


__all__ = ["FORMATS", "MOVIE_SIZES", "MovieConfig", "MovieWriter", "frame_times", "gif_durations_ms", "render_movie",
           "write_frames"]
