"""Readers: one function per format, each returning a :class:`Structure`.

gemmi and RDKit are imported inside the functions (``import molviz.chem`` must
work where only numpy and torch exist). Every parser exception is turned into
an :class:`InputError` that names the source and says what to fix.
"""
from __future__ import annotations

import contextlib
import io
import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from molviz._io import DEFAULT_MAX_FILE_MB, max_file_bytes, read_bounded_text
from molviz.chem._elements import (
    AMINO_ACIDS,
    ATOMIC_NUMBER,
    ION_RESIDUES,
    METALS_AND_HALIDES,
    NUCLEOTIDES,
    SYMBOLS,
    WATERS,
    atomic_number,
    infer_element,
)
from molviz.chem._residues import FOUR_CHARACTER, polymer_component
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
    max_bytes: int = DEFAULT_MAX_FILE_MB << 20  # refuse files (or gunzipped text) larger than this
    geometry: str = "mmff"         # SMILES: "mmff" (ETKDGv3, then MMFF94 / UFF) or "etkdg" (ETKDGv3 only:
                                   # half the time per drug-like molecule; heavy atoms ~0.8 A RMSD from mmff)


# -- text ------------------------------------------------------------------------------------
def file_format(path: Path) -> str | None:
    """The format of ``path`` from its extension (``.gz`` looked through), or None."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return FORMATS.get(suffixes[-1]) if suffixes else None


def read_text(path: Path, what: str, *, max_bytes: int | None = None) -> str:
    """The file's text (gunzipped in a stream if ``.gz``), line endings normalised to ``\\n``;
    refused before it is read whole when over ``max_bytes`` (default :func:`~molviz._io.max_file_bytes`)
    or binary."""
    return read_bounded_text(path, max_bytes=max_file_bytes() if max_bytes is None else max_bytes, what=what)


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
# What the reader takes from the text rather than from gemmi: gemmi merges atoms whose residue
# numbers repeat (MD files wrap them at 9999) into one residue and drops repeated atom names as
# if they were alternative locations. So the text is prepared first: alternative locations
# dropped where the file marks them, residues told apart by their order (renumbered in
# hybrid-36 when numbers repeat), MODEL records numbered in file order, and every atom's
# serial set to its index in its model, by which gemmi's atoms are put back in file order.
@dataclass
class _Prepared:
    """The kept atom records of a PDB/mmCIF text, per model, in file order."""

    residue_names: list[list[str]]   # full residue name (CHARMM's 4 characters) of each atom
    notes: list[str]


def _hybrid36(value: int, width: int) -> str:
    """``value`` in ``width`` characters: decimal, then upper-case hybrid-36 (PDB's wrap-free numbers).

    >>> _hybrid36(9999, 4), _hybrid36(10000, 4), _hybrid36(100000, 5)
    ('9999', 'A000', 'A0000')
    """
    if value < 10**width:
        return str(value).rjust(width)
    n = value - 10**width + 10 * 36 ** (width - 1)
    if n >= 36**width:
        raise ValueError(f"{value} does not fit {width} hybrid-36 characters")
    digits = ""
    while n:
        n, r = divmod(n, 36)
        digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[r] + digits
    return digits


_SOLVENT = WATERS | frozenset(ION_RESIDUES)


class _Records:
    """Walks atom records in file order: drops the alternative locations after the first of
    each residue, and tells residues apart (a new one starts where the residue key changes)."""

    def __init__(self) -> None:
        self.names: list[list[str]] = []      # per model, full residue name per kept atom
        self.run: list[list[int]] = []        # per model, residue ordinal per kept atom
        self.dropped: dict[str, int] = {}     # altloc letter -> records dropped
        self.repeats = 0                      # residues whose key appeared before in their model
        self.new_model()

    def new_model(self) -> None:
        if not self.names or self.names[-1]:
            self.names.append([])
            self.run.append([])
            self.seen: set = set()
            self.runs = 0
        self.boundary()

    def boundary(self) -> None:
        """TER / ENDMDL: the next atom starts a new residue."""
        self.group = self.key = None
        self.alt = None
        self.atom_names: set = set()

    def add(self, group, key, altloc: str, atom: str, resname: str) -> bool:
        """Record one atom; False when it is a dropped alternative location."""
        if group != self.group:
            self.group, self.alt = group, None
        if altloc:
            if self.alt is None:
                self.alt = altloc
            elif altloc != self.alt:
                self.dropped[altloc] = self.dropped.get(altloc, 0) + 1
                return False
        # a repeated atom name starts a new residue only for waters and ions, which MD files
        # may number alike; a ligand with duplicate atom names (Open Babel) stays one residue
        if key != self.key or (atom in self.atom_names and resname.upper() in _SOLVENT):
            self.key, self.atom_names = key, set()
            self.runs += 1
            if key in self.seen:
                self.repeats += 1
            self.seen.add(key)
        self.atom_names.add(atom)
        self.names[-1].append(resname)
        self.run[-1].append(self.runs)
        return True

    def notes(self) -> list[str]:
        notes = []
        if self.dropped:
            n = sum(self.dropped.values())
            notes.append(f"{n:,} atom record(s) at alternative locations dropped (altloc "
                         f"{', '.join(sorted(self.dropped))}); kept the first altloc of each residue")
        if self.repeats:
            notes.append(f"residue numbers repeat ({self.repeats:,} residue(s), e.g. numbers wrapped at "
                         "9999): residues told apart by their order in the file, every atom kept")
        return notes


def _prepare_pdb(text: str, source: str, options: ReadOptions) -> tuple[str, _Prepared]:
    """Check ATOM/HETATM records, drop marked alternative locations, keep repeated residue
    numbers apart, fill empty element columns by name-based inference (see the section comment)."""
    lines: list[str | None] = text.split("\n")  # type: ignore[assignment]
    rec = _Records()
    atom_lines: list[int] = []
    four_char: list[bool] = []
    for i, line in enumerate(lines):
        record = line[:6]
        if record == "MODEL ":
            rec.new_model()
            lines[i] = f"MODEL {len(rec.names):8d}"  # file order; repeated numbers are loaded too
        elif record[:3] == "TER" or record == "ENDMDL":
            rec.boundary()
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
            # CHARMM writes 4-character residue names in columns 18-21 (gemmi would read column
            # 21 as the first of a two-character chain id)
            four = line[20] != " " and (line[21] == " " or line[17:21].strip().upper() in FOUR_CHARACTER)
            resname = (line[17:21] if four else line[17:20]).strip()
            chain = line[21] if four else line[20:22]
            if rec.add((chain, line[22:27]), (resname, chain, line[22:27]), line[16].strip(),
                       line[12:16], resname):
                atom_lines.append(i)
                four_char.append(four)
            else:
                lines[i] = None
    per_model = [len(n) for n in rec.names]
    _check_atoms(max(per_model, default=0), source, options)
    renumber = rec.repeats > 0
    sizes = [np.bincount(np.asarray(r, dtype=np.int64)) for r in rec.run]  # atoms per residue
    inferred: set[str] = set()
    k = 0
    for m, (names, runs) in enumerate(zip(rec.names, rec.run)):
        for j in range(len(names)):
            i, four = atom_lines[k], four_char[k]
            k += 1
            line = lines[i]
            element = line[76:78].strip() if len(line) > 76 else ""
            if element and atomic_number(element) == 0:
                raise InputError(f"{source}: line {i + 1}: unknown element {element!r} in columns 77-78; "
                                 "write a valid element symbol there (or leave the columns empty)")
            if not element:
                kind = polymer_component(names[j])
                residue = {"protein": "ALA", "nucleic": "DA"}.get(kind, names[j])  # standard naming rules
                symbol = infer_element(line[12:16].ljust(4), residue, n_residue_atoms=int(sizes[m][runs[j]]))
                if not symbol:
                    raise InputError(f"{source}: line {i + 1}: cannot infer the element of atom "
                                     f"{line[12:16].strip()!r} in residue {names[j]!r}; write the element "
                                     "in columns 77-78")
                line = line.ljust(80)[:76] + symbol.rjust(2) + line.ljust(80)[78:]
                inferred.add(symbol)
            if renumber:
                if runs[j] >= 1_223_056:
                    raise InputError(f"{source}: model {m + 1} has more than 1,223,055 residues; split the "
                                     "file and load the parts one at a time")
                number = _hybrid36(runs[j], 4) + " "
            else:
                number = line[22:27]
            chain = (" " + line[21]) if four else line[20:22]
            lines[i] = line[:6] + _hybrid36(j + 1, 5) + line[11:20] + chain + number + line[27:]
    notes = rec.notes()
    if inferred:
        notes.append(f"elements inferred from atom and residue names (empty element columns): "
                     f"{', '.join(sorted(inferred))}")
    return "\n".join(line for line in lines if line is not None), _Prepared(rec.names, notes)


def _cif_column(block, *tags: str) -> list[str] | None:
    for tag in tags:
        column = block.find_values(f"_atom_site.{tag}")
        if len(column):
            return list(column)
    return None


def _prepare_cif(block, source: str, options: ReadOptions) -> _Prepared:
    """The mmCIF counterpart of :func:`_prepare_pdb`, on gemmi's parsed ``_atom_site`` table."""
    import gemmi

    x = _cif_column(block, "Cartn_x")
    if x is None:
        raise InputError(f"{source}: no _atom_site coordinates; is this an mmCIF file with atoms?")
    n = len(x)
    blank = [""] * n
    model = _cif_column(block, "pdbx_PDB_model_num") or ["1"] * n
    chain = _cif_column(block, "auth_asym_id", "label_asym_id") or blank
    seq = _cif_column(block, "auth_seq_id", "label_seq_id") or blank
    ins = _cif_column(block, "pdbx_PDB_ins_code") or blank
    alt = _cif_column(block, "label_alt_id") or blank
    comp = [gemmi.cif.as_string(c) for c in (_cif_column(block, "label_comp_id", "auth_comp_id") or blank)]
    atom = _cif_column(block, "label_atom_id", "auth_atom_id") or blank
    rec = _Records()
    keep = []
    previous = model[0] if n else None
    for r in range(n):
        if model[r] != previous:
            rec.new_model()
            previous = model[r]
        altloc = alt[r] if alt[r] not in (".", "?") else ""
        if rec.add((chain[r], seq[r], ins[r]), (comp[r], chain[r], seq[r], ins[r]), altloc, atom[r], comp[r]):
            keep.append(r)
    _check_atoms(max((len(m) for m in rec.names), default=0), source, options)
    table = block.find_mmcif_category("_atom_site.")
    if len(keep) < n:  # rebuild the table without the dropped alternative locations
        loop = table.loop
        width, values = loop.width(), list(loop.values)
        loop.set_all_values([[values[r * width + c] for r in keep] for c in range(width)])
    tags = [t.split(".", 1)[1] for t in table.tags]
    serial = [str(j + 1) for names in rec.names for j in range(len(names))]
    _set_column(table, tags, "id", serial)
    if rec.repeats:
        runs = [str(k) for r in rec.run for k in r]
        for tag in ("auth_seq_id", "label_seq_id"):
            _set_column(table, tags, tag, runs)
    return _Prepared(rec.names, rec.notes())


def _set_column(table, tags: list[str], tag: str, values: list[str]) -> None:
    if tag in tags:
        column = table.column(tags.index(tag))
        for r, v in enumerate(values):
            column[r] = v


def _component_of(residue, entity, atom_element: str, name: str) -> str:
    import gemmi

    name = name.upper()
    if name in WATERS or residue.entity_type == gemmi.EntityType.Water:
        return "water"
    md = polymer_component(name, [a.name for a in residue])
    if md is not None:  # MD programs' names of protein and nucleic residues, whatever the entity
        return md
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
    """PDB or mmCIF (plain or gzipped): every MODEL a conformer (in file order), every atom
    record kept except the alternative locations the file marks (first altloc kept)."""
    import gemmi

    source = str(path)
    text = read_text(path, "PDB" if fmt == "pdb" else "mmCIF", max_bytes=options.max_bytes)
    if not text.isascii():  # PDB and mmCIF are ASCII; gemmi's fixed columns would split characters
        if fmt == "pdb":
            for i, line in enumerate(text.split("\n")):
                if line.startswith(("ATOM  ", "HETATM")) and not line.isascii():
                    raise InputError(f"{source}: line {i + 1}: non-ASCII characters in an atom record; "
                                     "PDB files are plain ASCII, fix or remove that line")
        text = text.encode("ascii", "replace").decode("ascii")
    try:
        if fmt == "pdb":
            text, prepared = _prepare_pdb(text, source, options)
            st = gemmi.read_pdb_string(text)
            for model in st:  # CHARMM leaves chain ids blank and names segments (columns 73-76)
                model.split_chains_by_segments(gemmi.HowToNameCopiedChain.AddNumber)
        else:
            doc = gemmi.cif.read_string(text)
            if len(doc) == 0:
                raise InputError(f"{source}: no data block; is this an mmCIF file?")
            prepared = _prepare_cif(doc[0], source, options)
            st = gemmi.make_structure_from_block(doc[0])
        del text
        st.setup_entities()
        st.remove_empty_chains()
    except MolvizError:
        raise
    except Exception as exc:  # gemmi raises RuntimeError, ValueError, IndexError ...
        raise InputError(f"{source}: gemmi could not read this {fmt.upper()} file ({exc}); "
                         "check that it is a complete, valid file") from None
    notes = list(prepared.notes)
    if len(st) == 0:
        raise InputError(f"{source}: no models with atoms; check that the file has ATOM/HETATM records")
    entity_of = {sc: ent for ent in st.entities for sc in ent.subchains}

    models = []
    inferred: set[str] = set()
    prepared_models = iter(prepared.residue_names)
    for m, model in enumerate(st):
        if model.count_atom_sites() == 0:
            continue
        full_names = next(prepared_models, [])
        index, xyz, z, names, comps = [], [], [], [], []
        for chain in model:
            for residue in chain:
                entity = entity_of.get(residue.subchain)
                component = None  # one per residue, from its first atom's element (ions)
                for atom in residue:
                    k = atom.serial - 1  # the atom's index in its model (set by the preparation)
                    if not 0 <= k < len(full_names):
                        raise InputError(f"{source}: model {m + 1}: gemmi read an atom ({atom.name!r} of "
                                         f"{residue.name} {residue.seqid}) the file check did not; "
                                         "check the ATOM/HETATM records")
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
                    index.append(k)
                    xyz.append((pos.x, pos.y, pos.z))
                    z.append(number)
                    names.append(atom.name)
                    if component is None:
                        component = _component_of(residue, entity, SYMBOLS[number - 1], full_names[k])
                    comps.append(component)
        if not z:
            continue
        order = np.argsort(np.asarray(index), kind="stable")  # back to file order
        models.append((np.asarray(xyz, np.float64)[order], np.asarray(z)[order],
                       [names[o] for o in order], [full_names[index[o]] for o in order],
                       [comps[o] for o in order]))
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
    text = read_text(path, fmt.upper(), max_bytes=options.max_bytes)
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


def parse_smiles(text: str):
    """``(mol, None)`` for a SMILES RDKit parses, else ``(None, RDKit's reason)``; RDKit's log is caught."""
    from rdkit import Chem

    with rdkit_messages() as log:
        try:
            mol = Chem.MolFromSmiles(text)
        except Exception:  # noqa: BLE001
            mol = None
    return (mol, None) if mol is not None else (None, _rdkit_reason(log) or "RDKit could not parse it")


def read_smiles(smiles: str, options: ReadOptions) -> Structure:
    """Embed a SMILES in 3D: AddHs, ETKDGv3 (seeded), MMFF94 (else UFF, else ETKDG only).

    ``options.geometry == "etkdg"`` stops after ETKDGv3 (no force field): for large libraries.
    """
    from rdkit import Chem
    from rdkit.Chem import AllChem, rdDistGeom

    text = smiles.strip()
    mol, reason = parse_smiles(text)
    if mol is None:
        raise InputError(f"SMILES {text!r}: not a valid SMILES and not an existing file ({reason}); "
                         "check the SMILES, or the path and its extension (.pdb .cif .sdf .mol .mol2 .xyz)")
    if mol.GetNumAtoms() == 0:
        raise InputError(f"SMILES {text!r}: no atoms; give a SMILES with at least one atom")
    dummies = [a.GetIdx() + 1 for a in mol.GetAtoms() if a.GetAtomicNum() == 0]
    if dummies:
        raise InputError(f"SMILES {text!r}: atom {dummies[0]} is a dummy atom ('*'), which has no element; "
                         "replace it with a real atom (e.g. [H] or C)")
    if options.geometry not in ("mmff", "etkdg"):
        raise InputError(f"geometry {options.geometry!r}: choose 'mmff' (ETKDGv3 + MMFF94) or 'etkdg' (ETKDGv3 "
                         "only)")
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
            if options.geometry == "etkdg":
                notes.append("geometry: ETKDGv3 only (no force field asked)")
            elif AllChem.MMFFHasAllMoleculeParams(mol):
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
        try:
            canonical = Chem.MolToSmiles(Chem.RemoveHs(mol))
        except Exception:  # noqa: BLE001 - RemoveHs re-sanitises, which some parsed SMILES fail ('c#1ccccc1')
            canonical = Chem.MolToSmiles(parse_smiles(text)[0])
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
    text = read_text(path, "XYZ", max_bytes=options.max_bytes)
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
