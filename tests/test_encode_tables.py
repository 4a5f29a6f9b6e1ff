"""molviz.engine.encode_tables: an auto-encoder's latents of many molecules from their atom tables, in batches,
equal to the latents training stored (the shipped FreeSolv bundle)."""
from __future__ import annotations

import numpy as np
import pytest

from molviz.engine import encode_tables
from molviz.errors import InputError
from molviz.models import load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bundle():
    return load_model("assets/models/freesolv")


def _tables(bundle, n: int):
    a = bundle.arrays
    off = np.asarray(a["atoms_offsets"])[: n + 1]
    return (a["atoms_xyz"], a["atoms_channel"], a["atoms_width"], off, bundle.boxes[:n], a["divisors"][:n])


def test_latents_equal_the_stored_ones_in_any_batch(bundle):
    want = bundle.latents.detach().float().numpy()[:40]
    seen = []
    z = encode_tables(bundle, *_tables(bundle, 40), batch=16, progress=lambda done, n: seen.append((done, n)))
    assert z.shape == want.shape and np.allclose(z, want, atol=1e-5)
    assert seen == [(16, 40), (32, 40), (40, 40)]
    assert np.allclose(encode_tables(bundle, *_tables(bundle, 40), batch=7), z, atol=1e-6)


def test_worker_processes_give_the_same_latents(bundle):
    z1 = encode_tables(bundle, *_tables(bundle, 70), batch=8)
    z2 = encode_tables(bundle, *_tables(bundle, 70), batch=8, workers=2)
    assert np.array_equal(z1, z2)


def test_wrong_shapes_and_auto_decoders_are_refused(bundle):
    xyz, ch, w, off, boxes, div = _tables(bundle, 10)
    with pytest.raises(InputError, match="boxes"):
        encode_tables(bundle, xyz, ch, w, off, boxes[:5], div)
    with pytest.raises(InputError, match="no encoder"):
        encode_tables(load_model("assets/models/nmr-2juy"), xyz, ch, w, off, boxes, div)
