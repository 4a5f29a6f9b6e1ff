"""The command line never ends in a traceback: corrupted bundles and prepared-data files, fuzzed
with hypothesis, give a molviz error (exit 2) or work (exit 0), never an internal error (exit 3).

Run in-process through ``molviz.cli.main``, whose last line of defence reports any other
exception as a molviz bug with exit 3; these tests make sure that line is never reached.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from molviz.cli import main

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """A small real bundle (untrained XS network, 4 FreeSolv molecules) and a prepared-data file."""
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from app_bundles import make_small_bundle

    from molviz.training import get_preset, prepare
    root = tmp_path_factory.mktemp("fuzz")
    bundle = make_small_bundle(root / "b", n_items=4)
    cfg = get_preset("freesolv", quick=True)
    cfg.data.max_items = 4
    npz = prepare(cfg.data, progress=False).save(root / "p.npz")
    return bundle, npz


def _run(argv, capsys) -> int:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code in (0, 2), f"exit {code}: {err[-1500:]}"
    assert "Traceback" not in err
    return code


def _copy(bundle: Path, tmp: Path) -> Path:
    out = tmp / f"case{len(list(tmp.iterdir()))}"
    shutil.copytree(bundle, out)
    return out


JSONISH = st.recursive(st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True)
                       | st.text(max_size=8), lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)


@FUZZ
@given(data=st.data())
def test_bundle_json_edits(tiny, tmp_path_factory, capsys, data):
    """Any key of bundle.json (config, model architecture, items) replaced by any JSON value."""
    bundle, _ = tiny
    case = _copy(bundle, tmp_path_factory.mktemp("bj"))
    doc = json.loads((case / "bundle.json").read_text())
    section = data.draw(st.sampled_from(["config", "model", "items", "top"]))
    target = {"config": doc["config"], "model": doc["config"]["model"], "top": doc,
              "items": doc["items"][0] if doc["items"] else doc}[section]
    key = data.draw(st.sampled_from(sorted(target)))
    target[key] = data.draw(JSONISH)
    (case / "bundle.json").write_text(json.dumps(doc))
    _run(["decode", case, "--resolution", 8, "--device", "cpu", "--out", case / "x.npz"], capsys)
    _run(["neighbours", "--bundle", case, "0", "--device", "cpu"], capsys)


@FUZZ
@given(cut=st.floats(0.0, 1.0), flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=8),
       which=st.sampled_from(["bundle.json", "weights.safetensors", "arrays.safetensors"]))
def test_bundle_file_bytes(tiny, tmp_path_factory, capsys, cut, flips, which):
    """Flipped and truncated bytes in any of the bundle's files."""
    bundle, _ = tiny
    case = _copy(bundle, tmp_path_factory.mktemp("bb"))
    raw = bytearray((case / which).read_bytes())
    head = min(len(raw), 4096)                      # the JSON header of a safetensors file lives up front
    for where, value in flips:
        raw[int(where * (head - 1))] = value
    (case / which).write_bytes(bytes(raw[: max(1, int(len(raw) * (0.5 + cut / 2)))] if cut < 0.999 else raw))
    _run(["decode", case, "--resolution", 8, "--device", "cpu", "--out", case / "x.npz"], capsys)


@FUZZ
@given(data=st.data())
def test_prepared_data_edits(tiny, tmp_path_factory, capsys, data):
    """Prepared-data files with an array replaced, reshaped, emptied or corrupted."""
    _, npz = tiny
    tmp = tmp_path_factory.mktemp("pd")
    with np.load(npz, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    key = data.draw(st.sampled_from(sorted(arrays)))
    kind = data.draw(st.sampled_from(["drop", "empty", "nan", "flat", "string", "scale", "bytes"]))
    if kind == "drop":
        arrays.pop(key)
    elif kind == "empty":
        arrays[key] = np.atleast_1d(arrays[key])[:0]
    elif kind == "nan":
        arrays[key] = np.full(arrays[key].shape, np.nan) if arrays[key].dtype.kind == "f" else \
            np.atleast_1d(arrays[key])[::-1]
    elif kind == "flat":
        arrays[key] = arrays[key].reshape(-1)
    elif kind == "string":
        arrays[key] = np.array(data.draw(st.text(max_size=20)))
    elif kind == "scale":
        arrays[key] = (arrays[key] * data.draw(st.sampled_from([-1, 0, 1000]))).astype(arrays[key].dtype) \
            if arrays[key].dtype.kind in "if" else arrays[key]
    path = tmp / "p.npz"
    np.savez(path, **arrays)
    if kind == "bytes":
        raw = bytearray(path.read_bytes())
        for _ in range(8):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        path.write_bytes(bytes(raw))
    _run(["train", "freesolv", "--quick", "--data", path, "--out", tmp / "run", "--steps", 1, "--no-progress",
          "--device", "cpu", "--eval-every", 100, "--threads", 1], capsys)


def test_a_pickle_given_as_latents_is_refused(tiny, tmp_path, capsys):
    import pickle
    bundle, _ = tiny
    (tmp_path / "l.npz").write_bytes(pickle.dumps({"latents": [1, 2]}))
    assert main(["neighbours", "--bundle", str(bundle), "--latent", str(tmp_path / "l.npz")]) == 2
    assert "pickle" in capsys.readouterr().err
