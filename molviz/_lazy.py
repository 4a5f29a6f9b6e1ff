"""Lazy package exports (PEP 562): a subpackage names its public objects without importing them.

``molviz.fields`` would otherwise import torch for the sampler the moment any of its
modules is touched, and ``molviz --help`` or the app's page would wait seconds for it.
"""
from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]):
    """Return ``(__getattr__, __dir__, __all__)`` for ``package``.

    ``exports`` maps a submodule name (relative, e.g. ``"_sampler"``) to the names it provides.
    The submodule is imported on first access of one of its names.
    """
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        if name in where:
            value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
            globals_ = importlib.import_module(package).__dict__
            globals_[name] = value               # next access skips __getattr__
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(where) | set(importlib.import_module(package).__dict__))

    return __getattr__, __dir__, sorted(where)
