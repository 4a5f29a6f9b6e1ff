"""molviz.chem: reading real structures, element inference, superposition, bad input."""
from __future__ import annotations

import gzip
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from molviz.chem import COMPONENTS, Structure, infer_element, load, read_freesolv, rmsd, superpose
from molviz.errors import InputError, MolvizError, ResourceLimitError

BAD = Path(__file__).resolve().parent / "data" / "bad"


def formula(s: Structure, mask=None) -> dict[str, int]:
    from molviz.chem import SYMBOLS

    z = s.atomic_numbers if mask is None else s.atomic_numbers[mask]
    return dict(Counter(SYMBOLS[k - 1] for k in z.tolist()))


def write_xyz(s: Structure, path: Path) -> None:
    from molviz.chem import SYMBOLS

    with open(path, "w") as f:
        for conf in s.coords:
            f.write(f"{s.n_atoms}\n{s.name}\n")
            for z, (x, y, zc) in zip(s.atomic_numbers, conf):
                f.write(f"{SYMBOLS[z - 1]} {x:.6f} {y:.6f} {zc:.6f}\n")


# -- the shipped structures ---------------------------------------------------------------------
def test_import_does_not_pull_in_parsers():
    code = "import sys, molviz.chem; sys.exit(int('rdkit' in sys.modules or 'gemmi' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_6ega_protein_counts(protein_6ega_pdb):
    s = load(protein_6ega_pdb)
    assert (s.n_conformers, s.n_atoms) == (1, 2596)
    counts = Counter(s.components.tolist())
    assert counts == {"protein": 2553, "ion": 4, "water": 39}
    assert (s.atomic_numbers[s.components == "ion"] == 27).all()  # cobalt, not carbon + oxygen
    assert set(s.residue_names[s.components == "water"]) == {"HOH"}
    assert (s.atomic_numbers[s.components == "water"] == 8).all()
    assert s.coords.dtype == np.float32 and s.atomic_numbers.dtype == np.int64
    assert not s.warnings  # elements are in the file: nothing inferred


def test_6ega_complex(complex_6ega):
    s = complex_6ega
    assert s.n_atoms == 2596 + 68
    ligand = s.components == "ligand"
    assert ligand.sum() == 68
    assert formula(s, ligand) == {"C": 29, "H": 27, "F": 3, "N": 6, "O": 2, "S": 1}
    assert np.all(ligand[-68:]) and not ligand[:-68].any()  # the SDF's atoms, in order, at the end
    assert set(s.components.tolist()) <= set(COMPONENTS)
    # the ligand sits in the protein's pocket: some protein atom within 4 A of it
    lig, prot = s.coords[0, ligand], s.coords[0, s.components == "protein"]
    d = np.linalg.norm(lig[:, None] - prot[None], axis=-1)
    assert d.min() < 4.0 and d.min() > 1.0
    assert s.sources[0].endswith("6ega_protein.pdb") and s.sources[1].endswith(".sdf")


def test_ligand_sdf(ligand_6ega_sdf):
    s = load(ligand_6ega_sdf)
    assert s.n_atoms == 68 and (s.components == "ligand").all()
    assert s.smiles is not None and "C(F)(F)F" in s.smiles
    heavy = load(ligand_6ega_sdf, hydrogens="remove")
    assert heavy.n_atoms == 41 and (heavy.atomic_numbers != 1).all()


def test_2juy_ensemble(ensemble_2juy):
    s = ensemble_2juy
    assert (s.n_conformers, s.n_atoms) == (24, 392)
    assert (s.components == "protein").all()  # SME (methionine sulfoxide) is part of the peptide
    assert "SME" in set(s.residue_names.tolist())
    assert not np.allclose(s.coords[0], s.coords[1])


def test_superpose_reduces_rmsd(ensemble_2juy):
    rng = np.random.default_rng(0)
    s = ensemble_2juy
    moved = s.coords.copy()
    for i in range(1, s.n_conformers):  # random rigid motions of every conformer but the first
        q = np.linalg.qr(rng.normal(size=(3, 3)))[0]
        q *= np.sign(np.linalg.det(q))
        moved[i] = moved[i] @ q.T + rng.normal(scale=20.0, size=3)
    scrambled = Structure(moved, s.atomic_numbers, s.components, s.atom_names, s.residue_names, name="x")
    before = rmsd(scrambled)
    fitted = superpose(scrambled)
    after = rmsd(fitted)
    assert after[0] == pytest.approx(0.0, abs=1e-6)
    assert (after[1:] < before[1:] / 5).all()
    # the optimum does not depend on the starting pose: same as fitting the deposited models
    np.testing.assert_allclose(after, rmsd(superpose(s)), atol=2e-3)
    assert (rmsd(superpose(s)) <= rmsd(s) + 1e-4).all()


def test_superpose_on_mask_and_reference(ensemble_2juy):
    s = ensemble_2juy
    ca = s.atom_names == "CA"
    fitted = superpose(s, reference=3, mask=ca)
    assert rmsd(fitted, reference=3, mask=ca)[3] == 0
    assert rmsd(fitted, reference=3, mask=ca).mean() <= rmsd(s, reference=3, mask=ca).mean()
    np.testing.assert_array_equal(fitted.coords[3], s.coords[3])
    with pytest.raises(InputError):
        superpose(s, reference=24)


# -- SMILES ---------------------------------------------------------------------------------
def test_smiles_to_3d():
    s = load("CCO")
    assert (s.n_conformers, s.n_atoms) == (1, 9)
    assert formula(s) == {"C": 2, "O": 1, "H": 6}
    assert np.ptp(s.coords[0], axis=0).min() > 0.5  # really 3D
    c, o = s.coords[0, 1], s.coords[0, 2]
    assert 1.38 < np.linalg.norm(c - o) < 1.48  # C-O single bond
    assert any("MMFF" in w for w in s.warnings)
    assert s.smiles == "CCO" and (s.components == "ligand").all()


def test_smiles_ensemble_is_seeded():
    a = load("CCCCCCO", conformers=5, seed=3)
    b = load("CCCCCCO", conformers=5, seed=3)
    assert a.n_conformers == 5
    np.testing.assert_array_equal(a.coords, b.coords)
    assert not np.allclose(a.coords[0], a.coords[1])
    assert not np.allclose(load("CCCCCCO", conformers=5, seed=4).coords, a.coords)


def test_smiles_without_mmff_parameters_falls_back():
    s = load("[Se]1C=CC=C1")  # selenophene: UFF has Se, MMFF94 does not
    assert any("UFF" in w for w in s.warnings)


@pytest.mark.slow
def test_all_freesolv_smiles_embed(freesolv_rows):
    assert len(freesolv_rows) == 642
    failures = []
    start = time.perf_counter()
    for row in freesolv_rows:
        try:
            s = load(row["smiles"])
            assert np.isfinite(s.coords).all() and s.n_atoms >= 1
        except MolvizError as exc:
            failures.append(f"{row['compound_id']} {row['smiles']}: {exc}")
    elapsed = time.perf_counter() - start
    print(f"embedded {len(freesolv_rows) - len(failures)}/642 FreeSolv SMILES in {elapsed:.1f} s")
    assert not failures, "\n".join(failures)


def test_read_freesolv(freesolv_rows):
    assert len(freesolv_rows) == 642
    first = freesolv_rows[0]
    assert first["compound_id"] == "mobley_1017962" and first["smiles"] == "CCCCCC(=O)OC"
    assert first["iupac"] == "methyl hexanoate"
    assert first["expt"] == pytest.approx(-2.49) and first["calc"] == pytest.approx(-3.30)
    assert len({r["compound_id"] for r in freesolv_rows}) == 642
    assert read_freesolv() == freesolv_rows  # default path: the shipped copy


# -- element inference ------------------------------------------------------------------------
@pytest.mark.parametrize("name, residue, n, element", [
    (" CA ", "ALA", 5, "C"), ("CA  ", "CA", 1, "CA"), (" HG1", "THR", 14, "H"), ("HG1 ", "THR", 14, "H"),
    ("1HB ", "ALA", 10, "H"), (" OXT", "LYS", 24, "O"), (" SD ", "MET", 17, "S"), (" O  ", "HOH", 1, "O"),
    ("CO  ", "CO", 1, "CO"), ("ZN  ", "ZN", 1, "ZN"), ("I   ", "IOD", 1, "I"), ("CAF ", "J8A", 41, "C"),
    ("NAY ", "J8A", 41, "N"), ("CL1 ", "LIG", 20, "CL"), ("FE  ", "HEM", 43, "FE"), (" C1 ", "LIG", 20, "C"),
    ("HG11", "LIG", 20, "H"), (" HN1", "LIG", 20, "H"), ("BR  ", "LIG", 20, "BR"), (" P  ", "DA", 20, "P"),
])
def test_infer_element(name, residue, n, element):
    assert infer_element(name, residue, n_residue_atoms=n) == element


def test_elements_inferred_when_columns_empty(protein_6ega_pdb, test_data_dir):
    original = load(protein_6ega_pdb)
    blank = load(test_data_dir / "6ega_noelements.pdb")
    text = (test_data_dir / "6ega_noelements.pdb").read_text()
    assert all(len(line) <= 76 or not line[76:78].strip() for line in text.splitlines()
               if line.startswith(("ATOM", "HETATM")))  # the columns really are empty
    np.testing.assert_array_equal(blank.atomic_numbers, original.atomic_numbers)
    np.testing.assert_array_equal(blank.components, original.components)
    assert (blank.atomic_numbers[blank.components == "ion"] == 27).all()
    assert any("inferred" in w for w in blank.warnings)


def test_ligand_elements_inferred_with_column_rule(ligand_6ega_heavy_pdb, tmp_path):
    # Atom names such as CAF, NAY start in column 13: gemmi alone reads calcium and sodium.
    lines = [line[:76] if line.startswith(("ATOM", "HETATM")) else line
             for line in ligand_6ega_heavy_pdb.read_text().splitlines()]
    path = tmp_path / "j8a_noelements.pdb"
    path.write_text("\n".join(lines) + "\n")
    s = load(path)
    assert formula(s) == {"C": 29, "F": 3, "N": 6, "O": 2, "S": 1}
    np.testing.assert_array_equal(s.atomic_numbers, load(ligand_6ega_heavy_pdb).atomic_numbers)


def test_corpus_no_element_columns():
    s = load(BAD / "no_element_columns.pdb")
    assert Counter(s.components.tolist())["ion"] == 4
    assert (s.atomic_numbers[s.atom_names == "CA"][s.components[s.atom_names == "CA"] == "protein"] == 6).all()
    assert set(s.atomic_numbers.tolist()) == {1, 6, 7, 8, 27} or set(s.atomic_numbers.tolist()) == {1, 6, 7, 8, 16, 27}


def test_mixed_line_endings():
    a = load(BAD / "mixed_line_endings.pdb")
    b = load(BAD / "mixed_line_endings_reference.pdb")
    assert a.n_atoms == 120
    np.testing.assert_array_equal(a.coords, b.coords)
    np.testing.assert_array_equal(a.atom_names, b.atom_names)


# -- formats ----------------------------------------------------------------------------------
def test_xyz_round_trip(ensemble_2juy, tmp_path):
    s = ensemble_2juy.select(np.arange(50)).conformer(0)
    s = Structure(ensemble_2juy.coords[:3, :50], s.atomic_numbers, s.components, s.atom_names,
                  s.residue_names, name="three frames")
    path = tmp_path / "frames.xyz"
    write_xyz(s, path)
    back = load(path)
    assert back.n_conformers == 3 and back.name == "three frames"
    np.testing.assert_allclose(back.coords, s.coords, atol=1e-5)
    np.testing.assert_array_equal(back.atomic_numbers, s.atomic_numbers)
    assert load(path, conformers=2).n_conformers == 2


def test_gzip(nmr_2juy_pdb, ensemble_2juy, tmp_path):
    gz = tmp_path / "2juy.pdb.gz"
    gz.write_bytes(gzip.compress(nmr_2juy_pdb.read_bytes()))
    s = load(gz)
    np.testing.assert_array_equal(s.coords, ensemble_2juy.coords)
    np.testing.assert_array_equal(s.atomic_numbers, ensemble_2juy.atomic_numbers)


def test_mmcif(protein_6ega_pdb, nmr_2juy_pdb, tmp_path):
    import gemmi

    for pdb in (protein_6ega_pdb, nmr_2juy_pdb):
        st = gemmi.read_structure(str(pdb))
        st.setup_entities()
        cif = tmp_path / (pdb.stem + ".cif")
        st.make_mmcif_document().write_file(str(cif))
        a, b = load(pdb), load(cif)
        assert a.n_conformers == b.n_conformers
        np.testing.assert_allclose(a.coords, b.coords, atol=1e-3)
        np.testing.assert_array_equal(a.atomic_numbers, b.atomic_numbers)
        np.testing.assert_array_equal(a.components, b.components)
        if pdb == protein_6ega_pdb:  # no element symbols at all: inferred from the names
            doc = st.make_mmcif_document()
            col = doc[0].find_values("_atom_site.type_symbol")
            for i in range(len(col)):
                col[i] = "?"
            bare = tmp_path / "no_type_symbol.cif"
            doc.write_file(str(bare))
            c = load(bare)
            np.testing.assert_array_equal(c.atomic_numbers, a.atomic_numbers)
            assert len(c.warnings) == 1 and "inferred" in c.warnings[0]
        gz = tmp_path / (pdb.stem + ".cif.gz")
        gz.write_bytes(gzip.compress(cif.read_bytes()))
        assert load(gz).n_atoms == a.n_atoms


def test_multi_record_sdf_is_conformers(tmp_path):
    from rdkit import Chem

    s = load("CCCO", conformers=3)
    mol = Chem.AddHs(Chem.MolFromSmiles("CCCO"))
    path = tmp_path / "confs.sdf"
    with Chem.SDWriter(str(path)) as w:
        for conf in s.coords:
            m = Chem.Mol(mol)
            c = Chem.Conformer(m.GetNumAtoms())
            for i, p in enumerate(conf.astype(float)):
                c.SetAtomPosition(i, p.tolist())
            m.AddConformer(c, assignId=True)
            w.write(m)
    back = load(path)
    assert back.n_conformers == 3
    np.testing.assert_allclose(back.coords, s.coords, atol=1e-3)


def test_add_hydrogens(ligand_6ega_sdf, tmp_path):
    from rdkit import Chem

    mol = Chem.RemoveHs(next(iter(Chem.SDMolSupplier(str(ligand_6ega_sdf), removeHs=False))))
    path = tmp_path / "heavy.sdf"
    with Chem.SDWriter(str(path)) as w:
        w.write(mol)
    assert load(path).n_atoms == 41
    s = load(path, hydrogens="add")
    assert s.n_atoms == 68 and formula(s)["H"] == 27
    h = s.coords[0, s.atomic_numbers == 1]
    heavy = s.coords[0, s.atomic_numbers != 1]
    nearest = np.linalg.norm(h[:, None] - heavy[None], axis=-1).min(axis=1)
    assert (nearest > 0.9).all() and (nearest < 1.2).all()  # X-H bond lengths: real coordinates


def test_add_hydrogens_to_protein_is_refused(protein_6ega_pdb):
    with pytest.raises(InputError, match="small molecules only"):
        load(protein_6ega_pdb, hydrogens="add")


def test_several_sources_conformers(nmr_2juy_pdb, tmp_path):
    s = load(nmr_2juy_pdb, "CCO")  # one conformer broadcasts over 24
    assert s.n_conformers == 24 and (s.components == "ligand").sum() == 9
    np.testing.assert_array_equal(s.coords[0, -9:], s.coords[23, -9:])
    assert load(nmr_2juy_pdb, "CCO", conformers=2).n_conformers == 2  # 2 models + 2 embeddings
    two = tmp_path / "two.xyz"
    write_xyz(load("CCO", conformers=2), two)
    with pytest.raises(InputError, match="different numbers of conformers"):
        load(nmr_2juy_pdb, two)  # 24 vs 2


def test_structure_methods(complex_6ega, tmp_path):
    s = complex_6ega
    ligand = s.select(s.components == "ligand")
    assert ligand.n_atoms == 68 and ligand.name == s.name
    path = s.to_npz(tmp_path / "s.npz")
    back = Structure.from_npz(path)
    for key, value in s.to_arrays().items():
        np.testing.assert_array_equal(back.to_arrays()[key], value)
    assert back.smiles == s.smiles and back.sources == s.sources
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        assert {data[k].dtype.kind for k in data.files} <= {"f", "i", "U", "b"}
    assert Structure.from_arrays(load("CCO").to_arrays()).smiles == "CCO"
    assert s.conformer(0).n_conformers == 1
    with pytest.raises(InputError):
        s.conformer(1)
    with pytest.raises(InputError):
        Structure(np.zeros((1, 2, 3)), [6, 6], ["ligand", "solvent"], ["C", "C"], ["L", "L"], name="x")


# -- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize("name, phrase", [
    ("truncated.pdb", "truncated"),
    ("binary_garbage.pdb", "binary"),
    ("empty.sdf", "empty"),
    ("truncated.sdf", "could not be parsed"),
    ("two_molecules.sdf", "separately"),
    ("nan_coords.xyz", "NaN"),
    ("unknown_element.xyz", "unknown element"),
    ("xyz_count_mismatch.xyz", "truncated"),
    ("unknown_element.pdb", "unknown element"),
    ("models_differ.pdb", "same atoms"),
    ("no_atoms.pdb", "no atoms"),
    ("not_gzip.pdb.gz", "gzip"),
    ("unsupported.pdbqt", "unsupported file type"),
])
def test_bad_files(name, phrase):
    with pytest.raises(InputError) as info:
        load(BAD / name)
    message = str(info.value)
    assert name in message and phrase in message


@pytest.mark.parametrize("source, phrase", [
    ("C1CC(", "not a valid SMILES"),
    ("no/such/file.pdb", "no such file"),
    ("missing.sdf", "no such file"),
    ("molecule.txt", "no such file"),
    ("", "empty source"),
    ("C C", "not a SMILES"),
    ("*CC", "dummy atom"),
])
def test_bad_strings(source, phrase):
    with pytest.raises(InputError, match=phrase):
        load(source)


def test_bad_arguments(protein_6ega_pdb):
    with pytest.raises(InputError, match="hydrogens"):
        load("CCO", hydrogens="some")
    with pytest.raises(InputError, match="conformers"):
        load("CCO", conformers=0)
    with pytest.raises(InputError, match="at least one source"):
        load()
    with pytest.raises(InputError, match="folder"):
        load(protein_6ega_pdb.parent)


def test_xyz_frames_must_match(tmp_path):
    path = tmp_path / "frames.xyz"
    path.write_text("2\nA\nC 0 0 0\nO 1.2 0 0\n3\nB\nC 0 0 0\nO 1.2 0 0\nH 2 0 0\n")
    with pytest.raises(InputError, match="frame 2 has different atoms"):
        load(path)


def test_nan_in_pdb(tmp_path, protein_6ega_pdb):
    lines = protein_6ega_pdb.read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("ATOM"))
    lines[i] = lines[i][:30] + "     nan" + lines[i][38:]
    path = tmp_path / "nan.pdb"
    path.write_text("\n".join(lines))
    with pytest.raises(InputError, match="NaN"):
        load(path)


def test_atom_limit(protein_6ega_pdb, ligand_6ega_sdf, monkeypatch):
    with pytest.raises(ResourceLimitError, match="limit of 1,000"):
        load(protein_6ega_pdb, max_atoms=1000)
    with pytest.raises(ResourceLimitError):
        load(protein_6ega_pdb, ligand_6ega_sdf, max_atoms=2600)  # each fits, the complex does not
    monkeypatch.setenv("MOLVIZ_MAX_ATOMS", "50")
    with pytest.raises(ResourceLimitError):
        load(ligand_6ega_sdf)


@pytest.mark.slow
def test_million_atom_xyz(tmp_path):
    n = 1_000_000
    rng = np.random.default_rng(0)
    block = rng.uniform(-500, 500, size=(1000, 3)).round(3)  # 1,000 lines repeated 1,000 times: fast to write
    xyz = np.tile(block, (n // 1000, 1))
    path = tmp_path / "million.xyz"
    lines = "".join(f"C {x:.3f} {y:.3f} {z:.3f}\n" for x, y, z in block.tolist())
    path.write_text(f"{n}\none million carbons\n" + lines * (n // 1000))
    start = time.perf_counter()
    with pytest.raises(ResourceLimitError, match="limit"):
        load(path, max_atoms=n - 1)
    assert time.perf_counter() - start < 2.0  # refused from the count line, before parsing
    s = load(path)  # exactly at the default limit
    assert s.n_atoms == n
    np.testing.assert_allclose(s.coords[0, ::997], xyz[::997], atol=1e-3)


MOL2_WATER = """@<TRIPOS>MOLECULE
water
 3 2 0 0 0
SMALL
NO_CHARGES

@<TRIPOS>ATOM
      1 O1          0.0000    0.0000    0.0000 O.3     1  HOH1        0.0000
      2 H1          0.9572    0.0000    0.0000 H       1  HOH1        0.0000
      3 H2         -0.2400    0.9266    0.0000 H       1  HOH1        0.0000
@<TRIPOS>BOND
     1     1     2    1
     2     1     3    1
"""


def test_mol2(tmp_path):
    one = tmp_path / "water.mol2"
    one.write_text(MOL2_WATER)
    s = load(one)
    assert formula(s) == {"O": 1, "H": 2} and s.name == "water"
    np.testing.assert_allclose(s.coords[0, 1], [0.9572, 0, 0], atol=1e-4)
    two = tmp_path / "waters.mol2"
    two.write_text(MOL2_WATER + MOL2_WATER.replace("0.9572", "0.9000"))
    assert load(two).n_conformers == 2


def test_altlocs_keep_first(tmp_path, protein_6ega_pdb):
    atoms = [line for line in protein_6ega_pdb.read_text().splitlines() if line.startswith("ATOM")][:20]
    lines = []
    for k, line in enumerate(atoms):
        if k == 5:  # two alternative positions for one atom
            lines.append(line[:16] + "A" + line[17:54] + "  0.60" + line[60:])
            moved = f"{float(line[30:38]) + 1.0:8.3f}"
            lines.append(line[:16] + "B" + line[17:30] + moved + line[38:54] + "  0.40" + line[60:])
        else:
            lines.append(line)
    path = tmp_path / "altloc.pdb"
    path.write_text("\n".join(lines) + "\nEND\n")
    s = load(path)
    assert s.n_atoms == 20
    assert s.coords[0, 5, 0] == pytest.approx(float(atoms[5][30:38]), abs=1e-3)


def test_concurrent_loads_leave_stderr_alone():
    from concurrent.futures import ThreadPoolExecutor

    stderr = sys.stderr
    sources = ["CCO", "C1CC(", "c1ccccc1", "not a smiles", "CC(=O)O", "[Se]1C=CC=C1"] * 3

    def attempt(s):
        try:
            return load(s).n_atoms
        except InputError:
            return -1

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(attempt, sources))
    assert sys.stderr is stderr
    assert results.count(-1) == 6 and results[0] == 9
