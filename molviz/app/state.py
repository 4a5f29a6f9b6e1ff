"""The page's state: every key the layout binds, its default, and the app's fixed settings.

One module, so the layout, the app's reactions and the tests agree on names; the app writes
:func:`state_defaults` into trame's state at start-up.
"""
from __future__ import annotations

from typing import Any

MAX_CHANNELS = 16                  # channel cards the page has (a bigger bundle shows its first 16)
COARSE = 32                        # resolution of the quick first pass while the user drags
REFINE_DELAY = 0.35                # seconds without input before the full resolution is decoded
LOCAL_MAX_POINTS = 3_000_000       # mesh points the browser is asked to draw itself (local rendering)
TRUTH_FOR_PSNR = 64                # below this the truth is sampled even when not shown, for the PSNR chip
EXPORT_SIZES = {"480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080)}
RESOLUTIONS = ["32", "64", "128", "256", "custom"]
PICTURE_SIZES = {"view": None, "1920x1080": (1920, 1080), "3840x2160": (3840, 2160), "2000x2000": (2000, 2000),
                 "1200x900": (1200, 900)}      # PNG sizes (pixels); "view": the view's size times the supersampling
_EMPTY_FIGURE = {"data": [], "layout": {"xaxis": {"visible": False}, "yaxis": {"visible": False}}}
CHANNEL_FIELDS = ("visible", "level", "mode", "color", "opacity", "repr")
LEVEL_RANGES = {"fraction": (0.01, 1.0, 0.01), "percent": (0.1, 50.0, 0.1),
                "sigma": (0.0, 10.0, 0.1)}   # min, max, step
# Fields are normalised to [0, 1] (Eq. 1, divided by each channel's maximum), so one absolute level
# means the same on the reconstruction and on the ground truth (defaults: molviz.view.looks).


def _key(prefix: str, i: int, name: str) -> str:
    return f"{prefix}{i}_{name}"


def channel_keys() -> list[str]:
    return [_key("ch", i, f) for i in range(MAX_CHANNELS) for f in CHANNEL_FIELDS]


def state_defaults() -> dict[str, Any]:
    """Every state key the page binds and its value before a model opens."""
    s: dict[str, Any] = {}
    s["model_index"] = 0
    s["item_index"] = 0
    s["item_options"] = []
    s["view_source"] = "item"
    s["view_caption"] = ""
    s["resolution_choice"] = "64"
    s["resolution_custom"] = 96          # the committed custom resolution (Enter or leaving the field)
    s["resolution_typed"] = 96           # what the field holds while the user types (never validated)
    s["resolution"] = 64
    s["compare"] = "reconstruction"
    s["psnr_text"] = ""
    s["busy"] = False
    s["busy_text"] = ""
    s["show_atoms"] = True
    s["show_outline"] = True
    s["atoms_source"] = "auto"           # auto (true; an interpolation frame's own, found in its field) | true
                                         # | field (found in the decoded field) | both
    s["atoms_text"] = ""                 # what was found in the field
    s["clip_axis"] = "none"
    s["clip_position"] = 0.5
    s["view_mode"] = "remote"
    s["screenshot_scale"] = 2
    s["screenshot_size"] = "view"
    s["screenshot_transparent"] = False
    s["n_channels"] = 0
    s["channel_names"] = []
    for i in range(MAX_CHANNELS):
        s[_key("ch", i, "visible")] = False
        s[_key("ch", i, "level")] = 0.5
        s[_key("ch", i, "mode")] = "fraction"
        s[_key("ch", i, "color")] = "#909090"
        s[_key("ch", i, "opacity")] = 1.0
        s[_key("ch", i, "repr")] = "surface"
        s[_key("ch", i, "level_min")] = 0.01
        s[_key("ch", i, "level_max")] = 1.0
        s[_key("ch", i, "level_step")] = 0.01
    s["endpoint_a"] = 0
    s["endpoint_b"] = 1
    s["endpoint_options"] = []
    s["interp_mode"] = "linear"
    s["interp_t"] = 0.0
    s["playing"] = False
    s["loop"] = True
    s["round_trip"] = False
    s["fps"] = 12
    s["export_format"] = "mp4"
    s["export_size"] = "720p"
    s["export_frames"] = 60
    s["export_fps"] = 24
    s["export_orbit"] = False
    s["export_title"] = ""               # drawn on every frame of the movie, above the endpoints' names
    s["exporting"] = False
    s["export_progress"] = 0
    s["smiles"] = ""
    s["encoding"] = False                # an encode runs (progress bar and cancel button shown)
    s["encode_progress"] = 0             # percent, by stage
    s["encode_stage"] = ""
    s["has_encoded"] = False
    s["neighbours"] = []
    s["neighbours_title"] = ""
    s["help_show"] = False
    s["help_first"] = False              # the first-run help (the browser sets it on its first visit)
    s["placement_text"] = ""
    s["map_color_by"] = "expt"
    s["map_color_options"] = []
    s["map_pick_mode"] = "view"
    s["map_search"] = ""
    s["map_found"] = 0
    s["map_found_text"] = ""             # "3 matches (substructure)", "no match"
    s["map_source"] = ""
    s["map_items"] = []                  # the map's items trace (sent when it changes; map_figure: the rest)
    s["map_selection"] = []              # items in the map's box or lasso selection (listed, first 200)
    s["map_selection_text"] = ""         # "12 items selected"
    s["upload_file"] = None              # a structure file chosen in the browser ({name, size, content})
    s["upload_max_mb"] = 20.0            # shown beside the file input; the server checks again
    s["upload_refused"] = ""             # the name of a file the browser refused as too large
    s["hover_svg"] = ""
    s["hover_text"] = ""
    s["error_text"] = ""
    s["error_show"] = False
    s["first_picture_s"] = None
    s["map_load"] = False                # the browser loads plotly.js once this turns true
    return s


# keys whose last good value is kept, so a refused client value is put back
REMEMBERED = ("model_index", "item_index", "resolution_choice", "resolution_custom", "compare", "clip_axis",
              "atoms_source",
              "clip_position", "endpoint_a", "endpoint_b", "interp_mode", "interp_t", "fps", "export_format",
              "export_size", "export_frames", "export_fps", "map_color_by", "map_pick_mode", "view_source",
              "view_mode", "screenshot_scale", "screenshot_size")
