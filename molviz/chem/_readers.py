"""Readers: one function per format, each returning a :class:`Structure`.

gemmi and RDKit are imported inside the functions (``import molviz.chem`` must
work where only numpy and torch exist). Every parser exception is turned into
an :class:`InputError` that names the source and says what to fix.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import math
import re
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from molviz.chem._elements import (
    AMINO_ACIDS, ATOMIC_NUMBER, ION_RESIDUES, METALS_AND_HALIDES, NUCLEOTIDES, SYMBOLS, WATERS,
    atomic_number, infer_element,
)
from molviz.chem._structure import Structure
from molviz.errors import InputError, MolvizError, ResourceLimitError

FORMATS = {
    ".pdb": "pdb", ".ent": "pdb", ".cif": "cif", ".mmcif": "cif",
    ".sdf": "sdf", ".sd": "sdf", ".mol": "mol", ".mol2": "mol2", ".xyz": "xyz",
}


@dataclass(frozen=True)
class ReadOptions:
    """What every reader needs to know besides the source."""

    conformers: int | None = None  # SMILES: how many to embed; files: keep at most this many
    hydrogens: str = "keep"        # "keep" | "remove" | "add"
    seed: int = 0                  # ETKDG random seed (SMILES)
    max_atoms: int = 1_000_000     # refuse structures with more atoms per conformer


# -- text ------------------------------------------------------------------------------------
def file_format(path: Path) -> str | None:
    """The format of ``path`` from its extension (``.gz`` looked through), or None."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return FORMATS.get(suffixes[-1]) if suffixes else None


def read_text(path: Path, what: str) -> str:
    """The file's text (gunzipped if ``.gz``), with line endings normalised to ``\\n``."""
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path (relative paths start at {Path.cwd()})")
    if not path.is_file():
        raise InputError(f"{path}: not a file; give the path of a {what} file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file ({exc.strerror}); check its permissions") from None
    if path.suffix.lower() == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"{path}: not a valid gzip file ({exc}); re-compress it or give the "
                             "uncompressed file") from None
    if not data.strip():
        raise InputError(f"{path}: the file is empty; give a {what} file with atoms in it")
    if b"\x00" in data:
        raise InputError(f"{path}: binary data (NUL bytes), not a text {what} file; "
                         "check that this is the right file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
        printable = sum(c.isprintable() or c in "\r\n\t" for c in text) / len(text)
        if printable < 0.95:
            raise InputError(f"{path}: binary data, not a text {what} file; "
                             "check that this is the right file") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


_STDERR_LOCK = threading.RLock()  # redirect_stderr is process-wide: one reader at a time swaps it


@contextlib.contextmanager
def rdkit_messages():
    """Collect RDKit's log lines (parse errors, sanitisation problems) instead of printing them.

    The lock keeps concurrent loads (e.g. the app's worker threads) from restoring each
    other's buffers as ``sys.stderr``.
    """
    from rdkit import rdBase

    rdBase.LogToPythonStderr()
    buf = io.StringIO()
    with _STDERR_LOCK, contextlib.redirect_stderr(buf):
        yield buf


def _rdkit_reason(buf: io.StringIO, limit: int = 300) -> str:
    lines = [re.sub(r"^\[\d\d:\d\d:\d\d\] ", "", line).strip() for line in buf.getvalue().splitlines()]
    reason = lines[0] if lines else ""  # RDKit's first line says what; the rest draws where
    return (reason[:limit] + "...") if len(reason) > limit else reason


def _check_coords(coords: np.ndarray, source: str) -> None:
    bad = ~np.isfinite(coords).all(axis=-1)
    if bad.any():
        conf, atom = np.argwhere(bad)[0]
        raise InputError(f"{source}: {int(bad.sum())} atom(s) have NaN or infinite coordinates "
                         f"(first: atom {atom + 1} of conformer {conf + 1}); fix the coordinates in the file")


def _check_atoms(n: int, source: str, options: ReadOptions) -> None:
    if n == 0:
        raise InputError(f"{source}: no atoms found; check that the file is a complete structure")
    if n > options.max_atoms:
        raise ResourceLimitError(
            f"{source}: {n:,} atoms is more than the limit of {options.max_atoms:,}; load a "
            "smaller part of it, or raise the limit (max_atoms=... or MOLVIZ_MAX_ATOMS)")


def _keep_conformers(coords: np.ndarray, options: ReadOptions) -> np.ndarray:
    return coords[: options.conformers] if options.conformers else coords


# -- PDB / mmCIF through gemmi --------------------------------------------------------------
def _prepare_pdb(text: str, source: str, options: ReadOptions) -> tuple[str, list[str]]:
    """Check ATOM/HETATM records and fill empty element columns by name-based inference."""
    lines = text.split("\n")
    atom_lines: list[int] = []
    residue_key: list[tuple] = []
    model = 0
    per_model: dict[int, int] = {}
    for i, line in enumerate(lines):
        record = line[:6]
        if record == "MODEL ":
            model += 1
        elif record in ("ATOM  ", "HETATM"):
            if len(line.rstrip()) < 54:
                raise InputError(f"{source}: line {i + 1} is a truncated {record.strip()} record "
                                 f"({len(line.rstrip())} characters; coordinates need columns 31-54); "
                                 "the file is cut off or damaged")
            try:
                xyz = [float(line[c:c + 8]) for c in (30, 38, 46)]
            except ValueError:
                raise InputError(f"{source}: line {i + 1}: coordinates {line[30:54]!r} are not numbers "
                                 "(columns 31-54); fix the record") from None
            if not all(map(math.isfinite, xyz)):
                raise InputError(f"{source}: line {i + 1}: NaN or infinite coordinates {line[30:54]!r}; "
                                 "fix the record")
            atom_lines.append(i)
            residue_key.append((model, line[17:27]))  # name, chain, number, insertion code
            per_model[model] = per_model.get(model, 0) + 1
    _check_atoms(max(per_model.values(), default=0), source, options)
    counts: dict[tuple, int] = {}
    for key in residue_key:
        counts[key] = counts.get(key, 0) + 1
    inferred: set[str] = set()
    for i, key in zip(atom_lines, residue_key):
        line = lines[i]
        element = line[76:78].strip() if len(line) > 76 else ""
        if element:
            if atomic_number(element) == 0:
                raise InputError(f"{source}: line {i + 1}: unknown element {element!r} in columns 77-78; "
                                 "write a valid element symbol there (or leave the columns empty)")
            continue
        symbol = infer_element(line[12:16].ljust(4), line[17:20], n_residue_atoms=counts[key])
        if not symbol:
            raise InputError(f"{source}: line {i + 1}: cannot infer the element of atom {line[12:16].strip()!r} "
                             f"in residue {line[17:20].strip()!r}; write the element in columns 77-78")
        lines[i] = line.ljust(80)[:76] + symbol.rjust(2) + line.ljust(80)[78:]
        inferred.add(symbol)
    notes = [f"elements inferred from atom and residue names (empty element columns): "
             f"{', '.join(sorted(inferred))}"] if inferred else []
    return "\n".join(lines), notes


def _component_of(residue, entity, atom_element: str) -> str:
    import gemmi

    name = residue.name.upper()
    if name in WATERS or residue.entity_type == gemmi.EntityType.Water:
        return "water"
    if residue.entity_type == gemmi.EntityType.Polymer:
        ptype = entity.polymer_type if entity is not None else gemmi.PolymerType.Unknown
        if ptype in (gemmi.PolymerType.PeptideL, gemmi.PolymerType.PeptideD):
            return "protein"
        if ptype in (gemmi.PolymerType.Dna, gemmi.PolymerType.Rna, gemmi.PolymerType.DnaRnaHybrid):
            return "nucleic"
        info = gemmi.find_tabulated_residue(name)
        if info is not None and info.is_amino_acid():
            return "protein"
        if info is not None and info.is_nucleic_acid():
            return "nucleic"
    if len(residue) == 1 and (name in ION_RESIDUES or atom_element.upper() in METALS_AND_HALIDES):
        return "ion"
    if residue.entity_type == gemmi.EntityType.Unknown:
        if name in AMINO_ACIDS:
            return "protein"
        if name in NUCLEOTIDES:
            return "nucleic"
    return "ligand"


def read_gemmi(path: Path, fmt: str, options: ReadOptions) -> Structure:
    """PDB or mmCIF (plain or gzipped): every MODEL a conformer, first altloc kept."""
    import gemmi

    source = str(path)
    text = read_text(path, "PDB" if fmt == "pdb" else "mmCIF")
    notes: list[str] = []
    if not text.isascii():  # PDB and mmCIF are ASCII; gemmi's fixed columns would split characters
        if fmt == "pdb":
            for i, line in enumerate(text.split("\n")):
                if line.startswith(("ATOM  ", "HETATM")) and not line.isascii():
                    raise InputError(f"{source}: line {i + 1}: non-ASCII characters in an atom record; "
                                     "PDB files are plain ASCII, fix or remove that line")
        text = text.encode("ascii", "replace").decode("ascii")
    try:
        if fmt == "pdb":
            text, notes = _prepare_pdb(text, source, options)
            st = gemmi.read_pdb_string(text)
        else:
            doc = gemmi.cif.read_string(text)
            if len(doc) == 0:
                raise InputError(f"{source}: no data block; is this an mmCIF file?")
            st = gemmi.make_structure_from_block(doc[0])
        st.setup_entities()
        st.remove_alternative_conformations()
        st.remove_empty_chains()
    except MolvizError:
        raise
    except Exception as exc:  # gemmi raises RuntimeError, ValueError, IndexError ...
        raise InputError(f"{source}: gemmi could not read this {fmt.upper()} file ({exc}); "
                         "check that it is a complete, valid file") from None
    if len(st) == 0:
        raise InputError(f"{source}: no models with atoms; check that the file has ATOM/HETATM records")
    entity_of = {sc: ent for ent in st.entities for sc in ent.subchains}

    models = []
    inferred: set[str] = set()
    for m, model in enumerate(st):
        xyz, z, names, resnames, comps = [], [], [], [], []
        for chain in model:
            for residue in chain:
                entity = entity_of.get(residue.subchain)
                component = None  # one per residue, from its first atom's element (ions)
                for atom in residue:
                    el = atom.element
                    number = el.atomic_number
                    if number == 0:  # mmCIF '?' type symbols, or unknown ones
                        symbol = infer_element(atom.name, residue.name, n_residue_atoms=len(residue))
                        number = ATOMIC_NUMBER.get(symbol, 0)
                        if number == 0:
                            raise InputError(f"{source}: unknown element for atom {atom.name!r} of residue "
                                             f"{residue.name} {residue.seqid}; write its element symbol in the file")
                        inferred.add(SYMBOLS[number - 1])
                    pos = atom.pos
                    xyz.append((pos.x, pos.y, pos.z))
                    z.append(number)
                    names.append(atom.name)
                    resnames.append(residue.name)
                    if component is None:
                        component = _component_of(residue, entity, SYMBOLS[number - 1])
                    comps.append(component)
        if not z:
            continue
        models.append((np.asarray(xyz, np.float64), np.asarray(z), names, resnames, comps))
    if not models:
        raise InputError(f"{source}: no atoms found; check that the file has ATOM/HETATM records")
    if inferred:
        notes.append("elements inferred from atom and residue names (no element symbols in the file): "
                     + ", ".join(sorted(inferred)))
    first = models[0]
    for k, other in enumerate(models[1:], start=2):
        if len(other[1]) != len(first[1]) or other[2] != first[2] or not np.array_equal(other[1], first[1]):
            raise InputError(
                f"{source}: MODEL {k} has {len(other[1])} atoms ({other[2][:1]}...) but MODEL 1 has "
                f"{len(first[1])}; every model must have the same atoms in the same order to be "
                "conformers. Split the models into separate files and load them one at a time")
    coords = np.stack([m[0] for m in models]).astype(np.float32)
    _check_coords(coords, source)
    _check_atoms(coords.shape[1], source, options)
    if options.hydrogens == "add":
        raise InputError(f"{source}: hydrogens='add' works for small molecules only (SDF, MOL, MOL2, "
                         "SMILES); for a protein, add hydrogens with a structure-preparation tool "
                         "(e.g. PDBFixer or reduce) first, or use hydrogens='keep'")
    return Structure(
        coords=_keep_conformers(coords, options),
        atomic_numbers=first[1],
        components=np.array(first[4]),
        atom_names=np.array(first[2]),
        residue_names=np.array(first[3]),
        name=path.name.split(".")[0],
        sources=(source,),
        warnings=tuple(dict.fromkeys(notes)),
    )


# -- small molecules through RDKit ----------------------------------------------------------
def _mol_records(text: str, fmt: str, source: str) -> list:
    from rdkit import Chem

    mols = []
    with rdkit_messages() as log:
        try:
            if fmt == "sdf":
                supplier = Chem.SDMolSupplier()
                supplier.SetData(text, sanitize=False, removeHs=False, strictParsing=True)
                raw = [supplier[i] for i in range(len(supplier))]
            elif fmt == "mol":
                raw = [Chem.MolFromMolBlock(text, sanitize=False, removeHs=False, strictParsing=True)]
            else:  # mol2: one block per @<TRIPOS>MOLECULE
                blocks = re.split(r"(?m)^(?=@<TRIPOS>MOLECULE)", text)
                blocks = [b for b in blocks if b.lstrip().startswith("@<TRIPOS>MOLECULE")]
                raw = [Chem.MolFromMol2Block(b, sanitize=False, removeHs=False) for b in blocks]
        except Exception as exc:  # RDKit raises RuntimeError / ValueError on malformed text
            raise InputError(f"{source}: RDKit could not read this {fmt.upper()} file ({exc}); "
                             "check that it is complete and valid") from None
        for i, mol in enumerate(raw, start=1):
            if mol is None:
                reason = _rdkit_reason(log) or "malformed record"
                raise InputError(f"{source}: record {i} could not be parsed ({reason}); fix or remove "
                                 "that record (is the file truncated?)")
            mols.append(mol)
    if not mols:
        raise InputError(f"{source}: no molecule records found; is this a {fmt.upper()} file?")
    return mols


def _sanitize(mol, source: str, record: int, notes: list[str]) -> bool:
    from rdkit import Chem

    with rdkit_messages() as log:
        try:
            Chem.SanitizeMol(mol)
            return True
        except Exception as exc:  # noqa: BLE001 - any RDKit sanitisation failure
            reason = _rdkit_reason(log) or str(exc)
    notes.append(f"record {record}: RDKit could not sanitise it ({reason}); read as written, "
                 "without chemistry perception")
    return False


def read_rdkit(path: Path, fmt: str, options: ReadOptions) -> Structure:
    """SDF / MOL / MOL2: one molecule; several records of the same molecule are conformers."""
    from rdkit import Chem

    source = str(path)
    text = read_text(path, fmt.upper())
    mols = _mol_records(text, fmt, source)
    notes: list[str] = []
    ok = [_sanitize(mol, source, i, notes) for i, mol in enumerate(mols, start=1)]
    ref = mols[0]
    ref_z = [a.GetAtomicNum() for a in ref.GetAtoms()]
    ref_bonds = {frozenset((b.GetBeginAtomIdx(), b.GetEndAtomIdx())) for b in ref.GetBonds()}
    for i, mol in enumerate(mols[1:], start=2):
        z = [a.GetAtomicNum() for a in mol.GetAtoms()]
        bonds = {frozenset((b.GetBeginAtomIdx(), b.GetEndAtomIdx())) for b in mol.GetBonds()}
        if z != ref_z or bonds != ref_bonds:
            raise InputError(
                f"{source}: record {i} is a different molecule from record 1 ({len(z)} vs {len(ref_z)} "
                "atoms or different bonds); records of one file are read as conformers of one "
                "molecule. Load different molecules separately (one load() call, or one file, each)")
    if options.hydrogens == "add":
        if not all(ok):
            raise InputError(f"{source}: hydrogens='add' needs a molecule RDKit can sanitise; fix the "
                             "valences in the file or use hydrogens='keep'")
        before = mols[0].GetNumAtoms()
        with rdkit_messages():
            mols = [Chem.AddHs(mol, addCoords=True) for mol in mols]
        if mols[0].GetNumAtoms() == before:
            notes.append("hydrogens='add' added none: the file's atoms have no open valences "
                         "(MOL2 atoms without hydrogens are read as written)")
    coords = []
    for i, mol in enumerate(mols, start=1):
        if mol.GetNumConformers() == 0:
            raise InputError(f"{source}: record {i} has no coordinates; give a file with 3D coordinates "
                             "or the molecule's SMILES (molviz embeds it in 3D)")
        for conf in mol.GetConformers():
            coords.append(conf.GetPositions())
    mol = mols[0]
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    if (z == 0).any():
        k = int(np.argmax(z == 0))
        raise InputError(f"{source}: atom {k + 1} has no known element ({mol.GetAtomWithIdx(k).GetSymbol()!r}); "
                         "replace dummy or query atoms with real elements")
    _check_atoms(len(z), source, options)
    coords = np.stack(coords).astype(np.float32)
    _check_coords(coords, source)
    if np.allclose(coords[..., 2], 0.0) and len(z) > 3:
        notes.append("coordinates are 2D (every z is 0); give 3D coordinates or a SMILES for a 3D field")
    smiles = None
    if ok[0]:
        with rdkit_messages():
            try:
                smiles = Chem.MolToSmiles(Chem.RemoveHs(mol))
            except Exception:  # noqa: BLE001 - a SMILES is a nicety here
                smiles = None
    title = mol.GetProp("_Name").strip() if mol.HasProp("_Name") else ""
    return Structure(
        coords=_keep_conformers(coords, options),
        atomic_numbers=z,
        components=np.full(len(z), "ligand"),
        atom_names=np.array([f"{a.GetSymbol()}{a.GetIdx() + 1}" for a in mol.GetAtoms()]),
        residue_names=np.full(len(z), "LIG"),
        name=title or path.name.split(".")[0],
        smiles=smiles,
        sources=(source,),
        warnings=tuple(notes),
    )


def read_smiles(smiles: str, options: ReadOptions) -> Structure:
    """Embed a SMILES in 3D: AddHs, ETKDGv3 (seeded), MMFF94 (else UFF, else ETKDG only)."""
    from rdkit import Chem
    from rdkit.Chem import AllChem, rdDistGeom

    text = smiles.strip()
    with rdkit_messages() as log:
        try:
            mol = Chem.MolFromSmiles(text)
        except Exception:  # noqa: BLE001
            mol = None
    if mol is None:
        reason = _rdkit_reason(log) or "RDKit could not parse it"
        raise InputError(f"SMILES {text!r}: not a valid SMILES and not an existing file ({reason}); "
                         "check the SMILES, or the path and its extension (.pdb .cif .sdf .mol .mol2 .xyz)")
    if mol.GetNumAtoms() == 0:
        raise InputError(f"SMILES {text!r}: no atoms; give a SMILES with at least one atom")
    dummies = [a.GetIdx() + 1 for a in mol.GetAtoms() if a.GetAtomicNum() == 0]
    if dummies:
        raise InputError(f"SMILES {text!r}: atom {dummies[0]} is a dummy atom ('*'), which has no element; "
                         "replace it with a real atom (e.g. [H] or C)")
    n = options.conformers or 1
    mol = Chem.AddHs(mol)
    _check_atoms(mol.GetNumAtoms(), f"SMILES {text!r}", options)
    notes: list[str] = []
    with rdkit_messages() as log:
        params = rdDistGeom.ETKDGv3()
        params.randomSeed = int(options.seed)
        params.numThreads = 1
        ids = list(rdDistGeom.EmbedMultipleConfs(mol, numConfs=n, params=params))
        if len(ids) < n:
            params.useRandomCoords = True  # the usual remedy for large rings and cages
            mol.RemoveAllConformers()
            ids = list(rdDistGeom.EmbedMultipleConfs(mol, numConfs=n, params=params))
            if ids:
                notes.append("ETKDG needed random starting coordinates")
        if not ids:
            reason = _rdkit_reason(log) or "no conformer found"
            raise InputError(f"SMILES {text!r}: RDKit could not embed it in 3D ({reason}); check the "
                             "stereochemistry or give 3D coordinates in an SDF file")
        try:
            if AllChem.MMFFHasAllMoleculeParams(mol):
                AllChem.MMFFOptimizeMoleculeConfs(mol, numThreads=1, maxIters=2000)
                notes.append("geometry: ETKDGv3 + MMFF94")
            elif AllChem.UFFHasAllMoleculeParams(mol):
                AllChem.UFFOptimizeMoleculeConfs(mol, numThreads=1, maxIters=2000)
                notes.append("geometry: ETKDGv3 + UFF (MMFF94 has no parameters for this molecule)")
            else:
                notes.append("geometry: ETKDGv3 only (neither MMFF94 nor UFF has parameters)")
        except Exception as exc:  # noqa: BLE001 - keep the ETKDG geometry
            notes.append(f"geometry: ETKDGv3 only (force-field optimisation failed: {exc})")
    coords = np.stack([mol.GetConformer(i).GetPositions() for i in ids]).astype(np.float32)
    _check_coords(coords, f"SMILES {text!r}")
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    with rdkit_messages():
        canonical = Chem.MolToSmiles(Chem.RemoveHs(mol))
    return Structure(
        coords=coords,
        atomic_numbers=z,
        components=np.full(len(z), "ligand"),
        atom_names=np.array([f"{a.GetSymbol()}{a.GetIdx() + 1}" for a in mol.GetAtoms()]),
        residue_names=np.full(len(z), "LIG"),
        name=text,
        smiles=canonical,
        sources=(text,),
        warnings=tuple(notes),
    )


# -- XYZ ----------------------------------------------------------------------------------------
def read_xyz(path: Path, options: ReadOptions) -> Structure:
    """Standard XYZ: count line, comment line, ``element x y z`` lines; several frames -> conformers."""
    source = str(path)
    text = read_text(path, "XYZ")
    lines = text.split("\n")
    frames: list[np.ndarray] = []
    symbols_ref: np.ndarray | None = None
    title = ""
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        head = lines[i].split()
        try:
            n = int(head[0]) if len(head) == 1 else int("x")
        except ValueError:
            raise InputError(f"{source}: line {i + 1}: expected the number of atoms of a frame, got "
                             f"{lines[i][:40]!r}; an XYZ frame starts with a count line, then a comment "
                             "line, then one 'element x y z' line per atom") from None
        if n <= 0:
            raise InputError(f"{source}: line {i + 1}: a frame with {n} atoms; give at least one atom")
        _check_atoms(n, source, options)
        if i + 1 < len(lines) and not frames:
            title = lines[i + 1].strip()
        body = lines[i + 2:i + 2 + n]
        if len(body) < n:
            raise InputError(f"{source}: frame {len(frames) + 1} announces {n} atoms but the file ends "
                             f"after {max(len(body), 0)}; the file is truncated")
        symbols, xyz = _xyz_frame(body, i, source)
        if not np.isfinite(xyz).all():
            bad = int(np.argmax(~np.isfinite(xyz).all(axis=1)))
            raise InputError(f"{source}: line {i + 3 + bad}: NaN or infinite coordinates; fix that line")
        if symbols_ref is None:
            symbols_ref = symbols
        elif len(symbols) != len(symbols_ref) or not np.array_equal(symbols, symbols_ref):
            raise InputError(f"{source}: frame {len(frames) + 1} has different atoms ({len(symbols)}) from "
                             f"frame 1 ({len(symbols_ref)}); frames are conformers and must list the same "
                             "atoms in the same order. Split the file and load each part separately")
        frames.append(xyz)
        if options.conformers and len(frames) >= options.conformers:
            break
        i += 2 + n
    if not frames:
        raise InputError(f"{source}: no atoms found; is this an XYZ file?")
    unique, inverse = np.unique(symbols_ref, return_inverse=True)
    numbers = np.array([_element_number(s) for s in unique], dtype=np.int64)
    if (numbers == 0).any():
        bad = unique[numbers == 0]
        line = 3 + int(np.argmax(symbols_ref == bad[0]))
        raise InputError(f"{source}: unknown element(s) {', '.join(map(repr, bad[:5].tolist()))} (first on "
                         f"line {line}); use element symbols (C, Cl) or atomic numbers")
    z = numbers[inverse]
    if options.hydrogens == "add":
        raise InputError(f"{source}: hydrogens='add' needs bonds, which XYZ files lack; give an SDF, "
                         "MOL2 or SMILES, or use hydrogens='keep'")
    return Structure(
        coords=np.stack(frames).astype(np.float32),
        atomic_numbers=z,
        components=np.full(len(z), "ligand"),
        atom_names=np.array([SYMBOLS[k - 1] for k in z]),
        residue_names=np.full(len(z), "LIG"),
        name=title[:80] or path.name.split(".")[0],
        sources=(source,),
    )


def _xyz_frame(body: list[str], i: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Symbols (n,) and coordinates (n, 3) of one frame's atom lines (``i``: its count line)."""
    flat = " ".join(body).split()
    if len(flat) == 4 * len(body):  # fast path: exactly 'element x y z' on every line
        symbols = flat[::4]
        del flat[::4]  # now only the coordinates are left
        try:
            xyz = np.fromiter(map(float, flat), dtype=np.float64, count=len(flat)).reshape(-1, 3)
            return np.array(symbols), xyz
        except ValueError:
            pass  # find the offending line below
    rows = [line.split() for line in body]
    for k, row in enumerate(rows):
        if len(row) < 4:
            raise InputError(f"{source}: line {i + 3 + k}: expected 'element x y z', got "
                             f"{body[k][:60]!r}; the frame has fewer atom lines than its count")
        if not _floats(row[1:4]):
            raise InputError(f"{source}: line {i + 3 + k}: coordinates {' '.join(row[1:4])!r} "
                             "are not numbers; fix that line")
    return np.array([row[0] for row in rows]), np.array([row[1:4] for row in rows], dtype=np.float64)


def _floats(values: list[str]) -> bool:
    try:
        [float(v) for v in values]
    except ValueError:
        return False
    return True


def _element_number(token: str) -> int:
    if token.isdigit():
        z = int(token)
        return z if 1 <= z <= len(SYMBOLS) else 0
    return atomic_number(token)
