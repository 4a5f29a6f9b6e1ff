"""Molecules in: PDB/mmCIF (gemmi), SDF/MOL/MOL2 and SMILES (RDKit), XYZ, MD trajectories
(MDAnalysis), libraries (SMILES tables, multi-record SDF, folders) -> :class:`Structure`.

gemmi, RDKit and MDAnalysis are imported only inside the readers, so ``Structure`` (and
``superpose``) work where only numpy is installed, e.g. on a GPU box.

Examples
--------
>>> from molviz.chem import load
>>> s = load("c1ccccc1O")            # SMILES -> 3D (ETKDGv3 + MMFF94), hydrogens explicit
>>> s.n_atoms
13
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from molviz._assets import asset_path  # noqa: F401  (molviz.chem.asset_path: shipped structures)
from molviz._lazy import lazy_exports

_EXPORTS = {
    "_datasets": ("DATASETS", "LIGAND_SMILES_6EGA", "shipped_structure",),
    "_elements": ("COVALENT_RADII", "ELEMENT_COLORS", "SYMBOLS", "atomic_number", "element_color", "element_symbol",
                  "infer_element", "parse_element",),
    "_library": ("LibraryRecord", "library_records", "record_structure", "typed_properties",),
    "_load": ("DEFAULT_MAX_ATOMS", "load", "read_freesolv", "rmsd", "superpose",),
    "_smiles": ("canonical_smiles",),
    "_structure": ("COMPONENTS", "Structure",),
    "_trajectory": ("Trajectory", "needs_mdanalysis", "read_trajectory",),
}

if TYPE_CHECKING:  # pragma: no cover  (what the lazy exports resolve to, for type checkers and IDEs)
    from molviz.chem._datasets import DATASETS, LIGAND_SMILES_6EGA, shipped_structure  # noqa: F401
    from molviz.chem._elements import (  # noqa: F401
        COVALENT_RADII,
        ELEMENT_COLORS,
        SYMBOLS,
        atomic_number,
        element_color,
        element_symbol,
        infer_element,
        parse_element,
    )
    from molviz.chem._library import LibraryRecord, library_records, record_structure, typed_properties  # noqa: F401
    from molviz.chem._load import DEFAULT_MAX_ATOMS, load, read_freesolv, rmsd, superpose  # noqa: F401
    from molviz.chem._smiles import canonical_smiles  # noqa: F401
    from molviz.chem._structure import COMPONENTS, Structure  # noqa: F401
    from molviz.chem._trajectory import Trajectory, needs_mdanalysis, read_trajectory  # noqa: F401

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted([*__all__, "asset_path"])
