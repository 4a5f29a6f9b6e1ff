"""Networks and model bundles (torch, numpy and safetensors only)."""
from __future__ import annotations

from molviz._lazy import lazy_exports

_EXPORTS = {
    "_bundle": ("Bundle", "load_model", "save_bundle", "update_extras",),
    "_discover": ("bundled_models_dir", "default_bundle", "find_bundles", "is_bundle", "resolve_bundle",),
    "_encoder": ("Encoder3D", "EncoderConfig", "LatentTable",),
    "_metrics": ("mse_of", "psnr", "psnr_per_channel",),
    "_spec": ("BundleSpec", "read_spec",),
    "_truth": ("ground_truth", "has_tables", "item_table",),
    "_siren": ("MODEL_SIZES", "LatentToModulation", "ModulatedSiren", "Sine", "SineLayer", "SirenConfig", "config_for_size",),
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
