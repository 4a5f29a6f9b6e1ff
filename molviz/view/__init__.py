"""Headless pictures of a bundle: the explorer, the 3D scene, channel looks, movies, the latent map,
downloads, and the ``molviz render | animate | map`` commands. No trame: the app composes these.

Examples
--------
>>> from molviz.view import Explorer, Scene, build_scene, default_styles, view_layers
>>> ex = Explorer.open("assets/models/freesolv")                       # doctest: +SKIP
>>> view = ex.item_view(0, 64)                                         # doctest: +SKIP
>>> styles = default_styles(ex.channel_names, ex.present_channels(view.atoms))   # doctest: +SKIP
>>> built = build_scene(view_layers(view, ex.channel_names, "reconstruction"), styles, SceneOptions())  # doctest: +SKIP
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from molviz._lazy import lazy_exports

_EXPORTS = {
    "compare": ("compare_layers", "nearest_truth",),
    "explore": ("Endpoint", "Explorer", "View", "blend_atoms",),
    "exports": ("MAX_MAPS_BYTES", "maps_zip", "scene_glb",),
    "latent_map": ("COLOR_BY", "LatentMap", "depiction_svg",),
    "limits": ("Limits", "UPLOAD_SUFFIXES", "clean_resolution", "clean_upload",),
    "looks": ("LEVEL_DEFAULTS", "PROPERTY_LEVEL", "default_style", "default_styles", "is_property_channel",
              "view_layers",),
    "movie": ("MovieConfig", "MovieWriter", "frame_times", "render_movie", "write_frames",),
    "search": ("ItemIndex", "SearchResult",),
    "slices": ("SliceSpec", "slice_parts", "value_bar", "value_range",),
    "upload": ("read_upload",),
    "scene": ("Atoms", "BuiltScene", "ChannelStyle", "Layer", "Scene", "SceneOptions", "build_scene", "color_rgb",
              "png_bytes",),
}

if TYPE_CHECKING:  # pragma: no cover  (what the lazy exports resolve to, for type checkers and IDEs)
    from molviz.view.compare import compare_layers, nearest_truth  # noqa: F401
    from molviz.view.explore import Endpoint, Explorer, View, blend_atoms  # noqa: F401
    from molviz.view.exports import MAX_MAPS_BYTES, maps_zip, scene_glb  # noqa: F401
    from molviz.view.latent_map import COLOR_BY, LatentMap, depiction_svg  # noqa: F401
    from molviz.view.limits import UPLOAD_SUFFIXES, Limits, clean_resolution, clean_upload  # noqa: F401
    from molviz.view.looks import (  # noqa: F401
        LEVEL_DEFAULTS,
        PROPERTY_LEVEL,
        default_style,
        default_styles,
        is_property_channel,
        view_layers,
    )
    from molviz.view.movie import MovieConfig, MovieWriter, frame_times, render_movie, write_frames  # noqa: F401
    from molviz.view.scene import (  # noqa: F401
        Atoms,
        BuiltScene,
        ChannelStyle,
        Layer,
        Scene,
        SceneOptions,
        build_scene,
        color_rgb,
        png_bytes,
    )
    from molviz.view.search import ItemIndex, SearchResult  # noqa: F401
    from molviz.view.slices import SliceSpec, slice_parts, value_bar, value_range  # noqa: F401
    from molviz.view.upload import read_upload  # noqa: F401

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
