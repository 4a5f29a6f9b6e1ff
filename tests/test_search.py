"""Item search (molviz.view.search): by name, by exact molecule and by substructure, checked
against RDKit atom-by-atom on every item of the shipped FreeSolv bundle."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from rdkit import Chem

from molviz.view.search import ItemIndex

ITEMS = json.loads((Path(__file__).resolve().parents[1] / "assets/models/freesolv/bundle.json").read_text())["items"]


@pytest.fixture(scope="module")
def index():
    return ItemIndex(ITEMS)


def test_two_spellings_find_one_molecule(index):
    i = next(k for k, it in enumerate(ITEMS) if it["name"] == "ethanol")
    assert index.search("OCC").indices == [i] and index.search("C(O)C").indices == [i]
    assert index.search("OCC").kind == "molecule" and "1 item(s) are this molecule" in index.search("OCC").message


@pytest.mark.parametrize("pattern", ["c1ccccc1Cl", "[OX2H]", "C(=O)O", "[#7]"])
def test_substructure_hits_equal_rdkit_on_every_item(index, pattern):
    query = Chem.MolFromSmiles(pattern) if "[" not in pattern else Chem.MolFromSmarts(pattern)
    want = [k for k, it in enumerate(ITEMS) if Chem.MolFromSmiles(it["smiles"]).HasSubstructMatch(query)]
    assert want and index.by_substructure(pattern) == want


def test_a_substructure_query_says_how_many_and_a_miss_says_so(index):
    r = index.search("c1ccccc1Cl")
    assert r.kind in ("substructure", "molecule") and r.total == len(r.indices) and str(r.total) in r.message
    miss = index.search("xyzzy")
    assert miss.indices == [] and miss.kind == "none" and miss.message.startswith("no match")


def test_names_prefix_first(index):
    found = index.search("prop")
    assert found.kind == "name" and found.indices
    assert ITEMS[found.indices[0]]["name"].lower().startswith("prop")


def test_a_stored_index_reads_back_equal_and_only_for_its_own_items(index, tmp_path):
    """ItemIndex.save / for_bundle: the same answers from search.safetensors; other items, a changed
    fingerprint or a damaged file are refused (built afresh), never trusted."""
    from safetensors.numpy import load_file, save_file

    from molviz.view.search import INDEX_FILE

    path = index.save(tmp_path, ITEMS)
    assert path.name == INDEX_FILE
    again = ItemIndex.load(tmp_path, ITEMS)
    assert again is not None
    for q in ("OCC", "c1ccccc1Cl", "[OX2H]", "C(=O)O", "prop", "C/C=C/C"):
        assert again.search(q, limit=10_000) == index.search(q, limit=10_000), q
    assert ItemIndex.load(tmp_path, ITEMS[:-1]) is None                       # other items
    assert ItemIndex.load(tmp_path, [{**ITEMS[0], "smiles": "CCCC"}, *ITEMS[1:]]) is None
    arrays = load_file(str(path))
    save_file({**arrays, "fingerprints": arrays["fingerprints"] * 0}, str(path),
              metadata={"format": "molviz-search-1"})
    assert ItemIndex.load(tmp_path, ITEMS) is None                            # metadata gone
    index.save(tmp_path, ITEMS)
    from safetensors import safe_open
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    save_file({**arrays, "fingerprints": arrays["fingerprints"] * 0}, str(path), metadata=meta)
    assert ItemIndex.load(tmp_path, ITEMS) is None                            # fingerprints changed
    path.write_bytes(b"not a safetensors file")
    assert ItemIndex.load(tmp_path, ITEMS) is None
    built = ItemIndex.for_bundle(tmp_path, ITEMS)
    assert built.search("OCC") == index.search("OCC")


def test_an_index_built_one_molecule_at_a_time_answers_the_same(index):
    """threads=0 (the app's background build: no long call holding Python's lock) finds what the all-core
    build finds."""
    one = ItemIndex(ITEMS, threads=0)
    for text in ("c1ccccc1Cl", "C(=O)O", "[#6]S", "OCC", "phenol", "CCO"):
        a, b = index.search(text), one.search(text)
        assert (a.kind, a.total, a.indices) == (b.kind, b.total, b.indices), text
