"""The browser app (trame + PyVista): :class:`MolvizApp` (``molviz serve``), the only code in molviz
that imports trame. It reacts to the page's state and delegates to :mod:`molviz.view` (scenes,
looks, movies, the latent map, downloads) and :mod:`molviz.engine`.

``import molviz.app`` is cheap; trame loads only when :class:`MolvizApp` is first used.
"""
from __future__ import annotations

import importlib

_LAZY = {
    "MolvizApp": "molviz.app._app",
    "Explorer": "molviz.view.explore",
    "Scene": "molviz.view.scene",
    "build_scene": "molviz.view.scene",
    "render_movie": "molviz.view.movie",
    "MovieConfig": "molviz.view.movie",
    "Limits": "molviz.view.limits",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'molviz.app' has no attribute {name!r}")
