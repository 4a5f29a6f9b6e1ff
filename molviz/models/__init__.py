"""Networks and model bundles (torch, numpy and safetensors only)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from molviz._lazy import lazy_exports

_EXPORTS = {
    "_bundle": ("Bundle", "load_model", "save_bundle", "update_extras",),
    "_discover": ("bundled_models_dir", "default_bundle", "find_bundles", "is_bundle", "resolve_bundle",),
    "_encoder": ("Encoder3D", "EncoderConfig", "LatentTable",),
    "_metrics": ("iou", "mse_of", "psnr", "psnr_gain", "psnr_per_channel", "spurious_density",),
    "_refine": ("REFINE_STEPS", "Refined", "refine_latent",),
    "_spec": ("BundleSpec", "read_spec",),
    "_truth": ("ground_truth", "has_tables", "item_table",),
    "_siren": ("MODEL_SIZES", "LatentToModulation", "ModulatedSiren", "Sine", "SineLayer", "SirenConfig", "config_for_size",),
}

if TYPE_CHECKING:  # pragma: no cover  (what the lazy exports resolve to, for type checkers and IDEs)
    from molviz.models._bundle import Bundle, load_model, save_bundle, update_extras  # noqa: F401
    from molviz.models._discover import bundled_models_dir, default_bundle, find_bundles, is_bundle, resolve_bundle  # noqa: F401
    from molviz.models._encoder import Encoder3D, EncoderConfig, LatentTable  # noqa: F401
    from molviz.models._metrics import iou, mse_of, psnr, psnr_gain, psnr_per_channel, spurious_density  # noqa: F401
    from molviz.models._refine import REFINE_STEPS, Refined, refine_latent  # noqa: F401
    from molviz.models._siren import (  # noqa: F401
        MODEL_SIZES,
        LatentToModulation,
        ModulatedSiren,
        Sine,
        SineLayer,
        SirenConfig,
        config_for_size,
    )
    from molviz.models._spec import BundleSpec, read_spec  # noqa: F401
    from molviz.models._truth import ground_truth, has_tables, item_table  # noqa: F401

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
