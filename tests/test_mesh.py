"""molviz.mesh: isosurfaces (both backends agree, levels, empty) and exports that reopen."""
from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

pv = pytest.importorskip("pyvista")
pytest.importorskip("skimage")

from molviz.errors import InputError  # noqa: E402
from molviz.mesh import export_mesh, export_volume, isosurface, resolve_level  # noqa: E402


def _blob(n=24, origin=(1.5, -2.0, 3.25), spacing=(0.5, 0.5, 0.25)):
    x = np.linspace(-1, 1, n)
    vol = np.exp(-4 * (x[:, None, None] ** 2 + 2 * x[None, :, None] ** 2 + x[None, None, :] ** 2))
    return vol.astype(np.float32), SimpleNamespace(origin=origin, spacing=spacing, shape=(n, n, n))


def test_mesh_never_imports_torch():
    code = "import sys, molviz.mesh; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("backend", ["vtk", "skimage"])
def test_isosurface_in_angstrom_with_outward_normals(backend):
    vol, grid = _blob()
    surf = isosurface(vol, grid, level=0.5, mode="fraction", backend=backend)
    assert surf.n_points > 100 and surf.is_all_triangles
    centre = np.asarray(grid.origin) + np.asarray(grid.spacing) * (np.asarray(grid.shape) - 1) / 2
    rel = surf.points - centre
    # exp(-4 (x^2 + 2 y^2 + z^2)) = 0.5 at x = sqrt(ln 2 / 4) in normalised units; half-box = (n-1)/2 spacing
    half = np.asarray(grid.spacing) * (grid.shape[0] - 1) / 2
    r = np.sqrt(np.log(2) / 4)
    assert np.allclose(np.abs(rel).max(0), half * np.array([r, r / np.sqrt(2), r]), rtol=0.03)
    normals = surf.point_data["Normals"]
    assert np.mean(np.sum(normals * rel, axis=1) > 0) > 0.99
    # triangles wind counter-clockwise seen from outside, agreeing with the normals
    cells = surf.compute_normals(cell_normals=True, point_normals=False, auto_orient_normals=False,
                                 consistent_normals=False)
    out = np.sum(cells.cell_data["Normals"] * (cells.cell_centers().points - centre), axis=1) > 0
    assert out.mean() > 0.99


def test_backends_agree():
    vol, grid = _blob(32)
    a = isosurface(vol, grid, level=0.3, backend="vtk")
    b = isosurface(vol, grid, level=0.3, backend="skimage")
    assert abs(a.n_points - b.n_points) <= 0.02 * a.n_points
    assert np.allclose(a.bounds, b.bounds, atol=1e-3)
    assert abs(a.area - b.area) < 0.01 * a.area


def test_levels():
    vol = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    assert resolve_level(vol, 3.0, "absolute") == 3.0
    assert resolve_level(vol, 0.5, "fraction") == pytest.approx(499.5)
    level = resolve_level(vol, 1.0, "percent")  # encloses 1 % of the voxels
    assert np.mean(vol > level) == pytest.approx(0.01)
    with pytest.raises(InputError):
        resolve_level(vol, 0.0, "percent")
    with pytest.raises(InputError):
        resolve_level(vol, 1.0, "sigma")


def test_empty_and_bad_inputs():
    vol, grid = _blob()
    assert isosurface(vol, grid, level=2.0, mode="absolute").n_points == 0
    assert isosurface(np.zeros_like(vol), grid, level=0.5).n_points == 0
    with pytest.raises(InputError):
        isosurface(vol[None], grid, level=0.5)
    with pytest.raises(InputError):
        isosurface(vol, grid, level=0.5, backend="opengl")


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".gltf", ".glb"])
def test_export_mesh_reopens(tmp_path, suffix):
    vol, grid = _blob()
    surf = isosurface(vol, grid, level=0.5)
    path = export_mesh(surf, tmp_path / f"surface{suffix}", color=(0.2, 0.4, 0.9))
    back = pv.read(path)
    if isinstance(back, pv.MultiBlock):
        back = back.combine(merge_points=False)
    assert back.n_points == surf.n_points and back.n_cells == surf.n_cells
    assert np.allclose(back.bounds, surf.bounds, atol=1e-4)
    assert [p.name for p in tmp_path.iterdir()] == [f"surface{suffix}"]  # no temporary left behind


def test_export_empty_mesh(tmp_path):
    for suffix in (".glb", ".gltf", ".ply", ".obj"):
        export_mesh(pv.PolyData(), tmp_path / f"empty{suffix}")
        assert (tmp_path / f"empty{suffix}").stat().st_size > 0
    assert pv.read(tmp_path / "empty.ply").n_points == 0


@pytest.mark.parametrize("suffix", [".mrc", ".ccp4"])
def test_export_map_places_voxels(tmp_path, suffix):
    gemmi = pytest.importorskip("gemmi")
    vol, grid = _blob(12, origin=(1.5, -2.0, 3.25), spacing=(0.5, 0.5, 0.25))
    path = export_volume(vol, grid, tmp_path / f"map{suffix}")
    m = gemmi.read_ccp4_map(str(path))
    assert m.grid.shape == vol.shape
    assert np.allclose(m.grid.unit_cell.parameters, (6.0, 6.0, 3.0, 90, 90, 90))
    assert [m.header_float(w) for w in (50, 51, 52)] == [1.5, -2.0, 3.25]  # ORIGIN: ChimeraX
    assert [m.header_i32(w) for w in (5, 6, 7)] == [3, -4, 13]              # NSTART: CCP4 programs
    assert np.allclose(np.array(m.grid, copy=False), vol)


def test_export_map_fractional_origin(tmp_path):
    gemmi = pytest.importorskip("gemmi")
    vol, grid = _blob(8, origin=(0.3, 0.1, -0.7), spacing=(0.5, 0.5, 0.5))
    m = gemmi.read_ccp4_map(str(export_volume(vol, grid, tmp_path / "v.mrc")))
    assert np.allclose([m.header_float(w) for w in (50, 51, 52)], (0.3, 0.1, -0.7))
    assert [m.header_i32(w) for w in (5, 6, 7)] == [0, 0, 0]


def test_export_npz(tmp_path):
    vol, grid = _blob(8)
    path = export_volume(np.stack([vol, 2 * vol]), grid, tmp_path / "v.npz", channel_names=["a", "b"])
    with np.load(path, allow_pickle=False) as d:
        assert d["field"].shape == (2, 8, 8, 8) and d["field"].dtype == np.float32
        assert list(d["channels"]) == ["a", "b"]
        assert np.allclose(d["origin"], grid.origin) and np.allclose(d["spacing"], grid.spacing)
    with pytest.raises(InputError):
        export_volume(np.stack([vol, vol]), grid, tmp_path / "v.mrc")
    with pytest.raises(InputError):
        export_volume(vol, grid, tmp_path / "v.vti")
