"""Libraries of molecules: SMILES tables, multi-record SDF files and folders of structure files.

A library is read in two passes. :func:`library_records` expands the inputs (files,
folders, globs) and lists one :class:`LibraryRecord` per molecule *without* building
it: a SMILES table row, an SDF record, a structure file. Reading the text is cheap;
the records tell how many inputs there are before any conformer is embedded.
:func:`record_structure` then builds one record's :class:`Structure` (RDKit's ETKDG
for SMILES, seeded; an SDF record's own 3D coordinates when it has them).

Nothing is dropped silently: an input that cannot be used (a bad SMILES, an embedding
failure, an unreadable file, a table without a SMILES column) becomes a record with a
``reason`` (whole files get ``index=None``), so ``used + skipped = inputs``.

Examples
--------
>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "lib.csv"
>>> _ = p.write_text("name,smiles,pIC50\\nethanol,CCO,5.5\\nbroken,C1CC,7\\n")
>>> records = library_records(p)
>>> [(r.name, r.smiles, r.properties) for r in records]
[('ethanol', 'CCO', {'pIC50': '5.5'}), ('broken', 'C1CC', {'pIC50': '7'})]
>>> record_structure(records[0]).n_atoms
9
"""
from __future__ import annotations

import csv
import glob
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

from molviz._io import max_file_bytes
from molviz.chem._readers import FORMATS, ReadOptions, file_format, rdkit_messages, read_smiles, read_text
from molviz.chem._structure import Structure
from molviz.errors import InputError

TABLE_FORMATS = {".smi": "smi", ".smiles": "smi", ".csv": "csv", ".tsv": "tsv"}
# column names recognised without --smiles-column / --name-column (case-insensitive, in this order)
SMILES_COLUMNS = ("smiles", "canonical_smiles", "isomeric_smiles", "smiles_string", "smi", "molecule_smiles")
NAME_COLUMNS = ("name", "title", "molecule_name", "mol_name", "compound_name", "compound", "iupac", "id",
                "compound_id", "molecule_id", "mol_id", "identifier", "chembl_id", "molecule_chembl_id",
                "zinc_id", "cid")
# item keys a property may not take (the property is stored as "input_<key>" instead)
RESERVED = frozenset({"name", "smiles", "source", "index", "conformer", "split", "properties", "id"})
MISSING = frozenset({"", "na", "n/a", "nan", "none", "null", "-", "?"})   # empty cells, any case


@dataclass
class LibraryRecord:
    """One input molecule, not yet built (or the reason it cannot be).

    ``kind`` is ``"smiles"`` (``smiles`` holds it), ``"sdf"`` (``block`` holds the record's
    text), ``"file"`` (``path``: a structure file read with :func:`molviz.chem.load`), or
    ``"skip"`` (``reason`` says why). ``index`` is the 0-based row / record within ``source``,
    None for a whole file. ``properties`` are the input's other columns / SD fields, as text.
    """

    source: str
    index: int | None
    kind: Literal["smiles", "sdf", "file", "skip"]
    name: str | None = None
    smiles: str | None = None
    block: str | None = None
    path: str | None = None
    reason: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    name_field: str | None = None       # SDF: the SD field holding the name (--name-column), else the title


# ----------------------------------------------------------------------------- inputs
def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _suffix(path: Path) -> str:
    """The format-deciding extension, ``.gz`` looked through (``a.smi.gz`` -> ``.smi``)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[tuple[str, Path | None, str | None]]:
    """Files, folders (every file below them, sorted, hidden ones left out) and globs -> a list of
    ``(source, path, reason)``; ``path`` is None (and ``reason`` says why) for an input that names
    nothing readable.

    Examples
    --------
    >>> expand_inputs(["/no/such/file.smi"])[0][2]
    'no such file or folder'
    """
    out: list[tuple[str, Path | None, str | None]] = []
    for raw in inputs:
        text = os.fspath(raw)
        path = Path(text).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not files:
                out.append((text, None, "an empty folder"))
            out.extend((str(p), p, None) for p in files)
        elif path.exists():
            out.append((text, path, None))
        elif _is_glob(text):
            found = sorted(Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True))
            found = [p for p in found if p.is_file()]
            if not found:
                out.append((text, None, "the pattern matches no file"))
            out.extend((str(p), p, None) for p in found)
        else:
            out.append((text, None, "no such file or folder"))
    return out


def library_records(*inputs: str | os.PathLike, smiles_column: str | None = None,
                    name_column: str | None = None, max_file_mb: float | None = None) -> list[LibraryRecord]:
    """Every molecule the inputs hold, in order, as records (see the module docstring).

    Parameters
    ----------
    *inputs
        SMILES tables (``.smi``, ``.csv``, ``.tsv``, also ``.gz``), SDF files (each record a
        molecule), structure files (``.pdb .cif .mol .mol2 .xyz``, one molecule each; only the
        first conformer is used), folders of such files, glob patterns, or SMILES strings.
    smiles_column, name_column
        The table columns holding the SMILES and the name (default: a column named ``smiles``,
        ``canonical_smiles`` ...; ``name``, ``title``, ``id`` ...). ``name_column`` also names
        the SD field to take names from (default: the record's title line).
    max_file_mb
        Files larger than this are skipped (default 512 or ``$MOLVIZ_MAX_FILE_MB``).
    """
    max_bytes = max_file_bytes(max_file_mb)
    records: list[LibraryRecord] = []
    inline = 0
    for source, path, reason in expand_inputs(inputs):
        if path is None:
            if reason != "an empty folder" and _looks_like_smiles(source):   # a SMILES given inline ([ ] look like globs)
                records.append(LibraryRecord("command line", inline, "smiles", smiles=source))
                inline += 1
            else:
                records.append(LibraryRecord(source, None, "skip", reason=reason))
            continue
        suffix = _suffix(path)
        try:
            if suffix in TABLE_FORMATS:
                records.extend(_table_records(path, TABLE_FORMATS[suffix], smiles_column, name_column, max_bytes))
            elif FORMATS.get(suffix) == "sdf":
                records.extend(_sdf_records(path, max_bytes, name_column))
            elif file_format(path) is not None:
                records.append(LibraryRecord(str(path), None, "file", path=str(path)))
            else:
                known = sorted({*FORMATS, *TABLE_FORMATS})
                records.append(LibraryRecord(str(path), None, "skip", reason=(
                    f"not a molecule file ({''.join(path.suffixes) or 'no extension'}); molviz reads "
                    f"{' '.join(known)} (also .gz)")))
        except InputError as exc:   # unreadable, binary, empty, too large, no SMILES column ...
            records.append(LibraryRecord(str(path), None, "skip", reason=str(exc)))
    return records


def _pick(columns: list[str], wanted: str | None, known: tuple[str, ...], contains: str | None,
          what: str, flag: str, path: Path) -> int | None:
    """Index of the column ``wanted`` (exact, then case-insensitive), else of the first known name."""
    if wanted is not None:
        if wanted in columns:
            return columns.index(wanted)
        low = [c.lower() for c in columns]
        if wanted.lower() in low:
            return low.index(wanted.lower())
        raise InputError(f"{path}: no {what} column {wanted!r} (columns: {', '.join(columns)}); "
                         f"check {flag}")
    low = [c.strip().lower() for c in columns]
    for name in known:
        if name in low:
            return low.index(name)
    if contains:
        for k, c in enumerate(low):
            if contains in c:
                return k
    return None


def _looks_like_smiles(text: str) -> bool:
    from rdkit import Chem

    if not text or any(c.isspace() for c in text):
        return False
    with rdkit_messages():
        return Chem.MolFromSmiles(text) is not None


def _table_records(path: Path, fmt: str, smiles_column: str | None, name_column: str | None,
                   max_bytes: int) -> list[LibraryRecord]:
    text = read_text(path, "SMILES table", max_bytes=max_bytes).removeprefix("\ufeff")   # Excel's BOM
    if fmt == "smi":
        lines = [line for line in text.split("\n") if line.strip() and not line.startswith("#")]
        first = lines[0].split() if lines else []
        low = [t.lower() for t in first]
        header = bool(first) and (low[0] in SMILES_COLUMNS or (smiles_column or "").lower() in low)
        rows = ([line.split(None, max(len(first) - 1, 0)) for line in lines] if header
                else [line.split(None, 1) for line in lines])
        if not header:   # "SMILES name" per line, the name may hold spaces
            rows = [["smiles", "name"]] + rows
    else:   # csv reads quoted cells across lines itself
        try:
            rows = [row for row in csv.reader(io.StringIO(text), delimiter="," if fmt == "csv" else "\t")
                    if any(cell.strip() for cell in row)]
        except csv.Error as exc:
            raise InputError(f"{path}: not a readable {fmt.upper()} table ({exc})") from None
    if not rows:
        raise InputError(f"{path}: no rows; give one SMILES per line")
    columns = [c.strip() for c in rows[0]]
    s_col = _pick(columns, smiles_column, SMILES_COLUMNS, "smiles", "SMILES", "--smiles-column", path)
    body = rows[1:]
    if s_col is None:
        if _looks_like_smiles(columns[0].strip()):   # no header: SMILES first, then the name
            body, s_col = rows, 0
            columns = ["smiles", "name"] + [f"column_{k + 1}" for k in range(2, len(columns))]
        else:
            raise InputError(f"{path}: no SMILES column (columns: {', '.join(columns[:12])}); name it with "
                             "--smiles-column, or call the column 'smiles'")
    n_col = _pick(columns, name_column, NAME_COLUMNS, "name", "name", "--name-column", path)
    if n_col == s_col:
        n_col = None
    out = []
    for k, row in enumerate(body):
        cells = [c.strip() for c in row]
        smiles = cells[s_col] if s_col < len(cells) else ""
        name = cells[n_col] if n_col is not None and n_col < len(cells) else ""
        props = {columns[j] if j < len(columns) else f"column_{j + 1}": v for j, v in enumerate(cells)
                 if j not in (s_col, n_col)}
        if not smiles:
            out.append(LibraryRecord(str(path), k, "skip", name=name or None, properties=props,
                                     reason=f"empty SMILES cell (column {columns[s_col]!r})"))
        else:
            out.append(LibraryRecord(str(path), k, "smiles", name=name or None, smiles=smiles, properties=props))
    return out


def _sdf_records(path: Path, max_bytes: int, name_column: str | None) -> list[LibraryRecord]:
    text = read_text(path, "SDF", max_bytes=max_bytes)
    blocks = re.split(r"(?m)^\$\$\$\$[ \t]*\n?", text)
    if blocks and not blocks[-1].strip():
        blocks = blocks[:-1]
    if not blocks:
        raise InputError(f"{path}: no SDF records")
    return [LibraryRecord(str(path), k, "sdf", block=block + "$$$$\n", name_field=name_column)
            for k, block in enumerate(blocks)]


# ----------------------------------------------------------------------------- building
def record_structure(record: LibraryRecord, *, hydrogens: Literal["keep", "remove", "add"] = "keep",
                     seed: int = 0, max_atoms: int | None = None, max_file_mb: float | None = None,
                     geometry: Literal["mmff", "etkdg"] = "mmff") -> Structure:
    """Build one record's :class:`Structure` (one conformer); InputError / ResourceLimitError say why not.

    The result's ``name``, ``smiles`` (canonical, or None) and ``sources`` identify it; an SDF
    record's SD fields are added to ``record.properties``. ``geometry`` is how a SMILES (or an SDF
    record without 3D coordinates) is embedded: ETKDGv3 then MMFF94 (``"mmff"``, as
    :func:`molviz.chem.load`), or ETKDGv3 alone (``"etkdg"``: about half the time per drug-like
    molecule, for libraries of 100k).
    """
    from molviz.chem._load import load, max_atoms_default

    limit = max_atoms_default() if max_atoms is None else int(max_atoms)
    options = ReadOptions(conformers=1, hydrogens=hydrogens, seed=seed, max_atoms=limit,
                          max_bytes=max_file_bytes(max_file_mb), geometry=geometry)
    where = record.source if record.index is None else f"{record.source} #{record.index}"
    if record.kind == "skip":
        raise InputError(record.reason or f"{where}: cannot be used")
    if record.kind == "smiles":
        _check_smiles(record.smiles or "")
        s = read_smiles(record.smiles or "", options)
        s = _finish(s, hydrogens, limit, record.name or s.smiles or s.name)
    elif record.kind == "sdf":
        s = _sdf_structure(record, options, where)
    else:
        s = load(record.path, hydrogens=hydrogens, max_atoms=limit, max_file_mb=max_file_mb, seed=seed,
                 conformers=1)
    return s._replace(sources=(record.source,))


def _check_smiles(smiles: str) -> None:
    """RDKit's reason a table's SMILES does not parse (read_smiles would also suggest a file path)."""
    from molviz.chem._readers import parse_smiles

    mol, reason = parse_smiles(smiles)
    if mol is None:
        raise InputError(f"SMILES {smiles!r}: not a valid SMILES ({reason})")


def _finish(s: Structure, hydrogens: str, limit: int, name: str) -> Structure:
    """What :func:`molviz.chem.load` does after reading (:func:`molviz.chem._load.finish_structure`), named."""
    from molviz.chem._load import finish_structure

    s = finish_structure(s, name, hydrogens=hydrogens, limit=limit,
                         too_many=f"atoms is more than the limit of {limit:,} (raise it with --max-atoms)")
    return s._replace(name=name)


def _sdf_structure(record: LibraryRecord, options: ReadOptions, where: str) -> Structure:
    """One SDF record: its own 3D coordinates, else a conformer embedded from its SMILES."""
    import numpy as np
    from rdkit import Chem

    from molviz.chem._readers import _rdkit_reason

    with rdkit_messages() as log:
        supplier = Chem.SDMolSupplier()
        supplier.SetData(record.block or "", sanitize=False, removeHs=False, strictParsing=True)
        mol = supplier[0] if len(supplier) else None
        if mol is None:
            raise InputError(f"{where}: RDKit could not parse the record ({_rdkit_reason(log) or 'malformed'})")
    props = {k: mol.GetProp(k).strip() for k in mol.GetPropNames()}
    name_field = record.name_field
    title = mol.GetProp("_Name").strip() if mol.HasProp("_Name") else ""
    name = props.pop(name_field, "") if name_field else ""
    if not name and not title:
        key = next((k for k in props if k.strip().lower() in NAME_COLUMNS), None)
        name = props.pop(key) if key else ""
    record.properties.update(props)
    with rdkit_messages() as log:
        try:
            Chem.SanitizeMol(mol)
            sane = True
        except Exception:  # noqa: BLE001 - any RDKit sanitisation failure
            sane, reason = False, _rdkit_reason(log)
        smiles = Chem.MolToSmiles(Chem.RemoveHs(mol)) if sane else None
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    if (z == 0).any():
        k = int(np.argmax(z == 0))
        raise InputError(f"{where}: atom {k + 1} has no known element ({mol.GetAtomWithIdx(k).GetSymbol()!r})")
    # 3D: some z not 0 (a flat molecule of up to 3 atoms counts when the record says 3D)
    has_3d = mol.GetNumConformers() > 0 and (
        not np.allclose(mol.GetConformer().GetPositions()[:, 2], 0.0)
        or (mol.GetConformer().Is3D() and mol.GetNumAtoms() <= 3))
    label = name or title or (smiles or where)
    if not has_3d:
        if not sane:
            raise InputError(f"{where}: no 3D coordinates, and RDKit could not sanitise the record to embed "
                             f"one ({reason})")
        s = read_smiles(Chem.MolToSmiles(mol), options)
        s = s._replace(warnings=("the record has no 3D coordinates: embedded from its SMILES", *s.warnings))
        return _finish(s, options.hydrogens, options.max_atoms, label)
    notes = [] if sane else [f"RDKit could not sanitise it ({reason}); read as written"]
    if options.hydrogens == "add":
        if not sane:
            raise InputError(f"{where}: hydrogens='add' needs a molecule RDKit can sanitise ({reason})")
        with rdkit_messages():
            mol = Chem.AddHs(mol, addCoords=True)
    coords = mol.GetConformer().GetPositions().astype(np.float32)[None]
    if not np.isfinite(coords).all():
        raise InputError(f"{where}: NaN or infinite coordinates")
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    s = Structure(coords=coords, atomic_numbers=z, components=np.full(len(z), "ligand"),
                  atom_names=np.array([f"{a.GetSymbol()}{a.GetIdx() + 1}" for a in mol.GetAtoms()]),
                  residue_names=np.full(len(z), "LIG"), name=label, smiles=smiles, warnings=tuple(notes))
    return _finish(s, options.hydrogens, options.max_atoms, label)


# ----------------------------------------------------------------------------- properties
def typed_properties(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Each key's values as numbers where every non-empty value of that key (over ``rows``) is one
    (whole numbers as int), else as text; empty cells (``""``, ``NA``, ``nan`` ...) become None.

    Examples
    --------
    >>> typed_properties([{"a": "1", "b": "x", "c": "2.5"}, {"a": "NA", "b": "3", "c": "1e3"}])
    [{'a': 1, 'b': 'x', 'c': 2.5}, {'a': None, 'b': '3', 'c': 1000.0}]
    """
    keys = list(dict.fromkeys(k for row in rows for k in row))
    kinds: dict[str, type] = {}
    for key in keys:
        values = [row[key] for row in rows if key in row and str(row[key]).strip().lower() not in MISSING]
        kind: type = int
        for v in values:
            try:
                x = float(v)
            except (TypeError, ValueError):
                kind = str
                break
            if not math.isfinite(x):
                kind = str
                break
            if kind is int and not re.fullmatch(r"[+-]?\d+", str(v).strip()):
                kind = float
        kinds[key] = kind if values else str
    out = []
    for row in rows:
        typed: dict[str, Any] = {}
        for key, v in row.items():
            if str(v).strip().lower() in MISSING:
                typed[key] = None
            elif kinds[key] is int:
                typed[key] = int(str(v).strip())
            elif kinds[key] is float:
                typed[key] = float(v)
            else:
                typed[key] = str(v)
        out.append(typed)
    return out


def property_key(key: str) -> str:
    """The item key a property is stored under: its own name unless that is a reserved item key."""
    return f"input_{key}" if key in RESERVED else key
