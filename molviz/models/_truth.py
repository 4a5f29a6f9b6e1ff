"""The true field of a bundle's stored item, recomputed from the atom tables the bundle carries.

A bundle written by ``molviz train`` keeps each item's atom table and divisors
(``arrays["atoms_*"]``, ``arrays["divisors"]``), so evaluation, the app's
comparisons and encoding checks recompute the exact training target at any
resolution with torch and numpy alone.
"""
from __future__ import annotations

import numpy as np
import torch

from molviz.errors import BundleError
from molviz.fields._tables import grid_field

TABLE_KEYS = ("atoms_xyz", "atoms_channel", "atoms_width", "atoms_offsets", "divisors")


def has_tables(bundle) -> bool:
    """Whether ``bundle`` carries its items' atom tables (bundles from ``molviz train`` do)."""
    return all(k in bundle.arrays for k in TABLE_KEYS)


def _arrays(bundle) -> dict[str, np.ndarray]:
    missing = [k for k in TABLE_KEYS if k not in bundle.arrays]
    if missing:
        raise BundleError(f"bundle {bundle.name!r} carries no atom tables ({', '.join(missing)} missing), so its "
                          "ground truth cannot be recomputed; retrain it with `molviz train`")
    return bundle.arrays


def item_table(bundle, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The atom table of item ``i`` stored in the bundle: xyz (A, 3), channel (A,), width (A,)."""
    a = _arrays(bundle)
    lo, hi = int(a["atoms_offsets"][i]), int(a["atoms_offsets"][i + 1])
    return a["atoms_xyz"][lo:hi], a["atoms_channel"][lo:hi], a["atoms_width"][lo:hi]


def item_divisors_of(bundle, i: int) -> np.ndarray:
    """The ``normalize="max"`` divisors item ``i`` was trained with: (C,) float32."""
    return np.asarray(_arrays(bundle)["divisors"][i], np.float32)


def ground_truth(bundle, i: int, resolution: int, *, device: str | torch.device = "cpu") -> torch.Tensor:
    """The normalised field of item ``i`` at ``resolution``^3 in its box: (C, N, N, N) float32."""
    spec = bundle.spec
    spec.require_sampling(bundle.name, "recompute its ground truth")
    return grid_field(*item_table(bundle, i), len(spec.channels), bundle.boxes[i], resolution, beta=spec.beta,
                      divisors=item_divisors_of(bundle, i), device=device)
