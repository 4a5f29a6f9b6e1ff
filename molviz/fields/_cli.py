"""``molviz featurize``: molecules -> Eq. 1 fields on a grid (.npz, or .ccp4/.mrc maps)."""
from __future__ import annotations

import argparse
from pathlib import Path

from molviz.errors import InputError

EPILOG = """examples:
  molviz featurize 6ega_protein.pdb 6ega_ligand_J8A_withH.sdf --channels paper-6ega \\
      --resolution 32 --beta 0.25 --out 6ega.npz
  molviz featurize 6ega_protein.pdb 6ega_ligand_J8A_withH.sdf --channels paper-6ega \\
      --resolution 96 --beta 0.25 --out 6ega.ccp4      # 6ega_<channel>.ccp4, one per channel
  molviz featurize --smiles-file freesolv.smi --channels freesolv --beta 0.75 --out fs.npz
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "featurize", help="sample the Eq. 1 field of molecules on a grid",
        description="Sample the paper's Eq. 1 field (one channel per atom selection) on a grid "
        "and write it as .npz (field, origin, spacing, channels, beta) or as one .ccp4/.mrc "
        "map per channel (open in ChimeraX or PyMOL).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="molecule files or SMILES; several make one complex (protein + ligand)")
    p.add_argument("--smiles-file", metavar="FILE",
                   help="featurize a dataset: one SMILES per line (optional name after it), or "
                        "FreeSolv's database.txt; writes a stacked .npz")
    p.add_argument("--channels", default="elements+density",
                   help="channel spec or preset: paper-6ega, freesolv, elements, "
                        "elements+density (default), or tokens like ligand:C,protein:density")
    p.add_argument("--resolution", type=int, default=32, help="voxels per axis (default 32)")
    p.add_argument("--spacing", type=float, default=None, metavar="A",
                   help="fixed voxel spacing in angstrom, box centred on the centroid "
                        "(default: the paper's fitted box)")
    p.add_argument("--beta", type=float, default=0.25,
                   help="sharpness (paper: 0.25 for 6EGA, 0.75 for FreeSolv/NMR; default 0.25)")
    p.add_argument("--normalize", choices=("max", "none"), default="max",
                   help="max: each channel divided by its maximum, in [0, 1] (default)")
    p.add_argument("--conformer", default="0",
                   help="conformer index, or 'all' for every conformer on one shared grid")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--out", required=True, metavar="FILE", help="output: .npz, .ccp4 or .mrc")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from molviz.fields import fit_grid, parse_channels, sample_conformers, sample_field, spacing_grid
    from molviz.mesh import save_volume_npz

    out = Path(args.out)
    suffix = out.suffix.lower()
    if suffix not in (".npz", ".ccp4", ".mrc", ".map"):
        raise InputError(f"--out {out}: use a .npz, .ccp4 or .mrc file name")
    if bool(args.inputs) == bool(args.smiles_file):
        raise InputError("give either INPUT files/SMILES (one complex) or --smiles-file (a dataset)")

    if args.smiles_file:
        return _run_dataset(args, out, suffix)

    from molviz.chem import load

    structure = load(*args.inputs)
    _say_warnings(structure)
    channels = parse_channels(args.channels, structure)
    conf = _conformer_arg(args.conformer, structure.n_conformers)
    if args.spacing is not None:
        grid = spacing_grid(structure, spacing=args.spacing, resolution=args.resolution,
                            conformer=conf)
    else:
        grid = fit_grid(structure, channels, resolution=args.resolution, beta=args.beta,
                        conformer=conf)
    if conf is None:
        field = sample_conformers(structure, channels, grid, beta=args.beta,
                                  normalize=args.normalize, device=args.device)
    else:
        field = sample_field(structure, channels, grid, beta=args.beta, normalize=args.normalize,
                             conformer=conf, device=args.device)
    names = [c.name for c in channels]
    if suffix == ".npz":
        save_volume_npz(out, field, origin=grid.origin, spacing=grid.spacing, channels=names,
                        beta=np.float32(args.beta), normalize=np.array(args.normalize), name=np.array(structure.name))
        print(f"wrote {out}: field {field.shape}, channels {', '.join(names)}")
    else:
        if field.ndim == 5:
            raise InputError("maps hold one conformer: pass --conformer I, or write .npz for all")
        from molviz.mesh import write_maps
        paths = write_maps(out, field, grid, names)
        print(f"wrote {len(paths)} maps: {', '.join(str(p) for p in paths)}")
    return 0


def _say_warnings(structure) -> None:
    """What the loader had to decide (altloc records dropped, repeated residue numbers, inferred elements)."""
    import sys
    for w in getattr(structure, "warnings", ()) or ():
        print(f"molviz featurize: note: {w}", file=sys.stderr)


def _conformer_arg(value: str, n: int) -> int | None:
    if str(value).lower() == "all":
        return None
    try:
        i = int(value)
    except ValueError:
        raise InputError(f"--conformer {value!r}: give an index or 'all'") from None
    if not -n <= i < n:
        raise InputError(f"--conformer {i}: the structure has {n} conformer(s)")
    return i


def _read_smiles_file(path: Path) -> list[tuple[str, str]]:
    if not path.is_file():
        raise InputError(f"--smiles-file {path}: no such file")
    text = path.read_text(errors="replace")
    if ";" in text.splitlines()[0] if text.strip() else False:  # FreeSolv database.txt
        from molviz.chem import read_freesolv

        return [(r["compound_id"], r["smiles"]) for r in read_freesolv(path)]
    rows = []
    for i, line in enumerate(text.splitlines()):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        rows.append((parts[1] if len(parts) > 1 else f"mol{i}", parts[0]))
    if not rows:
        raise InputError(f"--smiles-file {path}: no SMILES found (one per line)")
    return rows


def _run_dataset(args: argparse.Namespace, out: Path, suffix: str) -> int:
    import numpy as np
    from tqdm import tqdm

    from molviz.chem import load
    from molviz.fields import fit_grid, parse_channels, sample_field, spacing_grid
    from molviz.mesh import save_volume_npz

    if suffix != ".npz":
        raise InputError("a dataset (--smiles-file) is written as one stacked .npz; use --out F.npz")
    rows = _read_smiles_file(Path(args.smiles_file))
    structures = [load(smi, name=name) for name, smi in tqdm(rows, desc="conformers", unit="mol")]
    channels = parse_channels(args.channels, structures)
    fields, origins, spacings = [], [], []
    for s in tqdm(structures, desc="featurize", unit="mol"):
        if args.spacing is not None:
            grid = spacing_grid(s, spacing=args.spacing, resolution=args.resolution, conformer=0)
        else:
            grid = fit_grid(s, channels, resolution=args.resolution, beta=args.beta, conformer=0)
        fields.append(sample_field(s, channels, grid, beta=args.beta, normalize=args.normalize,
                                   device=args.device))
        origins.append(grid.origin)
        spacings.append(grid.spacing)
    names = [c.name for c in channels]
    save_volume_npz(out, np.stack(fields), origin=origins, spacing=spacings, channels=names,
                    beta=np.float32(args.beta), normalize=np.array(args.normalize),
                    names=np.array([n for n, _ in rows], dtype=str), smiles=np.array([s for _, s in rows], dtype=str))
    print(f"wrote {out}: {len(structures)} molecules, field {(len(fields), *fields[0].shape)}")
    return 0
