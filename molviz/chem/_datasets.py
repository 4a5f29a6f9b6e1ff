"""The shipped datasets' structures, in one place: what training prepares and the viewer reloads.

``assets/data/`` holds the files (provenance in its README); these functions say which
files make which dataset and how they are read.
"""
from __future__ import annotations

from molviz.chem._structure import Structure

DATASETS = ("6ega", "nmr", "freesolv")
LIGAND_SMILES_6EGA = "O=C(Nc1ccc(CN2CCNCC2)c(C(F)(F)F)c1)c1cccc(-c2ccc3nc(NC(=O)C4CC4)sc3n2)c1"


def shipped_structure(dataset: str, *, hydrogens: str = "keep") -> Structure:
    """The structure of a shipped multi-atom dataset: ``"6ega"`` (IRAK4 protein + the J8A ligand, one
    complex) or ``"nmr"`` (PDB 2JUY, 24 NMR models superposed on the first).

    Examples
    --------
    >>> shipped_structure("nmr").n_conformers   # doctest: +SKIP
    24
    """
    from molviz._assets import asset_path
    from molviz.chem._load import load, superpose
    from molviz.errors import InputError
    if dataset == "6ega":
        return load(str(asset_path("data", "6ega", "6ega_protein.pdb")),
                    str(asset_path("data", "6ega", "6ega_ligand_J8A_withH.sdf")), hydrogens=hydrogens, name="6EGA")
    if dataset == "nmr":
        return superpose(load(str(asset_path("data", "nmr-2juy", "2juy.pdb")), hydrogens=hydrogens, name="2JUY"))
    raise InputError(f"no shipped structure {dataset!r}: choose 6ega or nmr (FreeSolv comes as SMILES: "
                     "molviz.chem.read_freesolv)")
