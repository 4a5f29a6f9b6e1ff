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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from molviz.engine._types import Encoded
from molviz.errors import InputError


def as_structure(source: Any, *, name: str | None = None, hydrogens: str = "keep", seed: int = 0,
                 spellings: dict[str, str] | None = None, geometry: str = "mmff"):
    """A :class:`molviz.chem.Structure` from a Structure, a path or a SMILES string.

    ``hydrogens``, ``seed`` and ``geometry`` should be the bundle's (its training data config),
    so a SMILES gets the same conformer as in training. A SMILES is canonicalised first, so two
    spellings of one molecule get one conformer; where ``spellings`` (canonical SMILES -> the
    spelling a training item was made from, :func:`stored_spellings`) knows the molecule, that
    spelling is used, so a training molecule typed any way reproduces its training conformer.
    """
    if hasattr(source, "coords") and hasattr(source, "atomic_numbers"):
        return source
    if isinstance(source, (str, os.PathLike)):
        from molviz.chem import canonical_smiles, load  # RDKit / gemmi: only here, never at import
        text = str(source)
        canonical = canonical_smiles(text) if isinstance(source, str) and not Path(text).exists() else None
        if canonical is not None and spellings:
            canonical = spellings.get(canonical, canonical)
        return load(canonical or text, name=name or (text if canonical else None), hydrogens=hydrogens, seed=seed,
                    geometry=geometry)  # type: ignore[arg-type]
    raise InputError(f"cannot encode a {type(source).__name__}: give a SMILES string, a molecule file path "
                     "or a molviz.chem.Structure")


def stored_spellings(bundle) -> dict[str, str]:
    """Canonical SMILES -> the SMILES a bundle's item was prepared from (computed once per bundle)."""
    cached = getattr(bundle, "_spellings", None)
    if cached is None:
        from molviz.chem import canonical_smiles
        cached = {}
        for item in bundle.items:
            smi = item.get("smiles")
            canon = canonical_smiles(str(smi)) if smi else None
            if canon is not None:
                cached.setdefault(canon, str(smi))
        bundle._spellings = cached
    return cached


def domain_warnings(bundle, structure, box, latent, *, conformer: int = 0) -> list[str]:
    """Where a new input lies outside what the bundle was trained on: its atom count, elements, box
    size and latent's distance to the nearest training latent, each against the training set's range.

    Needs the atom tables ``molviz train`` stores; a bundle without them gets no warnings. The
    latent distance compares with the training latents' own nearest-neighbour distances (on at most
    2000 of them).
    """
    from molviz.fields._atoms import element_channels
    from molviz.models import has_tables
    warnings: list[str] = []
    if not has_tables(bundle):
        return warnings
    a = bundle.arrays
    offsets, xyz = np.asarray(a["atoms_offsets"]), np.asarray(a["atoms_xyz"])
    counts = np.array([len(np.unique(xyz[lo:hi], axis=0)) for lo, hi in zip(offsets[:-1], offsets[1:])])
    n = int(structure.n_atoms)
    if counts.size and not counts.min() * 0.8 <= n <= counts.max() * 1.25:
        warnings.append(f"{n} atoms, while the training items have {counts.min()}..{counts.max()}: "
                        "the model has not seen molecules of this size")
    channels = bundle.spec.channels
    known = set(element_channels(channels).values())
    if known:
        from molviz.chem import element_symbol
        new = sorted({int(z) for z in np.asarray(structure.atomic_numbers)} - known)
        if new:
            covered = any(ch.elements is None for ch in channels)
            where = ("appear only in its property channels (" + ", ".join(c.name for c in channels if c.elements is None)
                     + ")") if covered else "are not drawn by this model at all"
            warnings.append(f"elements {', '.join(element_symbol(z) for z in new)} have no channel of their own in "
                            f"this model: they {where}")
    sizes = np.asarray(bundle.boxes[:, 1] - bundle.boxes[:, 0], np.float64).max(1)
    size = float(np.max(np.asarray(box[1], np.float64) - np.asarray(box[0], np.float64)))
    if sizes.size and not sizes.min() * 0.9 <= size <= sizes.max() * 1.1:
        warnings.append(f"its box is {size:.1f} A wide, while the training boxes are {sizes.min():.1f}.."
                        f"{sizes.max():.1f} A")
    lat = torch.as_tensor(np.asarray(bundle.latents, np.float32))
    if len(lat) >= 3:
        sample = lat[torch.randperm(len(lat), generator=torch.Generator().manual_seed(0))[:2000]]
        d = torch.cdist(sample, sample)
        d.fill_diagonal_(float("inf"))
        typical = float(torch.quantile(d.min(1).values, 0.99))
        nearest = float(torch.cdist(torch.as_tensor(np.asarray(latent, np.float32))[None], lat).min())
        if nearest > 2.0 * typical:
            warnings.append(f"its latent lies {nearest:.3g} from the nearest training item, while 99% of training "
                            f"items have a neighbour within {typical:.3g}: treat its reconstruction with care")
    return warnings


def _encode_with_encoder(engine, structure, conformer: int, refine: int = 0,
                         on_step: Callable[[int, int], None] | None = None) -> Encoded:
    from molviz.engine._fit import item_target
    from molviz.models import psnr
    from molviz.models._refine import refine_latent
    bundle = engine.bundle
    box, _table, _div, target = item_target(bundle, structure, conformer=conformer, device=engine.device)
    R, C = int(bundle.spec.resolution), engine.n_channels
    field = target.T.reshape(1, C, R, R, R).float()                                # (1, C, R, R, R)
    encoder = bundle.encoder.to(engine.device).eval()
    box_t = torch.as_tensor(np.asarray(box, np.float32), device=engine.device)[None]  # (1, 2, 3)
    with torch.no_grad():
        latent = encoder(field, box_t)[0].float()                                  # (L,)
    encoded = latent.cpu().numpy()
    if refine > 0:      # the encoder's latent taken further against the field the atoms give
        r = refine_latent(engine.model, latent, target.float(), resolution=R, steps=refine,
                          l1=bundle.spec.loss == "l1", on_step=on_step)
        engine.model.eval()
        return Encoded(latent=r.latent.float().numpy(), box=np.asarray(box, np.float32), method="encoder+refine",
                       psnr=psnr(r.prediction, target), name=getattr(structure, "name", ""),
                       structure=structure, encoder_latent=encoded, refine_steps=r.steps)
    recon = engine.decode(encoded, resolution=R, cache=False)[0]
    return Encoded(latent=encoded, box=np.asarray(box, np.float32), method="encoder",
                   psnr=psnr(recon, field[0].cpu().numpy()), name=getattr(structure, "name", ""),
                   structure=structure)


def _encode_by_fitting(engine, structure, conformer: int, steps: int, progress: bool,
                       on_step: Callable[[int, int], None] | None = None) -> Encoded:
    from molviz.engine._fit import fit_latent
    res = fit_latent(engine.bundle, structure, conformer=conformer, steps=steps, device=str(engine.device),
                     progress=progress, on_step=on_step)
    engine.model.eval()
    for p in engine.model.parameters():   # fit_latent re-enables gradients when it is done
        p.requires_grad_(False)
    return Encoded(latent=res.latent.float().cpu().numpy(), box=np.asarray(res.box, np.float32), method="fit",
                   psnr=float(res.psnr), name=getattr(structure, "name", ""), structure=structure)


def encode(engine, source: Any, *, conformer: int = 0, steps: int = 2000, progress: bool = False,
           on_step: Callable[[int, int], None] | None = None, refine: int = 0) -> Encoded:
    """Encode ``source`` with ``engine``'s bundle; see :meth:`molviz.engine.Engine.encode`.

    Examples
    --------
    >>> enc = encode(Engine("assets/models/freesolv"), "CCO")   # doctest: +SKIP
    >>> enc.latent.shape, enc.method                            # doctest: +SKIP
    ((512,), 'encoder')
    """
    spec = engine.bundle.spec
    spec.require_sampling(engine.bundle.name, "encode new inputs")
    structure = as_structure(source, hydrogens=spec.hydrogens, seed=spec.seed, geometry=spec.geometry,
                             spellings=stored_spellings(engine.bundle))
    if not 0 <= conformer < structure.n_conformers:
        raise InputError(f"conformer {conformer} does not exist: {structure.name!r} has "
                         f"{structure.n_conformers} conformer(s)")
    if engine.bundle.encoder is not None:
        enc = _encode_with_encoder(engine, structure, conformer, refine, on_step)
    else:
        enc = _encode_by_fitting(engine, structure, conformer, steps, progress, on_step)
    enc.warnings = domain_warnings(engine.bundle, structure.conformer(conformer), enc.box, enc.placed_latent)
    return enc
