"""Inference: latents -> volumes at any resolution, interactive decoding, latent space.

torch + numpy only (chem and fields are imported lazily by ``encode``), so the
engine runs on a bare GPU box.

::

    Engine(bundle).decode(latents, resolution, box)      dense volumes (B, C, nx, ny, nz)
                  .decode_adaptive(latent, resolution, levels)   isosurface-exact, decodes near the surface only
                  .decode_progressive(...) / .submit(DecodeRequest)   coarse first; latest wins
                  .surfaces(latent, levels, resolution)   isosurfaces extracted on the device
    interpolate(a, b, t, mode) / path(keyframes, n_frames, mode) / Engine.neighbours / Engine.encode
    encode_tables(bundle, atom tables ...)   an auto-encoder's latents of many molecules, in batches

Examples
--------
>>> from molviz.engine import Engine, interpolate
>>> eng = Engine("assets/models/freesolv")                                  # doctest: +SKIP
>>> z = interpolate(eng.latents[0], eng.latents[1], [0.0, 0.5, 1.0], mode="slerp")  # doctest: +SKIP
>>> eng.decode(z, resolution=64).shape                                      # doctest: +SKIP
(3, 1, 64, 64, 64)
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from molviz._lazy import lazy_exports

_EXPORTS = {
    "_adaptive": ("AdaptiveResult", "decode_adaptive",),
    "_batch": ("encode_tables",),
    "_cache": ("VolumeCache",),
    "_coords": ("FULL_BOX", "box_axes", "check_box", "check_shape", "flat_coords",),
    "_engine": ("Engine",),
    "_encode": ("as_structure",),
    "_fit": ("FitResult", "fit_latent", "item_target",),
    "_types": ("Cancelled", "Encoded", "EngineStats",),
    "_latent": ("interpolate", "neighbours", "path",),
    "_scheduler": ("DecodeRequest", "DecodeResult", "LatestWins", "Ticket",),
    "_surface": ("Surface", "marching_cubes", "prefer_device_surfaces", "resolve_levels",),
}

if TYPE_CHECKING:  # pragma: no cover  (what the lazy exports resolve to, for type checkers and IDEs)
    from molviz.engine._adaptive import AdaptiveResult, decode_adaptive  # noqa: F401
    from molviz.engine._batch import encode_tables  # noqa: F401
    from molviz.engine._cache import VolumeCache  # noqa: F401
    from molviz.engine._coords import FULL_BOX, box_axes, check_box, check_shape, flat_coords  # noqa: F401
    from molviz.engine._encode import as_structure  # noqa: F401
    from molviz.engine._engine import Engine  # noqa: F401
    from molviz.engine._fit import FitResult, fit_latent, item_target  # noqa: F401
    from molviz.engine._latent import interpolate, neighbours, path  # noqa: F401
    from molviz.engine._scheduler import DecodeRequest, DecodeResult, LatestWins, Ticket  # noqa: F401
    from molviz.engine._surface import Surface, marching_cubes, prefer_device_surfaces, resolve_levels  # noqa: F401
    from molviz.engine._types import Cancelled, Encoded, EngineStats  # noqa: F401

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
