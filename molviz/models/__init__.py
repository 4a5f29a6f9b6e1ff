"""Networks and model bundles (torch, numpy and safetensors only)."""
from __future__ import annotations

from molviz.models._bundle import Bundle, load_model, save_bundle, update_extras
from molviz.models._encoder import Encoder3D, EncoderConfig, LatentTable
from molviz.models._metrics import mse_of, psnr, psnr_per_channel
from molviz.models._siren import (
    MODEL_SIZES,
    LatentToModulation,
    ModulatedSiren,
    Sine,
    SineLayer,
    SirenConfig,
    config_for_size,
)

__all__ = [
    "MODEL_SIZES", "Bundle", "Encoder3D", "EncoderConfig", "LatentTable", "LatentToModulation",
    "ModulatedSiren", "Sine", "SineLayer", "SirenConfig", "config_for_size", "load_model",
    "mse_of", "psnr", "psnr_per_channel", "save_bundle", "update_extras",
]
