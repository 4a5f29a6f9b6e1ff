"""Interpolation movies (GIF, MP4) rendered offscreen: shared by ``molviz animate`` and the app.

MP4 is H.264 in yuv420p (what slide software and browsers play), written by
imageio-ffmpeg; GIF by Pillow through imageio. Files are written to a temporary
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
from molviz.view.scene import ChannelStyle, Layer, Scene, SceneOptions, build_scene

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


class MovieWriter:
    """Append RGB frames, then ``close()`` to move the finished file into place (atomic)."""

    def __init__(self, path: str | os.PathLike, *, fps: int = 24) -> None:
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
            self._writer = imageio.get_writer(self._tmp, format="GIF", mode="I", duration=1000.0 / fps, loop=0)

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
    writer = MovieWriter(out, fps=cfg.fps)
    try:
        step = cfg.orbit / max(len(times) - 1, 1)
        for k, t in enumerate(times):
            if should_stop is not None and should_stop():
                raise InterruptedError("export cancelled")
            view = explorer.frame(a, b, t, mode=cfg.mode, resolution=cfg.resolution)
            built = build_scene([Layer(view.volume, view.grid, explorer.channel_names, view.atoms,
                                       label=f"t = {t:.2f}")], styles, options)
            scene.show(built, reset_camera=(k == 0))
            if k and step:
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
    writer = MovieWriter(out, fps=fps)
    try:
        for f in frames:
            writer.append(f)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


__all__ = ["FORMATS", "MOVIE_SIZES", "MovieConfig", "MovieWriter", "frame_times", "render_movie", "write_frames"]
