"""Isosurfaces extracted in torch (molviz.engine._surface), against the mesh module's backends."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from molviz.engine import Engine, marching_cubes, resolve_levels
from molviz.engine._surface import case_table
from molviz.errors import InputError
from molviz.mesh import resolve_level


def _ball(n: int = 24) -> np.ndarray:
    x = np.linspace(-1, 1, n, dtype=np.float32)
    return np.exp(-4 * (x[:, None, None] ** 2 + x[None, :, None] ** 2 + x[None, None, :] ** 2))


def _noise(n: int, seed: int, smooth: float = 0.0) -> np.ndarray:
    """Random values inside a border of zeros, so every surface at a positive level is closed."""
    rng = np.random.default_rng(seed)
    inner = rng.random((n, n, n))
    if smooth:
        from scipy.ndimage import gaussian_filter
        inner = gaussian_filter(inner, smooth)
    vol = np.zeros((n + 2,) * 3, np.float32)
    vol[1:-1, 1:-1, 1:-1] = inner
    return vol


def _crossed_edges(vol: np.ndarray, level: float) -> int:
    inside = vol > level
    return sum(int(np.count_nonzero(np.diff(inside, axis=a))) for a in range(3))


def _directed_edges(faces: np.ndarray) -> Counter:
    return Counter(map(tuple, np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).tolist()))


def test_case_table_is_complementary_free_and_small():
    n, table = case_table()
    assert n[0] == n[255] == 0 and n.max() <= 5
    # one corner inside or outside: one triangle; every case's triangles use crossed edges only
    assert all(n[1 << c] == 1 and n[255 ^ (1 << c)] == 1 for c in range(8))
    assert table.shape == (256, n.max(), 3) and (table[n == 0] == -1).all()


@pytest.mark.parametrize("seed,smooth", [(0, 0.0), (1, 0.0), (2, 2.0)])
def test_surface_is_closed_and_has_one_vertex_per_crossed_edge(seed, smooth):
    """Pure noise exercises every ambiguous face; the surface must still close (watertight)."""
    vol = _noise(20, seed, smooth)
    level = 0.5 if not smooth else float(np.median(vol[1:-1, 1:-1, 1:-1]))
    surf, = marching_cubes(torch.from_numpy(vol)[None], torch.tensor([level]))
    assert surf.n_points == _crossed_edges(vol, level)
    edges = _directed_edges(surf.faces)
    # closed and consistently oriented: every directed edge is matched by its reverse
    assert all(edges[(j, i)] == k for (i, j), k in edges.items())
    assert surf.faces.min() >= 0 and surf.faces.max() < surf.n_points


def test_vertices_equal_scikit_image_and_normals_point_outward():
    from skimage.measure import marching_cubes as sk_mc
    vol = _noise(30, 3, smooth=2.0)
    level = float(np.percentile(vol[1:-1, 1:-1, 1:-1], 70))
    surf, = marching_cubes(torch.from_numpy(vol)[None], torch.tensor([level]))
    verts, _, _, _ = sk_mc(vol, level)
    # skimage adds a vertex inside some ambiguous cells; every one of ours is one of its
    from scipy.spatial import cKDTree
    assert cKDTree(verts).query(surf.points)[0].max() < 1e-4
    assert len(verts) - surf.n_points <= 0.01 * len(verts)
    # triangles wind counter-clockwise seen from their normals' side (as molviz.mesh does)
    p, f = surf.points, surf.faces
    face_n = np.cross(p[f[:, 1]] - p[f[:, 0]], p[f[:, 2]] - p[f[:, 0]])
    assert np.mean(np.einsum("ij,ij->i", face_n, surf.normals[f].mean(1)) > 0) > 0.97
    # on a ball the normals point away from the centre (out of the region above the level)
    ball, = marching_cubes(torch.from_numpy(_ball())[None], torch.tensor([0.5]), origin=(-1.0,) * 3,
                           spacing=(2 / 23,) * 3)
    assert (np.einsum("ij,ij->i", ball.normals, ball.points) > 0).all()
    assert np.allclose(np.linalg.norm(ball.normals, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(ball.points, axis=1), np.sqrt(np.log(2) / 4), atol=0.02)


def test_channels_levels_and_empty_surfaces():
    ball = torch.from_numpy(_ball())
    vol = torch.stack([ball, 0.5 * ball, torch.zeros_like(ball)])
    a, b, c = marching_cubes(vol, torch.tensor([0.4, 0.2, 0.5]))
    alone, = marching_cubes(vol[1:2], torch.tensor([0.2]))
    assert np.array_equal(b.faces, alone.faces) and np.allclose(b.points, alone.points)
    assert a.n_points > 0 and c.n_points == 0 and c.faces.shape == (0, 3)
    skipped, = marching_cubes(vol[:1], torch.tensor([float("nan")]))
    assert skipped.n_points == 0
    with pytest.raises(InputError, match="C, nx, ny, nz"):
        marching_cubes(ball, torch.tensor([0.5]))


def test_levels_resolve_like_the_mesh_module():
    rng = np.random.default_rng(0)
    vol = rng.random((3, 9, 10, 11)).astype(np.float32)
    for mode, lv in [("fraction", [0.5, 0.25, 0.9]), ("percent", [1.0, 50.0, 12.5]), ("absolute", [0.1, 0.2, 0.3])]:
        got = resolve_levels(torch.from_numpy(vol), lv, mode).numpy()
        want = [resolve_level(vol[c], lv[c], mode) for c in range(3)]
        assert np.allclose(got, want, atol=1e-6), mode
    with pytest.raises(InputError, match="percent"):
        resolve_levels(torch.from_numpy(vol), 100.0, "percent")


@pytest.fixture(scope="module")
def freesolv_engine():
    from molviz._assets import assets_dir
    path = assets_dir() / "models" / "freesolv"
    if not (path / "bundle.json").is_file():
        pytest.skip("the FreeSolv bundle is not shipped here")
    return Engine(path, cache_bytes=0)


@pytest.mark.parametrize("box", [None, ((-0.5, -0.4, -0.3), (0.5, 0.3, 0.2))])
def test_engine_surfaces_match_vtk_on_a_trained_bundle(freesolv_engine, box):
    """Device-side surfaces of a real molecule: the VTK backend's vertices, in angstrom, same areas."""
    pytest.importorskip("pyvista")
    from scipy.spatial import cKDTree

    from molviz.mesh import isosurface, polydata
    eng, item, n = freesolv_engine, 3, 40
    surfs = eng.surfaces(eng.latents[item], 0.5, resolution=n, box=box, item_box=eng.boxes[item])
    vol = eng.decode(eng.latents[item], resolution=n, box=box, cache=False)[0]
    grid = eng.item_grid(item, n, box=box)
    drawn = 0
    for c, s in enumerate(surfs):
        ref = isosurface(vol[c], grid, level=0.5, mode="absolute", backend="vtk")
        assert s.n_points == ref.n_points, eng.channel_names[c]
        if ref.n_points == 0:
            continue
        drawn += 1
        assert cKDTree(ref.points).query(s.points)[0].max() < 1e-4 * min(grid.spacing)
        mesh = polydata(s)
        assert mesh.n_cells == len(s.faces)
        assert mesh.area == pytest.approx(ref.area, rel=0.01)
        # the same side is outward: normals agree with VTK's at the same vertices
        idx = cKDTree(ref.points).query(s.points)[1]
        assert np.mean(np.einsum("ij,ij->i", s.normals, ref.point_data["Normals"][idx]) > 0.9) > 0.98
    assert drawn >= 2


def test_engine_surfaces_without_a_box_are_normalised_and_levels_are_checked(freesolv_engine):
    eng = freesolv_engine
    surfs = eng.surfaces(eng.latents[0], 50.0, resolution=24, mode="percent")
    pts = np.concatenate([s.points for s in surfs if s.n_points])
    assert pts.min() >= -1 and pts.max() <= 1
    with pytest.raises(InputError, match="levels for"):
        eng.surfaces(eng.latents[0], [0.5, 0.5], resolution=24)
