"""Issue 17: no atom lost on reading, bounded reading of files, exact peaks that scale, bundles
checked before anything is allocated."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from molviz.chem import load
from molviz.errors import BundleError, InputError, ResourceLimitError

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "assets" / "data"
MODELS = ROOT / "assets" / "models"


def _atom(serial: str, name: str, resname: str, chain: str, resnum: str, xyz, element: str = "",
          altloc: str = " ", record: str = "ATOM  ", segid: str = "") -> str:
    """One PDB atom record; ``resname`` of 4 characters fills columns 18-21 (CHARMM)."""
    x, y, z = xyz
    res = f"{resname:<4}" if len(resname) == 4 else f"{resname:>3} "
    line = (f"{record}{serial:>5} {name:<4}{altloc}{res}{chain:1}{resnum:>4}    "
            f"{x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00      {segid:<4}{element:>2}")
    assert line[17:21].strip() == resname.strip() and line[30:38].strip() == f"{x:.3f}"
    return line


def _water_box(n: int, *, serials: str) -> str:
    """``n`` waters as an MD program writes them: residue numbers wrap 9999 -> 1, atom serials
    wrap 99999 -> 0 (``serials="wrap"``) or overflow to ``*****``."""
    lines, serial = [], 0
    for i in range(n):
        resnum = str(i % 9999 + 1)
        centre = np.array([i % 30, i // 30 % 30, i // 900], dtype=float) * 3.1
        for name, element, offset in (("OW", "O", (0, 0, 0)), ("HW1", "H", (0.96, 0, 0)),
                                      ("HW2", "H", (-0.24, 0.93, 0))):
            serial += 1
            s = str(serial % 100000) if serials == "wrap" else (str(serial) if serial < 100000 else "*****")
            lines.append(_atom(s, name, "HOH", "W", resnum, centre + offset, element))
    return "\n".join(lines) + "\nEND\n"


# -- every atom loads -------------------------------------------------------------------------------
@pytest.mark.parametrize("serials", ["wrap", "stars"])
def test_wrapped_residue_numbers_and_serials_load_every_atom(tmp_path, serials):
    path = tmp_path / "waters.pdb"
    path.write_text(_water_box(12_000, serials=serials))
    s = load(path)
    assert s.n_atoms == 36_000
    assert (s.components == "water").all()
    assert s.atom_names[:6].tolist() == ["OW", "HW1", "HW2"] * 2          # file order kept
    np.testing.assert_allclose(s.coords[0, 3 * 9999], np.array([9, 3, 11]) * 3.1, atol=1e-3)  # water 10,000
    assert any("residue numbers repeat" in w for w in s.warnings)
    assert not any("alternative" in w for w in s.warnings)


def test_wrapped_residue_numbers_in_mmcif_load_every_atom(tmp_path):
    rows = []
    for i in range(300):
        for name, element, dx in (("OW", "O", 0.0), ("HW1", "H", 0.96), ("HW2", "H", -0.24)):
            rows.append(f"HETATM {len(rows) + 1} {element} {name} . HOH W . {i % 99 + 1} ? "
                        f"{i * 3.1 + dx:.3f} 0.0 0.0 1 W 1")
    tags = ("group_PDB id type_symbol label_atom_id label_alt_id label_comp_id label_asym_id "
            "label_seq_id auth_seq_id pdbx_PDB_ins_code Cartn_x Cartn_y Cartn_z occupancy "
            "auth_asym_id pdbx_PDB_model_num").split()
    path = tmp_path / "waters.cif"
    path.write_text("data_w\nloop_\n" + "".join(f"_atom_site.{t}\n" for t in tags) + "\n".join(rows) + "\n")
    s = load(path)
    assert s.n_atoms == 900 and (s.components == "water").all()
    np.testing.assert_allclose(s.coords[0, ::3, 0], np.arange(300) * 3.1, atol=1e-3)


def test_counter_ions_numbered_alike_stay_ions(tmp_path):
    lines = [_atom(str(k + 1), "NA", "NA", "I", "1", (4.0 * k, 0, 0), "NA", record="HETATM") for k in range(5)]
    (tmp_path / "ions.pdb").write_text("\n".join(lines) + "\nEND\n")
    s = load(tmp_path / "ions.pdb")
    assert s.n_atoms == 5 and (s.components == "ion").all()


def test_altloc_drops_only_marked_atoms_and_says_how_many(tmp_path):
    lines = [
        _atom("1", "N", "SER", "A", "1", (0, 0, 0), "N", altloc="A"),
        _atom("2", "N", "ALA", "A", "1", (0.1, 0, 0), "N", altloc="B"),     # microheterogeneity
        _atom("3", "CA", "SER", "A", "1", (1.4, 0, 0), "C", altloc="A"),
        _atom("4", "CA", "ALA", "A", "1", (1.5, 0, 0), "C", altloc="B"),
        _atom("5", "OG", "SER", "A", "1", (2.0, 1.0, 0), "O", altloc="A"),
        _atom("6", "N", "GLY", "A", "2", (3.0, 0, 0), "N"),
        _atom("7", "CA", "GLY", "A", "2", (4.0, 0, 0), "C", altloc="A"),
        _atom("8", "CA", "GLY", "A", "2", (4.1, 0, 0), "C", altloc="B"),
        _atom("9", "CA", "GLY", "A", "2", (4.2, 0, 0), "C", altloc="C"),
        _atom("10", "C", "GLY", "A", "2", (5.0, 0, 0), "C"),
        # repeated names without altloc are different atoms, not alternatives
        _atom("11", "O", "HOH", "W", "1", (9.0, 0, 0), "O", record="HETATM"),
        _atom("12", "O", "HOH", "W", "1", (12.0, 0, 0), "O", record="HETATM"),
    ]
    (tmp_path / "alt.pdb").write_text("\n".join(lines) + "\nEND\n")
    s = load(tmp_path / "alt.pdb")
    assert s.atom_names.tolist() == ["N", "CA", "OG", "N", "CA", "C", "O", "O"]
    assert s.residue_names[:3].tolist() == ["SER"] * 3
    np.testing.assert_allclose(s.coords[0, 4], [4.0, 0, 0])              # altloc A kept
    note = [w for w in s.warnings if "alternative locations" in w]
    assert len(note) == 1 and note[0].startswith("4 atom record(s)") and "B, C" in note[0]


def test_a_ligand_with_duplicate_atom_names_stays_one_ligand(tmp_path):
    """Open Babel writes element-only atom names; no atom may be dropped or called an ion."""
    names = ["C", "C", "C", "CL", "C", "O"]
    lines = [_atom(str(k + 1), n, "UNL", "", "1", (1.4 * k, 0, 0), n, record="HETATM") for k, n in enumerate(names)]
    (tmp_path / "lig.pdb").write_text("\n".join(lines) + "\nEND\n")
    s = load(tmp_path / "lig.pdb")
    assert s.atom_names.tolist() == names and (s.components == "ligand").all()


def _charmm_protein(tmp_path: Path, *, elements: bool) -> Path:
    """6EGA residues 211-253 and 166 renamed as CHARMM/AMBER write them, plus a DNA strand with
    AMBER's terminal names: blank chain ids and segment ids, as CHARMM writes."""
    rename = {211: "NALA", 238: "CALA", 224: "GLH", 235: "LYN", 240: "CYX", 242: "HSD", 166: "HIE"}
    out = []
    for line in (DATA / "6ega" / "6ega_protein.pdb").read_text().splitlines():
        if not line.startswith("ATOM"):
            continue
        number = int(line[22:26])
        if number == 166 or 211 <= number <= 253:
            out.append(_atom(line[6:11].strip(), line[12:16].strip(), rename.get(number, line[17:20]), "",
                             str(number), [float(line[c:c + 8]) for c in (30, 38, 46)],
                             line[76:78].strip() if elements else "", segid="PROA"))
    sugar = ["P", "OP1", "OP2", "O5'", "C5'", "C4'", "O4'", "C3'", "O3'", "C2'", "C1'"]
    bases = {"DA": ["N9", "C8", "N7", "C5", "C6", "N6", "N1", "C2", "N3", "C4"],
             "DT": ["N1", "C2", "O2", "N3", "C4", "O4", "C5", "C7", "C6"]}
    for k, resname in enumerate(["DA5", "DT", "DA3"]):
        names = sugar[3 if resname == "DA5" else 0:] + bases[resname[:2]]
        for j, name in enumerate(names):
            out.append(_atom(str(9000 + 30 * k + j), name, resname, "", str(k + 1),
                             (60.0 + 6.5 * k + 0.3 * j, 40.0 + (j % 4), 30.0), name[0] if elements else "",
                             segid="DNAA"))
    path = tmp_path / f"charmm{int(elements)}.pdb"
    path.write_text("\n".join(out) + "\nEND\n")
    return path


@pytest.mark.parametrize("elements", [True, False])
def test_md_residue_names_are_protein_or_nucleic(tmp_path, elements):
    s = load(_charmm_protein(tmp_path, elements=elements))
    assert not (s.components == "ligand").any(), sorted(set(s.residue_names[s.components == "ligand"]))
    for name in ("NALA", "CALA", "GLH", "LYN", "CYX", "HSD", "HIE"):
        assert (s.components[s.residue_names == name] == "protein").all() and (s.residue_names == name).any()
    assert set(s.components[np.isin(s.residue_names, ["DA5", "DT", "DA3"])]) == {"nucleic"}
    assert int((s.components == "nucleic").sum()) == (8 + 10) + (11 + 9) + (11 + 10)
    reference = load(DATA / "6ega" / "6ega_protein.pdb")
    assert int((s.components == "protein").sum()) < int((reference.components == "protein").sum())
    if not elements:  # inference from names works for the MD names too
        assert set(s.atomic_numbers[s.components == "protein"].tolist()) <= {1, 6, 7, 8, 16}


def test_md_residue_names_table():
    from molviz.chem._residues import MD_RESIDUES, polymer_component

    for name in "HSD HSE HSP HID HIE HIP CYX CYM ASH GLH LYN ACE NME NALA CALA NGLY CHIE".split():
        assert MD_RESIDUES[name] == "protein", name
    for name in "DA5 DA3 DT5 RA5 RU3 A5 G3".split():
        assert MD_RESIDUES[name] == "nucleic", name
    assert polymer_component("ADE", ["N9", "C1'"]) == "nucleic" and polymer_component("ADE", ["N9"]) is None


def test_repeated_model_numbers_load_in_file_order(tmp_path):
    text = "".join(f"MODEL        1\n{_atom('1', 'O', 'HOH', 'W', '1', (float(k), 0, 0), 'O')}\n"
                   f"{_atom('2', 'O', 'HOH', 'W', '2', (float(k), 3, 0), 'O')}\nENDMDL\n" for k in range(3))
    (tmp_path / "models.pdb").write_text(text + "END\n")
    s = load(tmp_path / "models.pdb")
    assert s.n_conformers == 3 and s.n_atoms == 2
    np.testing.assert_allclose(s.coords[:, 0, 0], [0, 1, 2])


def test_shipped_structures_load_as_before():
    protein = load(DATA / "6ega" / "6ega_protein.pdb")
    assert protein.n_atoms == 2596 and protein.warnings == ()
    counts = {c: int((protein.components == c).sum()) for c in ("protein", "water", "ion")}
    assert counts == {"protein": 2553, "water": 39, "ion": 4}
    nmr = load(DATA / "nmr-2juy" / "2juy.pdb")
    assert (nmr.n_conformers, nmr.n_atoms) == (24, 392)


# -- bounded reading ----------------------------------------------------------------------------------
def _pdb_text(n_lines: int) -> bytes:
    line = _atom("1", "O", "HOH", "W", "1", (1.0, 2.0, 3.0), "O") + "\n"
    return line.encode() * n_lines


def test_max_file_bytes_resolution(monkeypatch):
    from molviz._io import DEFAULT_MAX_FILE_MB, max_file_bytes

    monkeypatch.delenv("MOLVIZ_MAX_FILE_MB", raising=False)
    assert max_file_bytes() == DEFAULT_MAX_FILE_MB << 20 == 512 << 20
    assert max_file_bytes(2) == 2 << 20 and max_file_bytes(0.5) == 1 << 19
    monkeypatch.setenv("MOLVIZ_MAX_FILE_MB", "3")
    assert max_file_bytes() == 3 << 20 and max_file_bytes(1) == 1 << 20
    monkeypatch.setenv("MOLVIZ_MAX_FILE_MB", "lots")
    with pytest.raises(InputError, match="MOLVIZ_MAX_FILE_MB"):
        max_file_bytes()
    with pytest.raises(InputError, match="max_file_mb"):
        max_file_bytes(-1)


def test_an_oversized_file_is_refused_with_the_fix(tmp_path, monkeypatch):
    path = tmp_path / "big.pdb"
    path.write_bytes(_pdb_text(30_000))                                  # 2.4 MB
    with pytest.raises(ResourceLimitError, match=r"over the limit of 1 MB.*max_file_mb"):
        load(path, max_file_mb=1)
    monkeypatch.setenv("MOLVIZ_MAX_FILE_MB", "1")
    with pytest.raises(ResourceLimitError, match="MOLVIZ_MAX_FILE_MB"):
        load(path)
    assert load(path, max_file_mb=3).n_atoms == 30_000


def test_a_gzip_over_the_limit_is_refused_while_inflating(tmp_path):
    path = tmp_path / "big.pdb.gz"
    path.write_bytes(gzip.compress(_pdb_text(60_000)))                  # 4.9 MB of text, ~30 kB
    assert path.stat().st_size < (1 << 20)
    with pytest.raises(ResourceLimitError, match="inflates to more than"):
        load(path, max_file_mb=1)
    assert load(path, max_file_mb=8).n_atoms == 60_000


def test_a_truncated_or_multi_member_gzip(tmp_path):
    whole = gzip.compress(_pdb_text(10))
    (tmp_path / "two.pdb.gz").write_bytes(whole + gzip.compress(_pdb_text(5)))
    assert load(tmp_path / "two.pdb.gz").n_atoms == 15
    (tmp_path / "cut.pdb.gz").write_bytes(whole[:-12])
    with pytest.raises(InputError, match="not a valid gzip"):
        load(tmp_path / "cut.pdb.gz")


@pytest.mark.parametrize("kind", ["nul", "random", "gz-nul"])
def test_binary_files_are_refused(tmp_path, kind):
    rng = np.random.default_rng(0)
    if kind == "nul":
        path, data = tmp_path / "x.pdb", b"HEADER\n" + bytes(200_000)
    elif kind == "random":
        path, data = tmp_path / "x.sdf", rng.integers(1, 256, 300_000, dtype=np.uint8).tobytes()
    else:
        path, data = tmp_path / "x.cif.gz", gzip.compress(bytes(1 << 20))
    path.write_bytes(data)
    with pytest.raises(InputError, match="binary"):
        load(path)


def _child(code: str, timeout: float = 120) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line, returned here."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("MOLVIZ_MAX_FILE_MB", None)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["ratio", "size"])
def test_a_gzip_bomb_is_refused_with_bounded_memory_at_the_default_limit(tmp_path, kind):
    """3 GB of PDB text in a 10 MB gzip (a member of 64 MB repeated) is refused by its ratio; 650 MB
    in 13 MB (ratio ~50, a 40 MB file inflating to 3 GB is alike) by the 512 MB limit; both in a
    fresh process whose peak RSS stays < 1.5 GB."""
    text = gzip.compress(_pdb_text((64 << 20) // 81), compresslevel=9)   # ~300x
    rng = np.random.default_rng(0)
    noise = rng.choice(np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ", np.uint8), 1 << 20)
    noise = gzip.compress(noise.tobytes() + b"\n", compresslevel=1)     # ~1.3x
    bomb = tmp_path / "bomb.pdb.gz"
    with open(bomb, "wb") as f:
        for _ in range(48 if kind == "ratio" else 10):
            f.write(text if kind == "ratio" else noise + text)
    assert bomb.stat().st_size < 16 << 20
    result = _child(f"""
        import json, resource, time
        from molviz.chem import load
        from molviz.errors import ResourceLimitError
        t0 = time.perf_counter()
        try:
            load({str(bomb)!r})
            refused = ""
        except ResourceLimitError as exc:
            refused = str(exc)
        # VmHWM: this process's own peak (ru_maxrss would carry over the forking pytest's RSS across exec)
        hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")]
        rss = int(hwm[0].split()[1]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({{"refused": refused, "s": time.perf_counter() - t0, "rss_mb": rss}}))
    """)
    assert ("gzip bomb" if kind == "ratio" else "over the limit of 512 MB") in result["refused"], result
    assert result["rss_mb"] < 1536, result


# -- peaks that scale -------------------------------------------------------------------------------
def _old_peaks(xyz, ch, w, n_c, beta):
    """The method before issue 17: mean-shift from every atom at once, drop after 5 steps."""
    import torch

    import molviz.fields._sampler as sampler

    xyz, ch, w = (torch.as_tensor(v) for v in (xyz, ch, w))
    rc, bound = sampler.cutoff_radii(w, ch, n_c, beta=beta)
    out = torch.ones(n_c)
    for c in range(n_c):
        sel = torch.nonzero(ch == c).squeeze(1)
        if len(sel):
            out[c] = sampler._channel_max(xyz[sel], beta / w[sel] ** 2, rc[sel], max_iter=100,
                                          step_tol=1e-3) + bound[c]
    return out.numpy(), bound.numpy()


@pytest.mark.parametrize("beta", [0.25, 2.0])
@pytest.mark.parametrize("kind", ["random", "protein"])
def test_pruned_peaks_equal_the_all_seeds_ascent(one_torch_thread, beta, kind):
    from molviz.fields import atom_table, peaks_from_table
    from molviz.fields._bench import tiled_6ega

    if kind == "random":
        rng = np.random.default_rng(3)
        n = 4000
        xyz = (rng.random((n, 3)) * 34.0).astype(np.float32)                 # ~0.1 atoms / A^3
        ch = np.where(np.arange(n) < n // 2, 2, rng.integers(0, 2, n))
        w = np.where(ch == 1, 0.7, rng.choice([0.7, 1.0, 0.85], n)).astype(np.float32)
        n_c = 3
    else:
        xyz, ch, w = atom_table(tiled_6ega(6000), "paper-6ega")
        n_c = 6
    new = peaks_from_table(xyz, ch, w, n_c, beta=beta).numpy()
    old, bound = _old_peaks(xyz, ch, w, n_c, beta)
    assert (np.abs(new - old) <= bound + 1e-5 * old).all(), (new, old)


def test_peaks_do_not_scan_every_atom_per_seed_block(one_torch_thread, monkeypatch):
    """Neighbour lists of the seeds come from the cube index, never from the all-atom scan."""
    import molviz.fields._sampler as sampler
    from molviz.fields import atom_table, peaks_from_table
    from molviz.fields._bench import tiled_6ega

    calls = []
    monkeypatch.setattr(sampler, "_blocks", lambda *a, **k: calls.append(1) or iter(()))
    xyz, ch, w = atom_table(tiled_6ega(8000), "paper-6ega")
    peaks = peaks_from_table(xyz, ch, w, 6, beta=0.25)
    assert not calls and (peaks.numpy()[3:] > 1).all()


# -- bundles checked before anything is allocated ----------------------------------------------------
def _bundle_copy(tmp_path: Path, name: str = "nmr-2juy") -> Path:
    dst = tmp_path / name
    shutil.copytree(MODELS / name, dst)
    return dst


def _edit(root: Path, change) -> None:
    manifest = json.loads((root / "bundle.json").read_text())
    change(manifest)
    (root / "bundle.json").write_text(json.dumps(manifest))


def test_shipped_bundles_validate_and_load():
    from molviz.models import load_model
    from molviz.models._validate import validate_bundle

    for root in sorted(p for p in MODELS.iterdir() if (p / "bundle.json").is_file()):
        validate_bundle(root)
    bundle = load_model(MODELS / "nmr-2juy")
    assert bundle.n_items == 24


@pytest.mark.parametrize("key,value", [("depth", 1_000_000), ("hidden", 10**9), ("latent_dim", 10**8)])
def test_a_huge_architecture_is_refused_fast_in_bounded_memory(tmp_path, key, value):
    root = _bundle_copy(tmp_path)
    _edit(root, lambda m: m["config"]["model"].__setitem__(key, value))
    result = _child(f"""
        import json, resource, time
        import torch
        from molviz.models import load_model
        from molviz.errors import BundleError
        def hwm_kb():   # this process's own peak RSS (ru_maxrss would carry the forking pytest's across exec)
            return int([ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")][0].split()[1])
        rss0 = hwm_kb()
        t0 = time.perf_counter()
        try:
            load_model({str(root)!r})
            refused = ""
        except BundleError as exc:
            refused = str(exc)
        print(json.dumps({{"refused": refused, "s": time.perf_counter() - t0,
                           "grew_mb": (hwm_kb() - rss0) / 1024}}))
    """)
    assert f"config['model'][{key!r}]" in result["refused"] and f"{value:,}" in result["refused"], result
    assert result["s"] < 1.0 and result["grew_mb"] < 100, result


def test_an_architecture_that_disagrees_with_the_weights_is_named(tmp_path):
    from molviz.models import load_model

    root = _bundle_copy(tmp_path)
    _edit(root, lambda m: m["config"]["model"].__setitem__("hidden", 128))
    with pytest.raises(BundleError, match=r"tensor 'model\.\S+' has shape .* needs"):
        load_model(root)
    root = _bundle_copy(tmp_path / "b")
    _edit(root, lambda m: m["config"]["model"].__setitem__("depth", 5))
    with pytest.raises(BundleError, match="missing from weights.safetensors"):
        load_model(root)


@pytest.mark.parametrize("where,value,named", [
    (("items",), "none", "items is str"),
    (("items", 0), "a string", "items[0] is str"),
    (("config", "model", "depth"), "4", "config['model']['depth'] is str '4'"),
    (("config", "model", "w0"), "thirty", "config['model']['w0'] is str"),
    (("config", "model", "modulation"), 3, "config['model']['modulation'] is int"),
    (("config", "model"), [1, 2], "config['model'] is list"),
    (("config",), "cfg", "config is str"),
    (("version",), "1", "version is str"),
    (("config", "beta"), "0.25", "config['beta'] is str"),
])
def test_wrong_types_in_bundle_json_name_the_key(tmp_path, where, value, named):
    from molviz.models import load_model

    root = _bundle_copy(tmp_path)

    def change(m):
        node = m
        for k in where[:-1]:
            node = node[k]
        node[where[-1]] = value
    _edit(root, change)
    with pytest.raises(BundleError) as info:
        load_model(root)
    assert named in str(info.value), str(info.value)


@pytest.mark.parametrize("tensor", ["model.layers.1.linear.weight", "latents", "boxes"])
def test_nan_or_infinite_numbers_are_refused(tmp_path, tensor):
    from safetensors.torch import load_file, save_file

    from molviz.models import load_model

    root = _bundle_copy(tmp_path)
    tensors = load_file(str(root / "weights.safetensors"))
    tensors[tensor].view(-1)[3] = float("nan") if tensor != "boxes" else float("inf")
    save_file(tensors, str(root / "weights.safetensors"), metadata={"format": "molviz-bundle"})
    with pytest.raises(BundleError, match=rf"tensor '{tensor}' holds 1 NaN or infinite"):
        load_model(root)


def test_a_truncated_or_lying_safetensors_header_is_refused(tmp_path):
    from molviz.models import load_model

    root = _bundle_copy(tmp_path)
    data = (root / "weights.safetensors").read_bytes()
    (root / "weights.safetensors").write_bytes(data[:len(data) // 2])
    with pytest.raises(BundleError, match="does not fit its bytes|truncated"):
        load_model(root)
