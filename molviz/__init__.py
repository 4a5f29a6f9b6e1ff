"""molviz: molecules as neural fields, and a browser app to look inside them.

Data flows one way::

    file / SMILES --chem--> Structure --fields--> grid or points
      --models/training--> bundle (safetensors + JSON)
      --engine--> volume at any resolution --mesh--> isosurfaces --app--> browser

Top-level names are imported lazily so that ``import molviz`` stays cheap and
``molviz.models`` / ``molviz.engine`` run where only torch and numpy exist.
"""
from __future__ import annotations

import importlib

from molviz.errors import BundleError, InputError, MolvizError, ResourceLimitError

__version__ = "0.1.0"

_LAZY = {
    "load": "molviz.chem",
    "Structure": "molviz.chem",
    "Channel": "molviz.fields",
    "Grid": "molviz.fields",
    "parse_channels": "molviz.fields",
    "sample_field": "molviz.fields",
    "sample_points": "molviz.fields",
    "load_model": "molviz.models",
    "Engine": "molviz.engine",
}

__all__ = ["BundleError", "InputError", "MolvizError", "ResourceLimitError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'molviz' has no attribute {name!r}")
