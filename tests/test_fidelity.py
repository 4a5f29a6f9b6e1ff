"""Shape fidelity beside PSNR: isosurface IoU, atom recovery, spurious density, PSNR gain
(molviz.models._metrics, molviz.fields._atoms, molviz.training._eval), on hand-made fields."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from molviz.fields import Grid, field_from_table, parse_channels, peaks_from_table
from molviz.fields._atoms import element_atoms, find_atoms, local_maxima, match_atoms
from molviz.models._metrics import iou, psnr_gain, spurious_density
from molviz.training._eval import shape_metrics

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CHANNELS = parse_channels("freesolv")          # H C N O F P S Cl Br I density
BETA = 0.75
# ethanol-like, by hand: two bonded carbons 1.52 A apart (one merged peak in the C channel),
# an oxygen, five hydrogens (channel index, element)
ATOMS = [((0.00, 0.00, 0.00), 1), ((1.52, 0.00, 0.00), 1), ((2.05, 1.33, 0.10), 3),
         ((-0.38, 1.02, 0.05), 0), ((-0.36, -0.52, 0.88), 0), ((-0.37, -0.50, -0.88), 0),
         ((1.88, -0.52, 0.88), 0), ((1.90, -0.50, -0.89), 0)]
GRID = Grid.from_box((-4.5, -4.5, -4.5), (6.0, 6.0, 6.0), 32)   # ~0.34 A voxels


def _table(shift=(0.0, 0.0, 0.0), extra=()):
    """Atom table rows: each atom in its element channel and in the density channel."""
    xyz, ch = [], []
    for p, c in [*ATOMS, *extra]:
        for cc in (c, 10):
            xyz.append(np.add(p, shift))
            ch.append(cc)
    xyz, ch = np.array(xyz, np.float32), np.array(ch, np.int64)
    z = np.array([{0: 1, 1: 6, 3: 8, 10: 6}[int(c)] for c in ch])
    width = np.array([CHANNELS[int(c)].widths(np.array([e]))[0] for c, e in zip(ch, z)], np.float32)
    return xyz, ch, width


DIVISORS = peaks_from_table(*_table(), 11, beta=BETA).numpy()
TRUE_XYZ, TRUE_EL = element_atoms(*_table()[:2], CHANNELS)


def _field(shift=(0.0, 0.0, 0.0), extra=()) -> torch.Tensor:
    """The field of the (shifted) atoms, divided by the unshifted molecule's divisors, like a decoding."""
    return field_from_table(*_table(shift, extra), 11, GRID, beta=BETA, scale=DIVISORS)


def _recover(field):
    found = find_atoms(field, GRID, CHANNELS, beta=BETA, scale=DIVISORS)
    return found, match_atoms(found.xyz, found.element, TRUE_XYZ, TRUE_EL)


def test_the_true_atoms_are_the_element_channel_rows():
    assert sorted(TRUE_EL.tolist()) == [1, 1, 1, 1, 1, 6, 6, 8]           # density rows are not atoms
    assert len(TRUE_XYZ) == len(ATOMS)


def test_bonded_carbons_merge_into_one_peak_that_the_fit_splits():
    """At beta 0.75 a carbon blob has sigma 0.82 A: two carbons 1.52 A apart make one maximum."""
    truth = _field()
    peaks = local_maxima(truth, GRID, threshold=0.3)
    assert len(peaks[1]) == 1                                              # the naive detector sees one C
    found, m = _recover(truth)
    assert int((found.element == 6).sum()) == 2


def test_a_perfect_prediction_scores_iou_1_and_recovers_every_atom():
    truth = _field()
    ious = iou(truth, truth, level=0.5)
    assert ious[0] == ious[1] == ious[3] == ious[10] == 1.0 and ious[2] is None   # no N: no surface
    m = shape_metrics(truth, truth)
    assert m["iou"] == {"0.5": 1.0, "0.2": 1.0} and m["spurious_fraction"] == 0.0 and m["spurious_voxels"] == 0
    found, rec = _recover(truth)
    assert rec["recall"] == rec["precision"] == rec["element_accuracy"] == 1.0 and rec["complete"] is True
    assert rec["rmsd"] < 0.01
    np.testing.assert_allclose(found.amplitude, 1.0, atol=0.02)           # one atom per blob, full height


def test_a_prediction_shifted_by_0_3_A_is_recovered_with_rmsd_0_3():
    found, rec = _recover(_field(shift=(0.3, 0.0, 0.0)))
    assert rec["recall"] == 1.0 and rec["precision"] == 1.0 and rec["complete"] is True
    assert rec["rmsd"] == pytest.approx(0.3, abs=0.02)
    assert iou(_field(shift=(0.3, 0.0, 0.0)), _field(), level=0.5)[1] < 1.0


def test_a_prediction_shifted_by_1_A_recovers_nothing():
    found, rec = _recover(_field(shift=(1.0, 0.0, 0.0)))
    assert rec["n_found"] == len(ATOMS) and rec["recall"] == 0.0 and rec["precision"] == 0.0
    assert rec["rmsd"] is None and rec["element_accuracy"] is None and rec["complete"] is False


def test_an_empty_prediction_has_iou_0_recall_0_and_no_precision():
    truth = _field()
    empty = torch.zeros_like(truth)
    m = shape_metrics(empty, truth)
    assert m["iou"] == {"0.5": 0.0, "0.2": 0.0}
    assert m["spurious_fraction"] is None and m["spurious_voxels"] == 0   # nothing drawn: undefined
    assert m["psnr_gain"] == pytest.approx(0.0, abs=1e-12)
    found, rec = _recover(empty)
    assert len(found) == 0 and rec["recall"] == 0.0
    assert rec["precision"] is None and rec["rmsd"] is None and rec["complete"] is False


def test_an_extra_blob_in_empty_space_is_spurious_and_an_extra_atom():
    truth = _field()
    pred = _field(extra=[((4.5, 4.5, -3.0), 3)])                           # an oxygen nobody put there
    frac, count = spurious_density(pred, truth, level=0.5, empty=0.05)
    drawn = int((pred >= 0.5).sum())
    blob = int(((pred >= 0.5) & (truth < 0.05)).sum())
    assert count == blob > 0 and frac == pytest.approx(blob / drawn)
    assert frac < 0.5                                                      # most of what is drawn is right
    found, rec = _recover(pred)
    assert rec["recall"] == 1.0 and rec["precision"] == pytest.approx(len(ATOMS) / (len(ATOMS) + 1))


def test_psnr_gain_is_psnr_minus_the_all_zero_baseline():
    from molviz.models import psnr
    truth = _field()
    pred = 0.9 * truth
    assert psnr_gain(pred, truth) == pytest.approx(psnr(pred, truth) - psnr(torch.zeros_like(truth), truth))
    assert psnr(torch.zeros_like(truth), truth) > 15                       # the empty box scores already
    assert math.isnan(psnr_gain(truth, torch.zeros_like(truth)))


def test_match_is_one_to_one_closest_first():
    true = np.array([[0.0, 0, 0], [1.2, 0, 0]])
    found = np.array([[0.1, 0, 0], [0.2, 0, 0], [1.2, 0.45, 0]])           # two claim atom 0; one is near atom 1
    m = match_atoms(found, [6, 6, 8], true, [6, 6])
    assert m["n_matched"] == 2 and m["recall"] == 1.0 and m["precision"] == pytest.approx(2 / 3)
    assert m["element_accuracy"] == 0.5 and m["complete"] is False        # atom 1 matched by an O
    assert m["rmsd"] == pytest.approx(math.sqrt((0.1**2 + 0.45**2) / 2))


def test_eval_of_the_shipped_freesolv_bundle_reports_the_new_keys():
    from molviz.models import ground_truth, load_model
    from molviz.training import evaluate_bundle
    path = Path(__file__).resolve().parents[1] / "assets" / "models" / "freesolv"
    b = load_model(path)
    rep = evaluate_bundle(b, resolutions=(16,), items="heldout", max_items=2, device="cpu", progress=False,
                          recovery_resolution=24)
    r = rep["results"]["16"]
    assert set(r["mean_iou"]) == {"0.5", "0.2"} and 0.0 < r["mean_iou"]["0.5"] <= 1.0
    assert set(r["channel_iou"]["0.5"]) == set(b.channel_names)
    assert r["mean_psnr_gain"] > 0 and r["mean_spurious_voxels"] >= 0
    atoms = r["atoms"]
    assert atoms["n_items"] == 2 and atoms["resolution"] == 24 and atoms["tolerance"] == 0.5
    assert {"recall", "precision", "element_accuracy", "rmsd", "complete_fraction"} <= set(atoms)
    for row in r["per_item"]:
        assert row["atoms"]["n_true"] > 0 and 0.0 <= row["atoms"]["recall"] <= 1.0
        zero = -10 * math.log10(float((ground_truth(b, row["index"], 16).double() ** 2).mean()))
        assert row["psnr_gain"] == pytest.approx(row["psnr"] - zero, rel=1e-6)
        assert set(row["iou"]) == {"0.5", "0.2"} and len(row["channel_iou"]["0.2"]) == 11
