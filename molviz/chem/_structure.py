"""The ``Structure`` every stage passes around: plain numpy arrays, no parser objects."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from molviz.errors import InputError

COMPONENTS = ("ligand", "protein", "nucleic", "water", "ion")


@dataclass
class Structure:
    """Atoms of one molecule or complex, with one or more conformers.

    Attributes
    ----------
    coords : (M, N, 3) float32
        Cartesian coordinates in angstrom, M conformers of N atoms.
    atomic_numbers : (N,) int64
    components : (N,) str
        Each one of :data:`COMPONENTS`.
    atom_names, residue_names : (N,) str
        As read (PDB names; element symbols for small-molecule files and SMILES).
    name : str
    smiles : str or None
        The SMILES a structure was built from, or RDKit's for small-molecule files.
    sources : tuple of str
        Where the atoms came from (paths or SMILES), in order.
    warnings : tuple of str
        Things a user may want to know (e.g. the force field used after embedding).

    Examples
    --------
    >>> import numpy as np
    >>> s = Structure(np.zeros((1, 2, 3)), np.array([6, 8]), np.array(["ligand"] * 2),
    ...               np.array(["C1", "O1"]), np.array(["LIG"] * 2), name="co")
    >>> s.n_atoms, s.n_conformers
    (2, 1)
    """

    coords: np.ndarray
    atomic_numbers: np.ndarray
    components: np.ndarray
    atom_names: np.ndarray
    residue_names: np.ndarray
    name: str
    smiles: str | None = None
    sources: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        coords = np.asarray(self.coords, dtype=np.float32)
        if coords.ndim == 2:
            coords = coords[None]
        if coords.ndim != 3 or coords.shape[-1] != 3:
            raise InputError(f"structure {self.name!r}: coords must have shape (M, N, 3), got {coords.shape}")
        n = coords.shape[1]
        self.coords = np.ascontiguousarray(coords)
        self.atomic_numbers = np.asarray(self.atomic_numbers, dtype=np.int64).reshape(-1)
        self.components = np.asarray(self.components, dtype=str).reshape(-1)
        self.atom_names = np.asarray(self.atom_names, dtype=str).reshape(-1)
        self.residue_names = np.asarray(self.residue_names, dtype=str).reshape(-1)
        for label in ("atomic_numbers", "components", "atom_names", "residue_names"):
            if len(getattr(self, label)) != n:
                raise InputError(f"structure {self.name!r}: {label} has {len(getattr(self, label))} "
                                 f"entries for {n} atoms; give one per atom")
        unknown = set(self.components.tolist()) - set(COMPONENTS)
        if unknown:
            raise InputError(f"structure {self.name!r}: unknown component(s) {sorted(unknown)}; "
                             f"use one of {COMPONENTS}")
        self.sources = tuple(str(s) for s in self.sources)
        self.warnings = tuple(str(w) for w in self.warnings)

    # -- shape -----------------------------------------------------------------------------
    @property
    def n_atoms(self) -> int:
        """Number of atoms N."""
        return int(self.coords.shape[1])

    @property
    def n_conformers(self) -> int:
        """Number of conformers M."""
        return int(self.coords.shape[0])

    def conformer(self, i: int) -> Structure:
        """The structure with only conformer ``i`` (negative indices count from the end)."""
        if not -self.n_conformers <= i < self.n_conformers:
            raise InputError(f"structure {self.name!r} has {self.n_conformers} conformer(s); "
                             f"conformer {i} does not exist")
        i %= self.n_conformers
        return self._replace(coords=self.coords[i:i + 1])

    def select(self, mask: np.ndarray) -> Structure:
        """The structure with only the atoms where ``mask`` is true (or at the given indices)."""
        mask = np.asarray(mask)
        if mask.dtype == bool and mask.shape != (self.n_atoms,):
            raise InputError(f"structure {self.name!r}: a boolean mask needs shape ({self.n_atoms},), "
                             f"got {mask.shape}")
        return self._replace(
            coords=self.coords[:, mask],
            atomic_numbers=self.atomic_numbers[mask],
            components=self.components[mask],
            atom_names=self.atom_names[mask],
            residue_names=self.residue_names[mask],
        )

    def _replace(self, **changes) -> Structure:
        values = {k: getattr(self, k) for k in (
            "coords", "atomic_numbers", "components", "atom_names", "residue_names",
            "name", "smiles", "sources", "warnings")}
        values.update(changes)
        return Structure(**values)

    # -- serialisation ------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain numpy arrays (no objects), loadable with ``allow_pickle=False``."""
        return {
            "coords": self.coords,
            "atomic_numbers": self.atomic_numbers,
            "components": self.components.astype(str),
            "atom_names": self.atom_names.astype(str),
            "residue_names": self.residue_names.astype(str),
            "name": np.array(self.name, dtype=str),
            "smiles": np.array(self.smiles if self.smiles is not None else "", dtype=str),
            "has_smiles": np.array(self.smiles is not None),
            "sources": np.array(self.sources, dtype=str).reshape(-1),
            "warnings": np.array(self.warnings, dtype=str).reshape(-1),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Structure:
        """Inverse of :meth:`to_arrays`."""
        try:
            has_smiles = bool(arrays["has_smiles"]) if "has_smiles" in arrays else bool(str(arrays["smiles"]))
            return cls(
                coords=arrays["coords"],
                atomic_numbers=arrays["atomic_numbers"],
                components=arrays["components"],
                atom_names=arrays["atom_names"],
                residue_names=arrays["residue_names"],
                name=str(arrays["name"]),
                smiles=str(arrays["smiles"]) if has_smiles else None,
                sources=tuple(str(s) for s in np.asarray(arrays.get("sources", ())).reshape(-1)),
                warnings=tuple(str(s) for s in np.asarray(arrays.get("warnings", ())).reshape(-1)),
            )
        except KeyError as exc:
            raise InputError(f"structure arrays lack {exc.args[0]!r}; write them with Structure.to_arrays") from None

    def to_npz(self, path: str | os.PathLike) -> Path:
        """Write the arrays to ``path`` (.npz), atomically."""
        from molviz._io import save_npz

        return save_npz(path, self.to_arrays())

    @classmethod
    def from_npz(cls, path: str | os.PathLike) -> Structure:
        """Read a structure written by :meth:`to_npz` (never unpickles)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls.from_arrays({k: data[k] for k in data.files})
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a structure .npz written by molviz ({exc})") from None

    def __repr__(self) -> str:
        counts = {c: int((self.components == c).sum()) for c in COMPONENTS if (self.components == c).any()}
        return (f"Structure(name={self.name!r}, n_conformers={self.n_conformers}, "
                f"n_atoms={self.n_atoms}, components={counts})")
