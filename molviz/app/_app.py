"""The molviz browser app: one :class:`TrameApp`, engine set-up, state defaults, UI, reactions.

Every reaction is an ``@change`` method: it validates the client's values
(:mod:`molviz.view.limits`), asks the engine through :class:`~molviz.view.explore.Explorer`
in a worker thread (:mod:`molviz.app._jobs`), and then updates the view on the
event loop. A refused value puts the last good one back, shows a message, and
leaves the picture as it was.

Single user per process: trame keeps one shared state per server process, so two
browser tabs on one server drive the same view. Serve several users with one
process each (trame's launcher, or one ``molviz serve --port N`` per user).
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from trame.app import TrameApp
from trame.decorators import change, controller, trigger

from molviz.app._delivery import ImagePusher
from molviz.app._jobs import Debounce, Lane
from molviz.app._views import ViewExtras, slice_defaults
from molviz.app.state import (
    _EMPTY_FIGURE,
    COARSE,
    EXPORT_SIZES,
    LEVEL_RANGES,
    LOCAL_MAX_POINTS,
    MAX_CHANNELS,
    PICTURE_SIZES,
    REFINE_DELAY,
    REMEMBERED,
    RESOLUTIONS,
    TRUTH_FOR_PSNR,
    _key,
    channel_keys,
    state_defaults,
)
from molviz.errors import MolvizError
from molviz.models import bundled_models_dir, default_bundle, find_bundles
from molviz.view.explore import Endpoint, Explorer, View, field_atoms_by_default
from molviz.view.exports import MAX_MAPS_BYTES, maps_zip, scene_glb
from molviz.view.latent_map import LatentMap, depiction_svg
from molviz.view.limits import (
    Limits,
    clean_bool,
    clean_choice,
    clean_float,
    clean_int,
    clean_resolution,
    clean_smiles,
    clean_text,
    clean_upload,
)
from molviz.view.looks import LEVEL_DEFAULTS, default_styles, endpoint_styles, view_layers
from molviz.view.movie import MovieConfig, render_movie
from molviz.view.scene import (
    BuiltScene,
    ChannelStyle,
    Scene,
    SceneOptions,
    build_scene,
    displayed,
    png_bytes,
)

log = logging.getLogger("molviz.app")

@dataclass
class Request:
    """What a view job computes; compared to drop work the user no longer wants."""

    source: str                    # "item", "interpolation", "encoded"
    resolution: int
    item: int = 0
    t: float = 0.0
    compare: str = "reconstruction"
    final: bool = True             # False for the coarse pass (no ground truth just for the PSNR chip)
    dense: bool = False            # a slice is shown: decode every voxel (no adaptive decode)


class MolvizApp(ViewExtras, TrameApp):
    """The viewer: models, channels, resolution, interpolation, latent map, exports.

    Parameters
    ----------
    server : trame server or name, optional
    bundle : path, optional
        Bundle to open first (default: ``assets/models/freesolv``).
    models_dir : path, optional
        A folder of bundles to offer beside the bundled models (named at start-up, never by the client).
    limits : Limits, optional
        Server-side limits on what the browser may ask for.

    Examples
    --------
    >>> app = MolvizApp(bundle="assets/models/freesolv")     # doctest: +SKIP
    >>> app.server.start(port=8080)                          # doctest: +SKIP
    """

    def __init__(self, server=None, *, bundle: str | Path | None = None, models_dir: str | Path | None = None,
                 limits: Limits | None = None, window_size: tuple[int, int] = (820, 860),
                 defer_first_model: bool = False) -> None:
        super().__init__(server, client_type="vue3")
        self.t_start = time.perf_counter()
        # ---- engine set-up (server side only; the client sees names and indices)
        self.limits = limits or Limits()
        first = Path(bundle).expanduser().resolve() if bundle else default_bundle()
        self.catalog: list[Path] = find_bundles(*(p for p in (first, bundled_models_dir(), models_dir) if p))
        if first is not None and first not in self.catalog:
            from molviz.models import load_model
            load_model(first)                     # raises BundleError with the reason
        if not self.catalog:
            from molviz.errors import BundleError
            raise BundleError("no model bundle found: give one (molviz serve PATH) or put bundles in "
                              f"{bundled_models_dir()} or a --models-dir folder")
        self.scene = Scene(window_size=window_size)
        self.explorer: Explorer | None = None
        self.map: LatentMap | None = None
        self.current: View | None = None          # what the view shows now
        self.built: BuiltScene | None = None
        self.encoded: Endpoint | None = None
        self.encoded_xy: np.ndarray | None = None
        # workers run below the event loop's priority: camera moves and toggles render first (issue 20)
        self.view_lane = Lane("view", nice=WORKER_NICE)
        self.map_lane = Lane("map", nice=WORKER_NICE)
        self.aux_lane = Lane("encode", nice=WORKER_NICE)
        self.atoms_lane = Lane("atoms", nice=WORKER_NICE)   # atoms found in a decoded field (seconds)
        self.search_lane = Lane("search", nice=WORKER_NICE)     # the map's search
        # a large bundle's search index, built ahead of the first search (a minute or two at 93k) at the
        # lowest priority, so a decode the user waits for is not slowed by it
        self.index_lane = Lane("index", nice=19)
        self.view_lane.on_busy = self._on_busy
        self._refine = Debounce(REFINE_DELAY, self._refine_now)
        self._good: dict[str, Any] = {}           # last accepted value of each validated key
        self._have: set[tuple] = set()            # (source key, resolution) already decoded once
        self._play_task: asyncio.Task | None = None
        self._psnr_key: tuple | None = None       # the view the PSNR chip speaks of
        self._path_cache: tuple | None = None     # (endpoints, mode, ...) -> the path's map positions
        self._pick_next = "a"                     # the next map click in endpoint mode sets A, then B
        self._found: list[int] = []               # items matching the map search
        self._selected: list[int] = []            # items in the map's box or lasso selection
        self._items_key: tuple | None = None      # what the map's items trace in the page shows
        self._field_atoms_of: View | None = None  # the interpolation frame whose field's atoms are on screen
        self._models_dir = Path(models_dir).expanduser().resolve() if models_dir else None
        self._first_bundle = first
        self._exporting = False
        self.first_picture_s: float | None = None
        self.view = None
        self.map_widget = None
        # ---- state defaults, then the page
        self._state_defaults()
        self.scene.set_display(self._options())
        self._build_ui()
        # ---- first picture: the default model's first item, at the coarse resolution. Either now, before
        # serving (scripts, tests), or (molviz serve) in a worker thread once the server is up, so that the
        # browser loads the page (several seconds of JavaScript on a small CPU) while torch loads and decodes.
        self._loading = False                 # the deferred first model is opening
        self._refine_pending = False          # a coarse first picture waits for the server to refine it
        self._refine_after_coarse = False     # ... or for itself to be shown (deferred first model)
        self._coarse_pending = False          # a coarse picture is on its way (the refinement waits for it)
        if defer_first_model:
            self._loading = True
            self._defer_load = True
            s = self.state
            s.busy, s.busy_text = True, f"loading the model {self.catalog[0].name}"
            s.view_caption = f"loading {self.catalog[0].name}\u2026"
        else:
            self._defer_load = False
            self._load_model(0, initial=True)
            self.state.map_load = True

    # ================================================================== set-up
    def _state_defaults(self) -> None:
        s = self.state
        s.update(state_defaults())
        s.update(slice_defaults())
        s.model_options = [{"title": p.name, "value": i} for i, p in enumerate(self.catalog)]
        s.upload_max_mb = self.limits.max_upload_mb
        self._good["display"] = (True, True, "none", 0.5)
        for key in (*REMEMBERED, *channel_keys()):
            self._good[key] = s[key]
        self._slice_state_defaults()

    def _build_ui(self) -> None:
        from molviz.app.ui.layout import build_layout
        page = build_layout(self.server, render_window=self.scene.render_window, max_channels=MAX_CHANNELS,
                            resolutions=RESOLUTIONS, on_map_click=self.on_map_click, on_map_hover=self.on_map_hover,
                            on_map_select=self.on_map_select,
                            picture_sizes=list(PICTURE_SIZES))
        self.ui, self.view, self.map_widget = page.layout, page.view, page.figure
        # each pushed picture is the one just rendered, and a change answers with a half-size frame first
        self.pusher = ImagePusher(self.server)

    # ================================================================== helpers
    def _error(self, exc: BaseException | str) -> None:
        """Show a message in the page; the view keeps its last good picture."""
        text = str(exc) if isinstance(exc, (MolvizError, str)) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, (MolvizError, str)):
            log.exception("molviz app: unexpected error", exc_info=exc)
        self.state.error_text = text
        self.state.error_show = True
        self.state.flush()

    def _refuse(self, key: str, exc: BaseException) -> None:
        """Put the last accepted value of ``key`` back and say why."""
        with self.state.suppress_change_listeners(key):
            self.state[key] = self._good.get(key)
            if key == "resolution_custom":             # the field shows the committed value again
                self.state.resolution_typed = self._good.get(key)
        self._error(exc)

    def _accept(self, key: str, value) -> None:
        self._good[key] = value

    def _on_busy(self, busy: bool) -> None:
        self.state.busy = busy
        if not busy:
            self.state.busy_text = ""
            self._progress_end()
        self.state.flush()

    @property
    def ex(self) -> Explorer:
        assert self.explorer is not None
        return self.explorer

    def _push_view(self, reset_camera: bool = False) -> None:
        """Send the new picture (remote) or geometry (local) to the browser."""
        if reset_camera:
            self.scene.reset_camera()
        if self.view is None or self.server.protocol is None:
            return
        if self.state.view_mode == "local" and self.built is not None and \
                sum(int(m.n_points) for m, _ in self.built.actors.values()) > LOCAL_MAX_POINTS:
            self.state.view_mode = self._good["view_mode"] = "remote"
            self._error("the scene grew too big for rendering in the browser; switched to server-side rendering")
        if self.state.view_mode == "local":
            self.view.update_geometry()
            if reset_camera:
                self.view.push_camera()
        else:
            self.pusher.push(self.scene.render_window, fallback=self.view.update_image)

    # ================================================================== model and items
    def _load_model(self, index: int, *, initial: bool = False) -> None:
        path = self.catalog[index]
        try:
            explorer = Explorer.open(path)
        except MolvizError as exc:
            log.warning("model %s refused: %s", path, exc)     # molviz serve prints this line too
            if initial:
                raise
            self._refuse("model_index", exc)
            return
        self._use_model(index, explorer, initial=initial)

    def _load_model_in_background(self, index: int) -> None:
        """Open the bundle (imports torch) in the view lane's thread, then show its first item."""
        path = self.catalog[index]

        def done(explorer: Explorer) -> None:
            self._loading = False
            # coarse first; the refinement starts once the coarse picture is shown (submitting it at once
            # would supersede the coarse job, and the first picture would wait for the full resolution)
            self._use_model(index, explorer, initial=True)
            self._refine_after_coarse = self._refine_pending
            self._refine_pending = False
            self.state.flush()

        def failed(exc: BaseException) -> None:
            self._loading = False
            self.state.busy_text = ""
            self.state.view_caption = f"could not open {path.name}"
            self.state.map_load = True
            self._error(exc if isinstance(exc, MolvizError) else
                        f"could not open the model {path.name}: {type(exc).__name__}: {exc}; pick another model")

        self.view_lane.submit(lambda _stop: Explorer.open(path), done, failed)

    def _use_model(self, index: int, explorer: Explorer, *, initial: bool) -> None:
        self.explorer = explorer
        self._accept("model_index", index)
        self._have.clear()
        self.current = None
        self.encoded = None
        self.encoded_xy = None
        self._found = []
        self._selected = []
        s = self.state
        s.map_selection, s.map_selection_text = [], ""
        labels = explorer.item_labels()
        smiles = [it.get("smiles") or "" for it in explorer.bundle.items] + [""] * explorer.n_items
        options = [{"title": f"{i}: {labels[i]}" + (f"  ({smiles[i]})" if smiles[i] else ""), "value": i}
                   for i in range(explorer.n_items)]
        names = explorer.channel_names[:MAX_CHANNELS]
        with s:
            s.item_options = options
            s.endpoint_options = options
            s.channel_names = names
            s.n_channels = len(names)
            s.has_encoded = False
            s.neighbours = []
            s.placement_text = ""
            s.item_index = 0
            s.endpoint_a = 0
            s.endpoint_b = min(1, explorer.n_items - 1)
            s.interp_t = 0.0
            s.view_source = "item"
            self._reset_channel_styles(0)
            for k in ("item_index", "endpoint_a", "endpoint_b", "interp_t", "view_source"):
                self._good[k] = s[k]
        self._load_map()
        self._prepare_search()
        self._request_view(interactive=not initial, reset_camera=True, initial=initial)

    def _reset_channel_styles(self, item: int, *, full: bool = True) -> None:
        """Only the channels with atoms in this item visible; ``full`` also resets levels and colours
        (a new model), else the user's levels, colours and opacities stay (a new item)."""
        present = self.ex.present_channels(self.ex.item_atoms(item))
        s = self.state
        looks = default_styles(self.ex.channel_names, present)
        for i, look in enumerate(looks[:MAX_CHANNELS]):
            vals = {"visible": look.visible, "level": look.level, "mode": look.mode, "color": look.color,
                    "opacity": look.opacity, "repr": "surface"}
            for f, v in vals.items():
                if not full and f != "visible":
                    continue
                s[_key("ch", i, f)] = v
                self._good[_key("ch", i, f)] = v
            if full:
                self._set_level_range(i, "absolute")

    def _set_level_range(self, i: int, mode: str) -> None:
        s = self.state
        if mode == "absolute":
            top = 1.0                       # normalised fields; a reconstruction may overshoot a little
            if self.current is not None and i < self.current.n_channels:
                top = max(top, self.current.peak(i))
            lo, hi, step = 0.0, round(top, 3), 0.005
        else:
            lo, hi, step = LEVEL_RANGES[mode]
        s[_key("ch", i, "level_min")] = lo
        s[_key("ch", i, "level_max")] = hi
        s[_key("ch", i, "level_step")] = step

    # ================================================================== reactions
    @change("model_index")
    def on_model(self, model_index, **_):
        try:
            i = clean_int(model_index, "model", 0, len(self.catalog) - 1)
        except MolvizError as exc:
            self._refuse("model_index", exc)
            return
        if self._loading:                   # the first model is still opening: it stays the choice
            self.state.model_index = self._good.get("model_index", 0)
            return
        if i != self._good.get("model_index") or self.explorer is None:
            self._load_model(i)

    @change("item_index")
    def on_item(self, item_index, **_):
        if self.explorer is None:
            return
        try:
            i = clean_int(item_index, "item", 0, self.ex.n_items - 1)
        except MolvizError as exc:
            self._refuse("item_index", exc)
            return
        if i == self._good.get("item_index") and self._good.get("view_source") == "item" and self.current is not None:
            return
        self._accept("item_index", i)
        with self.state.suppress_change_listeners("view_source"):
            self.state.view_source = "item"
        self._good["view_source"] = "item"
        self._reset_channel_styles(i, full=False)
        self.state.flush()
        self._request_view(interactive=True, reset_camera=True)
        self._update_map()

    @change("view_source")
    def on_view_source(self, view_source, **_):
        try:
            src = clean_choice(view_source, "view", ("item", "interpolation", "encoded"))
            if src == "encoded" and self.encoded is None:
                raise MolvizError("encode a molecule first (Encode a molecule: type a SMILES)")
        except MolvizError as exc:
            self._refuse("view_source", exc)
            return
        if src != self._good.get("view_source"):
            self._accept("view_source", src)
            if src == "interpolation":
                self._show_endpoint_channels()
            elif src == "encoded":
                self._show_encoded_channels()
            self._request_view(interactive=True, reset_camera=True)
            self._update_map()                    # the marker of t on the path shows only for an interpolation

    @change("resolution_choice", "resolution_custom")
    def on_resolution(self, resolution_choice, resolution_custom, **_):
        if self.explorer is None:
            return
        try:
            choice = clean_choice(resolution_choice, "resolution", RESOLUTIONS)
            raw = resolution_custom if choice == "custom" else int(choice)
            n = clean_resolution(raw, self.limits, n_channels=len(self.ex.channel_names))
        except MolvizError as exc:
            key = "resolution_custom" if resolution_choice == "custom" else "resolution_choice"
            self._refuse(key, exc)
            return
        self._accept("resolution_choice", choice)
        if choice == "custom":
            self._accept("resolution_custom", n)
            self.state.resolution_typed = n
        if n != self.state.resolution:
            self.state.resolution = n
            self._request_view(interactive=True)

    @change("compare")
    def on_compare(self, compare, **_):
        try:
            clean_choice(compare, "show", ("reconstruction", "truth", "side_by_side"))
        except MolvizError as exc:
            self._refuse("compare", exc)
            return
        if compare == self._good.get("compare"):
            return
        self._accept("compare", compare)
        self._request_view(interactive=False, reset_camera=True)

    @change(*channel_keys())
    def on_channel_style(self, **state):
        if self.explorer is None:
            return
        changed = [k for k in channel_keys() if state.get(k) != self._good.get(k)]
        for key in changed:
            i, field = int(key[2:key.index("_")]), key[key.index("_") + 1:]
            try:
                value = self._clean_channel_value(i, field, state[key])
            except MolvizError as exc:
                self._refuse(key, exc)
                return
            if field == "mode" and value != self._good.get(key):
                # a new mode means a new scale: start from that mode's default level
                level = LEVEL_DEFAULTS[value]
                self._set_level_range(i, value)
                with self.state.suppress_change_listeners(_key("ch", i, "level")):
                    self.state[_key("ch", i, "level")] = level
                self._good[_key("ch", i, "level")] = level
            self._accept(key, value)
        if changed and self._restyle_on_screen(changed):
            return
        if changed:
            self._request_view(interactive=True, restyle_only=True)

    def _restyle_on_screen(self, changed: list[str]) -> bool:
        """Colour, opacity and wireframe change the actors on screen at once (no lane, no decode to wait
        for); True when that was all there was to do."""
        if any(k[k.index("_") + 1:] not in ("color", "opacity", "repr") for k in changed) or self.built is None:
            return False
        names = self.ex.channel_names
        for key in changed:
            i, field = int(key[2:key.index("_")]), key[key.index("_") + 1:]
            value = self._good[key]
            if not self.scene.restyle_channel(names[i], **{{"color": "color", "opacity": "opacity",
                                                            "repr": "representation"}[field]: value}):
                return False                       # not on screen (hidden, or no surface): rebuild
        self._push_view()
        return True

    def _clean_channel_value(self, i: int, field: str, value):
        name = f"channel {i} {field}"
        if field == "visible":
            return clean_bool(value)
        if field == "mode":
            return clean_choice(value, name, ("absolute", "fraction", "percent", "sigma"))
        if field == "level":
            mode = self._good.get(_key("ch", i, "mode"), "fraction")
            lo, hi = (0.0, 1e6) if mode == "absolute" else LEVEL_RANGES[mode][:2]
            return clean_float(value, f"channel {i} level ({mode})", lo, hi, clamp=False)
        if field == "opacity":
            return clean_float(value, name, 0.0, 1.0)
        if field == "repr":
            return clean_choice(value, name, ("surface", "wireframe"))
        if field == "color":
            if not isinstance(value, str) or len(value) != 7 or value[0] != "#" or \
                    any(c not in "0123456789abcdefABCDEF" for c in value[1:]):
                raise MolvizError(f"{name} must be a colour like #3050F8, got {str(value)[:20]!r}")
            return value
        raise MolvizError(f"unknown channel field {field!r}")

    @change("show_atoms", "show_outline", "clip_axis", "clip_position", "atoms_source")
    def on_display(self, show_atoms, show_outline, clip_axis, clip_position, atoms_source, **_):
        try:
            clean_choice(clip_axis, "clip plane", ("none", "x", "y", "z"))
        except MolvizError as exc:
            self._refuse("clip_axis", exc)
            return
        try:
            clean_choice(atoms_source, "atoms", ("auto", "true", "field", "both"))
        except MolvizError as exc:
            self._refuse("atoms_source", exc)
            return
        if atoms_source != self._good.get("atoms_source"):
            self._accept("atoms_source", atoms_source)
            self.scene.set_display(self._options())
            self._push_view()
            self._find_field_atoms()
        try:
            clean_float(clip_position, "clip position", 0.0, 1.0)
        except MolvizError as exc:
            self._refuse("clip_position", exc)
            return
        now = (bool(show_atoms), bool(show_outline), clip_axis, float(clip_position))
        if now == self._good.get("display"):
            return
        self._good["display"] = now
        self._accept("clip_axis", clip_axis)
        self._accept("clip_position", clip_position)
        # actor visibility and a GPU clip plane on the scene as it is: never queued behind a decode
        self.scene.set_display(self._options())
        self._push_view()

    @change("view_mode")
    def on_view_mode(self, view_mode, **_):
        try:
            clean_choice(view_mode, "rendering", ("remote", "local"))
        except MolvizError as exc:
            self._refuse("view_mode", exc)
            return
        if view_mode == self._good.get("view_mode"):
            return
        if view_mode == "local" and self.built is not None:
            points = sum(int(mesh.n_points) for mesh, _ in self.built.actors.values())
            if points > LOCAL_MAX_POINTS:
                self._refuse("view_mode", MolvizError(
                    f"this scene has {points:,} mesh points, too many to send to the browser (limit "
                    f"{LOCAL_MAX_POINTS:,}); keep server-side rendering or lower the resolution"))
                return
        self._accept("view_mode", view_mode)
        self._after_show()                        # the browser draws no VTK text: labels and value bar in HTML
        self._push_view(reset_camera=view_mode == "local")

    @controller.set("reset_camera")
    def reset_camera(self, **_):
        self._push_view(reset_camera=True)

    @controller.set("camera_preset")
    def camera_preset(self, name=None, *_, **__):
        try:
            preset = clean_choice(name, "camera", ("front", "side", "top", "fit"))
        except MolvizError as exc:
            self._error(exc)
            return
        self.scene.camera_preset(preset)
        self._push_view()
        if self.view is not None and self.state.view_mode == "local":
            self.view.push_camera()

    @controller.set("cancel_view")
    def cancel_view(self, **_):
        """Stop the decode under way and the refinement waiting: the picture stays as it is."""
        self._refine.cancel()
        self._refine_pending = self._refine_after_coarse = self._coarse_pending = False
        self.view_lane.cancel()
        self._on_busy(False)

    # ------------------------------------------------------------------ interpolation
    @change("endpoint_a", "endpoint_b", "interp_mode")
    def on_endpoints(self, endpoint_a, endpoint_b, interp_mode, **_):
        if self.explorer is None:
            return
        if (endpoint_a, endpoint_b, interp_mode) == tuple(self._good.get(k) for k in ("endpoint_a", "endpoint_b",
                                                                                        "interp_mode")):
            return
        for key, value in (("endpoint_a", endpoint_a), ("endpoint_b", endpoint_b)):
            try:
                clean_int(value, key.replace("_", " "), -1 if self.encoded is not None else 0, self.ex.n_items - 1)
            except MolvizError as exc:
                self._refuse(key, exc)
                return
            self._accept(key, int(value))
        try:
            self._accept("interp_mode", clean_choice(interp_mode, "interpolation", ("linear", "slerp")))
        except MolvizError as exc:
            self._refuse("interp_mode", exc)
            return
        self._update_map()
        if self._good.get("view_source") == "interpolation":
            self._show_endpoint_channels()
            self._request_view(interactive=True)

    @change("interp_t")
    def on_t(self, interp_t, **_):
        try:
            t = clean_float(interp_t, "t", 0.0, 1.0)
        except MolvizError as exc:
            self._refuse("interp_t", exc)
            return
        if t == self._good.get("interp_t"):
            return
        self._accept("interp_t", t)
        reset = self._good.get("view_source") != "interpolation"
        if reset:
            with self.state.suppress_change_listeners("view_source"):
                self.state.view_source = "interpolation"
            self._good["view_source"] = "interpolation"
            self._show_endpoint_channels()
        self._request_view(interactive=True, reset_camera=reset)

    def _show_endpoint_channels(self) -> None:
        """Show every channel with atoms in A or B (an interpolation passes through both); hide none."""
        try:
            a, b = self._endpoint("a"), self._endpoint("b")
        except MolvizError:
            return
        styles = endpoint_styles(self._styles(), self.ex.channel_names, self.ex.present_channels(a.atoms),
                                 self.ex.present_channels(b.atoms))
        for i, st in enumerate(styles[:MAX_CHANNELS]):
            key = _key("ch", i, "visible")
            if st.visible and not self._good.get(key):
                with self.state.suppress_change_listeners(key):
                    self.state[key] = True
                self._good[key] = True

    def _show_encoded_channels(self) -> None:
        """The typed or uploaded molecule's channels visible, the others hidden (as for a stored item)."""
        if self.encoded is None or self.encoded.atoms is None:
            return
        present = self.ex.present_channels(self.encoded.atoms)
        for i in range(min(len(present), MAX_CHANNELS)):
            key = _key("ch", i, "visible")
            want = bool(present[i])
            if bool(self._good.get(key)) != want:
                with self.state.suppress_change_listeners(key):
                    self.state[key] = want
                self._good[key] = want

    def _endpoint(self, which: str) -> Endpoint:
        i = int(self._good[f"endpoint_{which}"])
        if i == -1:
            if self.encoded is None:
                raise MolvizError("encode a molecule first to use it as an endpoint")
            return self.encoded
        return self.ex.item_endpoint(i)

    @change("playing", "fps")
    def on_play(self, playing, fps, **_):
        try:
            self._accept("fps", clean_int(fps, "fps", 1, 30))
        except MolvizError as exc:
            self._refuse("fps", exc)
            return
        if playing and (self._play_task is None or self._play_task.done()):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._play_task = loop.create_task(self._play())

    async def _play(self) -> None:
        """Advance t at ``fps``; the view lane drops frames the CPU cannot draw in time."""
        direction = 1.0
        while self.state.playing:
            fps = int(self._good.get("fps", 12))
            t = float(self._good.get("interp_t", 0.0)) + direction / (2.0 * fps)
            if t > 1.0 or t < 0.0:
                if self.state.round_trip:
                    direction = -direction
                    t = min(max(t, 0.0), 1.0)
                elif self.state.loop:
                    t = 0.0
                else:
                    t = 1.0
                    with self.state:
                        self.state.playing = False
            with self.state:
                self.state.interp_t = round(t, 4)
            await asyncio.sleep(1.0 / fps)
            await asyncio.sleep(0)

    # ------------------------------------------------------------------ view jobs
    def _request(self, resolution: int) -> Request:
        src = self._good.get("view_source", "item")
        return Request(source=src, resolution=resolution, item=int(self._good.get("item_index", 0)),
                       t=float(self._good.get("interp_t", 0.0)), compare=self._good.get("compare", "reconstruction"),
                       dense=self._slice_wanted)

    def _source_key(self, req: Request) -> tuple:
        if req.source == "item":
            return ("item", req.item)
        if req.source == "encoded":
            return ("encoded", id(self.encoded))
        return ("interp", self._good.get("endpoint_a"), self._good.get("endpoint_b"),
                self._good.get("interp_mode"), round(req.t, 4))

    def _styles(self) -> list[ChannelStyle]:
        g = self._good
        out = []
        for i in range(len(self.ex.channel_names)):
            if i >= MAX_CHANNELS:
                out.append(ChannelStyle(visible=False))
                continue
            out.append(ChannelStyle(visible=bool(g[_key("ch", i, "visible")]), level=float(g[_key("ch", i, "level")]),
                                    mode=g[_key("ch", i, "mode")], color=g[_key("ch", i, "color")],
                                    opacity=float(g[_key("ch", i, "opacity")]),
                                    representation=g[_key("ch", i, "repr")]))
        return out

    def _options(self) -> SceneOptions:
        s = self.state
        return SceneOptions(show_atoms=bool(s.show_atoms), show_outline=bool(s.show_outline),
                            clip_axis=self._good.get("clip_axis", "none"),
                            clip_position=float(self._good.get("clip_position", 0.5)),
                            atoms=self._atoms_shown())

    def _atoms_shown(self) -> str:
        """Which atoms the scene shows: "auto" is the true atoms, except on an interpolation frame whose
        field's own atoms have been found (then those: no cross-fade between two molecules)."""
        mode = self._good.get("atoms_source", "auto")
        if mode != "auto":
            return mode
        view = self.current
        if view is not None and view.extra.get("t") is not None and self._field_atoms_of is view:
            return "field"
        return "true"

    def _playing(self) -> bool:
        return bool(self.state.playing) and self._play_task is not None and not self._play_task.done()

    def _find_field_atoms(self) -> None:
        """Atoms implied by the decoded field of the view on screen (display option "from field" or
        "both"), found in their own lane and added to the picture when they arrive (seconds later)."""
        mode, view = self._good.get("atoms_source", "auto"), self.current
        auto_frame = (mode == "auto" and view is not None and view.extra.get("t") is not None and not self._playing()
                      and field_atoms_by_default(view))
        if (mode == "true" or (mode == "auto" and not auto_frame)) or view is None or self.explorer is None:
            self.state.atoms_text = ""
            self.atoms_lane.cancel()
            return
        ex = self.ex
        self.state.atoms_text = "finding atoms in the decoded field\u2026"

        def done(result):
            parts, text = result
            if self.current is view:
                self.scene.add_actors(parts, replace=":field")
                if mode == "auto":
                    self._field_atoms_of = view
                    self.scene.set_display(self._options())
                self._push_view()
                with self.state:
                    self.state.atoms_text = text + (" (this frame's own atoms; 'true' shows the ends fading)"
                                                     if mode == "auto" else "")

        self.atoms_lane.submit(lambda _stop: ex.view_field_atoms(view, true_too=mode == "both"), done, self._error)

    def _request_view(self, *, interactive: bool, reset_camera: bool = False, restyle_only: bool = False,
                      initial: bool = False) -> None:
        """Queue the view's recomputation: coarse first while the user moves, full resolution when they stop."""
        if self.explorer is None:
            return
        full = int(self.state.resolution)
        req = self._request(full)
        if restyle_only and self.current is not None and self.current.extra.get("request") == req:
            self._submit_view(req, reset_camera=reset_camera)           # volumes cached: isosurfaces only
            return
        have_full = (self._source_key(req), full) in self._have
        if (interactive or initial) and full > COARSE and not have_full:
            coarse = self._request(COARSE)
            coarse.final = False
            self._coarse_pending = True
            self._submit_view(coarse, reset_camera=reset_camera, initial=initial)
            if initial:
                self._refine_pending = True
                return
            self._refine.trigger()
        else:
            self._refine.cancel()
            self._submit_view(req, reset_camera=reset_camera, initial=initial)

    def _refine_now(self) -> None:
        self._refine_pending = False
        if self._coarse_pending and self.view_lane.busy:
            # the coarse picture first: submitting now would supersede it in the latest-wins lane, and a
            # click would show nothing until the full resolution is done (8 s for a 64^3 item under load)
            self._refine_after_coarse = True
            return
        if self.explorer is not None:
            self._submit_view(self._request(int(self.state.resolution)))

    def _submit_view(self, req: Request, *, reset_camera: bool = False, initial: bool = False) -> None:
        ex, styles = self.ex, self._styles()
        source = self._source_key(req)
        a = b = None
        if req.source == "interpolation":
            try:
                a, b = self._endpoint("a"), self._endpoint("b")
            except MolvizError as exc:
                self._error(exc)
                return
        encoded = self.encoded
        self.state.busy_text = f"decoding {req.resolution}\u00b3" if (source, req.resolution) not in self._have \
            else "updating surfaces"

        levels = _adaptive_levels(styles, req)
        refining = self._progress_begin(req.resolution, levels is None) \
            if req.final and req.resolution > COARSE and (source, req.resolution) not in self._have else None

        def work(should_stop):
            t0 = time.perf_counter()
            if refining is not None:              # its percentage counts the chunks the engine decodes
                refining.started = True
                should_stop = refining.counting(should_stop)
            if req.source == "item":
                want_truth = req.compare != "reconstruction" or (req.final and req.resolution <= TRUTH_FOR_PSNR)
                view = ex.item_view(req.item, req.resolution, truth=want_truth, should_stop=should_stop,
                                    levels=levels)
                if req.final and view.truth is None:       # decoded adaptively: the chip's PSNR from a sample
                    view.extra["psnr_sampled"] = ex.sampled_psnr(req.item, req.resolution, should_stop=should_stop)
            elif req.source == "encoded":
                view = ex.latent_view(f"encoded: {encoded.label}", encoded.latent, encoded.box, req.resolution,
                                      atoms=encoded.atoms, should_stop=should_stop, levels=levels)
            else:
                view = ex.frame(a, b, req.t, mode=self._good.get("interp_mode", "linear"),
                                resolution=req.resolution, should_stop=should_stop, levels=levels)
            view.extra["request"] = req
            if req.compare == "side_by_side" and req.source != "item":
                self._compare_with_nearest(view, req.resolution)
            layers = view_layers(view, ex.channel_names, req.compare)
            built = build_scene(layers, styles, BUILD_OPTIONS)   # every part: Scene.set_display shows some
            return view, built, time.perf_counter() - t0

        def done(result):
            view, built, seconds = result
            if len(self._have) > 4096:            # long sessions: forget, at worst one extra coarse pass
                self._have.clear()
            self._have.add((source, req.resolution))
            self.current, self.built = view, built
            if not req.final:
                self._coarse_pending = False
            self.scene.show(built, reset_camera=reset_camera or None)
            for name, st in zip(ex.channel_names, self._styles()):   # colours changed while it decoded
                if st.visible:
                    self.scene.restyle_channel(name, color=st.color, opacity=st.opacity,
                                               representation=st.representation)
            self._after_show()
            self._progress_end(refining, finished=True)
            self._push_view(reset_camera=reset_camera)
            self._after_view(view, req, seconds)
            if self.first_picture_s is None:
                self.first_picture_s = time.perf_counter() - self.t_start
                self.state.first_picture_s = round(self.first_picture_s, 2)
                log.info("first picture ready %.1f s after the app started (%s)", self.first_picture_s,
                         self.state.view_caption)
            if not self.state.map_load:
                self.state.map_load = True
            if self._refine_after_coarse:
                self._refine_after_coarse = False
                self._refine.trigger()
            if req.final:
                self._find_field_atoms()
            self.state.flush()

        self.view_lane.submit(work, done, self._error)

    def _after_view(self, view: View, req: Request, seconds: float) -> None:
        s = self.state
        psnr = view.psnr
        shown = {"reconstruction": "reconstruction", "truth": "ground truth",
                 "side_by_side": "side by side"}[req.compare]
        sampled = view.extra.get("psnr_sampled")
        key = self._source_key(req)
        if psnr is not None:
            s.psnr_text = f"PSNR {psnr:.1f} dB at {req.resolution}\u00b3"
        elif sampled is not None:
            s.psnr_text = f"PSNR {sampled[0]:.1f} dB at {req.resolution}\u00b3 (sampled, {sampled[1]:,} voxels)"
        elif req.final or key != self._psnr_key:   # a coarse pass of the same view keeps the chip meanwhile
            s.psnr_text = ""
        self._psnr_key = key
        how = " adaptive" if view.extra.get("adaptive") else ""
        if view.surfaces is not None:
            how = f" surfaces on {self.ex.engine.device.type.upper()}"
        s.view_caption = (f"{view.label} \u00b7 {shown} \u00b7 {req.resolution}\u00b3{how} \u00b7 "
                          f"{seconds * 1000:.0f} ms")
        s.resolution_shown = req.resolution
        if req.source == "interpolation":
            self._update_map()                    # the marker of t on the path follows the picture
        for i in range(min(MAX_CHANNELS, view.n_channels)):
            if self._good.get(_key("ch", i, "mode")) == "absolute":
                self._set_level_range(i, "absolute")

    # ------------------------------------------------------------------ screenshot, export
    @trigger("screenshot_png")
    def screenshot_png(self):
        try:
            scale = clean_int(self.state.screenshot_scale, "supersampling", 1, self.limits.max_supersample)
        except MolvizError as exc:
            self._error(exc)
            return None
        try:
            size = clean_choice(self.state.screenshot_size, "picture size", tuple(PICTURE_SIZES))
        except MolvizError as exc:
            self._error(exc)
            return None
        bar = self._local_value_bar()             # the browser draws it in HTML; a PNG needs it drawn in
        try:
            image = self.scene.picture(size=PICTURE_SIZES[size], scale=scale,
                                       transparent=clean_bool(self.state.screenshot_transparent))
        finally:
            if bar is not None:
                self.scene.set_value_bar(None)
        self._push_view()                         # the window is back to the view's size
        data = png_bytes(image)
        return self.server.protocol.addAttachment(data) if self.server.protocol else data

    @trigger("surfaces_glb")
    def surfaces_glb(self):
        """The scene's meshes as one GLB (isosurfaces in their colours and opacities, atoms with their
        element colours, bonds), in angstrom: for Blender, three.js or a slide's 3D model."""
        if self.built is None:
            self._error("nothing to download yet: wait for the first picture")
            return None
        data = scene_glb(displayed(self.built, self._options()))
        return self.server.protocol.addAttachment(data) if self.server.protocol else data

    @trigger("maps_zip")
    def maps_zip(self):
        """The visible channels of the reconstruction on screen as CCP4 maps (one per channel, in a zip),
        decoded densely at the view's resolution: for ChimeraX, PyMOL or Coot."""
        view = self.current
        if view is None:
            self._error("nothing to download yet: wait for the first picture")
            return None
        try:
            data = self._maps_zip(view)
        except MolvizError as exc:
            self._error(exc)
            return None
        return self.server.protocol.addAttachment(data) if self.server.protocol else data

    def _maps_zip(self, view: View) -> bytes:
        shown = [c for c, st in enumerate(self._styles()) if st.visible] or list(range(len(self.ex.channel_names)))
        return maps_zip(self.ex, view, shown, max_bytes=MAX_MAPS_BYTES)

    def _export_config(self, fmt=None, size=None, frames=None, fps=None, orbit=None,
                       round_trip=None, title=None) -> tuple[MovieConfig, str]:
        """The movie settings the button sent (the page's values at the click), validated."""
        s = self.state
        fmt = clean_choice(s.export_format if fmt is None else fmt, "movie format", ("gif", "mp4"))
        size = clean_choice(s.export_size if size is None else size, "movie size", tuple(EXPORT_SIZES))
        frames = clean_int(s.export_frames if frames is None else frames, "frames", 2, self.limits.max_frames)
        fps = clean_int(s.export_fps if fps is None else fps, "movie fps", 1, 60)
        orbit = clean_bool(s.export_orbit if orbit is None else orbit)
        round_trip = clean_bool(s.round_trip if round_trip is None else round_trip)
        title = clean_text(s.export_title if title is None else title, "movie title", self.limits)
        cfg = MovieConfig(frames=frames, fps=fps, size=EXPORT_SIZES[size], mode=self._good.get("interp_mode", "linear"),
                          resolution=min(int(self.state.resolution), 64), round_trip=round_trip,
                          orbit=60.0 if orbit else 0.0, title=title[:120],
                          # the movie's atoms follow the view's option
                          atoms={"true": "fade", "auto": "auto"}.get(self._good.get("atoms_source", "auto"),
                                                                      "field"))
        return cfg, fmt

    @trigger("export_movie")
    async def export_movie(self, *settings):
        """Render the A -> B movie in a worker thread (progress bar), then hand the file to the browser."""
        if self._exporting:
            self._error("an export is already running; wait for it to finish")
            return None
        try:
            cfg, fmt = self._export_config(*settings[:7])
            a, b = self._endpoint("a"), self._endpoint("b")
        except MolvizError as exc:
            self._error(exc)
            return None
        import tempfile
        self._exporting = True
        with self.state:
            self.state.exporting = True
            self.state.export_progress = 0
        loop = asyncio.get_running_loop()
        styles = endpoint_styles(self._styles(), self.ex.channel_names, self.ex.present_channels(a.atoms),
                                 self.ex.present_channels(b.atoms))
        options = self._options()

        def progress(k, n):
            loop.call_soon_threadsafe(self._export_progress, 100.0 * k / n)

        try:
            with tempfile.TemporaryDirectory(prefix="molviz-export-") as tmp:
                out = Path(tmp) / f"movie.{fmt}"
                await loop.run_in_executor(None, lambda: render_movie(
                    self.ex, a, b, out, styles=styles, options=options, config=cfg, progress=progress))
                data = out.read_bytes()
        except Exception as exc:  # noqa: BLE001 - reported in the page; the server stays up
            self._error(exc)
            return None
        finally:
            self._exporting = False
            with self.state:
                self.state.exporting = False
        return self.server.protocol.addAttachment(data) if self.server.protocol else data

    def _export_progress(self, pct: float) -> None:
        with self.state:
            self.state.export_progress = round(pct, 1)

    # ------------------------------------------------------------------ encode a SMILES
    @controller.set("encode_smiles")
    def encode_smiles(self, **_):
        """Encode the typed SMILES in the encode lane: progress by stage, cancellable, and shown when done
        only if the user has not moved on to another view meanwhile (else "show" offers it)."""
        try:
            smiles = clean_smiles(self.state.smiles, self.limits)
        except MolvizError as exc:
            self._error(exc)
            return
        ex = self.ex
        loop = _running_loop()
        view_when_asked = self._view_token()
        with self.state:
            self.state.encoding = True
            self.state.encode_progress = 0
            self.state.encode_stage = f"encoding {smiles}"

        def progress(pct: float, what: str) -> None:
            if loop is not None:
                loop.call_soon_threadsafe(self._encode_progress, pct, what)

        def work(should_stop):
            enc = ex.encode(smiles, progress=progress, should_stop=should_stop)
            return enc, ex.neighbours(enc.placed_latent, 5)

        def done(result):
            enc, nbs = result
            self._encoded_done(ex, enc, nbs, view_when_asked)

        def failed(exc):
            self._encode_finished()
            if not isinstance(exc, InterruptedError):
                self._error(exc)

        self.aux_lane.submit(work, done, failed)

    def _encoded_done(self, ex: Explorer, enc: Endpoint, nbs: list[tuple[int, float]], view_when_asked: tuple,
                      notes: list[str] | None = None) -> None:
        """An encoded molecule (typed or uploaded): placed on the map, its neighbours listed, offered as an
        endpoint, and shown if the user has not moved on meanwhile."""
        self._encode_finished()
        if self.explorer is not ex:
            return
        self.encoded = enc
        if self.map is not None:
            self.encoded_xy, how = self.map.place(enc.placed_latent)
        else:
            self.encoded_xy, how = None, "no latent map"
        labels = ex.item_labels()
        label = enc.label
        with self.state:
            self.state.has_encoded = True
            self.state.neighbours_title = f"nearest to {label} in latent space"
            said = ["; ".join(notes)] if notes else []
            if enc.map_latent is not None:
                said.append(f"surfaces from the encoder's latent refined {ex.refine_steps} steps against its atoms")
            warnings = list(getattr(enc, "warnings", []) or [])
            if warnings:
                said.append("Outside the training set: " + "; ".join(warnings))
            self.state.placement_text = f"{label}: placed on the map by {how}" + "".join(f". {x}" for x in said)
            self.state.neighbours = [{"index": i, "title": f"{i}: {labels[i]}",
                                      "subtitle": f"latent distance {d:.3f}"} for i, d in nbs]
            opts = [o for o in self.state.endpoint_options if o["value"] != -1]
            kind = "typed" if enc.smiles and enc.smiles == label else "file"
            self.state.endpoint_options = [{"title": f"{kind}: {label}", "value": -1}, *opts]
        self._path_cache = None
        self._update_map(highlight=[i for i, _ in nbs])
        if self._view_token() == view_when_asked:
            self.show_encoded()

    # ------------------------------------------------------------------ upload a structure file
    @change("upload_file")
    def on_upload(self, upload_file, **_):
        """A structure file from the browser: read (same loaders and limits as a path, in a temporary folder),
        then encoded (auto-encoder) or fitted (auto-decoder) in the encode lane, with progress and cancel."""
        if upload_file is None or self.explorer is None:
            return
        with self.state.suppress_change_listeners("upload_file"):
            self.state.upload_file = None          # the bytes are not kept in the shared state
        try:
            name, content = clean_upload(upload_file, self.limits)
        except MolvizError as exc:
            self._error(exc)
            return
        ex = self.ex
        spec = ex.bundle.spec
        loop = _running_loop()
        view_when_asked = self._view_token()
        limits = self.limits
        with self.state:
            self.state.encoding = True
            self.state.encode_progress = 0
            self.state.encode_stage = f"reading {name}"

        def progress(pct: float, what: str) -> None:
            if loop is not None:
                loop.call_soon_threadsafe(self._encode_progress, pct, what)

        def work(should_stop):
            from molviz.view.upload import read_upload
            progress(2.0, f"reading {name}")
            structure, notes = read_upload(name, content, hydrogens=spec.hydrogens, max_file_mb=limits.max_upload_mb)
            if should_stop():
                raise InterruptedError("encoding cancelled")
            enc = ex.encode_structure(structure, label=structure.name or name, progress=progress,
                                      should_stop=should_stop, start=10.0)
            return enc, ex.neighbours(enc.placed_latent, 5), notes

        def done(result):
            enc, nbs, notes = result
            self._encoded_done(ex, enc, nbs, view_when_asked, notes)

        def failed(exc):
            self._encode_finished()
            if not isinstance(exc, InterruptedError):
                self._error(exc if isinstance(exc, MolvizError) else
                            f"could not read {name}: {type(exc).__name__}: {exc}")

        self.aux_lane.submit(work, done, failed)

    @change("upload_refused")
    def on_upload_refused(self, upload_refused, **_):
        if upload_refused:
            self._error(f"{str(upload_refused)[:120]} is above the upload limit of {self.limits.max_upload_mb:g} MB: "
                        "send a smaller file (one model, fewer frames) or use `molviz encode FILE` on the command line")
            with self.state.suppress_change_listeners("upload_refused"):
                self.state.upload_refused = ""

    # ------------------------------------------------------------------ model list
    @controller.set("refresh_models")
    def refresh_models(self, **_):
        """Look for bundles again (the bundled folder, ``--models-dir``): ones trained since start-up appear;
        the model on screen stays selected."""
        current = self.catalog[int(self._good.get("model_index", 0))]
        found = find_bundles(*(p for p in (self._first_bundle, bundled_models_dir(), self._models_dir) if p))
        if current not in found:
            found = [current, *found]
        added = [p.name for p in found if p not in self.catalog]
        self.catalog = found
        index = found.index(current)
        with self.state:
            self.state.model_options = [{"title": p.name, "value": i} for i, p in enumerate(found)]
            with self.state.suppress_change_listeners("model_index"):
                self.state.model_index = index
            self._good["model_index"] = index
        self.state.flush()
        if added:
            log.info("models found: %s", ", ".join(added))

    def _view_token(self) -> tuple:
        g = self._good
        return (g.get("view_source"), g.get("item_index"), g.get("endpoint_a"), g.get("endpoint_b"),
                g.get("interp_t"), g.get("model_index"))

    def _encode_progress(self, pct: float, what: str) -> None:
        if not self.state.encoding:
            return
        with self.state:
            self.state.encode_progress = round(float(pct), 1)
            self.state.encode_stage = what

    def _encode_finished(self) -> None:
        with self.state:
            self.state.encoding = False
            self.state.encode_progress = 0
            self.state.encode_stage = ""

    @controller.set("cancel_encode")
    def cancel_encode(self, **_):
        """Drop the running encode: its result is never shown; a conformer being embedded is killed."""
        self.aux_lane.cancel()
        self._encode_finished()

    @controller.set("item_neighbours")
    def item_neighbours(self, **_):
        """The stored items nearest (latent L2) to the item on screen, listed and ringed on the map."""
        if self.explorer is None:
            return
        i = int(self._good.get("item_index", 0))
        nbs = [(j, d) for j, d in self.ex.neighbours(self.ex.latent(i), 6) if j != i][:5]
        labels = self.ex.item_labels()
        with self.state:
            self.state.neighbours_title = f"nearest to {labels[i]} in latent space"
            self.state.neighbours = [{"index": j, "title": f"{j}: {labels[j]}",
                                      "subtitle": f"latent distance {d:.3f}"} for j, d in nbs]
        self._update_map(highlight=[j for j, _ in nbs])
        self.state.flush()

    @controller.set("show_encoded")
    def show_encoded(self, **_):
        if self.encoded is None:
            return
        if self._good.get("view_source") == "encoded":
            self._show_encoded_channels()
            self._request_view(interactive=True, reset_camera=True)
        else:
            self.state.view_source = "encoded"
            self.state.flush()

    @controller.set("encoded_as_a")
    def encoded_as_a(self, **_):
        if self.encoded is not None:
            self.state.endpoint_a = -1
            self.state.flush()

    @controller.set("encoded_as_b")
    def encoded_as_b(self, **_):
        if self.encoded is not None:
            self.state.endpoint_b = -1
            self.state.flush()

    # ------------------------------------------------------------------ latent map
    def _load_map(self) -> None:
        ex = self.ex
        self.map = LatentMap.from_bundle(ex.bundle)
        if self.map is not None:
            self._map_ready()
            return
        self.state.map_items, self._items_key = [], None
        self.state.map_figure = _EMPTY_FIGURE
        if ex.n_items < 4:
            self.state.map_source = f"no latent map: the bundle has {ex.n_items} item(s)"
            return
        self.state.map_source = ("this bundle ships no latent map: computing UMAP (umap-learn, n_neighbors=5) "
                                 "now, about half a minute")
        bundle = ex.bundle
        try:
            asyncio.get_running_loop()
        except RuntimeError:          # not serving yet: start it with the server (on_server_ready)
            self._map_pending = True
            return

        def done(m):
            if self.explorer is not None and self.explorer.bundle is bundle:
                self.map = m
                self._map_ready()
                self.state.flush()          # a lane's callback: nothing else sends the new figure

        self.map_lane.submit(lambda _stop: LatentMap.compute(bundle), done, self._error)

    def _map_ready(self) -> None:
        m = self.map
        with self.state:
            self.state.map_color_options = [{"title": m.label(k), "value": k} for k in m.color_options] + [
                {"title": "nothing (one colour)" if m.color_options else "nothing: this bundle has no descriptors",
                 "value": "none"}]
            if self.state.map_color_by not in m.color_options:
                self.state.map_color_by = m.color_options[0] if m.color_options else "none"
            self._good["map_color_by"] = self.state.map_color_by
            self.state.map_source = f"map: {m.source}; {len(m.coords)} items"
        self._update_map()

    @change("map_color_by")
    def on_map_color(self, map_color_by, **_):
        options = self.map.color_options if self.map is not None else []
        if map_color_by == self._good.get("map_color_by"):
            return
        if map_color_by not in [*options, "none"]:
            self._refuse("map_color_by", MolvizError(f"colour by must be one of {', '.join([*options, 'none'])}"))
            return
        self._accept("map_color_by", map_color_by)
        self._update_map()

    @change("map_pick_mode")
    def on_map_pick_mode(self, map_pick_mode, **_):
        # validated on its own: a colour-by the bundle lacks never holds the click mode back
        try:
            mode = clean_choice(map_pick_mode, "click mode", ("view", "endpoints"))
        except MolvizError as exc:
            self._refuse("map_pick_mode", exc)
            return
        self._accept("map_pick_mode", mode)
        self._pick_next = "a"

    @change("map_search")
    def on_map_search(self, map_search, **_):
        """Ring the items whose name, id or SMILES matches the text (same molecule, substructure, name);
        searched in the search lane, so a first search that builds the index never holds the page."""
        if self.explorer is None:
            return
        try:
            text = clean_text(map_search or "", "search", self.limits)
        except MolvizError as exc:
            self._good.setdefault("map_search", "")
            self._refuse("map_search", exc)
            return
        self._accept("map_search", map_search or "")
        if not text:
            self.search_lane.cancel()
            self._show_found([], "", 0, "")
            return
        ex = self.ex
        self.state.map_found_text = ("searching\u2026" if ex.has_search_index else
                                     f"building the search index over {ex.n_items} molecules (once)\u2026")
        self.state.flush()

        def done(result):
            if self.explorer is ex:
                self._show_found(*result, text)

        def failed(exc):
            self._show_found([], "", 0, text)
            self._error(exc)

        self.search_lane.submit(lambda _stop: ex.find(text, limit=200), done, failed)

    def _show_found(self, found: list[int], how: str, total: int, text: str) -> None:
        self._found = found
        with self.state:
            self.state.map_found = total
            self.state.map_found_text = ("" if not text else "no match" if not total else
                                         f"{total} match{'es' if total != 1 else ''} ({how})"
                                         + (f", {len(found)} ringed" if total > len(found) else ""))
        self._update_map()
        self.state.flush()

    def _prepare_search(self) -> None:
        """A large bundle's search index, read or built in the search lane at once (a first search
        would otherwise wait minutes for RDKit to parse 93k SMILES)."""
        ex = self.ex
        if ex.n_items >= SEARCH_INDEX_FROM and not ex.has_search_index and _running_loop() is not None:
            self.index_lane.submit(lambda _stop: ex.search_index(), lambda _index: None,
                                   lambda exc: log.warning("search index of %s: %s", ex.name, exc))

    def _update_map(self, highlight: list[int] | None = None) -> None:
        if self.map is None or self.map_widget is None:
            return
        if highlight is None:
            highlight = self._found
        g = self._good
        a, b = g.get("endpoint_a"), g.get("endpoint_b")
        path = None
        ends = []
        for e in (a, b):
            if e == -1 and self.encoded_xy is not None:
                ends.append(self.encoded_xy)
            elif e is not None and 0 <= int(e) < len(self.map.coords):
                ends.append(self.map.coords[int(e)])
        if len(ends) == 2 and self.explorer is not None:
            try:
                path = self._map_path(a, b)
            except MolvizError:
                path = np.array(ends)
        extra = (self.encoded_xy, self.encoded.label) if self.encoded is not None and self.encoded_xy is not None \
            else None
        at = None
        if path is not None and g.get("view_source") == "interpolation":
            t = float(g.get("interp_t", 0.0))
            at = (self.map.along(path, t), f"t = {t:.2f}")
        fig = self.map.figure(g.get("map_color_by", "expt"), selected=int(g.get("item_index", 0)),
                              endpoints=(a if a != -1 else None, b if b != -1 else None), path=path,
                              extra=extra, highlight=highlight, at=at, chosen=self._selected or None)
        # the items' trace (93k points at library scale) is sent only when it changes; the overlays
        # (rings, endpoints, path) travel alone, and plotly redraws the big trace only when it is new
        items_key = (id(self.map), g.get("map_color_by"), tuple(self._selected))
        with self.state:
            if items_key != self._items_key:
                self._items_key = items_key
                self.state.map_items = fig.data[:1]
            self.state.map_figure = {"data": fig.data[1:], "layout": fig.layout}

    def _map_path(self, a, b) -> np.ndarray:
        """Map positions of the interpolation path (each intermediate latent placed like a new molecule)."""
        key = (a, b, self._good.get("interp_mode"), id(self.encoded), id(self.map))
        if self._path_cache is not None and self._path_cache[0] == key:
            return self._path_cache[1]
        path = self._compute_map_path(a, b)
        self._path_cache = (key, path)
        return path

    def _compute_map_path(self, a, b) -> np.ndarray:
        from molviz.engine import interpolate
        ea, eb = self._endpoint("a"), self._endpoint("b")
        zs = interpolate(ea.latent, eb.latent, np.linspace(0, 1, 11), mode=self._good.get("interp_mode", "linear"))
        pts = [self.map.place(z, k=3)[0] for z in np.asarray(zs)]
        # ends where their points are: a stored item's, or the encoded molecule's star
        for end, value in ((0, a), (-1, b)):
            if value != -1:
                pts[end] = self.map.coords[int(value)]
            elif self.encoded_xy is not None:
                pts[end] = self.encoded_xy
        return np.asarray(pts)

    def on_map_click(self, event=None, *_args, **_kwargs):
        """A click on a point: show that item, or (endpoint mode) set A then B."""
        try:
            index = _clicked_index(event)
            if index is None or self.explorer is None:
                return
            index = clean_int(index, "map point", 0, self.ex.n_items - 1)
        except MolvizError as exc:
            self._error(exc)
            return
        if self.state.map_pick_mode == "endpoints" and self._good.get("map_pick_mode") == "endpoints":
            key = f"endpoint_{self._pick_next}"
            self._pick_next = "b" if self._pick_next == "a" else "a"
            self.state[key] = index
            self.state.flush()
            return
        if index == self._good.get("item_index") and self._good.get("view_source") != "item":
            self.state.view_source = "item"             # the item on screen before an interpolation: back to it
        self.state.item_index = index
        self.state.flush()

    def on_map_select(self, indices=None, *_args, **_kwargs):
        """A box or lasso selection on the map (indices of the items' trace; [] when cleared): counted,
        listed (first 200) and ready for the CSV download."""
        if self.map is None:
            return
        n = len(self.map.coords)
        if not isinstance(indices, list):
            indices = []
        picked = sorted({int(i) for i in indices if isinstance(i, (int, float)) and not isinstance(i, bool)
                         and math.isfinite(i) and 0 <= int(i) < n})
        self._selected = picked
        names = self.map.names
        with self.state:
            self.state.map_selection = [{"index": i, "title": f"{i}: {names[i]}"} for i in picked[:200]]
            self.state.map_selection_text = ("" if not picked else
                                              f"{len(picked)} item{'s' if len(picked) != 1 else ''} selected"
                                              + (" (the list shows 200; the CSV has all)" if len(picked) > 200
                                                 else ""))
        self.state.flush()

    @controller.set("clear_map_selection")
    def clear_map_selection(self, **_):
        self.on_map_select([])
        self._update_map()

    @trigger("selection_csv")
    def selection_csv(self):
        """The selected items as CSV: index, name, SMILES, map position and every property the map colours by."""
        if self.map is None or not self._selected:
            self._error("nothing selected: use the box or lasso tool in the map's toolbar first")
            return None
        data = self.map.selection_csv(self._selected).encode()
        return self.server.protocol.addAttachment(data) if self.server.protocol else data

    def on_map_hover(self, event=None, *_args, **_kwargs):
        index = _clicked_index(event)
        if index is None or self.map is None or not 0 <= index < len(self.map.coords):
            return
        smiles = self.map.smiles[index] or ""
        lines = [f"<b>{_html(self.map.names[index])}</b>", _html(smiles)]
        for key in self.map.color_options:
            if math.isfinite(self.map.values[key][index]):
                lines.append(f"{key}: {self.map.values[key][index]:.3g}")
        with self.state:
            self.state.hover_svg = depiction_svg(smiles) if smiles else ""
            self.state.hover_text = "<br>".join(lines)

    # ------------------------------------------------------------------ tests and tools
    async def idle(self) -> None:
        """Wait until every lane and any pending refinement has finished (tests, scripts)."""
        for _ in range(200):
            await asyncio.gather(self.view_lane.idle(), self.aux_lane.idle(), self.map_lane.idle(),
                                 self.search_lane.idle())
            if self._refine._handle is None and not self.view_lane.busy and not self.aux_lane.busy:
                return
            await asyncio.sleep(REFINE_DELAY / 2)

    def on_server_ready(self) -> None:
        """After the server is up: open a deferred first model, or decode the initial view at full resolution;
        compute a missing map."""
        if getattr(self, "_defer_load", False):
            self._defer_load = False
            self._load_model_in_background(0)
            return
        if self._refine_pending:
            self._refine_pending = False
            self._refine.trigger()
        if getattr(self, "_map_pending", False):
            self._map_pending = False
            self._load_map()
        if self.explorer is not None:
            self._prepare_search()


WORKER_NICE = 10                    # niceness of the decode threads relative to the event loop
SEARCH_INDEX_FROM = 5000            # bundles from this many items read or build their search index at load
BUILD_OPTIONS = SceneOptions(show_atoms=True, show_outline=True, clip_axis="none")   # the app's scenes hold
                                    # every part; atoms, outline and clip are switched on the shown scene
ADAPTIVE_FROM = 48                  # resolutions from which surfaces are decoded adaptively (CPU bench: 64^3
                                    # FreeSolv 0.10 s adaptive against 0.50 s dense)


def _adaptive_levels(styles: list[ChannelStyle], req: Request) -> np.ndarray | None:
    """Absolute levels for an adaptive decode of a reconstruction, or None where it must be dense:
    small grids, ground truth shown (the volumes are compared), a slice shown (it reads every voxel), or a
    level in fraction/percent mode (those need the whole volume)."""
    if req.compare != "reconstruction" or req.resolution < ADAPTIVE_FROM or req.dense:
        return None
    levels = np.full(len(styles), np.nan)
    for c, st in enumerate(styles):
        if not st.visible:
            continue
        if st.mode != "absolute":
            return None
        levels[c] = float(st.level)
    return levels if np.isfinite(levels).any() else None


def _running_loop():
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _clicked_index(event) -> int | None:
    if not isinstance(event, dict):
        return None
    points = event.get("points")
    if not isinstance(points, list) or not points or not isinstance(points[0], dict):
        return None
    p = points[0]
    if int(p.get("curveNumber", 0) or 0) != 0:
        return None
    value = p.get("customdata")
    if value is None:               # WebGL maps carry no customdata: the point's index is the item's
        value = p.get("pointIndex", p.get("pointNumber"))
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return int(x) if math.isfinite(x) and x == int(x) else None


def _html(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


__all__ = ["MAX_CHANNELS", "MolvizApp"]
