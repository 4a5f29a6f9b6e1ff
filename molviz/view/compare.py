"""What a side-by-side comparison puts beside a decoded view: the item's ground truth, or for a latent with
no truth of its own (an interpolation frame, an encoded molecule) the nearest stored item's.

The two are drawn as two linked viewports (:class:`molviz.view.scene.Scene`: one camera, left and right
halves), each labelled, so turning the camera never hides one copy behind the other.

Examples
--------
>>> from molviz.view import Explorer
>>> ex = Explorer.open("assets/models/freesolv")                      # doctest: +SKIP
>>> frame = ex.frame(ex.item_endpoint(0), ex.item_endpoint(1), 0.3)   # doctest: +SKIP
>>> frame.extra["nearest"] = nearest_truth(ex, frame.extra["latent"], 48)   # doctest: +SKIP
>>> [layer.label for layer in compare_layers(frame, ex.channel_names)]      # doctest: +SKIP
['decoded (model)  t = 0.30', 'nearest stored item: ...']
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from molviz.view.scene import Layer

if TYPE_CHECKING:  # pragma: no cover
    from molviz.view.explore import Explorer, View

DECODED = "decoded (model)"
TRUTH = "ground truth"
NO_TRUTH = "no stored item"


def nearest_truth(ex: Explorer, latent, resolution: int) -> View | None:
    """The ground truth (Eq. 1 on its own box) of the stored item nearest to ``latent`` (L2 in latent
    space) at ``resolution``, as a :class:`~molviz.view.explore.View` whose ``item`` is that item and whose
    ``extra["distance"]`` is the latent distance; None when the bundle cannot give that item's truth (its
    atoms are unknown)."""
    from molviz.view.explore import View

    found = ex.neighbours(np.asarray(latent, np.float32), 1)
    if not found:
        return None
    j, distance = found[0]
    truth = ex.ground_truth(j, resolution)
    if truth is None:
        return None
    return View(label=ex.item_label(j), volume=truth, grid=ex.item_grid(j, resolution), atoms=ex.item_atoms(j),
                item=j, extra={"distance": float(distance)})


def compare_layers(view: View, names: list[str]) -> list[Layer]:
    """Two layers for two linked viewports: the decoded volume (left) and its ground truth (right); for a view
    without a truth of its own, ``view.extra["nearest"]`` (:func:`nearest_truth`) on the right, labelled
    with that item's name, or an empty right viewport that says there is none."""
    t = view.extra.get("t")
    left = Layer(view.volume, view.grid, names, view.atoms, surfaces=view.surfaces,
                 label=DECODED + (f"  t = {t:.2f}" if t is not None else ""),
                 more_atoms=view.extra.get("more_atoms", ()))
    if view.truth is not None:
        right = Layer(view.truth, view.grid, names, view.atoms, label=TRUTH)
    elif view.extra.get("nearest") is not None:
        near = view.extra["nearest"]
        right = Layer(near.volume, near.grid, names, near.atoms, label=f"nearest stored item: {near.label}")
    elif view.item is not None:
        right = Layer(None, view.grid, names, label="no ground truth for this item (its atoms are unknown)")
    else:
        right = Layer(None, view.grid, names, label=NO_TRUTH)
    return [left, right]


__all__ = ["DECODED", "NO_TRUTH", "TRUTH", "compare_layers", "nearest_truth"]
