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
