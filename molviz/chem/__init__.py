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

from molviz.chem._elements import SYMBOLS, atomic_number, infer_element
from molviz.chem._load import DEFAULT_MAX_ATOMS, load, read_freesolv, rmsd, superpose
from molviz.chem._structure import COMPONENTS, Structure
from molviz._assets import asset_path

__all__ = [
    "COMPONENTS", "DEFAULT_MAX_ATOMS", "SYMBOLS", "Structure", "asset_path", "atomic_number",
    "infer_element", "load", "read_freesolv", "rmsd", "superpose",
]
