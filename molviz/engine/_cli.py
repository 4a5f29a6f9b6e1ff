"""``molviz encode`` and ``molviz neighbours``: new molecules into a bundle's latent space."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from molviz.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="encode molecules (SMILES or files) into a bundle's latent space",
                       description="Encode SMILES strings or molecule files with a model bundle: the "
                       "encoder for auto-encoder bundles, latent fitting (network frozen) for auto-decoders. "
                       "Prints each input's PSNR and nearest stored items; --out writes the latents.")
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="SMILES string or molecule file (pdb, cif, sdf, ...)")
    _common(p)
    p.add_argument("--out", metavar="FILE.npz", help="write latents (N, L), boxes (N, 2, 3) and names here")
    p.add_argument("--conformer", type=int, default=0, help="which conformer of each input (default 0)")
    p.add_argument("--steps", type=int, default=2000, help="latent-fitting steps for auto-decoder bundles")
    p.set_defaults(func=_encode)

    q = sub.add_parser("neighbours", help="nearest stored items of a bundle item or a saved latent",
                       description="List the k stored items of a bundle nearest to one of its items "
                       "(by index or name) or to a latent saved by `molviz encode --out`.")
    q.add_argument("item", nargs="?", help="item index or name in the bundle")
    _common(q)
    q.add_argument("--latent", metavar="FILE.npz", help="a latents file written by `molviz encode --out`")
    q.set_defaults(func=_neighbours)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", required=True, metavar="DIR", help="model bundle folder, or a bundled model's name")
    p.add_argument("-k", type=int, default=5, help="how many neighbours (default 5)")
    p.add_argument("--metric", choices=("l2", "cosine"), default="l2",
                   help="latent distance (default l2: Euclidean, the space the decoder reads)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def resolve_bundle(name: str) -> Path:
    """A bundle folder from a path or the name of a bundled model (assets/models/NAME)."""
    p = Path(name).expanduser()
    if p.exists():
        return p
    from molviz._assets import asset_path
    try:
        return asset_path("models", name)
    except InputError:
        raise InputError(f"model bundle {name!r} not found: give a bundle folder or the name of a model in "
                         "assets/models/") from None


def _engine(args):
    from molviz.engine import Engine
    return Engine(resolve_bundle(args.bundle), device=args.device)


def _item_name(engine, i: int) -> str:
    items = engine.bundle.items
    return str(items[i].get("name", i)) if i < len(items) else str(i)


def _encode(args) -> int:
    import numpy as np
    eng = _engine(args)
    rows, latents, boxes, names = [], [], [], []
    for src in args.sources:
        enc = eng.encode(src, details=True, conformer=args.conformer, steps=args.steps,
                         progress=sys.stderr.isatty())
        nn = eng.neighbours(enc.latent, args.k, metric=args.metric)
        rows.append({"source": src, "name": enc.name, "method": enc.method,
                     "psnr": None if enc.psnr is None else round(float(enc.psnr), 3),
                     "neighbours": [{"index": i, "name": _item_name(eng, i), "distance": round(d, 5)}
                                    for i, d in nn]})
        latents.append(enc.latent)
        boxes.append(enc.box)
        names.append(enc.name or src)
    if args.out:
        from molviz.mesh import atomic_path
        out = Path(args.out)
        with atomic_path(out) as tmp, open(tmp, "wb") as f:
            np.savez(f, latents=np.stack(latents).astype(np.float32), boxes=np.stack(boxes).astype(np.float32),
                     names=np.asarray(names, dtype=str), bundle=np.asarray(str(eng.bundle.path or "")))
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        psnr = "-" if r["psnr"] is None else f"{r['psnr']:.2f} dB"
        print(f"{r['source']}  ({r['method']}, reconstruction PSNR {psnr})")
        for n in r["neighbours"]:
            print(f"    {n['index']:>6}  {n['distance']:>10.4f}  {n['name']}")
    if args.out:
        print(f"latents written to {args.out}")
    return 0


def _neighbours(args) -> int:
    import numpy as np
    if (args.item is None) == (args.latent is None):
        raise InputError("give either an ITEM (index or name) or --latent FILE.npz")
    eng = _engine(args)
    queries = []
    if args.latent:
        if not os.path.isfile(args.latent):
            raise InputError(f"latent file {args.latent!r} does not exist")
        with np.load(args.latent, allow_pickle=False) as d:
            if "latents" not in d:
                raise InputError(f"{args.latent} has no 'latents' array: write it with `molviz encode --out`")
            names = list(d["names"]) if "names" in d else [str(i) for i in range(len(d["latents"]))]
            queries = [(str(n), z, None) for n, z in zip(names, d["latents"])]
    else:
        item = int(args.item) if args.item.lstrip("-").isdigit() else args.item
        i = eng.item_index(item)
        queries = [(_item_name(eng, i), eng.latents[i], i)]
    rows = []
    for name, z, exclude in queries:
        nn = eng.neighbours(z, args.k, metric=args.metric, exclude=exclude)
        rows.append({"query": name, "metric": args.metric,
                     "neighbours": [{"index": i, "name": _item_name(eng, i), "distance": round(d, 5)}
                                    for i, d in nn]})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        print(f"{r['query']}  (nearest by {r['metric']})")
        for n in r["neighbours"]:
            print(f"    {n['index']:>6}  {n['distance']:>10.4f}  {n['name']}")
    return 0
