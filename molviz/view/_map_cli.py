"""``molviz map BUNDLE``: compute a bundle's latent map (UMAP) and ship it inside the bundle."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("map", help="compute the UMAP latent map of a bundle and store it in bundle.json",
                       description=__doc__)
    p.add_argument("bundle", help="bundle folder")
    p.add_argument("--n-neighbors", type=int, default=5, help="UMAP n_neighbors (paper: 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write", action="store_true", help="store the map in the bundle (else only print a summary)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import numpy as np

    from molviz.models import load_model, update_extras
    from molviz.view.latent_map import LatentMap

    bundle = load_model(args.bundle)
    m = LatentMap.compute(bundle, n_neighbors=args.n_neighbors, seed=args.seed)
    lo, hi = m.coords.min(axis=0), m.coords.max(axis=0)
    print(f"UMAP of {len(m.coords)} latents ({bundle.latents.shape[1]}-d), n_neighbors={args.n_neighbors}: "
          f"x {lo[0]:.2f}..{hi[0]:.2f}, y {lo[1]:.2f}..{hi[1]:.2f}; colour options: {', '.join(m.color_options)}")
    if args.write:
        descriptors = {k: [None if not np.isfinite(v) else float(v) for v in m.values[k]]
                       for k in m.color_options}
        update_extras(bundle.path, latent_map={
            "method": f"UMAP (umap-learn, n_neighbors={args.n_neighbors}, seed {args.seed}) of the stored latents",
            "coords": np.round(m.coords, 5).tolist(),
            "descriptors": descriptors,
        })
        print(f"wrote the latent map into {bundle.path / 'bundle.json'}")
    return 0
