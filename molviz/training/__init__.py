"""Training and evaluation of molecular neural fields (torch and numpy; RDKit only to prepare data).

Prepare once where RDKit is installed, train anywhere torch runs::

    molviz train 6ega --prepare-only runs/prepared/6ega.npz
    molviz train 6ega --data runs/prepared/6ega.npz --out runs/6ega
    molviz eval runs/6ega --resolution 32 128 --write
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from molviz._lazy import lazy_exports

_EXPORTS = {
    "_config": ("PRESETS", "DataConfig", "TrainConfig", "get_preset",),
    "_data": ("PreparedData", "prepare",),
    "_eval": ("decode", "evaluate_bundle", "ridge_report",),
    "_train": ("get_lr", "train",),
}

if TYPE_CHECKING:  # pragma: no cover  (what the lazy exports resolve to, for type checkers and IDEs)
    from molviz.training._config import PRESETS, DataConfig, TrainConfig, get_preset  # noqa: F401
    from molviz.training._data import PreparedData, prepare  # noqa: F401
    from molviz.training._eval import decode, evaluate_bundle, ridge_report  # noqa: F401
    from molviz.training._train import get_lr, train  # noqa: F401

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
