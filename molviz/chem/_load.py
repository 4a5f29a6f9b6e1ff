"""``load``: files and SMILES to one :class:`Structure`; ``superpose``; FreeSolv."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from molviz._io import max_file_bytes
from molviz.chem._readers import FORMATS, ReadOptions, file_format, read_gemmi, read_rdkit, read_smiles, read_xyz
from molviz.chem._structure import Structure
from molviz.errors import InputError

DEFAULT_MAX_ATOMS = 1_000_000  # per conformer; override with max_atoms=... or $MOLVIZ_MAX_ATOMS


def max_atoms_default() -> int:
    """The atom limit: ``$MOLVIZ_MAX_ATOMS`` when set, else :data:`DEFAULT_MAX_ATOMS`."""
    env = os.environ.get("MOLVIZ_MAX_ATOMS")
    if env:
        try:
            return int(env)
        except ValueError:
            raise InputError(f"MOLVIZ_MAX_ATOMS={env!r} is not a whole number; set it to e.g. 2000000") from None
    return DEFAULT_MAX_ATOMS


def _looks_like_path(source: str) -> bool:
    """A known molecule-file extension, or a path separator plus an extension."""
    if file_format(Path(source)) is not None:
        return True
    return any(sep in source for sep in ("/", "\\")) and bool(re.fullmatch(r"\.[A-Za-z0-9]{1,6}", Path(source).suffix))


def _load_path(path: Path, options: ReadOptions) -> Structure:
    fmt = file_format(path)
    if fmt is None:
        if path.is_dir():
            raise InputError(f"{path}: a folder, not a molecule file; give a file inside it")
        raise InputError(
            f"{path}: unsupported file type {''.join(path.suffixes) or '(no extension)'!r}; molviz reads "
            f"{', '.join(sorted(FORMATS))} (optionally .gz) or a SMILES string")
    if fmt in ("pdb", "cif"):
        return read_gemmi(path, fmt, options)
    if fmt == "xyz":
        return read_xyz(path, options)
    return read_rdkit(path, fmt, options)


def _load_one(source: str | os.PathLike, options: ReadOptions) -> Structure:
    if isinstance(source, os.PathLike):
        return _load_path(Path(source).expanduser(), options)
    if not isinstance(source, str):
        raise InputError(f"cannot load {type(source).__name__} {source!r}; give a file path or a SMILES string")
    if not source.strip():
        raise InputError("empty source: give a file path or a SMILES string")
    if _looks_like_path(source):
        return _load_path(Path(source).expanduser(), options)
    if any(c.isspace() for c in source.strip()):
        path = Path(source).expanduser()
        if path.exists():
            return _load_path(path, options)
        raise InputError(f"{source!r}: no such file, and not a SMILES (SMILES have no spaces); "
                         "check the path (a relative path starts at the folder molviz runs in)")
    try:
        return read_smiles(source, options)
    except InputError:
        # Not a SMILES: maybe a file with an unknown extension, or a mistyped path.
        path = Path(source).expanduser()
        if path.exists():
            return _load_path(path, options)
        if any(c.isspace() for c in source.strip()) or re.fullmatch(r"[^()\[\]=#]*\.[A-Za-z0-9]{1,6}", source):
            raise InputError(f"{source!r}: no such file, and not a SMILES either; check the path "
                             "(a relative path starts at the folder molviz runs in)") from None
        raise


def _combine(parts: Sequence[Structure], name: str) -> Structure:
    counts = {p.n_conformers for p in parts}
    m = max(counts)
    if counts - {1, m}:
        detail = ", ".join(f"{p.sources[0] if p.sources else p.name}: {p.n_conformers}" for p in parts)
        raise InputError(f"sources have different numbers of conformers ({detail}); a complex needs the "
                         "same number from each source, or one conformer (used for all)")
    coords = np.concatenate([np.broadcast_to(p.coords, (m, p.n_atoms, 3)) for p in parts], axis=1)
    return Structure(
        coords=coords,
        atomic_numbers=np.concatenate([p.atomic_numbers for p in parts]),
        components=np.concatenate([p.components for p in parts]),
        atom_names=np.concatenate([p.atom_names for p in parts]),
        residue_names=np.concatenate([p.residue_names for p in parts]),
        name=name,
        smiles=parts[0].smiles if len(parts) == 1 else None,  # a complex has no one SMILES
        sources=tuple(s for p in parts for s in p.sources),
        warnings=tuple(w for p in parts for w in p.warnings),
    )


def load(
    *sources: str | os.PathLike,
    conformers: int | None = None,
    hydrogens: Literal["keep", "remove", "add"] = "keep",
    name: str | None = None,
    seed: int = 0,
    max_atoms: int | None = None,
    max_file_mb: float | None = None,
    geometry: Literal["mmff", "etkdg"] = "mmff",
) -> Structure:
    """Read molecules from files or SMILES into one :class:`Structure`.

    Parameters
    ----------
    *sources
        Paths (``.pdb .ent .cif .mmcif`` also gzipped, ``.sdf .mol .mol2``, ``.xyz``) or SMILES
        strings. Several sources make one complex: a PDB/mmCIF keeps its components by residue
        (protein, nucleic, water, ion, ligand); small-molecule files and SMILES are ``ligand``.
    conformers
        SMILES: how many conformers to embed (default 1). Files: keep at most this many
        (every PDB MODEL, SDF record and XYZ frame is a conformer).
    hydrogens
        ``"keep"`` as read (SMILES are embedded with explicit hydrogens), ``"remove"`` every
        hydrogen, ``"add"`` hydrogens with coordinates (RDKit; small molecules only).
    name
        Name of the result (default: the file stem(s) or the SMILES).
    seed
        Random seed of the ETKDG embedding (SMILES), for reproducible conformers.
    max_atoms
        Refuse structures with more atoms than this (default 1,000,000 or ``$MOLVIZ_MAX_ATOMS``).
    max_file_mb
        Refuse files larger than this many megabytes, gzipped files whose text would be, and
        gzip that inflates more than 100-fold (default 512 or ``$MOLVIZ_MAX_FILE_MB``).
    geometry
        How a SMILES is embedded: ETKDGv3 then MMFF94 (``"mmff"``), or ETKDGv3 alone
        (``"etkdg"``, what ``molviz train library --geometry etkdg`` prepared).

    Returns
    -------
    Structure

    Raises
    ------
    InputError
        A missing, empty, truncated, binary or malformed file; an unparseable SMILES; NaN
        coordinates; unknown elements; an unsupported extension. The message names the source.
    ResourceLimitError
        More atoms than ``max_atoms``; a file (or its gunzipped text) over ``max_file_mb``.

    Notes
    -----
    PDB/mmCIF: every atom record is kept, also where residue numbers or atom serials repeat
    or overflow (MD files wrap them); only alternative locations the file marks (altloc
    column / ``label_alt_id``) are dropped, the first of each residue kept, and
    ``warnings`` says how many. MD residue names (HSD, CYX, NALA, DA5 ...) are protein or
    nucleic. MODEL records are conformers in file order, also when their numbers repeat.

    Examples
    --------
    >>> from molviz.chem import load
    >>> s = load("CCO", conformers=3, seed=1)
    >>> s.n_conformers, s.n_atoms, str(s.components[0])
    (3, 9, 'ligand')
    """
    if not sources:
        raise InputError("load() needs at least one source: a file path or a SMILES string")
    if hydrogens not in ("keep", "remove", "add"):
        raise InputError(f"hydrogens={hydrogens!r}; use 'keep', 'remove' or 'add'")
    if conformers is not None and (not isinstance(conformers, (int, np.integer)) or conformers < 1):
        raise InputError(f"conformers={conformers!r}; give a whole number >= 1 (or None)")
    limit = max_atoms_default() if max_atoms is None else int(max_atoms)
    options = ReadOptions(conformers=conformers, hydrogens=hydrogens, seed=seed, max_atoms=limit,
                          max_bytes=max_file_bytes(max_file_mb), geometry=geometry)
    parts = [_load_one(source, options) for source in sources]
    if name is None:
        name = "+".join(p.name for p in parts)
    structure = _combine(parts, name)
    bad = (structure.atomic_numbers < 1) | (structure.atomic_numbers > 118)
    if bad.any():
        k = int(np.argmax(bad))
        raise InputError(f"{name}: atom {k + 1} ({structure.atom_names[k]}) has no known element "
                         f"(atomic number {structure.atomic_numbers[k]}); fix it in the source")
    return finish_structure(structure, name, hydrogens=hydrogens, limit=limit,
                            too_many=f"atoms in all is more than the limit of {limit:,}; load fewer sources or "
                                     "raise max_atoms")


def finish_structure(structure: Structure, name: str, *, hydrogens: str, limit: int, too_many: str) -> Structure:
    """What every reader's result goes through: hydrogens removed when asked, the atom limit
    (``too_many`` finishes the refusal after the count), the name."""
    if hydrogens == "remove":
        structure = structure.select(structure.atomic_numbers != 1)
        if structure.n_atoms == 0:
            raise InputError(f"{name}: only hydrogens; nothing is left with hydrogens='remove'")
    if structure.n_atoms > limit:
        from molviz.errors import ResourceLimitError

        raise ResourceLimitError(f"{name}: {structure.n_atoms:,} {too_many}")
    return structure


def superpose(structure: Structure, *, reference: int = 0, mask: np.ndarray | None = None) -> Structure:
    """Rigidly superpose every conformer onto conformer ``reference`` (Kabsch, no scaling).

    Parameters
    ----------
    structure
        A structure with one or more conformers.
    reference
        Index of the conformer the others are fitted to (it does not move).
    mask
        Boolean (N,) or indices: fit on these atoms only (e.g. protein C-alpha atoms); every
        atom is moved.

    Returns
    -------
    Structure
        Same atoms, superposed coordinates.

    Examples
    --------
    >>> from molviz.chem import load, superpose
    >>> s = superpose(load("CCCCO", conformers=4))
    >>> s.n_conformers
    4
    """
    coords = structure.coords.astype(np.float64)  # (M, N, 3)
    m = structure.n_conformers
    if not -m <= reference < m:
        raise InputError(f"reference={reference}: {structure.name!r} has {m} conformer(s)")
    sel = np.arange(structure.n_atoms) if mask is None else np.asarray(mask)
    fit = coords[:, sel]  # (M, K, 3)
    if fit.shape[1] < 3:
        raise InputError(f"superpose needs at least 3 atoms in the mask; got {fit.shape[1]}")
    ref = fit[reference]
    ref_centre = ref.mean(axis=0)
    out = np.empty_like(coords)
    for i in range(m):
        centre = fit[i].mean(axis=0)
        h = (fit[i] - centre).T @ (ref - ref_centre)  # (3, 3) covariance
        u, _, vt = np.linalg.svd(h)
        d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0  # no reflections
        rot = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
        out[i] = (coords[i] - centre) @ rot.T + ref_centre
    return structure._replace(coords=out.astype(np.float32))


def rmsd(structure: Structure, *, reference: int = 0, mask: np.ndarray | None = None) -> np.ndarray:
    """Per-conformer RMSD (angstrom) from conformer ``reference``, without fitting. Shape (M,)."""
    sel = slice(None) if mask is None else np.asarray(mask)
    diff = structure.coords[:, sel] - structure.coords[reference][sel]
    return np.sqrt((diff.astype(np.float64) ** 2).sum(-1).mean(-1))


def read_freesolv(path: str | os.PathLike | None = None) -> list[dict]:
    """Rows of FreeSolv's ``database.txt`` (v0.52, semicolon separated, ``#`` header lines).

    Each row: ``compound_id``, ``smiles``, ``iupac``, ``expt`` (kcal/mol), ``expt_uncertainty``,
    ``calc`` (GAFF, kcal/mol), ``calc_uncertainty``.

    Examples
    --------
    >>> rows = read_freesolv()
    >>> len(rows), rows[0]["compound_id"]
    (642, 'mobley_1017962')
    """
    from molviz._assets import asset_path

    path = Path(path) if path is not None else asset_path("data", "freesolv", "database.txt")
    if not path.is_file():
        raise InputError(f"{path}: FreeSolv database not found; give the path of database.txt")
    rows = []
    for k, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split(";")]
        if len(fields) < 7:
            raise InputError(f"{path}: line {k} has {len(fields)} fields, expected at least 7 "
                             "(id; SMILES; name; expt; uncertainty; calc; calc uncertainty)")
        try:
            rows.append({
                "compound_id": fields[0], "smiles": fields[1], "iupac": fields[2],
                "expt": float(fields[3]), "expt_uncertainty": float(fields[4]),
                "calc": float(fields[5]), "calc_uncertainty": float(fields[6]),
            })
        except ValueError:
            raise InputError(f"{path}: line {k}: the energies are not numbers; is this FreeSolv's "
                             "database.txt?") from None
    return rows
