"""Molecules in: PDB/mmCIF (gemmi), SDF/MOL/MOL2 and SMILES (RDKit), XYZ -> :class:`Structure`.

gemmi and RDKit are imported only inside the readers, so ``Structure`` (and
``superpose``) work where only numpy is installed, e.g. on a GPU box.

Examples
--------
>>> from molviz.chem import load
>>> s = load("c1ccccc1O")            # SMILES -> 3D (ETKDGv3 + MMFF94), hydrogens explicit
>>> s.n_atoms
13
"""
from __future__ import annotations

from molviz._lazy import lazy_exports
from molviz._assets import asset_path

_EXPORTS = {
    "_elements": ("SYMBOLS", "atomic_number", "infer_element",),
    "_load": ("DEFAULT_MAX_ATOMS", "load", "read_freesolv", "rmsd", "superpose",),
    "_structure": ("COMPONENTS", "Structure",),
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted([*__all__, "asset_path"])
