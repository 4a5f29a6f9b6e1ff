"""One map convention for every CCP4/MRC molviz writes: ``molviz featurize``, ``molviz decode`` and the
app's map download place voxel (0, 0, 0) where the matching npz says, read back by two independent
readers (gemmi and mrcfile)."""
from __future__ import annotations

import io
import zipfile

import gemmi
import mrcfile
import numpy as np
import pytest

from molviz.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _placed(path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(voxel (0,0,0) centre, spacing, data[x, y, z]) as gemmi and as mrcfile read the file.

    The convention (CONTRACT.md, molviz.mesh): ORIGIN holds the centre of voxel (0, 0, 0); where
    NSTART is not 0 it is origin / spacing, so NSTART-only readers agree."""
    out = []
    m = gemmi.read_ccp4_map(str(path))
    nstart = np.array([m.header_i32(w) for w in (5, 6, 7)])
    origin = np.array([m.header_float(w) for w in (50, 51, 52)])
    cell = m.grid.unit_cell
    shape = np.array([m.header_i32(w) for w in (1, 2, 3)])
    spacing = np.array([cell.a, cell.b, cell.c]) / shape
    if nstart.any():
        assert np.allclose(nstart * spacing, origin, atol=1e-3), "NSTART and ORIGIN disagree"
    out.append((origin, spacing, np.array(m.grid, copy=True)))
    with mrcfile.open(path, permissive=False) as mrc:
        o = np.array([mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z], np.float64)
        n0 = np.array([mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart])
        vs = np.array([mrc.voxel_size.x, mrc.voxel_size.y, mrc.voxel_size.z], np.float64)
        assert (mrc.header.mapc, mrc.header.mapr, mrc.header.maps) == (1, 2, 3)
        if n0.any():
            assert np.allclose(n0 * vs, o, atol=1e-3)
        out.append((o, vs, np.asarray(mrc.data).transpose(2, 1, 0)))   # mrcfile: [z, y, x]
    return out


def _check(map_path, origin, spacing, volume):
    for where, step, data in _placed(map_path):
        assert np.allclose(where, origin, atol=1e-3), (map_path, where, origin)
        assert np.allclose(step, spacing, atol=1e-4)
        assert np.allclose(data, volume, atol=1e-6)


def test_featurize_map_sits_on_its_npz(tmp_path):
    args = ["featurize", "CCO", "--channels", "C,O", "--resolution", "12", "--beta", "0.75"]
    assert main([*args, "--out", str(tmp_path / "f.npz")]) == 0
    assert main([*args, "--out", str(tmp_path / "f.ccp4")]) == 0
    with np.load(tmp_path / "f.npz", allow_pickle=False) as z:
        origin, spacing, field, names = z["origin"], z["spacing"], z["field"], list(z["channels"])
    assert not np.allclose(origin / spacing, np.round(origin / spacing))   # off the voxel lattice: the hard case
    for c, name in enumerate(names):
        _check(tmp_path / f"f_{name}.ccp4", origin, spacing, field[c])


def test_decode_map_sits_on_its_npz(tmp_path):
    base = ["decode", "freesolv", "--item", "1", "--resolution", "20", "--device", "cpu", "--channels", "C,H"]
    assert main([*base, "--out", str(tmp_path / "d.npz")]) == 0
    assert main([*base, "--out", str(tmp_path / "d.mrc")]) == 0
    with np.load(tmp_path / "d.npz", allow_pickle=False) as z:
        origin, spacing, field = z["origin"], z["spacing"], z["field"]
    for c, name in enumerate(["C", "H"]):
        _check(tmp_path / f"d_{name}.mrc", origin, spacing, field[c])


def test_app_map_download_sits_on_the_view_grid(tmp_path):
    from molviz.view import Explorer, maps_zip
    ex = Explorer.open("assets/models/freesolv")
    view = ex.item_view(1, 20, truth=False)
    data = maps_zip(ex, view, [1])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        (name,) = zf.namelist()
        (tmp_path / name).write_bytes(zf.read(name))
    _check(tmp_path / name, np.asarray(view.grid.origin), np.asarray(view.grid.spacing),
           ex.dense_volume(view)[1])
