"""molviz.fields: channels, grids, the Eq. 1 sampler, featurize."""
from __future__ import annotations

import argparse
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from molviz.errors import InputError
from molviz.fields import (
    ATOM_WIDTHS,
    FALLBACKS,
    Grid,
    atom_table,
    channel_peaks,
    cutoff_factor,
    dense_field,
    field_from_table,
    fit_grid,
    parse_channels,
    peaks_from_table,
    peaks_of_tables,
    sample_conformers,
    sample_field,
    sample_points,
    spacing_grid,
    tail_bound,
)

ELEMENTS = np.array([1, 6, 7, 8, 9, 15, 16, 17, 35, 53])


def random_structure(seed: int, n: int = 40, conformers: int = 1, spread: float = 3.0):
    """A random 'molecule' as a duck-typed Structure (coords, atomic_numbers, components)."""
    rng = np.random.default_rng(seed)
    coords = rng.normal(size=(conformers, n, 3)).astype(np.float32) * spread + 10.0
    comps = np.where(rng.random(n) < 0.5, "ligand", "protein")
    return SimpleNamespace(coords=coords, atomic_numbers=rng.choice(ELEMENTS, n),
                           components=comps, name=f"random{seed}")


def brute_force(structure, channels, points, beta, normalize, peaks=None):
    """float64 Eq. 1 with no cutoff: sum_a exp(-beta (d^2/r^2 - 1)) / exp(beta)."""
    chans = parse_channels(channels, structure)
    xyz, ch, w = atom_table(structure, chans)
    p = np.asarray(points, np.float64)
    out = np.zeros((len(p), len(chans)))
    for a, c, r in zip(xyz.astype(np.float64), ch, w.astype(np.float64)):
        d2 = ((p - a) ** 2).sum(1)
        out[:, c] += np.exp(-beta * (d2 / r**2 - 1.0)) / np.exp(beta)
    if normalize == "max":
        out /= np.asarray(peaks, np.float64)[None]
    return out


# ----------------------------------------------------------------------------- channels
def test_presets_and_tokens():
    names = [c.name for c in parse_channels("paper-6ega")]
    assert names == ["ligand:H", "ligand:C", "ligand:density", "protein:C", "protein:H",
                     "protein:density"]
    fs = parse_channels("freesolv")
    assert [c.name for c in fs] == ["H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I", "density"]
    # no aliasing: every element its own channel, Br and I included, each exactly once
    zs = [next(iter(c.elements)) for c in fs if c.elements is not None]
    assert sorted(zs) == [1, 6, 7, 8, 9, 15, 16, 17, 35, 53]
    c = parse_channels("protein:electronegativity,cl,water:O")
    assert [x.name for x in c] == ["protein:electronegativity", "Cl", "water:O"]
    assert c[0].width == "electronegativity" and c[0].components == frozenset({"protein"})


def test_elements_preset_needs_structures():
    s = random_structure(0)
    chans = parse_channels("elements+density", s)
    present = sorted(set(s.atomic_numbers.tolist()))
    assert [next(iter(c.elements)) for c in chans[:-1]] == present
    assert chans[-1].name == "density"
    with pytest.raises(InputError, match="needs the structures"):
        parse_channels("elements")


@pytest.mark.parametrize("spec, message", [
    ("ligand:Xx", "unknown element"), ("membrane:C", "unknown component"),
    ("C,C", "duplicates"), ("density,density", "duplicates"), ("", "empty"),
    ("C,,N", "empty token"), ("C,paper-6ega", "alone"), ("foo", "valid tokens"),
])
def test_bad_specs(spec, message):
    with pytest.raises(InputError, match=message):
        parse_channels(spec)


def test_width_tables():
    for kind in ("vdw", "electronegativity", "density"):
        assert ATOM_WIDTHS[kind][6] == pytest.approx(1.0)
        for z in (1, 6, 7, 8, 9, 15, 16, 17, 35, 53, 11, 12, 19, 20, 25, 26, 27, 29, 30, 34):
            assert ATOM_WIDTHS[kind][z] > 0, (kind, z)
    assert ATOM_WIDTHS["vdw"][1] == pytest.approx(1.2 / 1.7)
    assert ATOM_WIDTHS["density"][8] == pytest.approx(1.70 / 5.55)
    assert ATOM_WIDTHS["density"][17] == pytest.approx(1.17 / 5.55)
    assert FALLBACKS["vdw"]["Mo"] == "Cr"        # documented group fallback
    s = SimpleNamespace(coords=np.zeros((1, 1, 3), np.float32), atomic_numbers=np.array([18]),
                        components=np.array(["ion"]), name="argon")
    with pytest.raises(InputError, match="no density width"):
        atom_table(s, "density")


# ----------------------------------------------------------------------------- grids
def test_grid_convention_and_resolution():
    g = Grid.from_box((-1.0, 0.0, 2.0), (2.0, 3.0, 5.0), 4)
    assert g.spacing == (1.0, 1.0, 1.0)
    pts = g.points().reshape(4, 4, 4, 3)
    assert np.allclose(pts[1, 2, 3], np.array(g.origin) + np.array([1, 2, 3]) * 1.0)
    g2 = g.with_resolution(37)
    assert np.allclose(g2.lo, g.lo) and np.allclose(g2.hi, g.hi) and g2.shape == (37, 37, 37)
    from molviz.fields import MAX_RESOLUTION, MIN_RESOLUTION
    with pytest.raises(InputError):
        g.with_resolution(MIN_RESOLUTION - 1)
    with pytest.raises(InputError):
        g.with_resolution(MAX_RESOLUTION + 1)
    with pytest.raises(InputError):
        g.with_resolution(MAX_RESOLUTION + 2)


def test_single_atom_peaks_at_its_voxel():
    g = Grid((0.0, 0.0, 0.0), (0.5, 0.5, 0.5), (16, 16, 16))
    i, j, k = 3, 9, 12
    centre = np.array(g.origin) + np.array([i, j, k]) * 0.5
    s = SimpleNamespace(coords=centre[None, None].astype(np.float32), atomic_numbers=np.array([6]),
                        components=np.array(["ligand"]), name="C")
    f = sample_field(s, "C", g, beta=0.75, normalize="none")
    assert np.unravel_index(np.argmax(f[0]), g.shape) == (i, j, k)
    assert f[0, i, j, k] == pytest.approx(1.0, abs=1e-6)      # per-atom peak normalisation


def test_fit_grid_box():
    s = random_structure(1)
    beta = 0.25
    g = fit_grid(s, "freesolv", resolution=32, beta=beta)
    xyz = s.coords[0].astype(np.float64)
    centre = xyz.mean(0)
    widest = max(ATOM_WIDTHS["vdw"][int(z)] for z in s.atomic_numbers)
    half = np.sqrt(((xyz - centre) ** 2).sum(1)).max() + widest * np.sqrt(np.log(2) / beta)
    assert np.allclose(g.lo, centre - half, atol=1e-4) and np.allclose(g.hi, centre + half, atol=1e-4)
    # an ensemble shares one box that covers every conformer
    e = random_structure(2, conformers=3)
    ge = fit_grid(e, None, resolution=16, beta=beta)
    assert (e.coords.reshape(-1, 3) >= ge.lo - 1e-4).all() and (e.coords.reshape(-1, 3) <= ge.hi + 1e-4).all()
    gs = spacing_grid(s, spacing=0.5, resolution=20)
    assert gs.spacing == (0.5, 0.5, 0.5)
    assert np.allclose((gs.lo + gs.hi) / 2, centre, atol=1e-4)
    from molviz.fields import MIN_RESOLUTION
    with pytest.raises(InputError):
        fit_grid(s, None, resolution=MIN_RESOLUTION - 1)


# ----------------------------------------------------------------------------- the sampler
@pytest.mark.parametrize("beta", [0.25, 0.75, 2.0])
@pytest.mark.parametrize("normalize", ["max", "none"])
def test_points_match_brute_force(beta, normalize):
    s = random_structure(int(beta * 100), n=60)
    spec = "H,C,N,O,F,P,S,Cl,Br,I,density,ligand:electronegativity"
    rng = np.random.default_rng(3)
    pts = (rng.normal(size=(500, 3)) * 4 + 10).astype(np.float32)
    peaks = channel_peaks(s, spec, beta=beta)
    got = sample_points(s, spec, pts, beta=beta, normalize=normalize)
    want = brute_force(s, spec, pts, beta, normalize, peaks)
    # cutoff bound 1e-4 of the peak (bound <= tol) plus float32 rounding
    tol = 1e-4 * (peaks if normalize == "none" else 1.0) + 1e-5 * np.maximum(1.0, np.abs(want))
    assert (np.abs(got - want) <= tol).all(), np.abs(got - want).max()


@pytest.mark.parametrize("beta", [0.25, 2.0])
def test_grid_equals_points_and_dense(beta):
    s = random_structure(7, n=50)
    g = fit_grid(s, "paper-6ega", resolution=24, beta=beta)
    xyz, ch, w = atom_table(s, "paper-6ega")
    grid_f = field_from_table(xyz, ch, w, 6, g, beta=beta).numpy().reshape(6, -1).T
    pts_f = field_from_table(xyz, ch, w, 6, g.points(), beta=beta).numpy()
    dense = dense_field(xyz, ch, w, 6, g.points(), beta=beta).numpy()
    assert np.abs(grid_f - pts_f).max() < 2e-4
    assert np.abs(grid_f - dense).max() < 1e-4 + 1e-5
    assert np.abs(pts_f - dense).max() < 1e-4 + 1e-5


def test_cutoff_bound_is_conservative():
    # the bound decreases with u and the chosen cutoff meets the tolerance
    for beta in (0.25, 0.75, 2.0):
        u = cutoff_factor(beta, 1.0)
        assert tail_bound(u, beta, 1.0) <= 1e-4 < tail_bound(0.95 * u, beta, 1.0)
    # a dense cloud at the assumed maximum density: the neglected sum stays below the bound
    rng = np.random.default_rng(0)
    n = 4000
    radius = (n / 0.2 * 3 / (4 * np.pi)) ** (1 / 3)
    v = rng.normal(size=(n, 3))
    pos = v / np.linalg.norm(v, axis=1, keepdims=True) * radius * rng.random((n, 1)) ** (1 / 3)
    beta = 0.25
    u = cutoff_factor(beta, 1.0)
    d = np.linalg.norm(pos, axis=1)
    neglected = np.exp(-beta * d[d > u] ** 2).sum()
    assert neglected <= tail_bound(u, beta, 1.0)


def test_peaks_bound_fine_grid_and_are_resolution_independent():
    s = random_structure(11, n=30, spread=2.0)
    beta = 0.25
    peaks = channel_peaks(s, "C,O,density", beta=beta)
    g = fit_grid(s, "C,O,density", resolution=128, beta=beta)
    raw = sample_field(s, "C,O,density", g, beta=beta, normalize="none")
    assert (raw.reshape(3, -1).max(1) <= peaks + 1e-6).all()
    norm = sample_field(s, "C,O,density", g, beta=beta, normalize="max")
    assert norm.max() <= 1.0 + 1e-6
    # the divisor is attained: a fine grid around each channel's best voxel reaches 1
    for c in range(3):
        best = np.array(np.unravel_index(np.argmax(norm[c]), g.shape))
        centre = g.lo + best * np.array(g.spacing)
        fine = Grid.from_box(centre - 0.1, centre + 0.1, 21)         # 0.01 A spacing
        local = sample_field(s, "C,O,density", fine, beta=beta)[c]
        assert abs(local.max() - 1.0) < 1e-3
    coarse = sample_field(s, "C,O,density", g.with_resolution(32), beta=beta)
    assert coarse.max() <= 1.0 + 1e-6


def test_large_table_peaks_match_exact(monkeypatch):
    """Neighbour-list ascent with cutoff (big tables) agrees with exact all-pairs ascent."""
    import molviz.fields._sampler as sampler

    s = random_structure(21, n=300, spread=4.0)
    for beta in (0.25, 2.0):
        exact = channel_peaks(s, "C,O,density", beta=beta)
        monkeypatch.setattr(sampler, "SMALL_TABLE", 0)
        listed = channel_peaks(s, "C,O,density", beta=beta)
        monkeypatch.undo()
        assert (listed >= exact - 1e-5).all() and (listed <= exact + 2e-4).all(), (listed, exact)


def _converged_peaks(xyz, channel, width, n_channels, beta):
    """Reference: float64 mean shift from every atom, run until no seed moves by 1e-9 A."""
    a = torch.as_tensor(xyz, dtype=torch.float64)
    ch = torch.as_tensor(channel)
    inv = beta / torch.as_tensor(width, dtype=torch.float64) ** 2
    same = ch[:, None] == ch[None, :]
    x, best = a.clone(), torch.zeros(len(a), dtype=torch.float64)
    for _ in range(20000):
        d = x[:, None] - a[None]
        w = torch.exp(-(d * d).sum(-1) * inv[None]) * same
        best = torch.maximum(best, w.sum(1))
        new = (w * inv[None]) @ a / (w * inv[None]).sum(1, keepdim=True)
        if float((new - x).norm(dim=1).max()) <= 1e-9:
            break
        x = new
    out = np.ones(n_channels)
    for c in np.unique(channel):
        out[c] = float(best[ch == c].max())
    return out


def test_peaks_of_tables_match_one_by_one_and_the_converged_maximum():
    """Many molecules at once (a library's preparation) give each one's divisors, within 1e-6 of the
    converged maximum (100 plain mean-shift steps stopped up to 5e-5 short on drug-like molecules)."""
    from molviz.chem import load

    smiles = ["O", "CCO", "c1ccccc1C(=O)O", "CC(C)(C)c1ccc(O)cc1", "ClC(Cl)(Cl)Cl", "CCCCCCCCCCCCCCCC"]
    tables = [atom_table(load(s), "freesolv") for s in smiles]
    big = atom_table(random_structure(3, n=300, spread=4.0), "C,O,density")   # > SMALL_TABLE rows: one by one
    tables.insert(2, (big[0], np.where(big[1] == 2, 10, big[1]), big[2]))
    tables.insert(4, (np.zeros((0, 3), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32)))
    off = np.cumsum([0] + [len(t[0]) for t in tables])
    cat = [np.concatenate([t[k] for t in tables]) for k in range(3)]
    many = peaks_of_tables(*cat, off, 11, beta=0.75)
    assert many.shape == (len(tables), 11) and (many[4] == 1).all()
    for i, (x, c, w) in enumerate(tables):
        one = peaks_from_table(x, c, w, 11, beta=0.75).numpy()
        np.testing.assert_allclose(many[i], one, rtol=1e-6)
        if 0 < len(x) <= 512:
            ref = _converged_peaks(x, c, w, 11, 0.75)
            assert (many[i] <= ref * (1 + 1e-6)).all() and (many[i] >= ref * (1 - 1e-6)).all(), (i, many[i], ref)


def test_table_grids_match_grid_field_and_do_not_depend_on_the_batch():
    """Many items' box grids at once (encoding a library, training targets) = each item's grid_field
    within its cutoff bound; an item's numbers are the same alone or batched with others."""
    from molviz.chem import load
    from molviz.fields import grid_field, table_grids

    smiles = ["O", "CCO", "c1ccccc1C(=O)O", "CC(C)(C)c1ccc(O)cc1", "ClC(Cl)(Cl)Cl", "CCCCCCCCCCCCCCCC"]
    tables = [atom_table(load(s), "freesolv") for s in smiles]
    big = atom_table(random_structure(3, n=300, spread=4.0), "C,O,density")      # > 512 rows: one by one
    tables.insert(2, (big[0], np.where(big[1] == 2, 10, big[1]), big[2]))
    off = np.cumsum([0] + [len(t[0]) for t in tables])
    cat = [np.concatenate([t[k] for t in tables]) for k in range(3)]
    boxes = np.stack([[t[0].min(0) - 2.0, t[0].max(0) + 2.5] for t in tables]).astype(np.float32)
    div = peaks_of_tables(*cat, off, 11, beta=0.75)
    many = table_grids(*cat, off, 11, boxes, 12, beta=0.75, divisors=div)
    assert many.shape == (len(tables), 11, 12, 12, 12)
    for i, (x, c, w) in enumerate(tables):
        one = grid_field(x, c, w, 11, boxes[i], 12, beta=0.75, divisors=div[i])
        assert float((many[i] - one).abs().max()) <= 1e-4, i
        assert float(one.max()) > 0.5
        alone = table_grids(*cat, off, 11, boxes, 12, beta=0.75, divisors=div, items=[i])
        assert torch.equal(alone[0], many[i]), i


def test_empty_channel_is_zero():
    s = random_structure(5)
    s.components[:] = "ligand"
    g = fit_grid(s, None, resolution=16, beta=0.75)
    f = sample_field(s, "ligand:C,protein:C", g, beta=0.75)
    assert np.isfinite(f).all() and (f[1] == 0).all() and f[0].max() > 0.5
    pk = channel_peaks(s, "ligand:C,protein:C", beta=0.75)
    assert pk[1] == 1.0


def test_conformers_batched():
    s = random_structure(9, n=25, conformers=3)
    g = fit_grid(s, None, resolution=16, beta=0.75)
    batch = sample_conformers(s, "C,density", g, beta=0.75)
    assert batch.shape == (3, 2, 16, 16, 16)
    for m in range(3):
        one = sample_field(s, "C,density", g, beta=0.75, conformer=m)
        assert np.abs(batch[m] - one).max() < 1e-5


def test_field_from_table_scale_and_errors():
    s = random_structure(4)
    xyz, ch, w = atom_table(s, "C,density")
    pts = torch.as_tensor(s.coords[0][:10])
    peaks = peaks_from_table(xyz, ch, w, 2, beta=0.75)
    a = field_from_table(xyz, ch, w, 2, pts, beta=0.75, scale=peaks)
    b = field_from_table(xyz, ch, w, 2, pts, beta=0.75, scale="max")
    c = field_from_table(xyz, ch, w, 2, pts, beta=0.75)
    assert torch.allclose(a, b) and torch.allclose(a * peaks, c, atol=1e-6)
    with pytest.raises(InputError):
        field_from_table(xyz, ch, w, 2, pts, beta=0.0)
    with pytest.raises(InputError):
        field_from_table(xyz, ch, w, 2, pts, beta=0.75, scale=np.ones(3))


# ----------------------------------------------------------------------------- 6EGA + CLI
def test_6ega_featurizes(complex_6ega):
    g = fit_grid(complex_6ega, "paper-6ega", resolution=32, beta=0.25)
    f = sample_field(complex_6ega, "paper-6ega", g, beta=0.25)
    assert f.shape == (6, 32, 32, 32) and f.dtype == np.float32
    maxima = f.reshape(6, -1).max(1)
    assert (maxima > 0.5).all() and (maxima <= 1.0 + 1e-6).all()


def _featurize(argv):
    from molviz.fields import _cli

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    _cli.register(sub)
    args = parser.parse_args(["featurize", *argv])
    return args.func(args)


def test_featurize_npz_and_ccp4(tmp_path, protein_6ega_pdb, ligand_6ega_sdf):
    gemmi = pytest.importorskip("gemmi")
    out = tmp_path / "6ega.npz"
    assert _featurize([str(protein_6ega_pdb), str(ligand_6ega_sdf), "--channels", "paper-6ega",
                       "--resolution", "16", "--beta", "2", "--out", str(out)]) == 0
    d = np.load(out, allow_pickle=False)
    assert d["field"].shape == (6, 16, 16, 16) and d["field"].dtype == np.float32
    assert d["origin"].shape == (3,) and d["spacing"].shape == (3,)
    assert list(d["channels"]) == [c.name for c in parse_channels("paper-6ega")]
    assert float(d["beta"]) == 2.0
    ccp4 = tmp_path / "6ega.ccp4"
    assert _featurize([str(protein_6ega_pdb), str(ligand_6ega_sdf), "--channels", "paper-6ega",
                       "--resolution", "16", "--beta", "2", "--out", str(ccp4)]) == 0
    m = gemmi.read_ccp4_map(str(tmp_path / "6ega_ligand-C.ccp4"))
    assert tuple(m.grid.shape) == (16, 16, 16)
    assert np.allclose(np.array(m.grid), d["field"][1])
    assert m.grid.unit_cell.a == pytest.approx(16 * d["spacing"][0], rel=1e-5)
    assert [m.header_float(w) for w in (50, 51, 52)] == pytest.approx(list(d["origin"]), abs=1e-3)
    assert [m.header_i32(w) for w in (17, 18, 19)] == [1, 2, 3]      # x fastest


def test_featurize_dataset(tmp_path):
    smi = tmp_path / "mols.smi"
    smi.write_text("CCO ethanol\nc1ccccc1Cl chlorobenzene\n")
    out = tmp_path / "ds.npz"
    assert _featurize(["--smiles-file", str(smi), "--channels", "freesolv", "--resolution", "12",
                       "--beta", "0.75", "--out", str(out)]) == 0
    d = np.load(out, allow_pickle=False)
    assert d["field"].shape == (2, 11, 12, 12, 12) and list(d["names"]) == ["ethanol", "chlorobenzene"]
    with pytest.raises(InputError):
        _featurize(["CCO", "--out", str(tmp_path / "x.txt")])
    fixed = tmp_path / "fixed.npz"
    assert _featurize(["CCO", "--channels", "C,O", "--resolution", "10", "--spacing", "0.5",
                       "--beta", "0.75", "--normalize", "none", "--out", str(fixed)]) == 0
    d = np.load(fixed, allow_pickle=False)
    assert d["field"].shape == (2, 10, 10, 10) and np.allclose(d["spacing"], 0.5)


def test_imports_only_numpy_and_torch():
    import subprocess
    import sys

    code = ("import sys, molviz.fields; "
            "bad = [m for m in ('rdkit', 'gemmi', 'pyvista', 'vtk', 'trame') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    s = random_structure(12, n=200, spread=5.0)
    xyz, ch, w = atom_table(s, "paper-6ega")
    g = fit_grid(s, "paper-6ega", resolution=48, beta=0.25)
    cpu = field_from_table(xyz, ch, w, 6, g, beta=0.25, scale="max")
    gpu = field_from_table(xyz, ch, w, 6, g, beta=0.25, scale="max", device="cuda")
    assert gpu.is_cuda and torch.allclose(cpu, gpu.cpu(), atol=1e-4)
    pts = torch.rand(65536, 3, device="cuda") * 30
    p = field_from_table(torch.as_tensor(xyz).cuda(), torch.as_tensor(ch).cuda(),
                         torch.as_tensor(w).cuda(), 6, pts, beta=0.25)
    ref = dense_field(xyz, ch, w, 6, pts.cpu(), beta=0.25)
    assert (p.cpu().double() - ref).abs().max() < 1e-4
