"""The 3D view's extras in the app: a slice plane of one channel with its value bar, the truth beside a view
that has none of its own (side by side), and the refinement's progress.

:class:`ViewExtras` is a mixin of :class:`molviz.app.MolvizApp`: its ``@change`` methods bind the slice keys
of :func:`slice_defaults`; the pure work lives in :mod:`molviz.view.slices` and :mod:`molviz.view.compare`.
A slice reads the volume the view on screen already holds, on the event loop (milliseconds), so moving it
never waits for a decode and never starts one. While a slice is on, views are decoded densely (an adaptive
decode is exact only near the isosurfaces; a slice shows every voxel).
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from trame.decorators import change

from molviz.errors import MolvizError
from molviz.view.limits import clean_bool, clean_choice, clean_float, clean_int

if TYPE_CHECKING:  # pragma: no cover
    from molviz.view.explore import View

SLICE_KEYS = ("slice_on", "slice_axis", "slice_channel", "slice_position")
PROGRESS_TICK = 0.25                # seconds between two updates of the refinement's percentage
WARM_AFTER_S = 1.0                  # the slice's one warm-up render follows the first picture by this much
PROGRESS_CAP = 95.0                 # the surfaces and the picture come after the decode


def slice_defaults() -> dict[str, Any]:
    """The slice's and the progress's state keys and their values before a model opens."""
    return {
        "slice_on": False,
        "slice_axis": "z",
        "slice_channel": 0,
        "slice_position": 0.5,
        "slice_text": "",                # what the slice reads (shown under its controls)
        "slice_bar": None,               # {title, lo, hi}: the value bar, drawn in HTML when the browser renders
        "view_labels": [],               # each viewport's label while there are two (HTML when the browser renders)
        "refine_progress": 0,            # percent of the refinement under way (0: none, or the coarse pass)
    }


@dataclass
class _Refining:
    """The refinement under way: the engine asks ``should_stop`` before each chunk of points it decodes, so
    counting those questions measures the work done (:meth:`counting`)."""

    resolution: int
    kind: str                           # "dense" or "adaptive": how it is decoded
    expected: float                     # chunks it should take (exact when dense; learned when adaptive)
    chunks: int = 0
    started: bool = False

    def counting(self, should_stop: Callable[[], bool]) -> Callable[[], bool]:
        def ask() -> bool:
            self.chunks += 1
            return should_stop()
        return ask


class ViewExtras:
    """Slice plane, linked side-by-side truth and refinement progress (mixed into MolvizApp)."""

    # ------------------------------------------------------------------ slice plane
    @property
    def _slice_wanted(self) -> bool:
        return bool(self._good.get("slice_on"))

    def _slice_state_defaults(self) -> None:
        for key in SLICE_KEYS:
            self._good[key] = self.state[key]
        self._chunks_seen: dict[int, int] = {}      # resolution -> chunks the last adaptive decode took
        self._refining: _Refining | None = None
        self._progress_task: asyncio.Task | None = None
        self._slice_warm = False                     # the slice's shaders compiled (_warm_slice)

    @change(*SLICE_KEYS)
    def on_slice(self, slice_on, slice_axis, slice_channel, slice_position, **_):
        checks = (("slice_on", lambda v: clean_bool(v)),
                  ("slice_axis", lambda v: clean_choice(v, "slice axis", ("x", "y", "z"))),
                  ("slice_channel", lambda v: clean_int(v, "slice channel", 0,
                                                        max(len(self.state.channel_names or []) - 1, 0))),
                  ("slice_position", lambda v: clean_float(v, "slice position", 0.0, 1.0)))
        values = dict(zip(SLICE_KEYS, (slice_on, slice_axis, slice_channel, slice_position)))
        before = {k: self._good.get(k) for k in SLICE_KEYS}
        for key, clean in checks:
            try:
                self._accept(key, clean(values[key]))
            except MolvizError as exc:
                self._refuse(key, exc)
                return
        if {k: self._good.get(k) for k in SLICE_KEYS} == before:
            return
        self._show_slice()
        if self._good["slice_on"] and not before["slice_on"] and self._needs_dense():
            self._request_view(interactive=False)        # once: the slice then reads every voxel exactly

    def _needs_dense(self) -> bool:
        view = self.current
        return view is not None and (view.volume is None or bool(view.extra.get("adaptive")))

    def _slice_layers(self, view: View) -> list:
        """(volume, grid) of each viewport: the decoded view, and on the right its truth or the nearest item's."""
        layers = [(view.volume, view.grid)]
        if self.scene.split:
            near = view.extra.get("nearest")
            if view.truth is not None:
                layers.append((view.truth, view.grid))
            elif near is not None:
                layers.append((near.volume, near.grid))
        return layers

    def _after_show(self) -> None:
        """A new scene is on screen: its slice (and, for a view decoded adaptively before the slice was on,
        the dense decode the slice needs), and the viewports' labels for the page (local rendering draws no
        VTK text, so the page draws them over the view)."""
        built = self.scene.built
        self.state.view_labels = list(built.layer_labels) if self.scene.split and built is not None else []
        self._show_slice(push=False)
        if not self._slice_warm:
            with contextlib.suppress(RuntimeError):      # no event loop (scripts, tests): no warm-up
                asyncio.get_running_loop().call_later(WARM_AFTER_S, self._warm_slice)
        request = self.current.extra.get("request") if self.current is not None else None
        if self._slice_wanted and self._needs_dense() and request is not None and request.final \
                and not request.dense:            # asked before the slice was on: its dense decode follows
            self._request_view(interactive=False)

    def _show_slice(self, *, push: bool = True) -> None:
        """Put the slice of the view on screen (or take it away); no decode. Its value bar is a VTK actor in
        the pictures the server renders; the browser's own rendering gets it as ``slice_bar`` (HTML)."""
        from molviz.view.slices import SliceSpec, slice_parts, value_bar, value_range

        view = self.current
        self.state.slice_bar = None
        if not self._slice_wanted or view is None or self.explorer is None:
            self.scene.set_slice({}, None)
            self.state.slice_text = ""
        elif view.volume is None:
            self.scene.set_slice({}, None)
            self.state.slice_text = "the slice waits for the volume (decoding it densely)"
        else:
            names = self.ex.channel_names
            c = min(int(self._good["slice_channel"]), len(names) - 1)
            layers = self._slice_layers(view)
            scale = value_range(layers[0][0], c, *(v for v, _ in layers[1:]))
            spec = SliceSpec(channel=c, axis=self._good["slice_axis"], position=float(self._good["slice_position"]))
            local = self._good.get("view_mode") == "local"
            self.scene.set_slice(slice_parts(layers, spec, scale), None if local else value_bar(names[c], *scale))
            self.state.slice_bar = {"title": names[c], "lo": round(scale[0], 3), "hi": round(scale[1], 3)}
            approx = " (adaptive decode: exact near the surfaces; the dense one follows)" \
                if view.extra.get("adaptive") else ""
            self.state.slice_text = (f"{names[c]} at {spec.axis} = {spec.position:.2f} of the box, "
                                     f"{view.grid.shape[0]}\u00b3 voxels{approx}; colours {scale[0]:.2f} to "
                                     f"{scale[1]:.2f}")
        if push:
            self._push_view()

    def _warm_slice(self) -> None:
        """Render a slice plane and its value bar once, unseen (nothing is pushed; the scene is as before):
        llvmpipe compiles their shaders on the first render that holds them, 150 ms beside other jobs, which
        the first "slice on" of a session would wait for (issue 20). Once, a second after the first picture;
        a small frame without multisampling (the shaders are the same)."""
        from molviz.view.slices import SliceSpec, slice_parts, value_bar, value_range

        view = self.current
        if self._slice_warm or self._slice_wanted or view is None or view.volume is None or self.explorer is None:
            return
        self._slice_warm = True
        window = self.scene.render_window
        size, samples = tuple(window.GetSize()), window.GetMultiSamples()
        name = self.ex.channel_names[0]
        scale = value_range(view.volume, 0)
        self.scene.set_slice(slice_parts([(view.volume, view.grid)], SliceSpec(channel=0, axis="z", position=0.5),
                                         scale), value_bar(name, *scale))
        try:
            window.SetMultiSamples(0)
            window.SetSize(max(size[0] // 4, 16), max(size[1] // 4, 16))
            window.Render()
        finally:
            self.scene.set_slice({}, None)
            window.SetMultiSamples(samples)
            window.SetSize(*size)

    def _local_value_bar(self):
        """While the browser renders (local), the slice's value bar is HTML over the view, not in the scene:
        put it in for a picture the server renders (PNG), returned so the caller takes it out again."""
        from molviz.view.slices import value_bar

        shown = self.state.slice_bar
        if self._good.get("view_mode") != "local" or not shown:
            return None
        bar = value_bar(shown["title"], float(shown["lo"]), float(shown["hi"]))
        self.scene.set_value_bar(bar)
        return bar

    # ------------------------------------------------------------------ side by side without a truth
    def _compare_with_nearest(self, view: View, resolution: int) -> None:
        """For side by side of a view without a truth of its own (interpolation frame, encoded molecule):
        the nearest stored item's truth, or none (``view.extra["nearest"]``; runs in the worker thread)."""
        from molviz.view.compare import nearest_truth

        latent = view.extra.get("latent")
        view.extra["nearest"] = nearest_truth(self.ex, latent, resolution) if latent is not None else None

    # ------------------------------------------------------------------ refinement progress
    def _progress_begin(self, resolution: int, dense: bool) -> _Refining:
        """A refinement is queued: its percentage (chunks decoded of those expected) shows from when its decode
        starts (``_Refining.started``, set by the worker) until its picture is shown or it is stopped."""
        kind = "dense" if dense else "adaptive"
        self._refining = _Refining(resolution=int(resolution), kind=kind,
                                   expected=self._expected_chunks(kind, int(resolution)))
        if self._progress_task is None or self._progress_task.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return self._refining
            self._progress_task = loop.create_task(self._progress_loop())
        return self._refining

    def _progress_end(self, refining: _Refining | None = None, finished: bool = False) -> None:
        """The refinement ended (shown, stopped or failed): remember how many chunks a finished adaptive one
        took, hide the percentage."""
        if refining is not None and finished and refining.kind == "adaptive" and refining.chunks:
            self._chunks_seen[refining.resolution] = refining.chunks
        if refining is None or refining is self._refining:
            self._refining = None
            if self.state.refine_progress:
                self.state.refine_progress = 0

    def _expected_chunks(self, kind: str, resolution: int) -> float:
        """Chunks a decode will ask about: every voxel for a dense one (exact); for an adaptive one the count
        of the last at this resolution, else the nearest one's scaled by the surface area (n^2), else a
        quarter of the voxels (it decodes only near the surfaces)."""
        chunk = max(int(getattr(self.ex.engine, "chunk_points", 8192) or 8192), 1)
        if kind == "dense":
            return float(np.ceil(resolution ** 3 / chunk))
        if resolution in self._chunks_seen:
            return float(self._chunks_seen[resolution])
        if self._chunks_seen:
            res = min(self._chunks_seen, key=lambda r: abs(r - resolution))
            return self._chunks_seen[res] * (resolution / res) ** 2
        return float(np.ceil(0.25 * resolution ** 3 / chunk))

    def _progress_percent(self) -> float:
        r = self._refining
        if r is None or not r.started:
            return 0.0
        return min(PROGRESS_CAP, max(1.0, 100.0 * r.chunks / max(r.expected, 1.0)))

    async def _progress_loop(self) -> None:
        while self._refining is not None:
            pct = round(self._progress_percent())
            if pct != self.state.refine_progress:
                with self.state:
                    self.state.refine_progress = pct
            await asyncio.sleep(PROGRESS_TICK)


__all__ = ["SLICE_KEYS", "ViewExtras", "slice_defaults"]
