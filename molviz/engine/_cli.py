"""``molviz decode | fit | encode | neighbours``: inference from the command line.

decode: a stored item to volumes or meshes at any resolution; fit: a latent for a new molecule
(network frozen); encode / neighbours: new molecules into a bundle's latent space.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from molviz.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "decode", help="decode one item of a bundle to a volume (.npz, .ccp4, .mrc) or isosurface meshes "
        "(.ply, .obj, .gltf, .glb)",
        description="Volumes: .npz holds field (C, N, N, N), origin, spacing, channels, beta, like `molviz "
        "featurize`; .ccp4/.mrc/.map write one map per channel (OUT_<channel>.ccp4) for ChimeraX or PyMOL. "
        "Meshes: one isosurface per channel (OUT_<channel>.ply ...), in angstrom with normals; on a GPU they "
        "are extracted there. Examples: molviz decode assets/models/6ega --resolution 128 --out 6ega.ccp4 ; "
        "molviz decode assets/models/freesolv --item ethanol --resolution 96 --out ethanol.glb",
    )
    p.add_argument("bundle", help="bundle folder, or the name of a shipped model (freesolv, 6ega, nmr-2juy)")
    p.add_argument("--item", default="0", help="item index or name (default 0)")
    p.add_argument("--resolution", type=int, default=64, help="voxels per axis (any; beyond the training "
                   "grid is super-resolution)")
    p.add_argument("--box", type=float, nargs=6, metavar=("X0", "Y0", "Z0", "X1", "Y1", "Z1"),
                   help="decode only this sub-box, in the item box's normalised [-1, 1] coordinates (a zoom)")
    p.add_argument("--channels", help="comma-separated channel names to write (default: all; meshes skip "
                   "channels with no surface)")
    p.add_argument("--level", type=float, default=0.5,
                   help="isosurface level for meshes (default 0.5: half the peak of a trained field, which lies in [0, 1])")
    p.add_argument("--level-mode", choices=("absolute", "fraction", "percent"), default="absolute",
                   help="absolute field value (default; channels absent from the item then have no surface), "
                   "fraction of each channel's maximum, or percent of voxels enclosed")
    p.add_argument("--out", required=True, help="output file; its suffix picks the format")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_decode)

    p = sub.add_parser("fit", help="fit a latent for a new molecule (network frozen)",
                       description="Auto-decoder inference: optimise a latent for INPUT (file or SMILES). "
                       "Example: molviz fit runs/nmr 2juy.pdb --conformer 3 --out latent.npz")
    p.add_argument("bundle", help="bundle folder, or the name of a shipped model")
    p.add_argument("input", help="molecule file or SMILES")
    p.add_argument("--out", required=True)
    p.add_argument("--conformer", type=int, default=0)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--tol", type=float, default=1e-3)
    p.add_argument("--hydrogens", choices=("keep", "remove", "add"), default="keep")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_fit)

    p = sub.add_parser("encode", help="encode molecules (SMILES or files) into a bundle's latent space",
                       description="Encode SMILES strings or molecule files with a model bundle: the "
                       "encoder for auto-encoder bundles, latent fitting (network frozen) for auto-decoders. "
                       "Prints each input's PSNR and nearest stored items; --out writes the latents.")
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="SMILES string or molecule file (pdb, cif, sdf, ...)")
    _common(p)
    p.add_argument("--out", metavar="FILE.npz", help="write latents (N, L), boxes (N, 2, 3) and names here")
    p.add_argument("--conformer", type=int, default=0, help="which conformer of each input (default 0)")
    p.add_argument("--steps", type=int, default=2000, help="latent-fitting steps for auto-decoder bundles")
    p.add_argument("--refine", type=int, default=0, metavar="K",
                   help="auto-encoder bundles: take the encoder's latent K steps further against the field the "
                        "input's atoms give (network frozen; closer surfaces, about 15 ms a step for FreeSolv on "
                        "one CPU core); neighbours are still those of the encoder's latent (default 0: off)")
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


def _decode(args) -> int:
    import numpy as np

    from molviz.engine import Engine, check_box
    from molviz.mesh import save_volume_npz, write_maps
    from molviz.models import resolve_bundle
    volumes, meshes = (".npz", ".ccp4", ".mrc", ".map"), (".ply", ".obj", ".gltf", ".glb")
    out = Path(args.out)
    suffix = out.suffix.lower()
    if suffix not in volumes + meshes:
        raise InputError(f"--out {out}: use a volume (.npz, .ccp4, .mrc, .map) or mesh (.ply, .obj, .gltf, .glb) name")
    eng = Engine(resolve_bundle(args.bundle), device=args.device, cache_bytes=0)
    text = str(args.item).strip()
    i = eng.item_index(int(text) if text.lstrip("-").isdigit() else text)
    box = check_box(None if args.box is None else (args.box[:3], args.box[3:]))
    names = eng.channel_names
    chosen = list(range(len(names)))
    if args.channels:
        wanted = [c.strip() for c in args.channels.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in names]
        if unknown:
            raise InputError(f"--channels: no channel {', '.join(map(repr, unknown))} in this bundle; "
                             f"it has {', '.join(names)}")
        chosen = [names.index(c) for c in wanted]
    grid = eng.item_grid(i, args.resolution, box=box)
    label = f"item {i}" + (f" ({eng.bundle.items[i].get('name')})" if i < len(eng.bundle.items)
                           and eng.bundle.items[i].get("name") else "")
    if suffix in volumes:
        vol = eng.decode(eng.latents[i], resolution=args.resolution, box=box, cache=False)[0]
        if suffix == ".npz":
            beta = eng.bundle.spec.beta
            path = save_volume_npz(out, vol[chosen], origin=grid.origin, spacing=grid.spacing,
                                   channels=[names[c] for c in chosen],
                                   beta=np.float32(float("nan") if beta is None else beta))
            print(f"decoded {label} at {args.resolution}^3 -> {path}")
        else:
            paths = write_maps(out, vol[chosen], grid, [names[c] for c in chosen])
            print(f"decoded {label} at {args.resolution}^3 -> {len(paths)} maps: {', '.join(map(str, paths))}")
        return 0
    from molviz.engine import prefer_device_surfaces
    from molviz.fields import channel_rgb
    from molviz.mesh import export_mesh, isosurface, polydata, safe_name
    if prefer_device_surfaces(eng.device):   # marching cubes where the volume was decoded; only meshes come back
        surfs = eng.surfaces(eng.latents[i], args.level, resolution=args.resolution, box=box,
                             item_box=eng.boxes[i], mode=args.level_mode)
        made = {c: polydata(surfs[c]) for c in chosen}
    else:
        vol = eng.decode(eng.latents[i], resolution=args.resolution, box=box, cache=False)[0]
        made = {c: isosurface(vol[c], grid, level=args.level, mode=args.level_mode) for c in chosen}
    written, empty = [], []
    for c, mesh in made.items():
        if mesh.n_points == 0:
            empty.append(names[c])
            continue
        color = channel_rgb(names[c]) if suffix in (".gltf", ".glb") else None
        written.append(export_mesh(mesh, out.with_name(f"{out.stem}_{safe_name(names[c])}{suffix}"), color=color))
    if not written:
        raise InputError(f"no channel has a surface at level {args.level:g} ({args.level_mode}): lower --level")
    print(f"decoded {label} at {args.resolution}^3 -> {len(written)} meshes: {', '.join(map(str, written))}")
    if empty:
        print(f"no surface at level {args.level:g} ({args.level_mode}) in: {', '.join(empty)}")
    return 0


def _fit(args) -> int:
    from molviz.chem import load
    from molviz.engine import fit_latent
    from molviz.models import load_model, resolve_bundle
    bundle = load_model(resolve_bundle(args.bundle))
    structure = load(args.input, hydrogens=args.hydrogens, conformers=1 if not Path(args.input).exists() else None)
    for w in getattr(structure, "warnings", ()) or ():
        print(f"molviz fit: note: {w}", file=sys.stderr)
    res = fit_latent(bundle, structure, conformer=args.conformer, steps=args.steps, lr=args.lr, tol=args.tol,
                     device=args.device)
    path = res.save(args.out)
    print(f"fitted latent in {res.steps} steps ({'converged' if res.converged else 'step limit'}): "
          f"PSNR {res.psnr:.2f} dB at {bundle.spec.resolution}^3 -> {path}")
    return 0


def _engine(args):
    from molviz.engine import Engine
    from molviz.models import resolve_bundle
    return Engine(resolve_bundle(args.bundle), device=args.device)


def _item_name(engine, i: int) -> str:
    items = engine.bundle.items
    return str(items[i].get("name", i)) if i < len(items) else str(i)


def _encode(args) -> int:
    import numpy as np

    from molviz.models._refine import check_refine_steps
    check_refine_steps(args.refine)
    eng = _engine(args)
    rows, latents, boxes, names = [], [], [], []
    for src in args.sources:
        enc = eng.encode(src, details=True, conformer=args.conformer, steps=args.steps,
                         progress=sys.stderr.isatty(), refine=args.refine)
        nn = eng.neighbours(enc.placed_latent, args.k, metric=args.metric)   # the encoder's, also when refined
        for w in getattr(enc.structure, "warnings", ()) or ():
            print(f"molviz encode: note: {src}: {w}", file=sys.stderr)
        for w in enc.warnings:
            print(f"molviz encode: warning: {src}: {w}", file=sys.stderr)
        rows.append({"source": src, "name": enc.name, "method": enc.method, "warnings": enc.warnings,
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
        from molviz._io import read_npz
        d = read_npz(args.latent, what="latents file")
        lat = d.get("latents")
        if lat is None or lat.ndim != 2 or lat.shape[1] != eng.latents.shape[1] or not np.issubdtype(lat.dtype, np.number):
            want = eng.latents.shape[1]
            raise InputError(f"latents file {args.latent!r} needs a 'latents' array of shape (N, {want}) "
                             f"(this bundle's latent size); write it with `molviz encode --bundle {args.bundle} --out`")
        if not np.isfinite(lat).all():
            raise InputError(f"latents file {args.latent!r} holds NaN or infinite latents")
        names = [str(n) for n in d["names"]] if "names" in d and len(d["names"]) == len(lat) else \
            [str(i) for i in range(len(lat))]
        queries = [(n, z, None) for n, z in zip(names, lat.astype(np.float32))]
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
