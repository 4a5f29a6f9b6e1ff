"""A library prepared in parts on worker processes equals one preparation, and a rerun resumes."""
from __future__ import annotations

import numpy as np
import pytest

from molviz.cli import main

pytestmark = pytest.mark.slow

SMILES = ["CCO", "c1ccccc1O", "CC(=O)O", "not-a-smiles", "CCN", "ClC(Cl)(Cl)Cl", "CCS", "OC(=O)c1ccccc1",
          "C1CCCCC1", "CC#N"]


def test_parts_on_workers_equal_one_preparation_and_resume(tmp_path, capsys):
    table = tmp_path / "lib.csv"
    table.write_text("smiles,name,pIC50\n" + "".join(f"{s},m{i},{i / 2}\n" for i, s in enumerate(SMILES)))
    common = ["train", "library", str(table), "--quick", "--no-progress"]
    assert main([*common, "--prepare-only", str(tmp_path / "one.npz")]) == 0
    assert main([*common, "--prepare-only", str(tmp_path / "par.npz"), "--workers", "2", "--parts", "3"]) == 0
    from molviz.training import PreparedData
    one, par = PreparedData.load(tmp_path / "one.npz"), PreparedData.load(tmp_path / "par.npz")
    for key in ("xyz", "channel", "width", "offsets", "boxes", "divisors", "split"):
        assert np.array_equal(getattr(one, key), getattr(par, key)), key
    assert [it["name"] for it in one.items] == [it["name"] for it in par.items]
    assert len(par.skipped) == 1 and par.n_items + len(par.skipped) == len(SMILES)
    parts = sorted((tmp_path / "par.parts").glob("part-*-of-3.npz"))
    assert len(parts) == 3
    stamps = [p.stat().st_mtime_ns for p in parts]
    parts[1].unlink()                                  # as if the run had been killed before part 1
    assert main([*common, "--prepare-only", str(tmp_path / "par.npz"), "--workers", "2", "--parts", "3"]) == 0
    assert [p.stat().st_mtime_ns for p in (parts[0], parts[2])] == [stamps[0], stamps[2]]   # reused
    assert parts[1].is_file()
    again = PreparedData.load(tmp_path / "par.npz")
    assert np.array_equal(again.xyz, one.xyz)
    capsys.readouterr()
