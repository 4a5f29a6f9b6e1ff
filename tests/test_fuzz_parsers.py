"""Fuzzing ``molviz.load``: mutated PDB, mmCIF, SDF, XYZ and SMILES inputs.

Each example starts from a real file (6EGA, 2JUY, the J8A ligand, FreeSolv
SMILES), applies random byte flips, truncations, line deletions and
duplications, and loads the result. The only acceptable outcomes are a valid
:class:`Structure` or one of molviz's own errors; anything else (a gemmi or
RDKit exception, an IndexError, NaN coordinates in a result) fails the test.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from molviz.chem import COMPONENTS, SYMBOLS, Structure, load
from molviz.errors import MolvizError

DATA = Path(__file__).resolve().parent.parent / "assets" / "data"

FUZZ = settings(
    max_examples=int(os.environ.get("MOLVIZ_FUZZ_EXAMPLES", 50)),  # raise for a long fuzzing run
    deadline=None,
    derandomize=bool(os.environ.get("CI")),  # reproducible in CI, exploring locally
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _pdb_excerpt() -> bytes:
    """The start of 6EGA (protein, H) plus its Co ions and a few waters: fast to parse."""
    lines = (DATA / "6ega" / "6ega_protein.pdb").read_text().splitlines(keepends=True)
    atoms = [line for line in lines if line.startswith(("ATOM", "HETATM"))]
    keep = lines[:3] + atoms[:150] + [line for line in atoms if line[17:20] in (" CO", "HOH")][:8] + ["END\n"]
    return "".join(keep).encode()


def _nmr_excerpt() -> bytes:
    """Three MODELs of 2JUY (multi-model parsing)."""
    text = (DATA / "nmr-2juy" / "2juy.pdb").read_text()
    start = text.index("\nMODEL        1") + 1
    cut = start
    for _ in range(3):
        cut = text.index("ENDMDL", cut) + len("ENDMDL\n")
    return (text[start:cut] + "END\n").encode()


def _cif(pdb: bytes) -> bytes:
    import gemmi

    st_ = gemmi.read_pdb_string(pdb.decode())
    st_.setup_entities()
    return st_.make_mmcif_document().as_string().encode()


def _xyz() -> bytes:
    s = load(DATA / "6ega" / "6ega_ligand_J8A_withH.sdf")
    rows = [f"{SYMBOLS[z - 1]} {x:.4f} {y:.4f} {w:.4f}" for z, (x, y, w) in zip(s.atomic_numbers, s.coords[0])]
    frame = f"{s.n_atoms}\nJ8A\n" + "\n".join(rows) + "\n"
    return (frame * 2).encode()  # two frames -> two conformers


SEEDS = {
    "pdb": _pdb_excerpt(),
    "nmr.pdb": _nmr_excerpt(),
    "sdf": (DATA / "6ega" / "6ega_ligand_J8A_withH.sdf").read_bytes(),
}
SEEDS["cif"] = _cif(SEEDS["pdb"])
SEEDS["xyz"] = _xyz()


@st.composite
def mutated(draw, seed: bytes, max_ops: int = 4) -> bytes:
    """``seed`` after 1..max_ops random edits: byte flips, truncation, line deletion/duplication/swap."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(["flip", "truncate", "delete", "duplicate", "swap", "insert"]))
        if not data:
            break
        if op == "flip":
            for _ in range(draw(st.integers(1, 8))):
                i = draw(st.integers(0, len(data) - 1))
                data[i] = draw(st.integers(0, 255))
        elif op == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
        elif op == "insert":
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        else:
            lines = bytes(data).splitlines(keepends=True)
            if not lines:
                continue
            i = draw(st.integers(0, len(lines) - 1))
            if op == "delete":
                del lines[i]
            elif op == "duplicate":
                lines.insert(i, lines[i])
            else:
                j = draw(st.integers(0, len(lines) - 1))
                lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"".join(lines))
    return bytes(data)


def check_result(s: Structure) -> None:
    """A Structure that comes out must be usable: finite, consistent, known elements."""
    assert isinstance(s, Structure)
    assert s.n_atoms > 0 and s.n_conformers > 0
    assert s.coords.shape == (s.n_conformers, s.n_atoms, 3) and s.coords.dtype == np.float32
    assert np.isfinite(s.coords).all()
    assert ((s.atomic_numbers >= 1) & (s.atomic_numbers <= len(SYMBOLS))).all()
    assert set(s.components.tolist()) <= set(COMPONENTS)
    assert len(s.atom_names) == len(s.residue_names) == s.n_atoms


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory(prefix="molviz-fuzz-") as d:
        yield Path(d)


def load_bytes(data: bytes, suffix: str, workdir: Path) -> None:
    path = workdir / f"fuzz.{suffix}"
    path.write_bytes(data)
    try:
        s = load(path)
    except MolvizError as exc:
        event(f"refused: {type(exc).__name__}")
        return
    event("loaded")
    check_result(s)


@pytest.mark.parametrize("kind", ["pdb", "nmr.pdb", "cif", "sdf", "xyz"])
def test_seeds_load(kind, workdir):
    """The unmutated seeds are valid: the fuzz tests start from real, loadable inputs."""
    path = workdir / f"seed.{kind.split('.')[-1]}"
    path.write_bytes(SEEDS[kind])
    check_result(load(path))


@FUZZ
@given(data=mutated(SEEDS["pdb"]))
def test_fuzz_pdb(data, workdir):
    load_bytes(data, "pdb", workdir)


@FUZZ
@given(data=mutated(SEEDS["nmr.pdb"]))
def test_fuzz_pdb_models(data, workdir):
    load_bytes(data, "pdb", workdir)


@FUZZ
@given(data=mutated(SEEDS["cif"]))
def test_fuzz_mmcif(data, workdir):
    load_bytes(data, "cif", workdir)


@FUZZ
@given(data=mutated(SEEDS["sdf"]))
def test_fuzz_sdf(data, workdir):
    load_bytes(data, "sdf", workdir)


@FUZZ
@given(data=mutated(SEEDS["xyz"]))
def test_fuzz_xyz(data, workdir):
    load_bytes(data, "xyz", workdir)


@FUZZ
@given(data=mutated(SEEDS["pdb"], max_ops=2))
def test_fuzz_gzip_pdb(data, workdir):
    """Mutations of the compressed bytes: corrupt gzip streams must be refused cleanly."""
    import gzip

    load_bytes(gzip.compress(SEEDS["pdb"])[: max(1, len(data) % 4000)] + data[:64], "pdb.gz", workdir)


SMILES_SEEDS = ["CCCCCC(=O)OC", "c1ccc(cc1)O", "C1CC[C@@H](N)CC1", "Clc1ccc(Cl)c(Cl)c1",
                "CC(C)(C)c1ccccc1", "O=C(Nc1ccccc1)C2CC2", "C/C=C/C(=O)O", "[NH4+].[Cl-]"]
SMILES_ALPHABET = "CNOSPFIBrcnos()[]=#@+-123456789/\\.%Hl *"


@st.composite
def mutated_smiles(draw) -> str:
    text = list(draw(st.sampled_from(SMILES_SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "delete", "duplicate", "insert"]))
        if not text:
            break
        i = draw(st.integers(0, len(text) - 1))
        if op == "flip":
            text[i] = draw(st.sampled_from(SMILES_ALPHABET))
        elif op == "truncate":
            text = text[:i]
        elif op == "delete":
            del text[i]
        elif op == "duplicate":
            j = draw(st.integers(i, min(len(text), i + 6)))
            text[i:i] = text[i:j]
        else:
            text.insert(i, draw(st.sampled_from(SMILES_ALPHABET)))
    return "".join(text)


@FUZZ
@given(smiles=mutated_smiles())
def test_fuzz_smiles(smiles):
    try:
        s = load(smiles)
    except MolvizError:
        return
    check_result(s)


@FUZZ
@given(data=st.binary(min_size=0, max_size=2048), suffix=st.sampled_from(["pdb", "cif", "sdf", "mol", "mol2", "xyz"]))
def test_fuzz_random_bytes(data, suffix, workdir):
    load_bytes(data, suffix, workdir)
