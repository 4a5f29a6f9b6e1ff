"""Your own molecules end to end: ``molviz train library | ensemble INPUT...`` (molviz.chem._library,
molviz.chem._trajectory, molviz.training._data), skipped inputs listed, nothing lost silently."""
from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

from molviz.chem import library_records, read_trajectory, record_structure, typed_properties
from molviz.errors import InputError
from molviz.training import PreparedData

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NMR = "assets/data/nmr-2juy/2juy.pdb"


def _main(*args: str) -> int:
    from molviz.cli import main
    return main([*args, "--no-progress", "--threads", "1"] if args[0] == "train" else list(args))


def _skipped(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _items(bundle) -> list[dict]:
    return json.loads((bundle / "bundle.json").read_text())["items"]


def _models(repo_root, n_models: int, residues: int = 3) -> str:
    """The first ``n_models`` MODELs of 2JUY, each cut to its first ``residues`` residues."""
    out, model, keep = [], 0, False
    for line in (repo_root / NMR).read_text().splitlines():
        if line.startswith("MODEL"):
            model += 1
            keep = model <= n_models
            if keep:
                out.append(line)
        elif keep and line.startswith(("ATOM", "HETATM")) and int(line[22:26]) <= residues:
            out.append(line)
        elif keep and line.startswith("ENDMDL"):
            out.append(line)
    return "\n".join(out + ["END", ""])


# ----------------------------------------------------------------------------- library

def test_library_csv_keeps_properties_and_lists_the_broken_row(tmp_path, capsys):
    rows = [("ethanol", "CCO", "5.5", "A"), ("broken", "C1CC", "7", "B"), ("phenol", "c1ccccc1O", "6.25", "A"),
            ("acetic acid", "OC(C)=O", "", "B")]
    table = tmp_path / "mols.csv"
    table.write_text("Name,SMILES,pIC50,series\n" + "".join(",".join(r) + "\n" for r in rows))
    out = tmp_path / "lib"
    assert _main("train", "library", str(table), "--out", str(out), "--quick", "--steps", "3") == 0
    printed = capsys.readouterr().out
    assert "4 input(s), 3 used as items, 1 skipped" in printed
    items, skipped = _items(out), _skipped(out / "skipped.csv")
    assert len(items) + len(skipped) == len(rows)                 # nothing lost silently
    assert [(r["source"], r["index"]) for r in skipped] == [(str(table), "1")]
    assert "C1CC" in skipped[0]["reason"] and "not a valid SMILES" in skipped[0]["reason"]
    by_name = {it["name"]: it for it in items}
    assert set(by_name) == {"ethanol", "phenol", "acetic acid"}
    assert by_name["ethanol"]["pIC50"] == 5.5 and by_name["acetic acid"]["pIC50"] is None   # numbers, empty None
    assert by_name["ethanol"]["series"] == "A" and by_name["ethanol"]["properties"] == ["pIC50", "series"]
    assert by_name["acetic acid"]["smiles"] == "CC(=O)O"         # canonical
    assert by_name["phenol"]["source"] == str(table) and by_name["phenol"]["index"] == 2
    assert by_name["phenol"]["MolLogP"] > 1                       # the descriptors the latent map colours by
    config = json.loads((out / "bundle.json").read_text())["config"]
    assert config["mode"] == "autoencoder" and config["channel_names"] == ["H", "C", "O", "density"]
    assert config["training"]["data"]["inputs"] == [str(table)]


def test_library_prepare_only_then_train_from_the_file_and_resume(tmp_path, capsys):
    smi = tmp_path / "mols.smi.gz"
    with gzip.open(smi, "wt") as f:
        f.write("CCO ethanol\nCC(C)O isopropanol\nnot_a_smiles x\nc1ccncc1 pyridine\n\nC[Gd] gadolinium\n")
    npz = tmp_path / "lib.npz"
    assert _main("train", "library", str(smi), "--quick", "--prepare-only", str(npz)) == 0
    data = PreparedData.load(npz)
    assert [it["name"] for it in data.items] == ["ethanol", "isopropanol", "pyridine"]
    reasons = {int(r["index"]): r["reason"] for r in _skipped(tmp_path / "lib.skipped.csv")}
    assert set(reasons) == {2, 4} and "Gd" in reasons[4]           # no vdW width for Gd: skipped, not fatal
    assert data.meta["inputs"]["n"] == 5 and "Gd" not in data.meta["channel_names"]
    out = tmp_path / "b"
    assert _main("train", "library", "--data", str(npz), "--out", str(out), "--quick", "--steps", "2") == 0
    assert len(_skipped(out / "skipped.csv")) == 2
    assert _main("train", "library", "--data", str(npz), "--out", str(out), "--quick", "--steps", "4",
                 "--resume") == 0
    assert "completed at step 4" in capsys.readouterr().out
    assert _main("train", "library", str(tmp_path / "other.smi"), "--data", str(npz), "--out", str(out),
                 "--quick", "--steps", "2") == 2            # a file prepared from other inputs
    assert "other inputs (inputs: file has" in capsys.readouterr().err


def test_library_sdf_records_folder_and_unusable_files(tmp_path, repo_root):
    from rdkit import Chem
    from rdkit.Chem import AllChem

    sdf = tmp_path / "lib.sdf"
    w = Chem.SDWriter(str(sdf))
    m3 = Chem.AddHs(Chem.MolFromSmiles("CCN"))
    AllChem.EmbedMolecule(m3, randomSeed=1)
    m3.SetProp("_Name", "ethylamine")
    m3.SetProp("pKa", "10.7")
    w.write(m3)
    m2 = Chem.MolFromSmiles("CC(=O)C")                       # 2D record: embedded from its SMILES
    AllChem.Compute2DCoords(m2)
    m2.SetProp("_Name", "acetone")
    m2.SetProp("pKa", "19.3")
    w.write(m2)
    w.close()
    text = sdf.read_text() + "garbage\n  broken record\n\nM  END\n$$$$\n"
    sdf.write_text(text)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "water.xyz").write_text("3\nwater\nO 0 0 0\nH 0.96 0 0\nH -0.24 0.93 0\n")
    (folder / "README.txt").write_text("not a molecule\n")
    (folder / "empty.pdb").write_text("")
    (folder / ".hidden.xyz").write_text("junk")
    records = library_records(sdf, folder, tmp_path / "missing.csv")
    assert len(records) == 3 + 3 + 1
    out = tmp_path / "lib"
    assert _main("train", "library", str(sdf), str(folder), str(tmp_path / "missing.csv"), "--out", str(out),
                 "--quick", "--steps", "2") == 0
    items, skipped = _items(out), _skipped(out / "skipped.csv")
    assert len(items) + len(skipped) == 7
    assert [it["name"] for it in items] == ["ethylamine", "acetone", "water"]
    assert items[0]["pKa"] == 10.7 and items[1]["pKa"] == 19.3 and items[0]["smiles"] == "CCN"
    assert {r["source"] for r in skipped} == {str(sdf), str(folder / "README.txt"), str(folder / "empty.pdb"),
                                               str(tmp_path / "missing.csv")}
    s = record_structure(records[0])
    assert np.allclose(s.coords[0], m3.GetConformer().GetPositions(), atol=1e-4)   # the record's own 3D
    named = library_records(sdf, name_column="pKa")[1]
    assert record_structure(named).name == "19.3" and "pKa" not in named.properties


def test_library_tables_find_their_columns():
    import tempfile
    from pathlib import Path

    d = Path(tempfile.mkdtemp())
    (d / "a.tsv").write_text("ID\tcanonical_smiles\tlogS\nm1\tCCO\t-0.5\n")
    (d / "b.csv").write_text("CCO,ethanol\nCCC,propane\n")                # no header: SMILES first
    (d / "c.csv").write_text("mol,activity\nCCO,1\n")
    (d / "d.smi").write_text("smiles name weight\nCCO ethanol 46\n")
    a = library_records(d / "a.tsv")
    assert (a[0].smiles, a[0].name, a[0].properties) == ("CCO", "m1", {"logS": "-0.5"})
    b = library_records(d / "b.csv")
    assert [(r.smiles, r.name) for r in b] == [("CCO", "ethanol"), ("CCC", "propane")]
    c = library_records(d / "c.csv")
    assert c[0].kind == "skip" and "--smiles-column" in c[0].reason
    c = library_records(d / "c.csv", smiles_column="mol")
    assert (c[0].smiles, c[0].properties) == ("CCO", {"activity": "1"})
    assert library_records(d / "d.smi")[0].properties == {"weight": "46"}
    assert library_records(d / "a.tsv", name_column="nope")[0].reason.startswith(str(d / "a.tsv"))
    inline = library_records("C[Gd]", "CCO", str(d / "nothing*.csv"))     # SMILES on the command line
    assert [(r.kind, r.source, r.index) for r in inline] == [
        ("smiles", "command line", 0), ("smiles", "command line", 1), ("skip", str(d / "nothing*.csv"), None)]
    assert typed_properties([{"n": "1", "x": "1.5", "t": "a"}, {"n": "2", "x": "nan", "t": "1"}]) == [
        {"n": 1, "x": 1.5, "t": "a"}, {"n": 2, "x": None, "t": "1"}]


def test_library_with_nothing_usable_says_so(tmp_path, capsys):
    table = tmp_path / "bad.smi"
    table.write_text("C1CC a\nXx b\n")
    assert _main("train", "library", str(table), "--out", str(tmp_path / "o"), "--quick", "--steps", "2") == 2
    err = capsys.readouterr().err
    assert "none of the 2 input(s) could be used" in err and "skipped.csv" in err
    assert [r["index"] for r in _skipped(tmp_path / "o" / "skipped.csv")] == ["0", "1"]


def test_presets_take_no_inputs_and_recipes_need_them(tmp_path, capsys):
    for args, said in [(("nmr", "x.pdb"), "brings its own molecules"), (("ensemble",), "needs INPUT"),
                       (("nmr", "--stride", "2"), "--stride: only for")]:
        assert _main("train", *args, "--out", str(tmp_path / "o")) == 2
        assert said in capsys.readouterr().err


# ----------------------------------------------------------------------------- ensemble

@pytest.mark.slow
def test_ensemble_of_a_two_model_pdb_then_animate(tmp_path, repo_root):
    pdb = tmp_path / "two.pdb"
    pdb.write_text(_models(repo_root, 2))
    out = tmp_path / "ens"
    assert _main("train", "ensemble", str(pdb), "--out", str(out), "--quick", "--steps", "3") == 0
    items = _items(out)
    assert [it["name"] for it in items] == ["two model 1", "two model 2"]
    assert json.loads((out / "bundle.json").read_text())["config"]["mode"] == "autodecoder"
    gif = tmp_path / "a.gif"
    r = subprocess.run([sys.executable, "-m", "molviz", "animate", str(out), "--from", "0", "--to", "1",
                        "--frames", "2", "--size", "64x48", "--resolution", "8", "--atoms", "fade", "--out", str(gif)],
                       capture_output=True, text=True, timeout=300, cwd=repo_root)
    assert r.returncode == 0, r.stderr
    assert gif.read_bytes()[:6] in (b"GIF89a", b"GIF87a")


def _md_files(tmp_path, repo_root, n_frames=5):
    import MDAnalysis as mda

    pdb = tmp_path / "models.pdb"
    pdb.write_text(_models(repo_root, n_frames))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(str(pdb))
        top, dcd, gro = tmp_path / "top.pdb", tmp_path / "traj.dcd", tmp_path / "top.gro"
        u.atoms.write(str(top))
        u.atoms.write(str(gro))                       # GRO: no element column
        with mda.Writer(str(dcd), u.atoms.n_atoms) as w:
            for _ in u.trajectory:
                w.write(u.atoms)
    return top, dcd, gro


def test_ensemble_of_a_dcd_trajectory_respects_the_stride(tmp_path, repo_root, capsys):
    top, dcd, gro = _md_files(tmp_path, repo_root)
    out = tmp_path / "md"
    assert _main("train", "ensemble", str(top), str(dcd), "--stride", "2", "--out", str(out), "--quick",
                 "--steps", "3") == 0
    items = _items(out)
    assert [it["index"] for it in items] == [0, 2, 4] and [it["name"] for it in items][0] == "top frame 0"
    assert items[1]["time"] > 0 and items[0]["properties"] == ["time"]
    assert "3 input(s), 3 used as items, 0 skipped" in capsys.readouterr().out
    # GRO has no elements: inferred from the names, said, and every atom kept
    npz = tmp_path / "gro.npz"
    assert _main("train", "ensemble", str(gro), str(dcd), "--start", "1", "--stop", "3", "--quick",
                 "--prepare-only", str(npz)) == 0
    assert "note: the topology has no elements: inferred" in capsys.readouterr().out
    data = PreparedData.load(npz)
    assert [it["index"] for it in data.items] == [1, 2]
    t = read_trajectory(top, dcd)
    assert t.structure.n_atoms == read_trajectory(gro, dcd).structure.n_atoms
    assert np.array_equal(t.structure.atomic_numbers, read_trajectory(gro, dcd).structure.atomic_numbers)


def test_trajectory_selection_and_atoms_without_an_element(tmp_path, repo_root):
    top, dcd, gro = _md_files(tmp_path, repo_root, n_frames=2)
    t = read_trajectory(top, dcd, select="name CA")
    assert t.structure.n_atoms == 3 and set(t.structure.atomic_numbers.tolist()) == {6}
    with pytest.raises(InputError, match="--select"):
        read_trajectory(top, dcd, select="bogus((")
    lines = gro.read_text().splitlines()
    lines[2] = lines[2][:10] + "  9X9" + lines[2][15:]   # an atom name that names no element
    gro.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="cannot tell the element of atom 1"):
        read_trajectory(gro, dcd)


# ----------------------------------------------------------------------------- the latent map

@pytest.fixture(scope="module")
def mapped_library(tmp_path_factory):
    d = tmp_path_factory.mktemp("mapped")
    (d / "mols.csv").write_text("smiles,pIC50\nCCO,5.5\nCCCO,6.0\nc1ccccc1,7.5\nCCN,4.0\n")
    from molviz.cli import main
    assert main(["train", "library", str(d / "mols.csv"), "--out", str(d / "lib"), "--quick", "--steps", "2",
                 "--no-progress", "--threads", "1"]) == 0
    assert main(["map", str(d / "lib"), "--write", "--no-progress"]) == 0
    from molviz.models import load_model
    from molviz.view.latent_map import LatentMap
    return LatentMap.from_bundle(load_model(d / "lib"))


@pytest.mark.slow
def test_molviz_map_stores_the_search_index_with_the_bundle(mapped_library, tmp_path_factory):
    from molviz.models import load_model
    from molviz.view.search import ItemIndex
    bundle = load_model(next(tmp_path_factory.getbasetemp().glob("mapped*")) / "lib")
    index = ItemIndex.load(bundle.path, bundle.items)
    assert index is not None and index.search("c1ccccc1").kind == "molecule"


@pytest.mark.slow
def test_molviz_map_shows_the_fraction_of_the_layout_done(mapped_library, tmp_path_factory, capsys):
    """Minutes at 93k: umap-learn's stages and a bar of layout epochs, not a bare clock."""
    from molviz.cli import main
    lib = next(tmp_path_factory.getbasetemp().glob("mapped*")) / "lib"
    assert main(["map", str(lib)]) == 0
    out = capsys.readouterr()
    assert "UMAP layout (epochs)" in out.err and "100%" in out.err
    assert "Construct embedding" in out.out + out.err and "n_jobs value" not in out.err


@pytest.mark.slow
def test_molviz_map_colours_a_library_by_its_descriptors(mapped_library):
    assert {"MolLogP", "ExactMolWt"} <= set(mapped_library.color_options)
    assert np.isfinite(mapped_library.values["MolLogP"]).all()


@pytest.mark.slow
def test_molviz_map_colours_a_library_by_its_own_numeric_properties(mapped_library):
    assert "pIC50" in mapped_library.color_options
    assert mapped_library.label("pIC50") == "pIC50" and np.isfinite(mapped_library.values["pIC50"]).any()


def test_training_options_work_on_your_own_molecules(tmp_path, repo_root, capsys):
    table = tmp_path / "mols.smi"
    table.write_text("CCO ethanol\nCCN ethylamine\nCC=O acetaldehyde\n")
    out = tmp_path / "lib"
    assert _main("train", "library", str(table), "--out", str(out), "--quick", "--steps", "3", "--size", "XS",
                 "--latent-dim", "8", "--loss", "l1", "--no-augment", "--protocol", "continuous", "--points", "64",
                 "--time-budget", "60", "--hydrogens", "remove", "--channels", "C,N,O,density") == 0
    config = json.loads((out / "bundle.json").read_text())["config"]
    assert config["channel_names"] == ["C", "N", "O", "density"] and config["training"]["latent_dim"] == 8
    assert config["training"]["loss"] == "l1" and config["training"]["data"]["hydrogens"] == "remove"
    pdb = tmp_path / "two.pdb"
    pdb.write_text(_models(repo_root, 3, residues=2))
    first, second = tmp_path / "e1", tmp_path / "e2"
    assert _main("train", "ensemble", str(pdb), "--out", str(first), "--quick", "--steps", "2",
                 "--max-atoms", "100") == 0
    assert _main("train", "ensemble", str(pdb), "--out", str(second), "--quick", "--steps", "2",
                 "--init-from", str(first)) == 0
    assert _main("train", "ensemble", str(pdb), "--out", str(second), "--quick", "--steps", "2",
                 "--max-atoms", "10") == 2
    assert "more than the limit of 10" in capsys.readouterr().err


def test_ensembles_of_sdf_records_and_xyz_frames_are_superposed(tmp_path):
    from molviz.chem import load, rmsd
    from molviz.training import get_preset, prepare

    s = load("CCCCO", conformers=3, seed=2)
    xyz = tmp_path / "frames.xyz"
    xyz.write_text("".join(f"{s.n_atoms}\nframe {k}\n" + "".join(
        f"{'CHO'[[6, 1, 8].index(z)]} {x:.4f} {y:.4f} {w + 5 * k:.4f}\n"   # frames shifted: superposition undoes it
        for z, (x, y, w) in zip(s.atomic_numbers, s.coords[k])) for k in range(3)))
    cfg = get_preset("ensemble", quick=True).data
    cfg.inputs, cfg.stride = [str(xyz)], 2
    data = prepare(cfg, progress=False)
    assert [it["name"] for it in data.items] == ["frames frame 1", "frames frame 3"]
    assert [it["index"] for it in data.items] == [0, 2] and data.meta["inputs"]["n"] == 2
    x0, _, _ = data.table(0)
    assert abs(x0[:, 2].mean() - s.coords[0][:, 2].mean()) < 0.5    # frame 3 moved onto frame 1 (not 10 A off)
    sdf = tmp_path / "confs.sdf"
    from rdkit import Chem
    from rdkit.Chem import AllChem
    mol = Chem.AddHs(Chem.MolFromSmiles("CCCCO"))
    AllChem.EmbedMultipleConfs(mol, 3, randomSeed=1)
    with Chem.SDWriter(str(sdf)) as w:
        for c in mol.GetConformers():
            w.write(mol, confId=c.GetId())
    cfg.inputs, cfg.stride = [str(sdf)], 1
    data = prepare(cfg, progress=False)
    assert [it["name"] for it in data.items] == ["confs record 1", "confs record 2", "confs record 3"]
    assert data.items[0]["smiles"] == "CCCCO"
    assert rmsd(load(str(sdf))).max() > 0


def test_library_tables_with_a_bom_quoted_cells_and_globs(tmp_path):
    (tmp_path / "a.csv").write_bytes('\ufeffSMILES,note\nCCO,"two\nlines"\n'.encode())
    r = library_records(tmp_path / "a.csv")
    assert [(x.smiles, x.properties) for x in r] == [("CCO", {"note": "two\nlines"})]
    for k in range(2):
        (tmp_path / f"m{k}.xyz").write_text("1\nhelium\nHe 0 0 0\n")
    r = library_records(str(tmp_path / "m*.xyz"), str(tmp_path / "none*.sdf"))
    assert [(x.kind, x.source) for x in r] == [("file", str(tmp_path / "m0.xyz")), ("file", str(tmp_path / "m1.xyz")),
                                               ("skip", str(tmp_path / "none*.sdf"))]
    assert record_structure(r[0]).atomic_numbers.tolist() == [2]


def test_a_library_of_freesolv_smiles_gives_the_freesolv_preset_tables(tmp_path):
    """The recipe runs the preset's path: same SMILES, seed and channels -> the same atom tables and boxes."""
    from molviz.chem import read_freesolv
    from molviz.training import get_preset, prepare

    rows = read_freesolv()[:4]
    table = tmp_path / "fs.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["compound_id", "smiles", "iupac", "expt"])
        w.writerows([r["compound_id"], r["smiles"], r["iupac"], r["expt"]] for r in rows)
    preset = get_preset("freesolv", quick=True).data
    preset.max_items, preset.heldout = 4, 0.0
    mine = get_preset("library", quick=True).data
    mine.inputs, mine.channels, mine.heldout = [str(table)], "freesolv", 0.0
    a, b = prepare(preset, progress=False), prepare(mine, progress=False)
    for k in ("xyz", "channel", "width", "offsets", "boxes", "divisors"):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k
    assert [it["name"] for it in b.items] == [r["iupac"] for r in rows]
    assert [it["expt"] for it in b.items] == [r["expt"] for r in rows]


def test_a_library_prepared_in_shards_equals_one_preparation(tmp_path, capsys):
    table = tmp_path / "mols.csv"
    table.write_text("smiles,y\nCCO,1\nC1CC,2\nCCCl,3\nc1ccccc1,4\nCCN,5\nCCS,6\nbad,7\n")
    whole = tmp_path / "whole.npz"
    assert _main("train", "library", str(table), "--prepare-only", str(whole), "--quick") == 0
    parts = [tmp_path / f"part{k}.npz" for k in range(3)]
    for k, part in enumerate(parts):
        assert _main("train", "library", str(table), "--shard", f"{k}/3", "--prepare-only", str(part), "--quick") == 0
    a = PreparedData.load(whole)
    b = PreparedData.concat([PreparedData.load(p) for p in parts])
    assert len({tuple(PreparedData.load(p).meta["channel_names"]) for p in parts}) > 1   # the parts differ
    for k in ("xyz", "channel", "width", "offsets", "boxes", "divisors", "split"):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k
    assert a.meta["channel_names"] == b.meta["channel_names"] and a.items == b.items
    assert a.meta["inputs"]["n"] == b.meta["inputs"]["n"] == 7
    assert sorted(r["index"] for r in a.skipped) == sorted(r["index"] for r in b.skipped) == [1, 6]
    out = tmp_path / "b"
    capsys.readouterr()
    assert _main("train", "library", "--data", *map(str, parts), "--out", str(out), "--quick", "--steps", "2") == 0
    assert "7 input(s), 5 used as items, 2 skipped" in capsys.readouterr().out
    assert len(_items(out)) == 5 and len(_skipped(out / "skipped.csv")) == 2
    assert _main("train", "library", "--data", str(parts[1]), str(parts[0]), "--out", str(out), "--quick") == 2
    assert "in order" in capsys.readouterr().err


def test_library_geometry_etkdg_skips_the_force_field_and_is_recorded(tmp_path):
    """--geometry etkdg: the same atoms and seed, ETKDGv3 coordinates without MMFF94; the prepared file
    says so, so it is not taken for an MMFF preparation (and the default stays MMFF)."""
    from molviz.chem._library import LibraryRecord
    from molviz.training import get_preset

    rec = LibraryRecord("t", 0, "smiles", smiles="CC(=O)Nc1ccc(O)cc1")
    mmff, etkdg = record_structure(rec), record_structure(rec, geometry="etkdg")
    assert np.array_equal(mmff.atomic_numbers, etkdg.atomic_numbers) and mmff.smiles == etkdg.smiles
    assert not np.allclose(mmff.coords, etkdg.coords)
    assert any("MMFF94" in w for w in mmff.warnings) and any("ETKDGv3 only" in w for w in etkdg.warnings)
    with pytest.raises(InputError, match="'mmff'"):
        record_structure(rec, geometry="uff")
    table = tmp_path / "m.csv"
    table.write_text("smiles\nCCO\nc1ccccc1O\n")
    out = tmp_path / "e.npz"
    assert _main("train", "library", str(table), "--geometry", "etkdg", "--prepare-only", str(out), "--quick") == 0
    data = PreparedData.load(out)
    assert data.data_config.geometry == "etkdg" and get_preset("library").data.geometry == "mmff"
    with pytest.raises(InputError, match="geometry"):
        data.check_matches(get_preset("library").data)
    # a bundle trained so embeds a typed SMILES the same way (the app's encode and Engine.encode)
    from molviz.engine._encode import as_structure
    from molviz.models._spec import read_spec
    spec = read_spec({"data": data.meta["data"]})
    assert spec.geometry == "etkdg" and read_spec({"data": {}}).geometry == "mmff"
    typed = as_structure("CC(=O)Nc1ccc(O)cc1", hydrogens=spec.hydrogens, seed=spec.seed, geometry=spec.geometry)
    assert np.allclose(typed.coords, etkdg.coords, atol=1e-4)


@pytest.mark.slow
def test_bench_library_quick(tmp_path, capsys):
    import argparse

    from molviz.view._library_bench import run
    assert run(argparse.Namespace(quick=True, json=str(tmp_path / "b.json"))) == 0
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert [r["row"] for r in rows] == ["prepare", "prepare", "train step", "train step", "encode", "umap"]
    assert [r["geometry"] for r in rows[:2]] == ["mmff", "etkdg"] and all(r["items"] == 40 for r in rows[:2])
    out = capsys.readouterr().out
    assert "target prepare all of MUV <= 30 min" in out and "target encode >= 200 mol/s" in out
