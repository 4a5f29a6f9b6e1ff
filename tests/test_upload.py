"""Structure files sent from the browser, the map's selection and its JSON at library scale, without a browser.

``clean_upload`` vets what trame hands over ({name, size, content}), ``read_upload`` reads it with
the same loaders as a path (real files: RDKit SDF and MOL2, PDB, XYZ, gzipped mmCIF from gemmi),
and the app's handler (worker lanes inline without an event loop) encodes it onto the map.
"""
from __future__ import annotations

import csv
import gzip
import io
import uuid
from pathlib import Path

import numpy as np
import pytest

from molviz.errors import InputError, ResourceLimitError
from molviz.view.limits import Limits, clean_upload
from molviz.view.upload import read_upload

ROOT = Path(__file__).resolve().parent.parent
BAD = Path(__file__).parent / "data" / "bad"
NMR_PDB = ROOT / "assets" / "data" / "nmr-2juy" / "2juy.pdb"


def _phenol():
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("Oc1ccccc1"))
    AllChem.EmbedMolecule(mol, randomSeed=3)
    return mol


def _sent(name: str, content: bytes) -> dict:
    return {"name": name, "size": len(content), "type": "", "lastModified": 0, "content": content}


def test_clean_upload_keeps_the_base_name_and_checks_format_and_size():
    lim = Limits(max_upload_mb=0.001)
    assert clean_upload(_sent("C:\\users\\me\\lig.sdf", b"x"), lim) == ("lig.sdf", b"x")
    assert clean_upload([_sent("../../etc/x.PDB.gz", b"x")], lim)[0] == "x.PDB.gz"
    assert clean_upload(_sent("a.pdb", memoryview(b"xy")), lim)[1] == b"xy"
    with pytest.raises(InputError, match="not a structure file"):
        clean_upload(_sent("passwd", b"x"), lim)
    with pytest.raises(InputError, match="empty"):
        clean_upload(_sent("a.pdb", b""), lim)
    with pytest.raises(ResourceLimitError, match="above the server's upload limit of 0.001 MB"):
        clean_upload(_sent("a.pdb", b"x" * 2000), lim)
    with pytest.raises(ResourceLimitError):          # the size the browser says counts too
        clean_upload({"name": "a.pdb", "size": 10**9, "content": b"x"}, lim)
    for bad in (None, {}, {"name": "a.pdb"}, {"name": "a.pdb", "content": "text"}, "a.pdb"):
        with pytest.raises(InputError):
            clean_upload(bad, lim)
    with pytest.raises(InputError, match="could not read"):
        clean_upload({"name": "a.pdb", "content": None, "error": "NotReadableError"}, lim)


def test_read_upload_reads_each_format_like_a_path(tmp_path):
    from rdkit import Chem

    mol = _phenol()
    sdf = Chem.MolToMolBlock(mol).encode() + b"$$$$\n"
    s, notes = read_upload("phenol.sdf", sdf)
    assert (s.n_atoms, s.name, s.n_conformers, notes) == (13, "phenol", 1, [])
    xyz = f"{mol.GetNumAtoms()}\nphenol\n" + "".join(
        f"{a.GetSymbol()} {p.x:.4f} {p.y:.4f} {p.z:.4f}\n"
        for a, p in zip(mol.GetAtoms(), mol.GetConformer().GetPositions().tolist() and
                        [mol.GetConformer().GetAtomPosition(i) for i in range(mol.GetNumAtoms())]))
    s2, _ = read_upload("phenol.xyz", xyz.encode())
    assert s2.n_atoms == 13
    assert np.allclose(np.sort(s2.coords[0], axis=0), np.sort(s.coords[0], axis=0), atol=1e-3)
    s3, _ = read_upload("phenol.pdb.gz", gzip.compress(Chem.MolToPDBBlock(mol).encode()))
    assert s3.n_atoms == 13
    # 24 NMR models: the first is encoded, and the note says so
    s4, notes4 = read_upload("2juy.pdb", NMR_PDB.read_bytes())
    assert s4.n_conformers == 1 and any("24 conformers" in n and "first" in n for n in notes4)
    assert not list(tmp_path.iterdir())            # nothing written where the test can see


def test_read_upload_refuses_broken_files_with_the_loaders_messages():
    for name in ("truncated.pdb", "nan_coords.xyz", "empty.sdf", "binary_garbage.pdb"):
        with pytest.raises(InputError) as err:
            read_upload(name, (BAD / name).read_bytes())
        assert str(err.value)


def test_a_library_map_is_webgl_valid_plotly_and_keeps_its_selection():
    from molviz.view.latent_map import GL_FROM, LatentMap

    n = GL_FROM + 10
    rng = np.random.default_rng(0)
    m = LatentMap(coords=rng.normal(size=(n, 2)), latents=rng.normal(size=(n, 4)).astype(np.float32),
                  values={"pIC50": rng.normal(size=n)}, names=[f"m{i}" for i in range(n)], smiles=["CCO"] * n)
    fig = m.figure("pIC50", selected=3, endpoints=(1, 2), path=rng.normal(size=(5, 2)), highlight=[4, 5],
                   chosen=[7, 8, 9])
    items = fig.data[0]
    assert items["type"] == "scattergl" and len(items["x"]) == n and "text" not in items
    assert items["selectedpoints"] == [7, 8, 9]
    fig.to_plotly()                                       # plotly's own validators accept the JSON
    small = LatentMap(coords=m.coords[:20], latents=m.latents[:20], names=m.names[:20], smiles=m.smiles[:20])
    assert small.figure("none").data[0]["type"] == "scatter"
    rows = list(csv.DictReader(io.StringIO(m.selection_csv([9, 7, 7, 10**9]))))
    assert [r["index"] for r in rows] == ["7", "9"] and rows[0]["smiles"] == "CCO" and rows[0]["pIC50"]


def test_the_app_encodes_an_uploaded_file_onto_the_map_and_lists_a_selection(tmp_path):
    pytest.importorskip("trame")
    from app_bundles import make_small_bundle
    from rdkit import Chem
    from trame.app import get_server

    from molviz.app import MolvizApp

    bundle = make_small_bundle(tmp_path / "freesolv-small")
    server = get_server(f"molviz-upload-{uuid.uuid4().hex[:8]}", client_type="vue3")
    app = MolvizApp(server, bundle=bundle, window_size=(320, 240))
    app.state.ready()
    app.on_server_ready()
    app.state.upload_file = _sent("my phenol.sdf", Chem.MolToMolBlock(_phenol()).encode())
    app.state.flush()
    assert not app.state.error_show, app.state.error_text
    assert app.state.has_encoded and app.state.view_source == "encoded"
    assert app.state.placement_text.startswith("my phenol: placed on the map")
    assert app.state.upload_file is None                   # the bytes do not stay in the shared state
    names = app.ex.channel_names
    shown = {names[i] for i in range(len(names)) if app.state[f"ch{i}_visible"]}
    assert {"H", "C", "O"} <= shown and "Cl" not in shown     # phenol's channels, as for a stored item
    assert any(o["title"] == "file: my phenol" for o in app.state.endpoint_options)
    assert any((t.get("marker") or {}).get("symbol") == "star" for t in app.state.map_figure["data"])
    app.state.upload_file = _sent("x.pdb", (BAD / "truncated.pdb").read_bytes())
    app.state.flush()
    assert app.state.error_show and "truncated" in app.state.error_text
    app.on_map_select([0, 2, 2, -1, 99999, "x", True])
    assert app.state.map_selection_text == "2 items selected"
    assert [r["index"] for r in app.state.map_selection] == [0, 2]
    text = app.selection_csv().decode()
    assert len(text.strip().splitlines()) == 3
    app._update_map()                          # the next redraw keeps what plotly selected in the page
    assert app.state.map_items[0]["selectedpoints"] == [0, 2]
    app.clear_map_selection()
    assert app.state.map_selection_text == "" and "selectedpoints" not in app.state.map_items[0]
    # a bundle written after start-up appears on refresh; the model on screen stays chosen
    models = tmp_path / "models"
    models.mkdir()
    app._models_dir = models
    make_small_bundle(models / "later", n_items=4)
    app.refresh_models()
    assert [o["title"] for o in app.state.model_options][-1] == "later"
    assert app.catalog[app.state.model_index] == bundle.resolve()
