"""Fitting a latent for a new molecule with the network frozen (auto-decoder inference).

Inference, not training: the network is frozen and only a latent is optimised, so it lives in
the engine and needs torch and numpy alone (the structure comes from :mod:`molviz.chem`).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from molviz._io import save_npz
from molviz.fields._tables import grid_field, item_divisors


@dataclass
class FitResult:
    latent: torch.Tensor             # (L,)
    box: np.ndarray                  # (2, 3) angstrom, first and last voxel centre
    divisors: np.ndarray             # (C,)
    psnr: float                      # at the bundle's training resolution
    steps: int
    converged: bool
    losses: list[float] = field(default_factory=list)
    table: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None   # the item's atom table

    def save(self, path: str | os.PathLike) -> Path:
        """Write latent, box, divisors, PSNR and the atom table as an npz, atomically."""
        path = Path(path)
        arrays = {"latent": self.latent.detach().cpu().numpy().astype(np.float32),
                  "box": self.box.astype(np.float32), "divisors": self.divisors.astype(np.float32),
                  "psnr": np.float64(self.psnr), "steps": np.int64(self.steps),
                  "converged": np.bool_(self.converged), "losses": np.asarray(self.losses, np.float32)}
        if self.table is not None:
            arrays.update(atoms_xyz=self.table[0], atoms_channel=self.table[1], atoms_width=self.table[2])
        return save_npz(path, arrays, compressed=False)


def item_target(bundle, structure, *, conformer: int = 0, device="cpu"):
    """Box, atom table, divisors and the normalised training-grid field of a new structure."""
    from molviz.fields import Grid, atom_table, rule_grid
    spec = bundle.spec
    spec.require_sampling(bundle.name, "take new molecules")
    channels = list(spec.channels)
    R, beta, C = int(spec.resolution), float(spec.beta), len(channels)
    # an ensemble shares one box (the first item's): a new conformer lives in it too
    shared = Grid.from_box(bundle.boxes[0][0], bundle.boxes[0][1], R) if spec.box == "shared" else None
    g = rule_grid(structure.conformer(conformer), channels, rule=spec.box, resolution=R, beta=beta,
                  spacing=spec.spacing, shared=shared)
    box = np.array([g.lo, g.hi], np.float32)
    xyz, ch, w = (np.asarray(a) for a in atom_table(structure, channels, conformer=conformer))
    div = item_divisors(xyz, ch, w, C, beta=beta, device=device)
    target = grid_field(xyz, ch, w, C, box, R, beta=beta, divisors=div, device=device)
    target = target.flatten(1).T                                                    # (C, R^3) -> (R^3, C)
    return box, (xyz.astype(np.float32), ch.astype(np.int64), w.astype(np.float32)), div, target


def fit_latent(bundle, structure, *, conformer: int = 0, steps: int = 2000, lr: float = 1e-2,
               tol: float = 1e-3, window: int = 50, device: str = "auto", progress: bool = True,
               seed: int = 0, on_step: Callable[[int, int], None] | None = None,
               init=None) -> FitResult:
    """Optimise a latent for ``structure`` with the bundle's network frozen (:func:`molviz.models._refine.refine_latent`).

    The latent starts at ``init`` (L,), or at the mean of the training latents. Stops after ``steps``,
    or when the mean loss of the last ``window`` steps improved on the window
    before it by less than ``tol`` (relative). ``on_step(step, steps)`` is called after each step
    (a progress bar, a cancel button: whatever it raises ends the fit and reaches the caller, the
    network's gradients restored).

    Examples
    --------
    >>> import molviz
    >>> res = fit_latent(molviz.load_model("runs/nmr"), molviz.load("2juy.pdb").conformer(3))  # doctest: +SKIP
    >>> res.psnr > 30  # doctest: +SKIP
    True
    """
    from molviz.fields import resolve_device
    from molviz.models import psnr
    from molviz.models._refine import refine_latent
    dev = resolve_device(device)
    torch.manual_seed(seed)
    box, table, div, target = item_target(bundle, structure, conformer=conformer, device=dev)
    model = bundle.model.to(dev)
    start = init if init is not None else bundle.latents.mean(dim=0)
    r = refine_latent(model, start, target, resolution=int(bundle.spec.resolution), steps=steps, lr=lr, tol=tol,
                      window=window, l1=bundle.spec.loss == "l1", on_step=on_step, progress=progress,
                      desc="fit latent" if init is None else "refine latent")
    return FitResult(latent=r.latent, box=box, divisors=div, psnr=psnr(r.prediction, target),
                     steps=r.steps, converged=r.converged, losses=r.losses, table=table)
