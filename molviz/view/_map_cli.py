"""``molviz map BUNDLE``: compute a bundle's latent map (UMAP) and ship it inside the bundle.

UMAP of 93,087 latents takes minutes on two cores, so the command shows umap-learn's progress (a
timestamped line per stage, a bar with the fraction of layout epochs done) and prints how long it took.
With ``--write`` the item search index is stored beside the bundle too
(:meth:`molviz.view.search.ItemIndex.save`, ``search.safetensors``), so the app reads it instead
of building it; ``--no-search-index`` leaves it out (about 300 bytes per molecule).
"""
from __future__ import annotations

import argparse
import contextlib
import threading
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("map", help="compute the UMAP latent map of a bundle and store it in bundle.json",
                       description=__doc__)
    p.add_argument("bundle", help="bundle folder")
    p.add_argument("--n-neighbors", type=int, default=5, help="UMAP n_neighbors (paper: 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write", action="store_true", help="store the map in the bundle (else only print a summary)")
    p.add_argument("--search-index", action=argparse.BooleanOptionalAction, default=None,
                   help="store the search index (search.safetensors: canonical SMILES and pattern fingerprints, "
                        "~300 bytes per molecule) in the bundle folder, so the app reads it instead of building "
                        "it (minutes at 93k molecules); default: with --write, when the items have SMILES")
    p.add_argument("--no-progress", action="store_true", help="no progress line")
    p.set_defaults(func=_run)


@contextlib.contextmanager
def ticking(desc: str, *, enabled: bool = True, every: float | None = None):
    """A progress line counting the seconds a call without its own progress takes (a daemon thread):
    redrawn every second on a terminal, a line every 30 s in a log."""
    import sys

    from molviz._progress import tqdm
    every = every or (1.0 if sys.stderr.isatty() else 30.0)
    bar = tqdm(total=None, desc=desc, unit="s", disable=not enabled, dynamic_ncols=True, mininterval=every,
               bar_format="{desc}: {elapsed} elapsed")
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every):
            if hasattr(bar, "refresh"):
                bar.refresh()
            if not sys.stderr.isatty():
                bar.write(f"{desc}: {time.perf_counter() - t0:.0f} s elapsed")

    t0 = time.perf_counter()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield bar
    finally:
        stop.set()
        thread.join()
        bar.close()


def _run(args: argparse.Namespace) -> int:
    import numpy as np

    from molviz.models import load_model, update_extras
    from molviz.view.latent_map import LatentMap

    bundle = load_model(args.bundle)
    n = len(bundle.latents)
    t0 = time.perf_counter()
    if not args.no_progress:
        print(f"UMAP of {n:,} latents: the k-NN graph, then the layout (a bar of epochs)", flush=True)
    m = LatentMap.compute(bundle, n_neighbors=args.n_neighbors, seed=args.seed, progress=not args.no_progress)
    seconds = time.perf_counter() - t0
    lo, hi = m.coords.min(axis=0), m.coords.max(axis=0)
    print(f"UMAP of {len(m.coords)} latents ({bundle.latents.shape[1]}-d), n_neighbors={args.n_neighbors}, "
          f"{seconds:.1f} s: x {lo[0]:.2f}..{hi[0]:.2f}, y {lo[1]:.2f}..{hi[1]:.2f}; colour options: "
          f"{', '.join(m.color_options)}")
    if args.write:
        descriptors = {k: [None if not np.isfinite(v) else float(v) for v in m.values[k]]
                       for k in m.color_options}
        update_extras(bundle.path, latent_map={
            "method": f"UMAP (umap-learn, n_neighbors={args.n_neighbors}, seed {args.seed}) of the stored latents",
            "coords": np.round(m.coords, 5).tolist(),
            "descriptors": descriptors,
        })
        print(f"wrote the latent map into {bundle.path / 'bundle.json'}")
    store_index = args.write if args.search_index is None else args.search_index
    if store_index and not any(it.get("smiles") for it in bundle.items):
        if args.search_index:
            print("no search index: the items have no SMILES (an ensemble is found by name)")
        store_index = False
    if store_index:
        from molviz.view.search import ItemIndex
        t0 = time.perf_counter()
        with ticking(f"search index of {len(bundle.items):,} items (RDKit)", enabled=not args.no_progress):
            index = ItemIndex(bundle.items)
        path = index.save(bundle.path, bundle.items)
        print(f"wrote the search index ({time.perf_counter() - t0:.1f} s, {path.stat().st_size / 2**20:.1f} MB) "
              f"into {path}")
    return 0
