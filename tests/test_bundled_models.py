"""The models shipped in assets/models: they load, decode through the engine, and
reach the PSNR recorded in their own eval.json (within 0.1 dB) on a sample of items."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from molviz.engine import Engine
from molviz.models import ground_truth, load_model, psnr

MODELS = Path(__file__).resolve().parents[1] / "assets" / "models"
BUNDLES = ["freesolv", "6ega", "nmr-2juy"]
MAX_BYTES = 20 * 2**20


def _recorded(name: str) -> dict:
    return json.loads((MODELS / name / "eval.json").read_text())["psnr"]


@pytest.mark.parametrize("name", BUNDLES)
def test_bundle_is_complete_and_small(name):
    root = MODELS / name
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert size <= MAX_BYTES, f"{name} is {size / 2**20:.1f} MB; bundles must stay under 20 MB"
    b = load_model(root)
    cfg = b.config
    for key in ("model", "channel_names", "beta", "normalize", "resolution", "provenance", "training"):
        assert key in cfg, f"{name}: config lacks {key!r}"
    assert cfg["provenance"]["command"].startswith("molviz train")
    assert len(b.items) == b.n_items == len(b.boxes)
    assert "all@32" in _recorded(name) or "train@32" in _recorded(name)


def test_assets_stay_under_60_mb():
    root = MODELS.parent
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert size <= 60 * 2**20, f"assets/ is {size / 2**20:.1f} MB (limit 60 MB)"


def _sample(name: str, key: str, k: int) -> list[dict]:
    per_item = _recorded(name)[key]["per_item"]
    idx = np.linspace(0, len(per_item) - 1, num=min(k, len(per_item))).round().astype(int)
    return [per_item[i] for i in sorted(set(idx))]


@pytest.mark.parametrize("name,key,k", [
    ("freesolv", "train@16", 4),
    ("freesolv", "heldout@16", 2),
    ("6ega", "all@32", 1),
    ("nmr-2juy", "all@32", 2),
])
def test_bundle_reaches_recorded_psnr(name, key, k):
    bundle = load_model(MODELS / name)
    engine = Engine(bundle, device="cpu")
    res = int(_recorded(name)[key]["resolution"])
    for rec in _sample(name, key, k):
        i = int(rec["index"])
        pred = engine.decode(bundle.latents[i], resolution=res, cache=False)[0]
        truth = ground_truth(bundle, i, res).numpy()
        assert pred.shape == truth.shape == (len(bundle.channel_names), res, res, res)
        got = psnr(pred, truth)
        assert abs(got - rec["psnr"]) <= 0.1, f"{name} item {i}: {got:.2f} dB, recorded {rec['psnr']:.2f} dB"


def test_freesolv_encoder_reproduces_stored_latents():
    """The auto-encoder's stored latents are what its encoder gives for the item's field."""
    bundle = load_model(MODELS / "freesolv")
    for i in (0, 300):
        with torch.no_grad():
            field = ground_truth(bundle, i, int(bundle.config["resolution"]))[None]      # (1, C, R, R, R)
            z = bundle.encoder(field, torch.as_tensor(bundle.boxes[i:i + 1]))[0].numpy()  # the box: if it reads it
        stored = bundle.latents[i].numpy()
        assert np.linalg.norm(z - stored) <= 1e-3 * max(1.0, np.linalg.norm(stored))
