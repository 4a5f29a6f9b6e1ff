"""A structure file sent from the browser, read by the same loaders, limits and errors as a path.

The bytes go to a private temporary folder (removed when reading ends, whatever happens) under
a fixed name that keeps only the sent file's suffix: the client's file name never becomes a
path on the server. The first conformer (MODEL, SDF record, XYZ frame) is the one encoded; the
note says when a file held more.

Examples
--------
>>> pdb = b"HETATM    1  C1  LIG A   1       0.000   0.000   0.000  1.00  0.00           C\\nEND\\n"
>>> s, notes = read_upload("one.pdb", pdb, hydrogens="keep")
>>> s.n_atoms, s.name, notes
(1, 'one', [])
"""
from __future__ import annotations

import tempfile
from pathlib import Path


def read_upload(name: str, content: bytes, *, hydrogens: str = "keep", max_file_mb: float = 20.0,
                max_atoms: int | None = None):
    """The :class:`molviz.chem.Structure` in an uploaded file (vetted by
    :func:`molviz.view.limits.clean_upload`), its first conformer, and notes for the user."""
    from molviz.chem import load

    lower = name.lower()
    gz = lower.endswith(".gz")
    suffix = Path(lower[:-3] if gz else lower).suffix
    stem = Path(name[:-3] if gz else name).stem or "upload"
    with tempfile.TemporaryDirectory(prefix="molviz-upload-") as folder:
        path = Path(folder) / f"upload{suffix}{'.gz' if gz else ''}"
        path.write_bytes(content)
        structure = load(path, name=stem, hydrogens=hydrogens, max_file_mb=max_file_mb, max_atoms=max_atoms)
    notes = list(structure.warnings)
    if structure.n_conformers > 1:
        notes.append(f"{name} holds {structure.n_conformers} conformers (models, records or frames); "
                     "the first is encoded")
        structure = structure.conformer(0)
    return structure, notes


__all__ = ["read_upload"]
