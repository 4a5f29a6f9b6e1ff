"""``molviz render`` and ``molviz animate``: headless pictures and movies through offscreen VTK."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from app_bundles import make_small_bundle


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory):
    return make_small_bundle(tmp_path_factory.mktemp("bundles") / "freesolv-small")


def _molviz(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "molviz", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd)


def _blank(img: np.ndarray) -> float:
    return float(np.mean(np.all(np.abs(img[..., :3].astype(int) - 255) <= 2, axis=-1)))


@pytest.mark.slow
def test_render_writes_a_picture_of_the_item(bundle_path, tmp_path):
    from PIL import Image

    out = tmp_path / "shot.png"
    r = _molviz("render", str(bundle_path), "--item", "2", "--resolution", "48", "--size", "320x240",
                "--show", "side_by_side", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "PSNR" in r.stdout
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape == (240, 320, 3)
    assert _blank(img) < 0.97                       # surfaces, atoms and outline, not an empty frame
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50


def test_render_refuses_bad_requests(bundle_path, tmp_path):
    r = _molviz("render", str(bundle_path), "--item", "no-such-molecule", "--out", str(tmp_path / "x.png"))
    assert r.returncode == 2 and "no item named" in r.stderr
    r = _molviz("render", str(bundle_path), "--out", str(tmp_path / "x.jpg"))
    assert r.returncode == 2 and ".png" in r.stderr
    r = _molviz("render", str(bundle_path), "--resolution", "100000", "--out", str(tmp_path / "x.png"))
    assert r.returncode == 2 and "resolution" in r.stderr
    assert not list(tmp_path.iterdir())             # nothing half-written


@pytest.mark.slow
@pytest.mark.parametrize("suffix, frames", [(".gif", 5), (".mp4", 6)])
def test_animate_writes_every_frame(bundle_path, tmp_path, suffix, frames):
    import imageio.v3 as iio

    out = tmp_path / f"movie{suffix}"
    r = _molviz("animate", str(bundle_path), "--from", "0", "--to", "3", "--frames", str(frames),
                "--size", "320x240", "--resolution", "24", "--orbit", "30", "--atoms", "fade", "--out", str(out))
    assert r.returncode == 0, r.stderr
    movie = iio.imread(out, index=None)
    assert movie.shape[0] == frames
    assert movie.shape[1:3] == (240, 320)
    assert _blank(movie[0]) < 0.98
    assert not np.array_equal(movie[0], movie[-1])          # it moves
    if suffix == ".mp4":
        assert _pix_fmt(out) == "yuv420p"            # H.264 in yuv420p: plays in slide software
    assert [p.name for p in tmp_path.iterdir()] == [out.name]     # the temporary file was renamed


def _pix_fmt(path) -> str:
    import imageio_ffmpeg
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                           capture_output=True, text=True)
    line = next((ln for ln in probe.stderr.splitlines() if "Video:" in ln), "")
    assert "h264" in line, line
    return "yuv420p" if "yuv420p" in line else line


def test_serve_desktop_without_pywebview_says_how_to_fix():
    try:
        import webview  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pywebview is installed here")
    r = _molviz("serve", "--desktop")
    assert r.returncode == 2 and "pywebview" in r.stderr and "without --desktop" in r.stderr


def test_bonds_by_cell_list_equal_all_pairs_on_a_real_protein():
    """The app's bond finder (a numpy cell list, no scipy) against the all-pairs distance matrix."""
    from molviz.chem import asset_path, load
    from molviz.view.scene import _close_pairs

    s = load(asset_path("data", "6ega", "6ega_protein.pdb"))
    xyz = np.asarray(s.coords, np.float64).reshape(-1, s.n_atoms, 3)[0, :1500]
    d = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
    i, j = np.nonzero(np.triu(d < 2.3, k=1))
    want = set(zip(i.tolist(), j.tolist()))
    got = _close_pairs(xyz, 2.3)
    assert got.dtype == np.int64 and np.all(got[:, 0] < got[:, 1])
    assert set(map(tuple, got.tolist())) == want and len(got) == len(want)
    assert _close_pairs(np.zeros((1, 3)), 2.3).shape == (0, 2)


def test_command_line_help_does_not_import_torch_or_trame():
    """``molviz --help`` and argument parsing stay instant: subpackages export lazily."""
    import subprocess
    import sys
    code = ("import sys, molviz.cli as c; c.build_parser(); "
            "heavy = [m for m in ('torch', 'trame', 'pyvista', 'rdkit', 'gemmi') if m in sys.modules]; "
            "print(heavy); sys.exit(bool(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_scene_renders_without_pyvista_plotting_or_matplotlib():
    """Building, showing and screenshotting a scene stays on plain VTK: ``pyvista.plotting`` imports
    matplotlib (~0.9 s on the way to the app's first picture). A subprocess, so other tests' imports
    do not count."""
    code = """if True:
        import sys
        import numpy as np
        from molviz.fields import Grid
        from molviz.view.scene import Atoms, ChannelStyle, Layer, Scene, SceneOptions, build_scene

        grid = Grid.from_box((-2, -2, -2), (2, 2, 2), 24)
        x, y, z = np.meshgrid(*grid.axes(), indexing="ij")
        vol = np.exp(-(x**2 + y**2 + z**2))[None].astype(np.float32)
        atoms = Atoms(np.array([[0, 0, 0], [1.1, 0, 0]], np.float32), np.array([6, 8]))
        layers = [Layer(vol, grid, ["density"], atoms, label="a"), Layer(vol, grid, ["density"], atoms, label="b",
                                                                        offset=(5.0, 0.0, 0.0))]
        built = build_scene(layers, [ChannelStyle(level=0.5, opacity=0.5)], SceneOptions(clip_axis="x"))
        scene = Scene(window_size=(160, 120))
        scene.show(built)
        scene.orbit(20)
        img = scene.screenshot(scale=2)
        scene.close()
        assert img.shape == (240, 320, 3) and img.dtype == np.uint8, img.shape
        assert len(np.unique(img.reshape(-1, 3), axis=0)) > 20
        heavy = [m for m in ("pyvista.plotting", "matplotlib") if m in sys.modules]
        print(heavy)
        sys.exit(bool(heavy))
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_scene_refuses_keywords_it_does_not_draw():
    import pyvista as pv

    from molviz.view.scene import BuiltScene, Scene

    scene = Scene(window_size=(64, 48))
    try:
        with pytest.raises(ValueError, match="cmap"):
            scene.show(BuiltScene(actors={"s": (pv.Sphere(), dict(color="#FF0000", cmap="viridis"))}))
        with pytest.raises(ValueError, match="#RRGGBB"):
            scene.show(BuiltScene(actors={"s": (pv.Sphere(), dict(color="not-a-colour"))}))
        assert scene.built is None                  # nothing half-shown
    finally:
        scene.close()


def test_surfaces_are_closed_at_the_box_and_face_wafers_are_dropped():
    """A blob cut by the box gets a cap on the box face (no open rim); a one-voxel overshoot on a face
    (a flat wafer once closed) is not drawn."""
    from molviz.fields import Grid
    from molviz.mesh import isosurface
    from molviz.view.scene import closed_isosurface

    g = Grid.from_box((-2, -2, -2), (2, 2, 2), 32)
    x, y, z = np.meshgrid(*g.axes(), indexing="ij")
    vol = np.exp(-((x - 2) ** 2 + y ** 2 + z ** 2)).astype(np.float32)            # centred on the +x face
    vol += 0.6 * np.exp(-((x + 2) ** 2) / 0.01) * np.exp(-(y ** 2 + z ** 2) / 0.3)  # a wafer on the -x face

    def rims(mesh):
        return mesh.extract_feature_edges(boundary_edges=True, feature_edges=False, manifold_edges=False,
                                          non_manifold_edges=False).n_cells

    plain = isosurface(vol, g, level=0.5, mode="absolute")
    closed = closed_isosurface(vol, g, 0.5)
    assert rims(plain) > 0 and rims(closed) == 0
    assert plain.bounds[0] < -1.9 and closed.bounds[0] > 0.5             # the wafer at x = -2 is gone
    assert closed.bounds[1] == pytest.approx(2.0, abs=1e-3)             # the cap lies on the face


@pytest.mark.slow
def test_a_movie_can_draw_the_atoms_each_frames_field_implies(tmp_path):
    """``--atoms field``: every frame's atoms come from its own decoded field (the shipped FreeSolv
    network), so a frame between two molecules shows the atoms its field implies, not a cross-fade."""
    import imageio.v3 as iio
    from app_bundles import SHIPPED

    from molviz.view.explore import Explorer

    if not (SHIPPED / "bundle.json").is_file():
        pytest.skip("the shipped FreeSolv bundle is not here")
    ex = Explorer.open(SHIPPED)
    a, b = ex.item_endpoint(1), ex.item_endpoint(14)          # butan-1-ol -> 2-chloropropane
    view = ex.frame(a, b, 0.5, resolution=24)
    found = ex.implied_atoms(view, resolution=32)
    assert len(found.numbers) > 0
    assert set(found.numbers.tolist()) <= set(a.atoms.numbers.tolist()) | set(b.atoms.numbers.tolist())
    out = tmp_path / "field.gif"
    r = _molviz("animate", str(SHIPPED), "--from", "1", "--to", "14", "--frames", "2", "--size", "240x180",
                "--resolution", "24", "--out", str(out))                       # --atoms field: the default
    assert r.returncode == 0, r.stderr
    movie = iio.imread(out, index=None)
    assert movie.shape[0] == 2 and _blank(movie[0]) < 0.98
    r = _molviz("animate", str(SHIPPED), "--atoms", "nearest", "--out", str(tmp_path / "x.gif"))
    assert r.returncode == 2 and "fade" in r.stderr
