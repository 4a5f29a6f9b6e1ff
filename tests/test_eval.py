"""molviz.training evaluation: PSNR as the paper defines it, decode, eval CLI, ridge regression."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from molviz.models import ground_truth
from molviz.training import evaluate_bundle, get_preset, prepare, ridge_report, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    """A tiny FreeSolv auto-encoder (12 molecules, 8^3, XS), trained for a few steps."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("evalb")
    data = prepare(get_preset("freesolv", quick=True).data, progress=False)
    cfg = get_preset("freesolv", quick=True)
    cfg.steps, cfg.eval_items = 4, 2
    train(cfg, data, root / "fs", progress=False)
    return root / "fs"


def _cli(*argv):
    """Parse with the whole ``molviz`` command line (train/eval live in training, decode in the engine)."""
    from molviz.cli import build_parser
    args = build_parser().parse_args(list(argv))
    return args.func(args)


def test_psnr_of_a_hand_computed_case():
    from molviz.models import psnr
    # MSE = (0.1^2 * 3 + 0) / 4 = 0.0075 -> 20 log10(1 / sqrt(0.0075)) = 21.249 dB
    pred = np.array([[0.1, 0.1], [0.1, 0.5]])
    target = np.array([[0.0, 0.0], [0.0, 0.5]])
    assert psnr(pred, target) == pytest.approx(20 * math.log10(1 / math.sqrt(0.0075)))
    assert psnr(pred, target) == pytest.approx(21.2494, abs=1e-4)


def test_eval_psnr_matches_a_hand_computation_with_a_zero_network(bundle_dir):
    """Zero the last layer: the network outputs 0, so PSNR = -10 log10(mean(truth^2)), over all
    voxels and channels; per-channel PSNR likewise per channel."""
    from molviz.models import load_model
    b = load_model(bundle_dir)
    with torch.no_grad():
        b.model.last.weight.zero_()
        b.model.last.bias.zero_()
    rep = evaluate_bundle(b, resolutions=(8, 12), items="all", max_items=3, device="cpu", progress=False)
    for n in (8, 12):
        for row in rep["results"][str(n)]["per_item"]:
            truth = ground_truth(b, row["index"], n).double()
            assert truth.shape == (11, n, n, n) and float(truth.max()) <= 1.0 + 1e-6
            assert row["psnr"] == pytest.approx(-10 * math.log10(float((truth**2).mean())), rel=1e-9)
            c = 1   # carbon: present in every FreeSolv molecule
            assert row["channel_psnr"][c] == pytest.approx(-10 * math.log10(float((truth[c] ** 2).mean())), rel=1e-9)
    assert rep["n_items"] == 3
    # a zero network has lost every channel: peak ratio 0, all present channels below half
    assert rep["results"]["8"]["median_peak_ratio"] == 0.0 and rep["results"]["8"]["lost_fraction"] == 1.0


def test_eval_shape_metrics_of_a_zero_network(bundle_dir):
    """A network that draws nothing: PSNR is finite (the empty box scores), but the gain over the
    all-zero prediction is 0 dB, every present channel's IoU is 0, no atom is found (precision
    undefined: None) and nothing is spurious (nothing drawn: None)."""
    from molviz.models import load_model
    b = load_model(bundle_dir)
    with torch.no_grad():
        b.model.last.weight.zero_()
        b.model.last.bias.zero_()
    rep = evaluate_bundle(b, resolutions=(8,), items="all", max_items=2, device="cpu", progress=False,
                          levels=(0.5, 0.2, 0.1), recovery_resolution=12)
    r = rep["results"]["8"]
    assert math.isfinite(r["mean_psnr"]) and r["mean_psnr_gain"] == pytest.approx(0.0, abs=1e-9)
    assert r["mean_iou"] == {"0.5": 0.0, "0.2": 0.0, "0.1": 0.0}
    assert r["mean_spurious_fraction"] is None and r["mean_spurious_voxels"] == 0
    assert r["atoms"]["recall"] == 0.0 and r["atoms"]["precision"] is None and r["atoms"]["n_found"] == 0
    assert r["atoms"]["complete_fraction"] == 0.0 and r["atoms"]["resolution"] == 12
    for row in r["per_item"]:
        assert row["atoms"]["n_true"] > 0 and row["atoms"]["rmsd"] is None
    json.dumps(rep)                                           # what `molviz eval --json` prints


def test_eval_without_atom_recovery(bundle_dir):
    from molviz.models import load_model
    rep = evaluate_bundle(load_model(bundle_dir), resolutions=(8,), max_items=1, device="cpu", progress=False,
                          recovery_resolution=None)
    r = rep["results"]["8"]
    assert "atoms" not in r and "atoms" not in r["per_item"][0] and set(r["mean_iou"]) == {"0.5", "0.2"}


def test_peak_ratio_flags_a_collapsed_channel_that_psnr_hides():
    from molviz.training._eval import peak_ratios, peak_summary
    truth = torch.zeros(3, 16, 16, 16)
    truth[0, 2:14, 2:14, 2:14] = 0.8                    # big channel
    truth[1, 8, 8, 8] = 1.0                             # one-voxel "ligand"
    pred = truth.clone()
    pred[1] = 0.003 * truth[1]                          # collapsed
    from molviz.models import psnr
    assert psnr(pred, truth) > 38                       # PSNR barely notices
    r = peak_ratios(pred, truth)
    assert r[0] == pytest.approx(1.0) and r[1] == pytest.approx(0.003) and r[2] is None
    summary = peak_summary([[a] if a is not None else [] for a in r], ["big", "ligand", "absent"])
    assert summary["lost_fraction"] == 0.5 and summary["channel_peak_ratio"]["absent"] is None


def test_ground_truth_equals_the_field_sampler_at_any_resolution(bundle_dir):
    from molviz.chem import load
    from molviz.fields import Grid, sample_field
    from molviz.models import load_model
    b = load_model(bundle_dir)
    s = load(b.items[0]["smiles"], conformers=1, seed=0)
    grid = Grid.from_box(b.boxes[0, 0], b.boxes[0, 1], 20)
    want = sample_field(s, "freesolv", grid, beta=0.75)
    assert np.abs(ground_truth(b, 0, 20).numpy() - want).max() < 1e-5


def test_eval_cli_writes_eval_json(bundle_dir, capsys):
    assert _cli("eval", str(bundle_dir), "--resolution", "8", "16", "--items", "heldout", "--json",
                "--write", "--device", "cpu") == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["results"]) == {"8", "16"} and report["n_items"] == 1
    assert math.isfinite(report["results"]["8"]["mean_psnr"])
    assert len(report["results"]["16"]["channel_psnr"]) == 11
    saved = json.loads((bundle_dir / "eval.json").read_text())
    assert {"heldout@8", "heldout@16"} <= set(saved["psnr"])
    assert saved["psnr"]["heldout@8"]["mean_psnr"] == report["results"]["8"]["mean_psnr"]
    first = saved["psnr"]["heldout@8"]["command"]
    assert first.startswith("molviz eval ") and "--items heldout" in first and saved["commands"][-1] == first
    # a second evaluation keeps the first's command next to its own, and each result names the one that made it
    assert _cli("eval", str(bundle_dir), "--resolution", "8", "--items", "all", "--write", "--device", "cpu") == 0
    saved = json.loads((bundle_dir / "eval.json").read_text())
    assert saved["commands"][-2:] == [first, saved["psnr"]["all@8"]["command"]]
    assert saved["psnr"]["heldout@8"]["command"] == first and "heldout" not in saved["psnr"]["all@8"]["command"]


def test_eval_write_waits_for_a_concurrent_merge(bundle_dir):
    """Two evaluations writing one eval.json: the second merges after the first, losing nothing."""
    import threading

    from molviz._cmd import locked_folder as _locked

    path = bundle_dir / "eval.json"
    before = path.read_text() if path.exists() else None
    with _locked(bundle_dir):                 # another evaluation is merging its results
        t = threading.Thread(target=_cli, args=("eval", str(bundle_dir), "--resolution", "8", "--items", "all",
                                                "--write", "--device", "cpu"))
        t.start()
        t.join(timeout=15)                    # the tiny evaluation takes well under a second, then waits
        assert t.is_alive(), "eval --write did not wait for the lock"
        assert (path.read_text() if path.exists() else None) == before
    t.join(timeout=60)
    assert not t.is_alive()
    assert "all@8" in json.loads(path.read_text())["psnr"]


def test_decode_cli_writes_the_featurize_layout(bundle_dir, tmp_path):
    from molviz.models import load_model
    out = tmp_path / "d.npz"
    assert _cli("decode", str(bundle_dir), "--item", "2", "--resolution", "10", "--out", str(out),
                "--device", "cpu") == 0
    b = load_model(bundle_dir)
    with np.load(out, allow_pickle=False) as z:
        assert z["field"].shape == (11, 10, 10, 10)
        assert list(z["channels"]) == b.channel_names
        np.testing.assert_allclose(z["origin"], b.boxes[2, 0], rtol=1e-6)
        np.testing.assert_allclose(z["origin"] + 9 * z["spacing"], b.boxes[2, 1], rtol=1e-5)
        assert float(z["beta"]) == pytest.approx(0.75)


def test_ridge_report_gives_cross_validated_r2(bundle_dir):
    from molviz.models import load_model
    rep = ridge_report(load_model(bundle_dir))
    assert set(rep["r2"]) == {"MolMR", "ExactMolWt", "TPSA", "MolLogP", "NumRotatableBonds", "expt"}
    assert all(math.isfinite(v) and v <= 1.0 for v in rep["r2"].values())
    assert rep["n"]["expt"] == 12


def test_eval_ridge_alone_writes_only_the_ridge(bundle_dir, capsys):
    path = bundle_dir / "eval.json"
    before = json.loads(path.read_text())["psnr"] if path.exists() else {}
    assert _cli("eval", str(bundle_dir), "--ridge", "--write", "--device", "cpu") == 0
    out = capsys.readouterr().out
    assert "ridge R^2" in out and "mean PSNR" not in out
    saved = json.loads(path.read_text())
    assert saved["psnr"] == before and set(saved["ridge"]["r2"]) >= {"ExactMolWt", "MolMR"}


def test_heldout_on_a_bundle_without_split_is_an_input_error(tmp_path):
    from molviz.errors import InputError
    from molviz.models import load_model
    cfg = get_preset("nmr", quick=True)
    cfg.data.max_items, cfg.steps = 2, 1
    train(cfg, prepare(cfg.data, progress=False), tmp_path / "n", progress=False)
    with pytest.raises(InputError, match="no held-out"):
        evaluate_bundle(load_model(tmp_path / "n"), items="heldout", progress=False)


def test_results_table_reads_the_time_to_a_psnr_from_the_history(tmp_path):
    """`molviz results`: the time-to-38.5-dB row is the first in-training evaluation at or above it."""
    from molviz.models._cli import first_reaching, results_table
    b = tmp_path / "6ega"
    b.mkdir()
    (b / "bundle.json").write_text(json.dumps({"config": {"provenance": {"device": "cpu: test"}}}))
    hist = [{"step": 10, "loss": 1.0, "psnr": 40.0, "lr": 1e-3, "seconds": 1.0},   # a batch PSNR, not an eval
            {"step": 1000, "eval_psnr": 38.2, "seconds": 60.0},
            {"step": 2000, "eval_psnr": 38.6, "seconds": 150.0},
            {"step": 3000, "eval_psnr": 38.4, "seconds": 210.0}]
    (b / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in hist))
    assert first_reaching(b / "history.jsonl", 38.5)["step"] == 2000
    assert first_reaching(b / "history.jsonl", 39.0) is None
    row = [ln for ln in results_table(tmp_path).splitlines() if ln.startswith("| time to reach 38.5")]
    assert len(row) == 1 and "2.5 min (step 2000, 38.60 dB)" in row[0] and "cpu: test" in row[0]


def test_decode_cli_writes_maps_and_meshes_that_reopen(bundle_dir, tmp_path, monkeypatch):
    """Issue 4's exports from the command line: CCP4 maps (gemmi) and meshes (PyVista) of a decoded item,
    placed in angstrom on the item's box; a sub-box is a zoom of the same field."""
    import gemmi
    import pyvista as pv

    from molviz.engine import Engine
    from molviz.errors import InputError
    from molviz.mesh import isosurface
    eng = Engine(bundle_dir, device="cpu", cache_bytes=0)
    vol = eng.decode(eng.latents[1], resolution=12, cache=False)[0]
    c = eng.channel_names.index("C")
    assert _cli("decode", str(bundle_dir), "--item", "1", "--resolution", "12", "--channels", "C,density",
                "--out", str(tmp_path / "m.ccp4"), "--device", "cpu") == 0
    m = gemmi.read_ccp4_map(str(tmp_path / "m_C.ccp4"))
    assert np.allclose(np.array(m.grid, copy=False), vol[c], atol=1e-6)
    assert [m.header_float(w) for w in (50, 51, 52)] == pytest.approx(list(eng.boxes[1][0]), abs=1e-3)
    assert sorted(p.name for p in tmp_path.glob("m_*.ccp4")) == ["m_C.ccp4", "m_density.ccp4"]

    assert _cli("decode", str(bundle_dir), "--item", "1", "--resolution", "12", "--channels", "C",
                "--level", "10", "--level-mode", "percent", "--out", str(tmp_path / "s.ply"), "--device", "cpu") == 0
    mesh = pv.read(tmp_path / "s_C.ply")
    want = isosurface(vol[c], eng.item_grid(1, 12), level=10, mode="percent")
    assert mesh.n_points == want.n_points > 0
    assert np.allclose(np.sort(mesh.points, axis=0), np.sort(want.points, axis=0), atol=1e-4)

    # the GPU's way (forced here): marching cubes in torch on the device, the same vertices
    with monkeypatch.context() as m:
        m.setenv("MOLVIZ_SURFACES_ON_DEVICE", "1")
        assert _cli("decode", str(bundle_dir), "--item", "1", "--resolution", "12", "--channels", "C",
                    "--level", "10", "--level-mode", "percent", "--out", str(tmp_path / "d.obj"), "--device", "cpu") == 0
    dev = pv.read(tmp_path / "d_C.obj")
    assert dev.n_points == want.n_points
    assert np.allclose(np.sort(dev.points, axis=0), np.sort(want.points, axis=0), atol=1e-4)

    box = (-0.5, -0.5, -0.5, 0.5, 0.5, 0.5)
    assert _cli("decode", str(bundle_dir), "--item", "1", "--resolution", "7", "--box", *map(str, box),
                "--out", str(tmp_path / "z.npz"), "--device", "cpu") == 0
    with np.load(tmp_path / "z.npz", allow_pickle=False) as z:
        zoom = eng.decode(eng.latents[1], resolution=7, box=(box[:3], box[3:]), cache=False)[0]
        assert np.allclose(z["field"], zoom, atol=1e-6)
        lo, hi = eng.boxes[1]
        assert np.allclose(z["origin"], lo + 0.25 * (hi - lo), atol=1e-5)
    for bad, msg in [(["--channels", "Q"], "no channel 'Q'"), (["--out", str(tmp_path / "x.xyz")], "use a volume"),
                     (["--level", "2"], "no channel has a surface")]:
        argv = ["decode", str(bundle_dir), "--resolution", "8", "--device", "cpu", "--out", str(tmp_path / "e.ply")]
        with pytest.raises(InputError, match=msg):
            _cli(*argv, *bad)
