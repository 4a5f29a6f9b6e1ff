"""Training and evaluation of molecular neural fields (torch and numpy; RDKit only to prepare data).

Prepare once where RDKit is installed, train anywhere torch runs::

    molviz train 6ega --prepare-only runs/prepared/6ega.npz
    molviz train 6ega --data runs/prepared/6ega.npz --out runs/6ega
    molviz eval runs/6ega --resolution 32 128 --write
"""
from __future__ import annotations

from molviz.training._config import PRESETS, DataConfig, TrainConfig, get_preset
from molviz.training._data import PreparedData, prepare
from molviz.training._eval import decode, evaluate_bundle, ground_truth, ridge_report
from molviz.training._fit import FitResult, fit_latent
from molviz.training._train import get_lr, train

__all__ = [
    "PRESETS", "DataConfig", "FitResult", "PreparedData", "TrainConfig", "decode", "evaluate_bundle",
    "fit_latent", "get_lr", "get_preset", "ground_truth", "prepare", "ridge_report", "train",
]
