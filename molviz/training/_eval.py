"""Evaluation of a trained bundle: PSNR as the paper measured it, decoding, latent quality.

Ground truth is recomputed from the atom tables the bundle carries
(``arrays["atoms_*"]``), with the bundle's own divisors, so evaluation needs
only torch and numpy and gives the same numbers on any machine.
"""
from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch

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


ISO_LEVELS = (0.5, 0.2)     # 0.5: VoxMol's and FuncMol's mean IoU; 0.2: the app's default (absolute) level
RECOVERY_RESOLUTION = 64    # atoms are found on a finer decode than the 32^3 eval grid (sub-voxel fit)
MATCH_TOLERANCE = 0.5       # angstrom: a found atom counts as a true one this close


def _level_key(level: float) -> str:
    return f"{level:g}"


def _mean(values) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def bundle_channels(bundle) -> list:
    """The bundle's channels as :class:`molviz.fields.Channel` objects (from ``channel_defs``)."""
    from molviz.fields import Channel
    defs = bundle.config.get("channel_defs")
    if not defs:
        raise BundleError(f"bundle {bundle.name!r} has no channel_defs in its config, so its element channels "
                          "are unknown; retrain it with `molviz train`")
    return [Channel.from_dict(d) for d in defs]


def shape_metrics(pred: torch.Tensor, truth: torch.Tensor, *,
                  levels: tuple[float, ...] = ISO_LEVELS) -> dict[str, Any]:
    """Per item, beside PSNR: isosurface IoU, spurious density and PSNR gain (:mod:`molviz.models._metrics`).

    - ``channel_iou[level]``: voxel IoU of {pred >= level} and {truth >= level} per channel
      (None where neither reaches the level); ``iou[level]``: their mean over the channels
      present in the truth (true maximum >= :data:`PEAK_PRESENT`), None if none has a surface.
    - ``spurious_fraction``: of the voxels (channel, x, y, z) decoded >= 0.5, the share whose
      truth is < :data:`PEAK_PRESENT` (None when none is decoded >= 0.5); ``spurious_voxels``:
      their count.
    - ``psnr_gain``: PSNR minus the PSNR of the all-zero prediction (dB).

    Examples
    --------
    >>> t = torch.zeros(2, 8, 8, 8); t[0, 2:6, 2:6, 2:6] = 1.0
    >>> m = shape_metrics(t.clone(), t)
    >>> m["iou"], m["channel_iou"]["0.5"], m["spurious_fraction"]
    ({'0.5': 1.0, '0.2': 1.0}, [1.0, None], 0.0)
    """
    from molviz.models._metrics import iou, psnr_gain, spurious_density
    present = truth.reshape(truth.shape[0], -1).amax(1).cpu().numpy() >= PEAK_PRESENT
    channel_iou = {_level_key(lv): iou(pred, truth, level=lv) for lv in levels}
    fraction, count = spurious_density(pred, truth, level=0.5, empty=PEAK_PRESENT)
    return {"iou": {k: _mean(v for v, p in zip(vals, present) if p) for k, vals in channel_iou.items()},
            "channel_iou": channel_iou, "spurious_fraction": fraction, "spurious_voxels": count,
            "psnr_gain": psnr_gain(pred, truth)}


def atom_recovery(bundle, i: int, *, resolution: int = RECOVERY_RESOLUTION, tolerance: float = MATCH_TOLERANCE,
                  field: torch.Tensor | None = None, device: str | torch.device = "cpu",
                  latent: torch.Tensor | None = None) -> dict[str, Any]:
    """Atoms found in item ``i``'s decoded field, matched to its true atoms (:mod:`molviz.fields._atoms`).

    The field is decoded at ``resolution``^3 over the item box from ``latent`` (default: the item's
    stored latent), or ``field`` is used (e.g. the
    ground truth, to check the finder) and each element channel is deconvolved with the known
    blob shape, scaled by the item's stored divisors (the normalisation the network learned).
    True atoms are the rows of the element channels in the bundle's atom table.

    Returns
    -------
    dict
        :func:`molviz.fields._atoms.match_atoms`'s keys (n_true, n_found, n_matched, recall,
        precision (None when nothing is found), element_accuracy, rmsd, complete) and
        ``resolution``.

    Examples
    --------
    >>> from molviz.models import load_model
    >>> b = load_model("assets/models/freesolv")                                 # doctest: +SKIP
    >>> atom_recovery(b, 5, field=ground_truth(b, 5, 32), resolution=32)["recall"]  # doctest: +SKIP
    1.0
    """
    from molviz.fields import Grid
    from molviz.fields._atoms import element_atoms, find_atoms, match_atoms
    from molviz.models._truth import item_divisors_of
    chans = bundle_channels(bundle)
    if field is None:
        field = decode(bundle, bundle.latents[i] if latent is None else latent, resolution, device=device)
    res = tuple(field.shape[1:])
    grid = Grid.from_box(bundle.boxes[i, 0], bundle.boxes[i, 1], res)
    found = find_atoms(field, grid, chans, beta=float(bundle.config["beta"]), scale=item_divisors_of(bundle, i))
    xyz, channel, _ = item_table(bundle, i)
    true_xyz, true_el = element_atoms(xyz, channel, chans)
    return {**match_atoms(found.xyz, found.element, true_xyz, true_el, tolerance=tolerance),
            "resolution": res[0] if len(set(res)) == 1 else list(res)}


def atoms_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over items of :func:`atom_recovery`'s rows (items where a value is None are left out
    of that mean) and ``complete_fraction``: the share of items whose every heavy atom was found
    with its element (over the items with heavy atoms)."""
    out: dict[str, Any] = {k: _mean(r[k] for r in rows) for k in ("recall", "precision", "element_accuracy", "rmsd")}
    complete = [r["complete"] for r in rows if r["complete"] is not None]
    out["complete_fraction"] = float(np.mean(complete)) if complete else None
    out["n_items"] = len(rows)
    out["n_true"] = int(sum(r["n_true"] for r in rows))
    out["n_found"] = int(sum(r["n_found"] for r in rows))
    out["n_matched"] = int(sum(r["n_matched"] for r in rows))
    return out


def select_items(bundle, which: Literal["train", "heldout", "all"], max_items: int | None) -> list[int]:
    split = [it.get("split", "train") for it in bundle.items] or ["train"] * bundle.n_items
    if which == "all":
        idx = list(range(bundle.n_items))
    else:
        idx = [i for i, s in enumerate(split) if s == which]
    if not idx and which == "heldout":
        raise InputError(f"bundle {bundle.name!r} has no held-out items; use --items train or all")
    return idx[:max_items] if max_items else idx


def refined_latent(bundle, i: int, steps: int, *, device: str | torch.device = "cpu") -> torch.Tensor:
    """Item ``i``'s stored latent taken ``steps`` further against its true field on the training grid,
    the network frozen (:func:`molviz.models._refine.refine_latent`): what ``Engine.encode(refine=steps)``
    gives a new molecule, measured on items whose truth the bundle carries."""
    from molviz.models._refine import refine_latent
    R = int(bundle.config["resolution"])
    target = ground_truth(bundle, i, R, device=device).flatten(1).T                  # (R^3, C)
    return refine_latent(bundle.model.to(device), bundle.latents[i], target, resolution=R, steps=steps,
                         l1=bundle.spec.loss == "l1").latent


def evaluate_bundle(bundle, *, resolutions: tuple[int, ...] | None = None,
                    items: Literal["train", "heldout", "all"] = "all", max_items: int | None = None,
                    device: str = "auto", progress: bool = True, levels: tuple[float, ...] = ISO_LEVELS,
                    recovery_resolution: int | None = RECOVERY_RESOLUTION,
                    tolerance: float = MATCH_TOLERANCE, refine: int = 0) -> dict[str, Any]:
    """PSNR per item, per channel and mean, at each resolution, against the recomputed field.

    PSNR = 20 log10(1 / sqrt(MSE)), MSE over all voxels and channels (REFERENCE.md).
    Beside it, the peak ratio (:func:`peak_ratios`): the median over present channels of the
    decoded maximum over the true one, and the share of present channels decoded below half.

    PSNR over the whole box rewards drawing nothing (an all-zero prediction scores 22-24 dB on
    FreeSolv), so each item also gets :func:`shape_metrics` (isosurface IoU at each of
    ``levels``, spurious density, PSNR gain over the all-zero prediction) and, unless
    ``recovery_resolution`` is None or 0, :func:`atom_recovery` (atoms found in a
    ``recovery_resolution``^3 decode, matched within ``tolerance`` angstrom: recall, precision,
    element accuracy, RMSD, complete molecules). Atom recovery is computed once per item and
    reported under every resolution's results (``atoms``, and per item).

    ``refine=K`` evaluates each item's latent after K refinement steps against its true field
    (:func:`refined_latent`; the report's ``refine`` says so): the quality a molecule whose atoms
    are known gets from ``Engine.encode(refine=K)``, not the encoder's or the training's alone.

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
                              "n_items": len(idx), "channels": names, "refine": int(refine), "results": {}}
    latents = {i: bundle.latents[i] for i in idx}
    if refine > 0:
        for i in tqdm(idx, desc=f"refine {refine} steps", disable=not progress or len(idx) < 3, dynamic_ncols=True):
            latents[i] = refined_latent(bundle, i, refine, device=dev)
    recovered: dict[int, dict[str, Any]] = {}
    if recovery_resolution:
        for i in tqdm(idx, desc=f"atoms {recovery_resolution}^3", disable=not progress or len(idx) < 3,
                      dynamic_ncols=True):
            recovered[i] = atom_recovery(bundle, i, resolution=recovery_resolution, tolerance=tolerance, device=dev,
                                         latent=latents[i])
    for n in resolutions:
        per_item, chan_mse = [], np.zeros(len(names))
        ratios: list[list[float]] = [[] for _ in names]          # present channels only
        for i in tqdm(idx, desc=f"eval {n}^3", disable=not progress or len(idx) < 3, dynamic_ncols=True):
            truth = ground_truth(bundle, i, n, device=dev)
            pred = decode(bundle, latents[i], n, device=dev)
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
                             "channel_peak_ratio": peak,
                             **shape_metrics(pred, truth, levels=levels),
                             **({"atoms": recovered[i]} if i in recovered else {})})
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
            "mean_iou": {k: _mean(r["iou"][k] for r in per_item) for k in map(_level_key, levels)},
            # per channel: mean over the items where it has a surface
            "channel_iou": {k: {c: _mean(r["channel_iou"][k][j] for r in per_item) for j, c in enumerate(names)}
                            for k in map(_level_key, levels)},
            "mean_psnr_gain": float(np.mean([r["psnr_gain"] for r in per_item])),
            "mean_spurious_fraction": _mean(r["spurious_fraction"] for r in per_item),
            "mean_spurious_voxels": float(np.mean([r["spurious_voxels"] for r in per_item])),
            **({"atoms": {**atoms_summary([recovered[i] for i in idx]), "resolution": recovery_resolution,
                          "tolerance": tolerance}} if recovered else {}),
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
