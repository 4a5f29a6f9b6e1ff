"""molviz.training: prepared data, presets, the loop, checkpoints and resume, DDP, latent fitting."""
from __future__ import annotations

import json
import math
import os
import sys

import numpy as np
import pytest
import torch

from molviz.app._bench import free_port
from molviz.engine import fit_latent
from molviz.errors import InputError
from molviz.training import PreparedData, get_lr, get_preset, prepare, train
from molviz.training._checkpoint import STATE

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _quick(preset: str, **over):
    cfg = get_preset(preset, quick=True)
    cfg.eval_items = 2
    for k, v in over.items():
        setattr(cfg, k, v)
    return cfg


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("prepared")


@pytest.fixture(scope="module")
def freesolv_npz(data_dir):
    cfg = get_preset("freesolv", quick=True).data
    cfg.max_items = 10               # the first ten FreeSolv molecules: 3-20 atoms each
    return prepare(cfg, progress=False).save(data_dir / "freesolv.npz")


@pytest.fixture(scope="module")
def nmr_npz(data_dir):
    cfg = get_preset("nmr", quick=True).data
    cfg.max_items = 3
    return prepare(cfg, progress=False).save(data_dir / "nmr.npz")


@pytest.fixture(scope="module")
def ega_npz(data_dir):
    return prepare(get_preset("6ega", quick=True).data, progress=False).save(data_dir / "6ega.npz")


# ----------------------------------------------------------------------------- prepared data

def test_prepare_writes_a_plain_npz(freesolv_npz):
    with np.load(freesolv_npz, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    assert set(arrays) == {"xyz", "channel", "width", "offsets", "boxes", "divisors", "split", "meta"}
    assert all(a.dtype != object for a in arrays.values())
    data = PreparedData.load(freesolv_npz)
    assert data.n_items == 10 and data.n_channels == 11
    assert data.offsets[-1] == len(data.xyz) == len(data.channel) == len(data.width)
    assert data.channel.max() < data.n_channels
    assert data.boxes.shape == (10, 2, 3) and np.all(data.boxes[:, 1] > data.boxes[:, 0])
    assert data.divisors.shape == (10, 11) and np.all(data.divisors > 0)
    assert data.split.sum() == 1      # 10% held out
    item = data.items[1]
    assert item["smiles"] == "CCCCO" and item["expt"] == pytest.approx(-4.72)
    assert item["ExactMolWt"] == pytest.approx(74.073, abs=1e-3)
    assert data.meta["channel_names"][-1] == "density"


def test_each_fit_box_differs_and_the_nmr_box_is_shared(freesolv_npz, nmr_npz):
    fs, nmr = PreparedData.load(freesolv_npz), PreparedData.load(nmr_npz)
    assert len({tuple(b.ravel().round(3)) for b in fs.boxes}) == fs.n_items
    assert np.allclose(nmr.boxes, nmr.boxes[0])
    assert [it["conformer"] for it in nmr.items] == [0, 1, 2]
    # hydrogens are kept in the ensemble (392 atoms per model, with H)
    assert "H" in nmr.meta["channel_names"]


def test_prepared_data_for_another_preset_is_refused(freesolv_npz, tmp_path):
    with pytest.raises(InputError, match="another preset"):
        train(_quick("6ega"), PreparedData.load(freesolv_npz), tmp_path / "x", progress=False)


def test_missing_prepared_file_says_how_to_make_it(tmp_path):
    with pytest.raises(InputError, match="--prepare-only"):
        PreparedData.load(tmp_path / "none.npz")


# ----------------------------------------------------------------------------- schedule

def test_lr_schedule_warms_up_then_decays_to_the_floor():
    cfg = _quick("6ega", steps=100, warmup=10, min_lr_ratio=0.1)
    lrs = [get_lr(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert get_lr(100, cfg) == pytest.approx(0.1)


# ----------------------------------------------------------------------------- smoke runs

@pytest.mark.parametrize("preset", ["freesolv", "nmr", "nmr-ae"])
def test_one_step_smoke_train(preset, freesolv_npz, nmr_npz, tmp_path):
    from molviz.models import load_model
    data = PreparedData.load(freesolv_npz if preset == "freesolv" else nmr_npz)
    cfg = _quick(preset, steps=2)
    out = tmp_path / preset
    summary = train(cfg, data, out, progress=False, data_path="x.npz", command="molviz train test")
    assert summary["step"] == 2 and math.isfinite(summary["train_psnr"])
    b = load_model(out)
    assert b.n_items == data.n_items and (b.encoder is not None) == (cfg.mode == "autoencoder")
    assert b.config["beta"] == data.data_config.beta and b.config["protocol"] == cfg.protocol
    assert b.config["provenance"]["command"] == "molviz train test"
    assert np.array_equal(b.arrays["atoms_xyz"], data.xyz) and np.array_equal(b.arrays["atoms_offsets"], data.offsets)
    hist = [json.loads(ln) for ln in (out / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in hist if "loss" in h] == [1, 2]
    assert (out / "checkpoint" / STATE).is_file()


@pytest.mark.slow
def test_6ega_smoke_train_both_protocols(ega_npz, tmp_path):
    data = PreparedData.load(ega_npz)
    assert data.n_channels == 6 and data.items[0]["ExactMolWt"] == pytest.approx(580.19, abs=0.01)
    for protocol in ("grid", "continuous"):
        s = train(_quick("6ega", steps=2, protocol=protocol, points=256), data, tmp_path / protocol, progress=False)
        assert s["step"] == 2 and math.isfinite(s["loss"])


def test_continuous_protocol_trains_and_lowers_the_loss(nmr_npz, tmp_path):
    data = PreparedData.load(nmr_npz)
    s = train(_quick("nmr", steps=30, protocol="continuous", points=512, lr=1e-3), data, tmp_path / "c",
              progress=False)
    hist = [json.loads(ln) for ln in (tmp_path / "c" / "history.jsonl").read_text().splitlines() if '"loss"' in ln]
    assert s["step"] == 30
    assert np.mean([h["loss"] for h in hist[-5:]]) < np.mean([h["loss"] for h in hist[:5]])


def test_grid_points_take_the_voxel_centres_and_values():
    """--grid-fraction: indices pool_size + v stand for voxel v of the training grid."""
    from molviz.fields import normalized_coords
    from molviz.training._train import with_grid_points
    R, C, pool_size = 4, 2, 10
    grids = torch.arange(2 * C * R**3, dtype=torch.float32).reshape(2, C, R, R, R)
    grid_coords = normalized_coords(R)
    coords, target = torch.rand(2, 3, 3), torch.rand(2, 3, C)
    pidx = torch.tensor([[1, pool_size + 0, pool_size + 63], [pool_size + 5, 9, 2]])
    c, t = with_grid_points(coords, target, pidx, pool_size, grid_coords, grids)
    assert torch.equal(c[0, 0], coords[0, 0]) and torch.equal(t[1, 1], target[1, 1])
    assert torch.equal(c[0, 2], grid_coords[63]) and torch.equal(c[1, 0], grid_coords[5])
    assert t[0, 2].tolist() == [grids[0, 0].flatten()[63], grids[0, 1].flatten()[63]]
    assert t[1, 0].tolist() == [grids[1, 0].flatten()[5], grids[1, 1].flatten()[5]]
    assert torch.equal(grid_coords[63], torch.tensor([1.0, 1.0, 1.0]))   # the last voxel is the box's corner


def test_init_from_starts_where_the_bundle_ended(freesolv_npz, nmr_npz, tmp_path):
    """A warm start copies network, encoder or latents: zero steps later the outputs are identical."""
    from molviz.models import load_model
    for preset, npz in (("freesolv", freesolv_npz), ("nmr", nmr_npz)):
        data = PreparedData.load(npz)
        cfg = _quick(preset, steps=4, eval_every=0, ckpt_every=0, w0=20.0)
        train(cfg, data, tmp_path / f"{preset}-a", progress=False)
        s = train(cfg, data, tmp_path / f"{preset}-b", init_from=tmp_path / f"{preset}-a", stop_after=0,
                  progress=False)
        a, b = load_model(tmp_path / f"{preset}-a"), load_model(tmp_path / f"{preset}-b")
        assert s["step"] == 0 and b.model.cfg.w0 == 20.0
        assert torch.equal(a.latents, b.latents)
        x = torch.rand(1, 50, 3) * 2 - 1
        assert torch.equal(a.model(x, a.latents[:1]), b.model(x, b.latents[:1]))
        assert b.config["provenance"]["init_from"]["steps"] == 4
    cfg = _quick("nmr", steps=4, eval_every=0, ckpt_every=0, w0=30.0)
    with pytest.raises(InputError, match="w0 20.0"):
        train(cfg, PreparedData.load(nmr_npz), tmp_path / "c", init_from=tmp_path / "nmr-a", progress=False)
    with pytest.raises(InputError, match="autoencoder bundle"):
        train(_quick("nmr", w0=20.0), PreparedData.load(nmr_npz), tmp_path / "d",
              init_from=tmp_path / "freesolv-a", progress=False)


def test_time_limit_stops_cleanly_and_still_writes_a_bundle(nmr_npz, tmp_path):
    from molviz.models import load_model
    s = train(_quick("nmr", steps=10_000), PreparedData.load(nmr_npz), tmp_path / "t", time_limit=0.0,
              progress=False)
    assert s["stopped"] == "time-limit" and s["step"] < 10_000
    assert load_model(tmp_path / "t").config["provenance"]["stopped"] == "time-limit"


# ----------------------------------------------------------------------------- resume

@pytest.mark.parametrize("preset,protocol,balance,on_grid", [("freesolv", "grid", 0.0, 0.0),
                                                             ("nmr", "continuous", 0.0, 0.0),
                                                             ("nmr", "continuous", 0.5, 0.0),
                                                             ("nmr", "continuous", 0.0, 0.5)])
def test_resume_is_bit_exact(preset, protocol, balance, on_grid, freesolv_npz, nmr_npz, tmp_path):
    from safetensors.torch import load_file
    data = PreparedData.load(freesolv_npz if preset == "freesolv" else nmr_npz)
    cfg = _quick(preset, steps=6, protocol=protocol, points=64, eval_every=0, ckpt_every=0, channel_balance=balance,
                 grid_fraction=on_grid)
    train(cfg, data, tmp_path / "straight", progress=False)
    train(cfg, data, tmp_path / "resumed", stop_after=3, progress=False)
    assert json.loads((tmp_path / "resumed" / "checkpoint" / "state.json").read_text())["step"] == 3
    train(cfg, data, tmp_path / "resumed", resume=True, progress=False)
    a = load_file(str(tmp_path / "straight" / "checkpoint" / STATE))
    b = load_file(str(tmp_path / "resumed" / "checkpoint" / STATE))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ha = [json.loads(x) for x in (tmp_path / "straight" / "history.jsonl").read_text().splitlines() if '"loss"' in x]
    hb = [json.loads(x) for x in (tmp_path / "resumed" / "history.jsonl").read_text().splitlines() if '"loss"' in x]
    assert [h["loss"] for h in ha] == [h["loss"] for h in hb]


def test_channel_balance_weights_sparse_channels_up(freesolv_npz, tmp_path):
    """--channel-balance 0.5: the rare element channels get weights above 1 (capped), carbon about 1."""
    from molviz.training._train import BALANCE_CAP
    data = PreparedData.load(freesolv_npz)
    cfg = _quick("freesolv", steps=2, eval_every=0, ckpt_every=0, channel_balance=0.5)
    train(cfg, data, tmp_path / "b", progress=False)
    rec = next(json.loads(x) for x in (tmp_path / "b" / "history.jsonl").read_text().splitlines()
               if "channel_weights" in x)
    w = dict(zip(data.meta["channel_names"], rec["channel_weights"]))
    assert w["C"] == pytest.approx(1.0) and w["O"] > 1.5 and max(w.values()) <= BALANCE_CAP
    assert all(v >= 1.0 for v in w.values())


def test_resume_without_checkpoint_is_refused(nmr_npz, tmp_path):
    from molviz.errors import BundleError
    with pytest.raises(BundleError, match="no checkpoint"):
        train(_quick("nmr"), PreparedData.load(nmr_npz), tmp_path / "r", resume=True, progress=False)


# ----------------------------------------------------------------------------- DDP

def _ddp_worker(rank: int, world: int, port: int, npz: str, out: str, preset: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    cfg = _quick(preset, steps=8, eval_every=0, ckpt_every=0, lr=1e-3)
    try:
        train(cfg, PreparedData.load(npz), out, device="cpu", progress=False)
    finally:
        import torch.distributed as dist
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["nmr"])
def test_ddp_two_cpu_processes_follow_one(preset, nmr_npz, tmp_path):
    """Every rank draws the same global batch and keeps a shard, so 2 ranks reproduce 1 process up
    to float32 reduction order (gloo all-reduce vs one sum). The auto-decoder shards its batch of 4
    items 2+2; GroupNorm (not BatchNorm) keeps the encoder's statistics per item, so the
    auto-encoder is shard-invariant too. Over 8 steps the rounding differences stay ~1e-6
    relative; 1e-4 leaves room without hiding a wrong gradient (a missing all-reduce halves the
    effective batch and changes the loss at step 2 by ~1e-2)."""
    import torch.multiprocessing as mp
    data = PreparedData.load(nmr_npz)
    train(_quick(preset, steps=8, eval_every=0, ckpt_every=0, lr=1e-3), data, tmp_path / "one",
          device="cpu", progress=False)
    mp.start_processes(_ddp_worker, args=(2, free_port(), str(nmr_npz), str(tmp_path / "two"), preset),
                       nprocs=2, join=True, start_method="spawn")

    def losses(d):
        return [json.loads(x)["loss"] for x in (d / "history.jsonl").read_text().splitlines() if '"loss"' in x]

    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 8
    assert one[-1] < one[0]
    np.testing.assert_allclose(two, one, rtol=1e-4)
    assert json.loads((tmp_path / "two" / "bundle.json").read_text())["config"]["provenance"]["world_size"] == 2


# ----------------------------------------------------------------------------- latent fitting

def test_fit_latent_lowers_the_loss_for_a_new_conformer(nmr_npz, tmp_path):
    from molviz.chem import load, superpose
    from molviz.models import load_model
    from molviz.training._data import _data_path
    data = PreparedData.load(nmr_npz)
    train(_quick("nmr", steps=40, lr=1e-3), data, tmp_path / "b", progress=False)
    bundle = load_model(tmp_path / "b")
    ensemble = superpose(load(str(_data_path("nmr-2juy", "2juy.pdb"))))
    res = fit_latent(bundle, ensemble, conformer=5, steps=60, lr=1e-2, window=10, tol=1e-6, progress=False)
    assert res.latent.shape == (bundle.latents.shape[1],)
    assert res.losses[-1] < res.losses[0]
    assert np.allclose(res.box, bundle.boxes[0])      # the ensemble's shared box
    path = res.save(tmp_path / "latent.npz")
    with np.load(path, allow_pickle=False) as z:
        assert z["latent"].shape == res.latent.shape and float(z["psnr"]) == pytest.approx(res.psnr)


def test_fit_latent_stops_on_convergence(nmr_npz, tmp_path):
    from molviz.chem import load
    from molviz.models import load_model
    train(_quick("nmr", steps=2), PreparedData.load(nmr_npz), tmp_path / "b", progress=False)
    res = fit_latent(load_model(tmp_path / "b"), load("CCO", conformers=1), steps=5000, lr=1e-2, window=5,
                     tol=0.5, progress=False)
    assert res.converged and res.steps < 5000


def test_training_package_imports_without_rdkit_gemmi_pyvista():
    import subprocess
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('rdkit', 'gemmi', 'pyvista', 'vtk', 'sklearn'):\n"
            "            raise ImportError('blocked ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import molviz.training, molviz.training._cli\n"
            "from molviz.training import train, evaluate_bundle, PreparedData\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_time_budget_compresses_the_schedule_and_stops(nmr_npz, tmp_path, monkeypatch):
    import itertools
    import time as real_time
    import types

    from molviz.training import _train

    # a clock that moves 10 ms per reading, so the test does not depend on how loaded the machine is
    ticks = itertools.count()
    clock = types.SimpleNamespace(time=lambda: 1e9 + 0.01 * next(ticks), strftime=real_time.strftime,
                                  gmtime=real_time.gmtime)
    monkeypatch.setattr(_train, "time", clock)
    cfg = _quick("nmr", steps=1_000_000, warmup=1, log_every=1)
    s = train(cfg, PreparedData.load(nmr_npz), tmp_path / "b", time_budget=1.0, progress=False)
    assert s["stopped"] == "time-budget" and s["step"] < 1_000_000
    lrs = [json.loads(x)["lr"] for x in (tmp_path / "b" / "history.jsonl").read_text().splitlines() if '"lr"' in x]
    # by step count the cosine would barely have moved; by the clock it ends near the floor
    assert lrs[-1] < 0.2 * cfg.lr


def test_cli_prepare_then_train_then_fit(tmp_path, capsys):
    from molviz.cli import main
    npz, out = tmp_path / "p.npz", tmp_path / "b"
    assert main(["train", "nmr", "--quick", "--max-items", "2", "--box", "spacing", "--spacing", "1.0",
                 "--hydrogens", "remove", "--prepare-only", str(npz), "--no-progress"]) == 0
    data = PreparedData.load(npz)
    assert np.allclose(data.boxes[:, 1] - data.boxes[:, 0], 7.0)      # 8 voxels, 1 A apart
    assert "H" not in data.meta["channel_names"]
    assert main(["train", "nmr", "--quick", "--data", str(npz), "--out", str(out), "--steps", "3",
                 "--no-progress"]) == 0
    assert "completed at step 3" in capsys.readouterr().out
    cfg = json.loads((out / "bundle.json").read_text())["config"]
    assert cfg["grid"]["mode"] == "spacing" and cfg["provenance"]["command"].startswith("molviz train nmr")
    assert main(["fit", str(out), "CCO", "--out", str(tmp_path / "z.npz"), "--steps", "5",
                 "--device", "cpu"]) == 0
    with np.load(tmp_path / "z.npz", allow_pickle=False) as z:
        assert z["latent"].shape == (16,)


def test_rotate_180_is_the_field_of_the_turned_molecule(freesolv_npz):
    """--augment's premise: flipping two axes of an item's voxel grid gives the field of the molecule turned
    180 degrees about the third axis through the box centre, sampled on the same grid."""
    from molviz.fields import grid_field
    from molviz.training._train import rotate_180
    data = PreparedData.load(freesolv_npz)
    i, R, beta = 3, 12, data.data_config.beta
    xyz, channel, width = data.table(i)
    box = np.asarray(data.boxes[i], np.float64)
    centre = box.mean(axis=0)
    field = grid_field(xyz, channel, width, data.n_channels, box, R, beta=beta)[None]       # (1, C, R, R, R)
    for which, axis in ((1, 0), (2, 1), (3, 2)):
        turned = 2 * centre - xyz                               # point reflection, then undo it along `axis`
        turned[:, axis] = xyz[:, axis]
        want = grid_field(turned.astype(xyz.dtype), channel, width, data.n_channels, box, R, beta=beta)
        got = rotate_180(field, torch.tensor([which]))[0]
        assert torch.allclose(got, want, atol=1e-5), which
        assert not torch.allclose(got, field[0], atol=1e-3)     # the molecule is not symmetric
    assert torch.equal(rotate_180(field, torch.tensor([0])), field)


def test_augmented_smoke_train_and_refusal(freesolv_npz, ega_npz, tmp_path):
    data = PreparedData.load(freesolv_npz)
    cfg = _quick("freesolv", steps=2, augment=True)
    summary = train(cfg, data, tmp_path / "aug", progress=False)
    assert summary["step"] == 2 and math.isfinite(summary["train_psnr"])
    with pytest.raises(InputError, match="--augment"):
        train(_quick("6ega", steps=1, augment=True), PreparedData.load(ega_npz), tmp_path / "x", progress=False)


def test_library_and_ensemble_are_the_freesolv_and_nmr_recipes():
    """`molviz train library | ensemble INPUT...` train like the presets; only the molecules differ."""
    for recipe, preset in (("library", "freesolv"), ("ensemble", "nmr")):
        a, b = get_preset(recipe).to_dict(), get_preset(preset).to_dict()
        assert a.pop("preset") == recipe and b.pop("preset") == preset
        da, db = a.pop("data"), b.pop("data")
        assert a == b
        assert da.pop("dataset") == recipe and db.pop("dataset") == preset
        da.pop("channels"), db.pop("channels")
        assert da == db
    assert get_preset("library").data.channels == "elements+density"


def test_a_library_too_large_to_hold_makes_its_grids_per_batch(freesolv_npz, tmp_path):
    """target_storage "batch" (what "auto" picks when every grid would not fit) trains exactly as held grids
    do: the same grids, made from the atom tables when a batch needs them."""
    from safetensors.torch import load_file

    from molviz.training._train import BatchFields, grid_fields, target_storage

    data = PreparedData.load(freesolv_npz)
    held = grid_fields(data, 16, data.divisors, device=torch.device("cpu"), dtype=torch.float32)
    lazy = BatchFields(data, 16, data.divisors, device=torch.device("cpu"))
    assert lazy.shape == tuple(held.shape)
    assert torch.equal(lazy[torch.tensor([2, 0])], held[torch.tensor([2, 0])])
    assert torch.equal(lazy[1:3], held[1:3]) and torch.equal(lazy[1], held[1])
    assert target_storage("auto", 93_087, 9, 16, torch.device("cpu")) == "batch"
    assert target_storage("auto", 93_087, 9, 16, torch.device("cuda")) == "fp16"
    runs = {}
    for store in ("fp32", "batch"):
        cfg = _quick("freesolv", steps=4, eval_every=0, ckpt_every=0, channel_balance=0.5, target_storage=store)
        train(cfg, data, tmp_path / store, progress=False)
        runs[store] = load_file(str(tmp_path / store / "checkpoint" / STATE))
    for k in runs["fp32"]:
        assert torch.equal(runs["fp32"][k], runs["batch"][k]), k
