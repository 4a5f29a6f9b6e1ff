"""Canonical SMILES: one spelling per molecule, for encoding and search."""
from __future__ import annotations


def canonical_smiles(text: str) -> str | None:
    """RDKit's canonical SMILES of ``text``, or None when it is not a SMILES. Encoding and search use
    it, so two spellings of one molecule get one conformer and land on one point.

    Examples
    --------
    >>> canonical_smiles("OCC") == canonical_smiles("C(O)C") == "CCO"
    True
    """
    if not text or any(c.isspace() for c in text.strip()) or len(text) > 10_000:
        return None
    from rdkit import Chem, RDLogger
    RDLogger.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(text.strip())
    finally:
        RDLogger.EnableLog("rdApp.*")
    return Chem.MolToSmiles(mol) if mol is not None else None
