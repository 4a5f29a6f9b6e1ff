"""Evaluation of a trained bundle: PSNR as the paper measured it, decoding, latent quality.

Ground truth is recomputed from the atom tables the bundle carries
(``arrays["atoms_*"]``), with the bundle's own divisors, so evaluation needs
only torch and numpy and gives the same numbers on any machine.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from molviz._io import save_npz
from molviz.errors import BundleError, InputError
from molviz.fields._tables import normalized_coords
from molviz.models._truth import ground_truth, item_table  # noqa: F401  (re-exported for eval's callers)
from molviz.training._data import DESCRIPTORS

PROPERTIES = (*DESCRIPTORS, "expt")


@torch.no_grad()
def decode(bundle, latent: torch.Tensor, resolution: int, *, device: str | torch.device = "cpu",
           chunk: int = 1 << 18) -> torch.Tensor:
    """Decode one latent (L,) on a ``resolution``^3 grid over the item box: (C, N, N, N) float32."""
    model = bundle.model.to(device).eval()
    z = latent.reshape(1, -1).to(device)
    mods = model.modulations(z)
    coords = normalized_coords(resolution, device=device)
    out = torch.cat([model.synthesis(coords[None, s:s + chunk], mods)[0]
                     for s in range(0, len(coords), chunk)])                      # (N^3, C)
    return out.T.reshape(-1, resolution, resolution, resolution).float()


PEAK_PRESENT = 0.05       # a channel counts as present where its true maximum reaches this (fields peak at 1)
PEAK_LOST = 0.5           # ... and as lost where the decoded maximum is below half the true one


def peak_ratios(pred: torch.Tensor, truth: torch.Tensor) -> list[float | None]:
    """Decoded maximum over true maximum of each channel present in ``truth`` (None where absent).

    PSNR averages over the whole box, so a sparse channel (a ligand, a rare element) can decode
    to nearly nothing and still score well: the 6EGA L1 bundle's ligand channels peak at 0.003
    and score 35 dB. The peak ratio shows such a collapse at once (1 is right).
    """
    t = truth.reshape(truth.shape[0], -1).amax(1).double().cpu().numpy()
    p = pred.reshape(pred.shape[0], -1).amax(1).double().cpu().numpy()
    return [float(pc / tc) if tc >= PEAK_PRESENT else None for pc, tc in zip(p, t)]


def peak_summary(ratios: list[list[float]], names: list[str]) -> dict[str, Any]:
    """Median peak ratio over all present channels of all items, the share lost, and per channel."""
    flat = np.array([r for rs in ratios for r in rs], np.float64)
    return {
        "median_peak_ratio": float(np.median(flat)) if flat.size else None,
        "lost_fraction": float(np.mean(flat < PEAK_LOST)) if flat.size else None,
        "channel_peak_ratio": {c: (float(np.median(rs)) if rs else None) for c, rs in zip(names, ratios)},
    }


def select_items(bundle, which: Literal["train", "heldout", "all"], max_items: int | None) -> list[int]:
    split = [it.get("split", "train") for it in bundle.items] or ["train"] * bundle.n_items
    if which == "all":
        idx = list(range(bundle.n_items))
    else:
        idx = [i for i, s in enumerate(split) if s == which]
    if not idx and which == "heldout":
        raise InputError(f"bundle {bundle.name!r} has no held-out items; use --items train or all")
    return idx[:max_items] if max_items else idx


def evaluate_bundle(bundle, *, resolutions: tuple[int, ...] | None = None,
                    items: Literal["train", "heldout", "all"] = "all", max_items: int | None = None,
                    device: str = "auto", progress: bool = True) -> dict[str, Any]:
    """PSNR per item, per channel and mean, at each resolution, against the recomputed field.

    PSNR = 20 log10(1 / sqrt(MSE)), MSE over all voxels and channels (REFERENCE.md).
    Beside it, the peak ratio (:func:`peak_ratios`): the median over present channels of the
    decoded maximum over the true one, and the share of present channels decoded below half.

    Examples
    --------
    >>> from molviz.models import load_model
    >>> report = evaluate_bundle(load_model("runs/6ega"), resolutions=(32, 128))  # doctest: +SKIP
    >>> report["results"]["32"]["mean_psnr"]  # doctest: +SKIP
    42.3
    """
    from molviz._progress import tqdm

    from molviz.models import psnr
    from molviz.training._train import resolve_device
    dev = resolve_device(device)
    resolutions = tuple(resolutions or (int(bundle.config["resolution"]),))
    idx = select_items(bundle, items, max_items)
    names = bundle.channel_names
    report: dict[str, Any] = {"bundle": str(bundle.path) if bundle.path else bundle.name, "items": items,
                              "n_items": len(idx), "channels": names, "results": {}}
    for n in resolutions:
        per_item, chan_mse = [], np.zeros(len(names))
        ratios: list[list[float]] = [[] for _ in names]          # present channels only
        for i in tqdm(idx, desc=f"eval {n}^3", disable=not progress or len(idx) < 3, dynamic_ncols=True):
            truth = ground_truth(bundle, i, n, device=dev)
            pred = decode(bundle, bundle.latents[i], n, device=dev)
            mse_c = ((pred.double() - truth.double()) ** 2).mean(dim=(1, 2, 3)).cpu().numpy()
            chan_mse += mse_c
            peak = peak_ratios(pred, truth)
            for c, r in enumerate(peak):
                if r is not None:
                    ratios[c].append(r)
            per_item.append({"index": i, "name": bundle.items[i].get("name") if bundle.items else str(i),
                             "split": bundle.items[i].get("split", "train") if bundle.items else "train",
                             "psnr": psnr(pred, truth),
                             "channel_psnr": [(-10 * math.log10(m)) if m > 0 else math.inf for m in mse_c],
                             "channel_peak_ratio": peak})
        chan_mse /= max(1, len(idx))
        vals = np.array([r["psnr"] for r in per_item])
        report["results"][str(n)] = {
            "resolution": n,
            "mean_psnr": float(np.mean(vals)),
            "median_psnr": float(np.median(vals)),
            "min_psnr": float(np.min(vals)),
            # per-channel PSNR of the mean per-channel MSE over items
            "channel_psnr": {c: (-10 * math.log10(m)) if m > 0 else math.inf for c, m in zip(names, chan_mse)},
            **peak_summary(ratios, names),
            "per_item": per_item,
        }
    return report


def ridge_report(bundle, *, properties: tuple[str, ...] = PROPERTIES, folds: int = 5,
                 seed: int = 0) -> dict[str, Any]:
    """Cross-validated ridge regression from latents to item properties; R^2 over held-out folds.

    Examples
    --------
    >>> ridge_report(load_model("assets/models/freesolv"))["r2"]["ExactMolWt"]  # doctest: +SKIP
    0.95
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = bundle.latents.detach().cpu().double().numpy()
    out: dict[str, Any] = {"folds": folds, "model": "StandardScaler + RidgeCV(alphas=1e-3..1e4)",
                           "n_items": int(len(X)), "r2": {}, "n": {}}
    for prop in properties:
        rows = [i for i, it in enumerate(bundle.items) if isinstance(it.get(prop), (int, float))]
        if len(rows) < 2 * folds:
            continue
        y = np.array([bundle.items[i][prop] for i in rows], dtype=np.float64)
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 4, 15)))
        pred = cross_val_predict(model, X[rows], y, cv=KFold(folds, shuffle=True, random_state=seed))
        out["r2"][prop] = float(r2_score(y, pred))
        out["n"][prop] = len(rows)
    if not out["r2"]:
        raise InputError(f"bundle {bundle.name!r}: too few items with properties for {folds}-fold ridge "
                         f"regression (needs >= {2 * folds} items carrying {', '.join(properties)})")
    return out
