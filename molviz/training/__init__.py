"""Training and evaluation of molecular neural fields (torch and numpy; RDKit only to prepare data).

Prepare once where RDKit is installed, train anywhere torch runs::

    molviz train 6ega --prepare-only runs/prepared/6ega.npz
    molviz train 6ega --data runs/prepared/6ega.npz --out runs/6ega
    molviz eval runs/6ega --resolution 32 128 --write
"""
from __future__ import annotations

from molviz._lazy import lazy_exports

_EXPORTS = {
    "_config": ("PRESETS", "DataConfig", "TrainConfig", "get_preset",),
    "_data": ("PreparedData", "prepare",),
    "_eval": ("decode", "evaluate_bundle", "ridge_report",),
    "_train": ("get_lr", "train",),
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
