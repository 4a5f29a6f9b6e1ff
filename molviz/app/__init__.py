"""The browser app (trame + PyVista) and the headless picture and movie commands.

- :class:`MolvizApp` (``molviz serve``): the viewer; the only code in molviz that imports trame.
- :mod:`molviz.app.scene`, :mod:`molviz.app.movie`, :mod:`molviz.app.explore`: pure scene building,
  offscreen rendering and engine queries, shared with ``molviz render`` and ``molviz animate``.

``import molviz.app`` is cheap; trame loads only when :class:`MolvizApp` is first used.
"""
from __future__ import annotations

import importlib

_LAZY = {
    "MolvizApp": "molviz.app._app",
    "Explorer": "molviz.app.explore",
    "Scene": "molviz.app.scene",
    "build_scene": "molviz.app.scene",
    "render_movie": "molviz.app.movie",
    "MovieConfig": "molviz.app.movie",
    "Limits": "molviz.app.limits",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'molviz.app' has no attribute {name!r}")
