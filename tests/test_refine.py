"""Latent refinement: an encoded (or stored) latent taken further against the field the atoms give,
on the shipped FreeSolv auto-encoder (real RDKit conformers, the real encoder and network)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from molviz.engine import Engine
from molviz.models import ground_truth, load_model
from molviz.models._refine import refine_latent
from molviz.training import evaluate_bundle

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FREESOLV = "assets/models/freesolv"


@pytest.fixture(scope="module")
def engine():
    torch.set_num_threads(1)
    return Engine(FREESOLV, device="cpu")


def test_refining_an_encoded_molecule_improves_its_reconstruction(engine):
    plain = engine.encode("CCOc1ccccc1Cl", details=True)
    refined = engine.encode("CCOc1ccccc1Cl", details=True, refine=40)
    assert plain.method == "encoder" and refined.method == "encoder+refine"
    assert refined.refine_steps == 40 and refined.encoder_latent is not None
    np.testing.assert_allclose(refined.encoder_latent, plain.latent, atol=1e-6)   # it starts at the encoder's
    assert not np.allclose(refined.latent, plain.latent)
    assert refined.psnr > plain.psnr + 0.3                 # measured: 31.2 -> 33 dB after 200 steps
    np.testing.assert_allclose(refined.box, plain.box)
    # the engine's network is frozen again and decodes as before
    assert not any(p.requires_grad for p in engine.model.parameters()) and not engine.model.training
    vol = engine.decode(refined.latent, resolution=8, cache=False)
    assert vol.shape[-3:] == (8, 8, 8) and np.isfinite(vol).all()


def test_refine_latent_restores_the_network_when_stopped(engine):
    b = engine.bundle
    model = b.model
    model.train()
    flags = [p.requires_grad for p in model.parameters()]
    target = ground_truth(b, 5, 16).flatten(1).T

    def stop(step, steps):
        if step == 3:
            raise InterruptedError("cancel")

    with pytest.raises(InterruptedError):
        refine_latent(model, b.latents[5], target, resolution=16, steps=50, on_step=stop)
    assert [p.requires_grad for p in model.parameters()] == flags and model.training
    model.eval()
    start = b.latents[5].clone()
    r = refine_latent(model, b.latents[5], target, resolution=16, steps=30, window=5, tol=0.0)
    assert torch.equal(b.latents[5], start)                  # the stored latent is left alone
    assert r.steps == 30 and r.losses[-1] < r.losses[0] and r.prediction.shape == target.shape
    assert refine_latent(model, start, target, resolution=16, steps=0).steps == 0


def test_eval_refine_reports_the_refined_shapes(tmp_path, capsys):
    b = load_model(FREESOLV)
    base = evaluate_bundle(b, resolutions=(16,), items="heldout", max_items=2, device="cpu", progress=False,
                           recovery_resolution=None)
    ref = evaluate_bundle(b, resolutions=(16,), items="heldout", max_items=2, device="cpu", progress=False,
                          recovery_resolution=None, refine=40)
    assert base["refine"] == 0 and ref["refine"] == 40
    r0, r1 = base["results"]["16"], ref["results"]["16"]
    assert r1["mean_psnr"] > r0["mean_psnr"]
    assert r1["mean_iou"]["0.5"] >= r0["mean_iou"]["0.5"]
    # the CLI writes it beside the plain evaluation, under its own key
    import shutil

    from molviz.cli import build_parser
    copy = tmp_path / "fs"
    shutil.copytree(FREESOLV, copy)
    args = build_parser().parse_args(["eval", str(copy), "--resolution", "16", "--items", "heldout",
                                      "--max-items", "1", "--atoms-resolution", "0", "--refine", "10",
                                      "--write", "--device", "cpu"])
    assert args.func(args) == 0
    assert "latents refined 10 steps" in capsys.readouterr().out
    saved = json.loads((copy / "eval.json").read_text())["psnr"]
    assert saved["heldout@16/max1/refine10"]["refine"] == 10 and "--refine 10" in \
        saved["heldout@16/max1/refine10"]["command"]


@pytest.mark.parametrize("command", [["eval", FREESOLV, "--refine"], ["encode", "--bundle", FREESOLV, "CCO", "--refine"]])
def test_a_refine_count_out_of_range_is_refused_with_the_range(command):
    from molviz.cli import build_parser
    from molviz.errors import InputError
    for bad in ("-1", "100001"):
        args = build_parser().parse_args([*command, bad])
        with pytest.raises(InputError, match=r"--refine: give 0\.\.100000 steps"):
            args.func(args)
