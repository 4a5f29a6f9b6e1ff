"""Molecular-dynamics trajectories through MDAnalysis: a topology and trajectory files -> one
:class:`Structure`, one conformer per frame.

MDAnalysis is imported inside the functions (``import molviz.chem`` must work without it).
Elements come from the topology where it has them (PDB element columns, PRMTOP atomic
numbers); atoms without one get molviz's name-based inference
(:func:`molviz.chem.infer_element`, the rules structural-biology tools use), and the
result's ``warnings`` say so. Every atom is kept: an atom whose element cannot be told
refuses the whole read, naming it.

Examples
--------
>>> from molviz.chem import asset_path
>>> t = read_trajectory(asset_path("data", "nmr-2juy", "2juy.pdb"), stride=10)
>>> t.structure.n_conformers, t.frames.tolist()
(3, [0, 10, 20])
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from molviz._io import max_file_bytes
from molviz.chem._elements import (
    AMINO_ACIDS,
    ION_RESIDUES,
    METALS_AND_HALIDES,
    NUCLEOTIDES,
    SYMBOLS,
    WATERS,
    infer_element,
    parse_element,
)
from molviz.chem._residues import polymer_component
from molviz.chem._structure import Structure
from molviz.errors import InputError, ResourceLimitError

# extensions that only MDAnalysis reads here (molviz.chem.load reads PDB, mmCIF, SDF, MOL2, XYZ itself)
TOPOLOGY_ONLY = frozenset({".psf", ".gro", ".prmtop", ".parm7", ".top", ".tpr", ".pqr", ".data"})
TRAJECTORY_ONLY = frozenset({".dcd", ".xtc", ".trr", ".nc", ".ncdf", ".netcdf", ".mdcrd", ".crd", ".lammpstrj"})


def needs_mdanalysis(paths: list[str | os.PathLike]) -> bool:
    """True when ``paths`` name a topology / trajectory format only MDAnalysis reads."""
    return any(Path(p).suffix.lower() in TOPOLOGY_ONLY | TRAJECTORY_ONLY for p in paths)


@dataclass
class Trajectory:
    """The frames read: ``structure`` (M conformers), each one's frame number and time (ps)."""

    structure: Structure
    frames: np.ndarray                     # (M,) int, frame numbers in the (joined) trajectory
    times: np.ndarray                      # (M,) float, ps
    skipped: list[tuple[str, int | None, str]] = field(default_factory=list)   # (source, frame, reason)
    n_frames: int = 0                      # frames considered (after start/stop/stride)


def _component(resname: str, atom_names: list[str], element: str, n_atoms: int) -> str:
    name = resname.strip().upper()
    if name in WATERS:
        return "water"
    kind = polymer_component(name, atom_names)
    if kind is not None:
        return kind
    if name in AMINO_ACIDS:
        return "protein"
    if name in NUCLEOTIDES and n_atoms > 1:
        return "nucleic"
    if n_atoms == 1 and (name in ION_RESIDUES or element.upper() in METALS_AND_HALIDES):
        return "ion"
    return "ligand"


def _components(atoms, z: np.ndarray) -> np.ndarray:
    """One component per atom, decided once per residue (residue name, its atoms, the element)."""
    from molviz.chem._residues import CHARMM_NUCLEOTIDES

    resindices = np.asarray(atoms.resindices)
    resnames = np.asarray(atoms.resnames, dtype=str)
    names = np.asarray(atoms.names, dtype=str)
    first = {}
    for k, r in enumerate(resindices.tolist()):
        first.setdefault(r, k)
    sizes = np.bincount(resindices)
    out = np.empty(len(resindices), dtype=object)
    per_residue = {}
    for r, k in first.items():
        name = str(resnames[k])
        members = names[resindices == r].tolist() if name.strip().upper() in CHARMM_NUCLEOTIDES else []
        kind = _component(name, members, SYMBOLS[z[k] - 1], int(sizes[r]))
        if kind == "ligand" and sizes[r] > 2:   # a modified residue in a chain (SME, MSE ...): its backbone
            atoms_here = set(names[resindices == r].tolist())
            kind = ("protein" if {"N", "CA", "C"} <= atoms_here
                    else "nucleic" if {"C1'", "C4'", "O4'"} <= atoms_here else kind)
        per_residue[r] = kind
    out[:] = [per_residue[r] for r in resindices.tolist()]
    return out.astype(str)


def _elements(atoms, source: str) -> tuple[np.ndarray, list[str]]:
    """Atomic numbers of ``atoms`` (topology elements, else inferred from names) and notes."""
    from MDAnalysis.exceptions import NoDataError

    n = len(atoms)
    try:
        given = [str(e) for e in atoms.elements]
    except (AttributeError, NoDataError):
        given = [""] * n
    z = np.array([parse_element(e) or 0 for e in given], dtype=np.int64)
    notes = []
    missing = np.flatnonzero(z == 0)
    if len(missing):
        names, resnames = atoms.names, atoms.resnames
        sizes = np.bincount(atoms.universe.atoms.resindices)   # whole residues, selected or not
        inferred: set[str] = set()
        for k in missing:
            kind = polymer_component(str(resnames[k]))
            residue = {"protein": "ALA", "nucleic": "DA"}.get(kind, str(resnames[k]))
            symbol = infer_element(str(names[k]), residue, n_residue_atoms=int(sizes[atoms.resindices[k]]))
            number = parse_element(symbol) if symbol else None
            if not number:
                raise InputError(
                    f"{source}: cannot tell the element of atom {k + 1} ({names[k]!r} in residue "
                    f"{resnames[k]} {atoms.resids[k]}); the topology has no element for it and the name gives "
                    "none. Use a topology with elements (PDB element columns, PRMTOP, TPR), or leave the "
                    "atom out with --select")
            z[k] = number
            inferred.add(SYMBOLS[number - 1])
        whole = "no elements" if len(missing) == n else f"no element for {len(missing):,} of {n:,} atoms"
        notes.append(f"the topology has {whole}: inferred from atom and residue names "
                     f"({', '.join(sorted(inferred))})")
    return z, notes


def read_trajectory(topology: str | os.PathLike, *trajectories: str | os.PathLike, stride: int = 1,
                    start: int | None = None, stop: int | None = None, select: str | None = None,
                    hydrogens: str = "keep", name: str | None = None, max_atoms: int | None = None,
                    max_file_mb: float | None = None) -> Trajectory:
    """Frames of an MD trajectory as one :class:`Structure` (one conformer per frame).

    Parameters
    ----------
    topology
        PDB, PSF, GRO, PRMTOP/PARM7, TPR, PQR ... (anything MDAnalysis reads as a topology). Alone,
        its own frames are read (a multi-MODEL PDB, a multi-frame GRO).
    *trajectories
        DCD, XTC, TRR, NetCDF ... files, joined in order.
    stride, start, stop
        Frames ``start:stop:stride`` of the joined trajectory (Python slice rules).
    select
        An MDAnalysis selection (``"protein and not name H*"``); default every atom.
    hydrogens
        ``"keep"`` or ``"remove"`` (MD files carry their hydrogens; ``"add"`` is refused).
    max_atoms
        Refuse more atoms than this per frame (default as :func:`molviz.chem.load`).
    max_file_mb
        Refuse a topology larger than this, or frames whose coordinates would take more memory.

    Returns
    -------
    Trajectory
        Frames with NaN or infinite coordinates are left out and listed in ``skipped``.
    """
    from molviz.chem._load import max_atoms_default

    try:
        import MDAnalysis as mda
    except ImportError:
        raise InputError("reading MD trajectories needs MDAnalysis: pip install MDAnalysis==2.11.0") from None
    if hydrogens not in ("keep", "remove"):
        raise InputError(f"hydrogens={hydrogens!r}: MD trajectories keep their own hydrogens; use 'keep' "
                         "or 'remove'")
    if stride < 1:
        raise InputError(f"--stride {stride}: give a whole number >= 1")
    limit = max_atoms_default() if max_atoms is None else int(max_atoms)
    max_bytes = max_file_bytes(max_file_mb)
    top = Path(topology).expanduser()
    files = [Path(t).expanduser() for t in trajectories]
    for p in (top, *files):
        if not p.is_file():
            raise InputError(f"{p}: no such file; check the path (a relative path starts at the folder molviz runs in)")
    if top.stat().st_size > max_bytes:
        raise ResourceLimitError(f"{top}: {top.stat().st_size / 2**20:.0f} MB is more than the limit of "
                                 f"{max_bytes / 2**20:.0f} MB; raise it with --max-file-mb")
    source = str(top) if not files else f"{top} + {', '.join(map(str, files))}"
    skipped: list[tuple[str, int | None, str]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # MDAnalysis warns about every missing optional attribute
        if len(files) > 1:                # an unreadable part is left out (and listed), not fatal
            good = []
            for p in files:
                try:
                    mda.Universe(str(top), str(p))
                    good.append(p)
                except Exception as exc:  # noqa: BLE001 - MDAnalysis raises many kinds
                    skipped.append((str(p), None, f"MDAnalysis could not read it with {top.name} "
                                                  f"({type(exc).__name__}: {exc})"))
            if not good:
                raise InputError(f"{source}: none of the trajectory files could be read with the topology: "
                                 + "; ".join(r for _, _, r in skipped))
            files = good
        try:
            u = mda.Universe(str(top), *[str(p) for p in files])
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"{source}: MDAnalysis could not read it ({type(exc).__name__}: {exc}); check "
                             "that the topology and the trajectory belong together (same atoms)") from None
        try:
            atoms = u.select_atoms(select) if select else u.atoms
        except Exception as exc:  # noqa: BLE001 - SelectionError, ValueError ...
            raise InputError(f"--select {select!r}: {exc}; see MDAnalysis's selection language "
                             "(e.g. 'protein', 'not resname SOL', 'name CA')") from None
        if len(atoms) == 0:
            raise InputError(f"{source}: the selection {select!r} matches no atoms")
        z, notes = _elements(atoms, source)
        if select:
            notes.append(f"atoms selected with {select!r}: {len(atoms):,} of {len(u.atoms):,}")
        keep = np.ones(len(atoms), bool) if hydrogens == "keep" else z != 1
        if not keep.any():
            raise InputError(f"{source}: only hydrogens; nothing is left with hydrogens='remove'")
        if int(keep.sum()) > limit:
            raise ResourceLimitError(f"{source}: {int(keep.sum()):,} atoms per frame is more than the limit of "
                                     f"{limit:,}; select fewer atoms (--select) or raise the limit (--max-atoms)")
        frames = range(len(u.trajectory))[slice(start, stop, stride)]
        if len(frames) == 0:
            raise InputError(f"{source}: no frames in {start}:{stop}:{stride} (the trajectory has "
                             f"{len(u.trajectory)})")
        nbytes = len(frames) * int(keep.sum()) * 12
        if nbytes > max_bytes:
            raise ResourceLimitError(
                f"{source}: {len(frames):,} frames of {int(keep.sum()):,} atoms take {nbytes / 2**20:.0f} MB, "
                f"more than the limit of {max_bytes / 2**20:.0f} MB; read fewer frames (--stride, --start, "
                "--stop) or atoms (--select), or raise --max-file-mb")
        coords, kept, times = [], [], []
        for ts in u.trajectory[slice(start, stop, stride)]:
            xyz = atoms.positions[keep].astype(np.float32)
            if not np.isfinite(xyz).all():
                skipped.append((source, int(ts.frame), "NaN or infinite coordinates"))
                continue
            coords.append(xyz)
            kept.append(int(ts.frame))
            times.append(float(ts.time))
        if not coords:
            raise InputError(f"{source}: no frame has finite coordinates")
        components = _components(atoms, z)
        structure = Structure(
            coords=np.stack(coords), atomic_numbers=z[keep], components=components[keep],
            atom_names=np.asarray(atoms.names, dtype=str)[keep],
            residue_names=np.asarray(atoms.resnames, dtype=str)[keep],
            name=name or top.name.split(".")[0], sources=(str(top), *map(str, files)), warnings=tuple(notes))
    return Trajectory(structure, np.asarray(kept, np.int64), np.asarray(times, np.float64), skipped, len(frames))
