"""New inputs into a bundle's latent space: SMILES / file / Structure -> field -> latent.

The field is sampled exactly as the bundle's training data was (channels, beta,
box rule, per-item max normalisation, resolution: all read from the bundle
config) by :func:`molviz.engine._fit.item_target`, so an encoded training
item reproduces its training target. Auto-encoder bundles run their encoder on
that field; auto-decoder bundles fit a latent with the network frozen
(:func:`molviz.engine._fit.fit_latent`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from molviz.engine._types import Encoded
from molviz.errors import InputError


def as_structure(source: Any, *, name: str | None = None, hydrogens: str = "keep", seed: int = 0):
    """A :class:`molviz.chem.Structure` from a Structure, a path or a SMILES string.

    ``hydrogens`` and ``seed`` should be the bundle's (its training data config), so a
    SMILES gets the same conformer as in training.
    """
    if hasattr(source, "coords") and hasattr(source, "atomic_numbers"):
        return source
    if isinstance(source, (str, os.PathLike)):
        from molviz.chem import load  # RDKit / gemmi: only here, never at import
        return load(str(source) if isinstance(source, Path) else source, name=name, hydrogens=hydrogens,
                    seed=seed)
    raise InputError(f"cannot encode a {type(source).__name__}: give a SMILES string, a molecule file path "
                     "or a molviz.chem.Structure")


@torch.no_grad()
def _encode_with_encoder(engine, structure, conformer: int) -> Encoded:
    from molviz.engine._fit import item_target
    from molviz.models import psnr
    bundle = engine.bundle
    box, _table, _div, target = item_target(bundle, structure, conformer=conformer, device=engine.device)
    R, C = int(bundle.spec.resolution), engine.n_channels
    field = target.T.reshape(1, C, R, R, R).float()                                # (1, C, R, R, R)
    encoder = bundle.encoder.to(engine.device).eval()
    box_t = torch.as_tensor(np.asarray(box, np.float32), device=engine.device)[None]  # (1, 2, 3)
    latent = encoder(field, box_t)[0].float().cpu().numpy()                        # (L,)
    recon = engine.decode(latent, resolution=R, cache=False)[0]
    return Encoded(latent=latent, box=np.asarray(box, np.float32), method="encoder",
                   psnr=psnr(recon, field[0].cpu().numpy()), name=getattr(structure, "name", ""),
                   structure=structure)


def _encode_by_fitting(engine, structure, conformer: int, steps: int, progress: bool) -> Encoded:
    from molviz.engine._fit import fit_latent
    res = fit_latent(engine.bundle, structure, conformer=conformer, steps=steps, device=str(engine.device),
                     progress=progress)
    engine.model.eval()
    for p in engine.model.parameters():   # fit_latent re-enables gradients when it is done
        p.requires_grad_(False)
    return Encoded(latent=res.latent.float().cpu().numpy(), box=np.asarray(res.box, np.float32), method="fit",
                   psnr=float(res.psnr), name=getattr(structure, "name", ""), structure=structure)


def encode(engine, source: Any, *, conformer: int = 0, steps: int = 2000, progress: bool = False) -> Encoded:
    """Encode ``source`` with ``engine``'s bundle; see :meth:`molviz.engine.Engine.encode`.

    Examples
    --------
    >>> enc = encode(Engine("assets/models/freesolv"), "CCO")   # doctest: +SKIP
    >>> enc.latent.shape, enc.method                            # doctest: +SKIP
    ((512,), 'encoder')
    """
    spec = engine.bundle.spec
    spec.require_sampling(engine.bundle.name, "encode new inputs")
    structure = as_structure(source, hydrogens=spec.hydrogens, seed=spec.seed)
    if not 0 <= conformer < structure.n_conformers:
        raise InputError(f"conformer {conformer} does not exist: {structure.name!r} has "
                         f"{structure.n_conformers} conformer(s)")
    if engine.bundle.encoder is not None:
        return _encode_with_encoder(engine, structure, conformer)
    return _encode_by_fitting(engine, structure, conformer, steps, progress)
