"""molviz.engine: decoding (chunked, sub-boxes, OOM retry, cache, progressive, latest wins),
adaptive decoding against dense, latent-space interpolation, neighbours and encoding."""
from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from molviz.engine import DecodeRequest, Engine, interpolate, neighbours, path
from molviz.engine._engine import fold_modulations, folded_synthesis
from molviz.errors import InputError, ResourceLimitError
from molviz.models import Bundle, ModulatedSiren, config_for_size


def _bundle(size="XS", out_dim=3, n_items=4, seed=0, **overrides) -> Bundle:
    torch.manual_seed(seed)
    cfg = config_for_size(size, out_dim=out_dim, **overrides)
    net = ModulatedSiren(cfg)
    if cfg.modulation == "film":  # FiLM starts as a plain SIREN; make the latent matter
        torch.nn.init.normal_(net.modulator.proj.weight, std=0.05)
    lo = np.array([-4.0, -5.0, -6.0], np.float32)
    boxes = np.stack([np.stack([lo + i, lo + i + 10.0]) for i in range(n_items)]).astype(np.float32)
    return Bundle(config={"model": cfg.to_dict(), "channel_names": [f"c{i}" for i in range(out_dim)]},
                  model=net, latents=torch.randn(n_items, cfg.latent_dim), boxes=boxes,
                  items=[{"name": f"item{i}"} for i in range(n_items)])


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return _bundle()


@pytest.fixture(scope="module")
def smooth_bundle() -> Bundle:
    # w0 = 10: a smoother random field, closer to a trained molecular field than w0 = 30 noise
    return _bundle(out_dim=2, w0=10.0, seed=1)


def _reference(b: Bundle, z: np.ndarray, shape, box=((-1,) * 3, (1,) * 3)) -> np.ndarray:
    axes = [torch.linspace(lo, hi, n) for lo, hi, n in zip(box[0], box[1], shape)]
    pts = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(1, -1, 3)
    with torch.no_grad():
        out = b.model(pts, torch.as_tensor(z, dtype=torch.float32)[None])[0]          # (P, C)
    return out.T.reshape(-1, *shape).numpy()


def _corners(vol: np.ndarray) -> np.ndarray:
    """The 8 corner values of every cell of an (nx, ny, nz) volume: (8, nx - 1, ny - 1, nz - 1)."""
    nx, ny, nz = vol.shape
    return np.stack([vol[i:nx - 1 + i, j:ny - 1 + j, k:nz - 1 + k] for i in (0, 1) for j in (0, 1) for k in (0, 1)])


def _crossed(corners: np.ndarray, level: float) -> np.ndarray:
    """Cells whose corners straddle ``level``: the cells marching cubes puts triangles in."""
    return (corners.min(0) <= level) & (corners.max(0) > level)


def test_engine_imports_with_torch_and_numpy_only():
    code = ("import sys, molviz.engine; bad = {'rdkit', 'gemmi', 'pyvista', 'vtk', 'skimage', 'trame'} "
            "& set(m.split('.')[0] for m in sys.modules); sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("modulation", ["mehta", "film"])
def test_folded_weights_match_the_model(modulation):
    b = _bundle(size="XS", modulation=modulation)
    z = b.latents[:1]
    x = torch.rand(1, 500, 3) * 2 - 1
    with torch.no_grad():
        ref = b.model(x, z)[0]
        fold = folded_synthesis(x[0], fold_modulations(b.model, b.model.modulations(z)))
    assert torch.allclose(fold, ref, atol=2e-5)


def test_decode_matches_model_and_chunked_equals_unchunked(bundle):
    z = bundle.latents[:2].numpy()
    shape = (9, 10, 11)
    small = Engine(bundle, chunk_points=1024, cache_bytes=0).decode(z, resolution=shape)
    whole = Engine(bundle, chunk_points=1 << 20, cache_bytes=0).decode(z, resolution=shape)
    plain = Engine(bundle, chunk_points=1024, cache_bytes=0, fold=False).decode(z, resolution=shape)
    assert small.shape == (2, 3, *shape) and small.dtype == np.float32
    np.testing.assert_allclose(small, whole, atol=1e-6)
    for b in range(2):
        np.testing.assert_allclose(plain[b], _reference(bundle, z[b], shape), atol=1e-6)
        np.testing.assert_allclose(small[b], _reference(bundle, z[b], shape), atol=2e-5)


def test_sub_box_is_a_slice_of_the_whole_box(bundle):
    eng = Engine(bundle, cache_bytes=0)
    z = bundle.latents[0]
    whole = eng.decode(z, resolution=17)[0]
    corner = eng.decode(z, resolution=(9, 9, 17), box=((-1, -1, -1), (0, 0, 1)))[0]
    np.testing.assert_allclose(corner, whole[:, :9, :9, :], atol=1e-5)
    g = eng.item_grid(1, 17)
    assert np.allclose(g.lo, bundle.boxes[1, 0]) and np.allclose(g.hi, bundle.boxes[1, 1])
    zoom = eng.item_grid(1, 9, box=((-1, -1, -1), (0, 0, 0)))
    assert np.allclose(zoom.hi, bundle.boxes[1].mean(axis=0))
    with pytest.raises(InputError):
        eng.decode(z, resolution=8, box=((0, 0, 0), (0, 0, 0)))
    with pytest.raises(InputError):
        eng.decode(np.zeros(3), resolution=8)


def test_oom_halves_the_chunk_and_retries(bundle, monkeypatch):
    eng = Engine(bundle, chunk_points=4096, cache_bytes=0)
    z = bundle.latents[0].numpy()
    expected = eng.decode(z, resolution=16)
    real = Engine._decode_chunk
    calls = {"n": 0}

    def flaky(self, coords, mods):
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return real(self, coords, mods)

    monkeypatch.setattr(Engine, "_decode_chunk", flaky)
    got = eng.decode(z, resolution=16)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert eng.stats.oom_retries == 1 and eng.chunk_points == 2048

    monkeypatch.setattr(Engine, "_decode_chunk", lambda self, c, m: (_ for _ in ()).throw(
        torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")))
    with pytest.raises(ResourceLimitError, match="out of memory"):
        eng.decode(z, resolution=16)


def test_cache_hits_keys_and_budget(bundle):
    eng = Engine(bundle)
    z = bundle.latents[0].numpy()
    a = eng.decode(z, resolution=12)
    b = eng.decode(z.copy(), resolution=12)
    assert eng.cache.hits == 1 and np.array_equal(a, b) and not b.flags.writeable
    eng.decode(z, resolution=13)
    eng.decode(z, resolution=12, box=((-1,) * 3, (0,) * 3))
    assert eng.cache.misses == 3
    mixed = eng.decode(bundle.latents[:2], resolution=12)          # one hit, one miss
    assert mixed.shape[0] == 2 and eng.cache.hits == 2
    tiny = Engine(bundle, cache_bytes=3 * 12**3 * 4 + 1)               # room for one volume
    tiny.decode(bundle.latents[0], resolution=12)
    tiny.decode(bundle.latents[1], resolution=12)
    assert len(tiny.cache) == 1


def test_progressive_coarse_first(bundle):
    eng = Engine(bundle)
    stages = list(eng.decode_progressive(bundle.latents[0], resolution=40, coarse=10))
    assert [s for s, _ in stages] == [(10, 10, 10), (40, 40, 40)]
    assert stages[1][1].shape == (1, 3, 40, 40, 40)
    assert [s for s, _ in eng.decode_progressive(bundle.latents[0], resolution=8, coarse=10)] == [(8, 8, 8)]


def test_latest_wins(bundle):
    eng = Engine(bundle, chunk_points=1024, cache_bytes=0)
    delivered = []
    lock = threading.Lock()

    def on_result(res):
        with lock:
            delivered.append((res.request_id, res.stage, res.output))

    tickets = [eng.submit(DecodeRequest(bundle.latents[i % 4], resolution=40, coarse=12, then=lambda v: v.shape,
                                        tag=i), on_result) for i in range(6)]
    final = tickets[-1].wait(timeout=60)
    assert eng.scheduler.wait_idle(timeout=60)
    stats = eng.scheduler.stats
    assert final is not None and final.stage == "final" and final.tag == 5 and final.error is None
    assert final.output == (1, 3, 40, 40, 40)
    np.testing.assert_allclose(final.volume, eng.decode(bundle.latents[1], resolution=40), atol=1e-6)
    # every older request was superseded before starting or stopped/dropped once overtaken
    assert stats.submitted == 6 and stats.superseded + stats.stale == 5
    assert all(t.superseded for t in tickets[:-1])
    last_id = tickets[-1].request_id
    assert delivered[-1][:2] == (last_id, "final")
    assert not any(rid < last_id and stage == "final" for rid, stage, _ in delivered)
    # errors reach the caller, the worker survives
    bad = eng.submit(DecodeRequest(np.zeros(5), resolution=8))
    assert isinstance(bad.wait(timeout=30).error, InputError)
    assert eng.submit(DecodeRequest(bundle.latents[0], resolution=8)).wait(timeout=30).error is None
    eng.close()


@pytest.mark.parametrize("resolution", [33, (40, 36, 29)])
def test_adaptive_matches_dense_isosurfaces(smooth_bundle, resolution):
    eng = Engine(smooth_bundle, cache_bytes=0)
    z = smooth_bundle.latents[0].numpy()
    dense = eng.decode(z, resolution=resolution)[0]
    levels = np.percentile(dense, 90, axis=(1, 2, 3))                 # a surface around 10 % of the box
    res = eng.decode_adaptive(z, resolution=resolution, levels=levels, coarse_step=4)
    assert res.volume.shape == dense.shape and 0 < res.fraction < 0.95
    # decoded voxels hold exactly the dense values
    assert np.abs(res.volume - dense)[:, res.decoded].max() <= 1e-5
    for c in range(dense.shape[0]):
        d, a = _corners(dense[c]), _corners(res.volume[c])
        crossed = _crossed(d, levels[c])                                  # cells the dense surface crosses
        crossed_a = _crossed(a, levels[c])
        assert crossed.sum() > 50
        # the stated bound: every crossed cell was decoded exactly (value difference 0 there) ...
        assert np.abs(a - d)[:, crossed].max() <= 1e-5
        # ... and no other cell is crossed in the adaptive volume: the same marching-cubes cells
        assert np.array_equal(crossed, crossed_a)


def test_adaptive_meshes_equal_dense(smooth_bundle):
    pv = pytest.importorskip("pyvista")
    from scipy.spatial import cKDTree

    from molviz.mesh import isosurface
    eng = Engine(smooth_bundle, cache_bytes=0)
    z = smooth_bundle.latents[1]
    dense = eng.decode(z, resolution=33)[0]
    level = float(np.percentile(dense[0], 92))
    res = eng.decode_adaptive(z, resolution=33, levels=[level, np.nan])
    grid = eng.item_grid(1, 33)
    a = isosurface(res.volume[0], grid, level=level, mode="absolute")
    d = isosurface(dense[0], grid, level=level, mode="absolute")
    assert isinstance(a, pv.PolyData) and d.n_points > 100
    assert a.n_points == d.n_points and a.n_cells == d.n_cells
    hausdorff = max(cKDTree(a.points).query(d.points)[0].max(), cKDTree(d.points).query(a.points)[0].max())
    assert hausdorff <= 1e-4 * min(grid.spacing)


def test_adaptive_decode_stops_when_asked(smooth_bundle):
    """A view the user left stops its adaptive decode at the next chunk (the app's cancel button)."""
    from molviz.engine import Cancelled

    eng = Engine(smooth_bundle, cache_bytes=0, chunk_points=1024)
    asked = []
    with pytest.raises(Cancelled):
        eng.decode_adaptive(smooth_bundle.latents[0], resolution=48, levels=[0.1, np.nan],
                            should_stop=lambda: asked.append(1) or len(asked) > 2)
    assert len(asked) == 3


def test_interpolation_endpoints_reproduce_volumes(bundle):
    eng = Engine(bundle, cache_bytes=0)
    za, zb = eng.latents[0], eng.latents[2]
    for mode in ("linear", "slerp"):
        z = interpolate(za, zb, [0.0, 0.5, 1.0], mode=mode)
        vols = eng.decode(z, resolution=10)
        np.testing.assert_allclose(vols[0], eng.decode(za, resolution=10)[0], atol=1e-6)
        np.testing.assert_allclose(vols[2], eng.decode(zb, resolution=10)[0], atol=1e-6)
    zs, boxes = eng.interpolate_items(0, "item2", [0.0, 0.25, 1.0])
    assert np.allclose(boxes[0], bundle.boxes[0]) and np.allclose(boxes[2], bundle.boxes[2])
    assert np.allclose(boxes[1], 0.75 * bundle.boxes[0] + 0.25 * bundle.boxes[2])
    np.testing.assert_allclose(zs[2], eng.latents[2], atol=1e-6)


def test_slerp_keeps_the_norm():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=64), rng.normal(size=64)
    b *= np.linalg.norm(a) / np.linalg.norm(b)
    t = np.linspace(0, 1, 11)
    s = interpolate(a, b, t, mode="slerp")
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), np.linalg.norm(a), rtol=1e-5)
    assert np.linalg.norm(interpolate(a, b, 0.5)) < 0.9 * np.linalg.norm(a)   # linear shrinks
    # unequal norms: the norm moves linearly; near-parallel and opposite fall back to linear
    s2 = interpolate(a, 3 * b, t, mode="slerp")
    np.testing.assert_allclose(np.linalg.norm(s2, axis=1), np.linalg.norm(a) * (1 + 2 * t), rtol=1e-5)
    for other in (a * (1 + 1e-9), -a, np.zeros_like(a)):
        out = interpolate(a, other, t, mode="slerp")
        assert np.all(np.isfinite(out))
        np.testing.assert_allclose(out[-1], other, atol=1e-6)
    with pytest.raises(InputError):
        interpolate(a, b[:3], 0.5)


def test_path_passes_through_keyframes():
    keys = np.random.default_rng(1).normal(size=(4, 8))
    p = path(keys, 13, mode="slerp")
    assert p.shape == (13, 8)
    np.testing.assert_allclose(p[[0, 4, 8, 12]], keys, atol=1e-5)
    assert path(keys[:1], 3).shape == (3, 8)


def test_neighbours(bundle):
    eng = Engine(bundle)
    nn = eng.neighbours(eng.latents[2], 3)
    assert nn[0] == (2, 0.0) and len(nn) == 3 and nn[1][1] <= nn[2][1]
    assert 2 not in [i for i, _ in eng.neighbours(eng.latents[2], 3, exclude=2)]
    cos = neighbours(eng.latents, 5 * eng.latents[1], 1, metric="cosine")
    assert cos[0][0] == 1 and cos[0][1] == pytest.approx(0.0, abs=1e-6)


def _train_tiny_autoencoder(out, *, encoder_box: bool = False):
    pytest.importorskip("rdkit")
    from molviz.models import load_model
    from molviz.training import get_preset, prepare, train
    cfg = get_preset("freesolv", quick=True)
    cfg.data.max_items, cfg.data.heldout = 4, 0.0
    cfg.steps, cfg.eval_every, cfg.ckpt_every = 3, 0, 0
    cfg.encoder_box = encoder_box
    data = prepare(cfg.data, progress=False)
    train(cfg, data, out, device="cpu", progress=False)
    return load_model(out)


@pytest.fixture(scope="module")
def trained_autoencoder(tmp_path_factory):
    return _train_tiny_autoencoder(tmp_path_factory.mktemp("engine") / "freesolv-tiny")


@pytest.mark.slow
@pytest.mark.parametrize("encoder_box", [False, True])
def test_encoded_training_item_lands_on_its_latent(trained_autoencoder, tmp_path, encoder_box):
    bundle = (_train_tiny_autoencoder(tmp_path / "box", encoder_box=True) if encoder_box
              else trained_autoencoder)
    assert bundle.encoder.cfg.box_scale == encoder_box
    eng = Engine(bundle)
    spread = np.median([np.linalg.norm(eng.latents[i] - eng.latents[j])
                        for i in range(eng.n_items) for j in range(i)])
    for i in (0, 3):
        enc = eng.encode(bundle.items[i]["smiles"], details=True)
        assert enc.method == "encoder" and np.isfinite(enc.psnr)
        assert np.allclose(enc.box, bundle.boxes[i], atol=1e-3)
        nearest, dist = eng.neighbours(enc.latent, 1)[0]
        assert nearest == i and dist < 1e-3 * spread


def test_encode_rejects_bad_inputs(bundle):
    eng = Engine(bundle)
    with pytest.raises(Exception, match="channel"):   # bundle without recorded sampling config
        eng.encode("CCO")
    with pytest.raises(InputError):
        eng.item_index("no-such-item")


def _cli(argv):
    import argparse

    from molviz.engine import _cli
    parser = argparse.ArgumentParser(prog="molviz")
    _cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_neighbours_cli(bundle, tmp_path, capsys):
    import json

    from molviz.models import save_bundle
    path = save_bundle(bundle, tmp_path / "tiny")
    assert _cli(["neighbours", "item2", "--bundle", str(path), "-k", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["query"] == "item2" and len(rows[0]["neighbours"]) == 2
    assert all(n["index"] != 2 for n in rows[0]["neighbours"])
    np.savez(tmp_path / "z.npz", latents=bundle.latents[:1].numpy(), names=np.array(["q"]))
    assert _cli(["neighbours", "--latent", str(tmp_path / "z.npz"), "--bundle", str(path), "-k", "1"]) == 0
    assert "item0" in capsys.readouterr().out
    with pytest.raises(InputError):
        _cli(["neighbours", "--bundle", str(path)])
    with pytest.raises(InputError):
        _cli(["neighbours", "0", "--bundle", str(tmp_path / "missing")])


@pytest.mark.slow
def test_encode_cli_writes_latents(trained_autoencoder, tmp_path, capsys):
    import json
    smiles = trained_autoencoder.items[1]["smiles"]
    out = tmp_path / "enc.npz"
    assert _cli(["encode", smiles, "--bundle", str(trained_autoencoder.path), "-k", "1", "--out", str(out),
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["method"] == "encoder" and rows[0]["neighbours"][0]["index"] == 1
    with np.load(out, allow_pickle=False) as d:
        assert d["latents"].shape == (1, trained_autoencoder.latents.shape[1]) and d["boxes"].shape == (1, 2, 3)


@pytest.mark.slow
def test_bench_engine_quick_without_mesh_libraries(bundle, tmp_path):
    """The decode rows run where only torch exists (the GPU box): mesh rows are skipped with a note."""
    import json

    from molviz.models import save_bundle
    path = save_bundle(bundle, tmp_path / "tiny")
    code = (
        "import sys, argparse\n"
        "for m in ('pyvista', 'vtk', 'skimage', 'rdkit', 'gemmi'): sys.modules[m] = None\n"
        "from molviz.engine._bench import run\n"
        f"sys.exit(run(argparse.Namespace(quick=True, device='cpu', bundle=[{str(path)!r}], "
        f"json={str(tmp_path / 'b.json')!r})))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((tmp_path / "b.json").read_text())
    rows = {r["row"] for r in res["rows"]}
    assert {"decode", "update", "adaptive"} <= rows and "mesh" not in rows
    assert any("mesh rows skipped" in n for n in res["notes"])
    dec = next(r for r in res["rows"] if r["row"] == "decode")
    assert dec["points_per_s"] > 0 and 0 < dec["fraction_of_ceiling"]


def test_huge_volume_is_refused_cleanly(bundle):
    eng = Engine(bundle, cache_bytes=0)
    with pytest.raises(ResourceLimitError, match="resolution"):
        eng.decode(bundle.latents[:4], resolution=1024)   # 4 x 3 x 1024^3 x 4 B = 48 GiB


@pytest.fixture(scope="module")
def trained_autodecoder(tmp_path_factory):
    pytest.importorskip("rdkit")
    from molviz.models import load_model
    from molviz.training import get_preset, prepare, train
    cfg = get_preset("freesolv", quick=True)
    cfg.mode, cfg.augment = "autodecoder", False     # the preset's augmentation is for its auto-encoder
    cfg.data.max_items, cfg.data.heldout = 2, 0.0
    cfg.steps, cfg.eval_every, cfg.ckpt_every = 3, 0, 0
    data = prepare(cfg.data, progress=False)
    out = tmp_path_factory.mktemp("engine") / "freesolv-tiny-ad"
    train(cfg, data, out, device="cpu", progress=False)
    return load_model(out)


@pytest.mark.slow
def test_encode_fits_a_latent_for_auto_decoders(trained_autodecoder):
    eng = Engine(trained_autodecoder)
    start = eng.latents.mean(axis=0)
    enc = eng.encode(trained_autodecoder.items[1]["smiles"], details=True, steps=30)
    assert enc.method == "fit" and enc.latent.shape == start.shape and np.isfinite(enc.psnr)
    assert np.allclose(enc.box, trained_autodecoder.boxes[1], atol=1e-3)   # same box rule as training
    assert not np.allclose(enc.latent, start)                              # the latent moved
    assert not any(p.requires_grad for p in eng.model.parameters())        # network stays frozen


def test_pointwise_first_layer_and_half_precision_folding(bundle):
    z = bundle.latents[:1]
    x = torch.rand(2000, 3) * 2 - 1
    with torch.no_grad():
        ref = bundle.model(x[None], z)[0]
        w32 = fold_modulations(bundle.model, bundle.model.modulations(z))
        assert torch.allclose(folded_synthesis(x, w32, pointwise_first=True), ref, atol=2e-5)
        w16 = fold_modulations(bundle.model, bundle.model.modulations(z), dtype=torch.bfloat16)
        assert w16[0][0].dtype == torch.float32 and w16[1][0].dtype == torch.bfloat16
        half = folded_synthesis(x, w16)                      # bf16 runs on CPU too
    assert half.dtype == torch.float32 and (half - ref).abs().max() < 0.05 * ref.abs().max() + 1e-3


def test_adaptive_with_a_known_result_decodes_less_and_keeps_the_bound(smooth_bundle):
    eng = Engine(smooth_bundle, cache_bytes=0)
    z = smooth_bundle.latents[0].numpy()
    dense = eng.decode(z, resolution=40)[0]
    first = eng.decode_adaptive(z, resolution=40, levels=np.percentile(dense, 90, axis=(1, 2, 3)), coarse_step=4)
    levels = np.percentile(dense, 88, axis=(1, 2, 3))
    fresh = eng.decode_adaptive(z, resolution=40, levels=levels, coarse_step=4)
    before = eng.stats.decoded_points
    warm = eng.decode_adaptive(z, resolution=40, levels=levels, coarse_step=4, known=first)
    assert warm.reused == first.n_decoded and eng.stats.decoded_points - before < fresh.n_decoded / 2
    assert np.abs(warm.volume - dense)[:, warm.decoded].max() <= 1e-5
    for c in range(dense.shape[0]):
        assert np.array_equal(_crossed(_corners(dense[c]), levels[c]), _crossed(_corners(warm.volume[c]), levels[c]))
    with pytest.raises(InputError, match="does not fit"):
        eng.decode_adaptive(z, resolution=32, levels=levels, known=first)
