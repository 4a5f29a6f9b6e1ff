"""Shared fixtures: paths to the shipped data, loaded structures, FreeSolv rows.

Markers (declared in pyproject.toml): ``slow``, ``gpu`` (skipped here without a CUDA
device) and ``browser``.
"""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
DATA = ASSETS / "data"
TEST_DATA = Path(__file__).resolve().parent / "data"


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in gpu_items:
            item.add_marker(skip)


@pytest.fixture
def one_torch_thread():
    """Tiny tensors on a shared 2-core box: extra torch threads only add contention."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (holds molviz/, assets/, tests/)."""
    return ROOT


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``assets/data``: 6ega/, nmr-2juy/, freesolv/."""
    return DATA


@pytest.fixture(scope="session")
def test_data_dir() -> Path:
    """``tests/data`` (``bad/`` holds the malformed-input corpus)."""
    return TEST_DATA


@pytest.fixture(scope="session")
def protein_6ega_pdb() -> Path:
    """IRAK4 chain A with hydrogens: 2,596 atoms (protein, 4 Co, 39 waters)."""
    return DATA / "6ega" / "6ega_protein.pdb"


@pytest.fixture(scope="session")
def ligand_6ega_sdf() -> Path:
    """The J8A ligand of 6EGA with hydrogens (68 atoms)."""
    return DATA / "6ega" / "6ega_ligand_J8A_withH.sdf"


@pytest.fixture(scope="session")
def ligand_6ega_heavy_pdb() -> Path:
    """The J8A ligand of 6EGA, heavy atoms only (41), as a PDB."""
    return DATA / "6ega" / "6ega_ligand_J8A_heavy.pdb"


@pytest.fixture(scope="session")
def nmr_2juy_pdb() -> Path:
    """PDB 2JUY: 24 NMR models of 392 atoms."""
    return DATA / "nmr-2juy" / "2juy.pdb"


@pytest.fixture(scope="session")
def freesolv_path() -> Path:
    """FreeSolv v0.52 ``database.txt``."""
    return DATA / "freesolv" / "database.txt"


@pytest.fixture(scope="session")
def freesolv_rows(freesolv_path) -> list[dict]:
    """The 642 FreeSolv rows as dicts (compound_id, smiles, iupac, expt, ...)."""
    from molviz.chem import read_freesolv

    return read_freesolv(freesolv_path)


@pytest.fixture(scope="session")
def complex_6ega(protein_6ega_pdb, ligand_6ega_sdf):
    """6EGA protein + J8A ligand as one Structure (2,664 atoms). Do not modify it in place."""
    from molviz.chem import load

    return load(protein_6ega_pdb, ligand_6ega_sdf, name="6ega")


@pytest.fixture(scope="session")
def ensemble_2juy(nmr_2juy_pdb):
    """2JUY as a Structure of 24 conformers x 392 atoms. Do not modify it in place."""
    from molviz.chem import load

    return load(nmr_2juy_pdb)


@pytest.fixture(scope="session")
def small_molecules():
    """A few small molecules from SMILES (one conformer each, explicit H): list of Structure."""
    from molviz.chem import load

    return [load(s, name=n) for n, s in
            [("ethanol", "CCO"), ("benzene", "c1ccccc1"), ("acetic acid", "CC(=O)O"),
             ("chlorobenzene", "Clc1ccccc1")]]
