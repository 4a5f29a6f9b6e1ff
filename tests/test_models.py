"""Tests of molviz.models: network shapes and initialisation, bundles, PSNR."""
from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from molviz.errors import BundleError
from molviz.models import (
    MODEL_SIZES,
    Bundle,
    Encoder3D,
    EncoderConfig,
    ModulatedSiren,
    config_for_size,
    load_model,
    psnr,
    psnr_per_channel,
    save_bundle,
)


@pytest.mark.parametrize("modulation", ["mehta", "film"])
@pytest.mark.parametrize("size", sorted(MODEL_SIZES))
def test_siren_shapes(size, modulation):
    cfg = config_for_size(size, out_dim=6, modulation=modulation)
    net = ModulatedSiren(cfg)
    out = net(torch.rand(3, 17, 3) * 2 - 1, torch.randn(3, cfg.latent_dim))
    assert out.shape == (3, 17, 6)
    assert len(net.modulations(torch.randn(3, cfg.latent_dim))) == cfg.depth


def test_siren_initialisation_bounds():
    torch.manual_seed(0)
    cfg = config_for_size("M", out_dim=2)
    net = ModulatedSiren(cfg)
    first, second = net.layers[0].linear, net.layers[1].linear
    assert first.weight.abs().max() <= 1 / cfg.in_dim + 1e-7
    assert first.weight.abs().max() > 0.9 / cfg.in_dim  # really uniform over the whole range
    bound = math.sqrt(6 / cfg.hidden) / cfg.w0_hidden
    assert second.weight.abs().max() <= bound + 1e-7
    assert second.weight.abs().max() > 0.95 * bound
    # SIREN's point: pre-activations of hidden layers stay of order one across depth.
    x = torch.rand(1, 4096, 3) * 2 - 1
    h = net.layers[0](x)
    for layer in net.layers[1:]:
        pre = layer.linear(h)
        assert 0.2 < pre.std() < 2.0
        h = torch.sin(layer.w0 * pre)


def test_film_starts_as_plain_siren():
    cfg = config_for_size("XS", out_dim=2, modulation="film")
    net = ModulatedSiren(cfg)
    x = torch.rand(2, 5, 3)
    a = net(x, torch.randn(2, cfg.latent_dim))
    b = net(x, torch.randn(2, cfg.latent_dim))
    assert torch.allclose(a, b)  # zero-initialised projection: latent has no effect yet


def test_synthesis_with_precomputed_modulations_equals_forward():
    cfg = config_for_size("S", out_dim=3)
    net = ModulatedSiren(cfg)
    z = torch.randn(2, cfg.latent_dim)
    x = torch.rand(2, 50, 3) * 2 - 1
    mods = net.modulations(z)
    assert torch.equal(net.synthesis(x, mods), net(x, z))


@pytest.mark.parametrize("downsample", [True, False])
def test_encoder_shapes(downsample):
    enc = Encoder3D(EncoderConfig(in_channels=4, latent_dim=12, width=4, downsample=downsample))
    assert enc(torch.rand(2, 4, 16, 16, 16)).shape == (2, 12)


def test_box_scale_encoder_reads_the_box_size(tmp_path):
    torch.manual_seed(0)
    enc = Encoder3D(EncoderConfig(in_channels=2, latent_dim=6, width=4, box_scale=True)).eval()
    f = torch.rand(1, 2, 8, 8, 8).expand(2, -1, -1, -1, -1)           # the same field twice
    small = torch.tensor([[-4.0, -4, -4], [4, 4, 4]])
    boxes = torch.stack([small, 2 * small])                            # the second molecule is twice as big
    with torch.no_grad():
        z = enc(f, boxes)
        assert z.shape == (2, 6) and not torch.allclose(z[0], z[1])
        torch.testing.assert_close(enc(f[:1], boxes[:1]), z[:1])
    with pytest.raises(ValueError, match="box"):
        enc(f)
    # the setting survives a bundle round trip
    cfg = config_for_size("XS", out_dim=2)
    b = Bundle(config={"name": "t", "channel_names": ["C", "N"], "beta": 0.75}, model=ModulatedSiren(cfg),
               encoder=Encoder3D(EncoderConfig(in_channels=2, latent_dim=cfg.latent_dim, width=4, box_scale=True)),
               latents=torch.zeros(2, cfg.latent_dim), boxes=boxes.numpy(), items=[{"name": "a"}, {"name": "b"}])
    save_bundle(b, tmp_path / "b")
    c = load_model(tmp_path / "b")
    assert c.encoder.cfg.box_scale
    with torch.no_grad():
        assert torch.equal(b.encoder.eval()(f, boxes), c.encoder(f, boxes))


def _tiny_bundle(with_encoder: bool) -> Bundle:
    torch.manual_seed(1)
    cfg = config_for_size("XS", out_dim=3)
    enc = Encoder3D(EncoderConfig(in_channels=3, latent_dim=cfg.latent_dim, width=4)) if with_encoder else None
    return Bundle(
        config={"name": "tiny", "channel_names": ["C", "N", "density"], "beta": 0.75},
        model=ModulatedSiren(cfg), encoder=enc, latents=torch.randn(4, cfg.latent_dim),
        boxes=np.tile(np.array([[-5, -5, -5], [5, 5, 5]], np.float32), (4, 1, 1)),
        items=[{"name": f"m{i}", "smiles": "C"} for i in range(4)],
        arrays={"xyz": np.random.rand(7, 3).astype(np.float32)}, extras={"note": "x"},
    )


@pytest.mark.parametrize("with_encoder", [False, True])
def test_bundle_round_trip_bit_for_bit(tmp_path, with_encoder):
    b = _tiny_bundle(with_encoder)
    save_bundle(b, tmp_path / "b")
    c = load_model(tmp_path / "b")
    assert c.kind == b.kind and c.items == b.items and c.extras == b.extras
    assert torch.equal(c.latents, b.latents)
    np.testing.assert_array_equal(c.boxes, b.boxes)
    np.testing.assert_array_equal(c.arrays["xyz"], b.arrays["xyz"])
    x = torch.rand(4, 64, 3) * 2 - 1
    b.model.eval()
    with torch.no_grad():
        assert torch.equal(b.model(x, b.latents), c.model(x, c.latents))
        if with_encoder:
            b.encoder.eval()
            f = torch.rand(2, 3, 8, 8, 8)
            assert torch.equal(b.encoder(f), c.encoder(f))
    # Loading through the manifest path works too.
    assert load_model(tmp_path / "b" / "bundle.json").n_items == 4


def test_save_replaces_atomically(tmp_path):
    b = _tiny_bundle(False)
    save_bundle(b, tmp_path / "b")
    b.items[0]["name"] = "changed"
    save_bundle(b, tmp_path / "b")
    assert load_model(tmp_path / "b").items[0]["name"] == "changed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no temporary folders left


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("how", ["file", "weights"])
def test_pickle_is_refused_without_unpickling(tmp_path, how):
    marker = tmp_path / "PWNED"
    payload = pickle.dumps(_Payload(marker))
    if how == "file":
        target = tmp_path / "model.pt"
        target.write_bytes(payload)
    else:  # a bundle folder whose weights were swapped for a pickle
        save_bundle(_tiny_bundle(False), tmp_path / "b")
        (tmp_path / "b" / "weights.safetensors").write_bytes(payload)
        target = tmp_path / "b"
    with pytest.raises(BundleError, match="never unpickles|pickle"):
        load_model(target)
    assert not marker.exists()
    # The payload is real: unpickling it in a child process does leave the marker.
    probe = tmp_path / "payload.bin"
    probe.write_bytes(payload)
    subprocess.run([sys.executable, "-c", f"import pickle; pickle.loads(open({str(probe)!r}, 'rb').read())"],
                   check=True)
    assert marker.exists()


def test_torch_save_checkpoint_is_refused(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(BundleError, match="not a model bundle"):
        load_model(path)


@pytest.mark.parametrize("broken", ["missing", "json", "format"])
def test_damaged_bundles_give_clear_errors(tmp_path, broken):
    save_bundle(_tiny_bundle(False), tmp_path / "b")
    if broken == "missing":
        (tmp_path / "b" / "weights.safetensors").unlink()
    elif broken == "json":
        (tmp_path / "b" / "bundle.json").write_text("{not json")
    else:
        (tmp_path / "b" / "bundle.json").write_text('{"format": "other"}')
    with pytest.raises(BundleError):
        load_model(tmp_path / "b")


def test_psnr_hand_computed():
    pred = np.zeros((2, 4, 4, 4))
    target = np.zeros((2, 4, 4, 4))
    target[0, 0, 0, 0] = 1.0  # one voxel off by 1 out of 128: MSE = 1/128
    assert psnr(pred, target) == pytest.approx(10 * math.log10(128))
    assert psnr(torch.tensor(pred), torch.tensor(target)) == pytest.approx(10 * math.log10(128))
    per = psnr_per_channel(pred, target)
    assert per[0] == pytest.approx(10 * math.log10(64)) and per[1] == math.inf
    assert psnr(np.full(10, 0.5), np.full(10, 0.4)) == pytest.approx(20.0)


def test_saved_bundle_has_ordinary_modes(tmp_path):
    umask = os.umask(0o022)
    try:
        save_bundle(_tiny_bundle(False), tmp_path / "b")
    finally:
        os.umask(umask)
    assert (tmp_path / "b").stat().st_mode & 0o777 == 0o755
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in (tmp_path / "b").iterdir())
