"""``molviz train | eval``: training and evaluation from the command line.

Registration is cheap: torch, RDKit and the training code load inside the handlers.
"""
from __future__ import annotations

import argparse
import json

from molviz._cmd import command_line, locked_folder

PRESET_NAMES = ("6ega", "freesolv", "nmr", "nmr-ae")
RECIPE_NAMES = ("library", "ensemble")       # recipes over your own molecules: INPUT... follows
# data settings that a prepared file of your own molecules carries, taken from it under --data
RECIPE_DATA = ("channels", "inputs", "smiles_column", "name_column", "max_atoms", "stride", "start", "stop",
               "select", "shard", "geometry")
SIZE_NAMES = ("XS", "S", "M", "L", "XL")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a preset, or your own molecules (library | ensemble INPUT...)",
        description="Train a molecular neural field. Prepare the atom tables once where RDKit is "
        "installed (--prepare-only FILE.npz), then train anywhere torch runs (--data FILE.npz). "
        "Under torchrun it runs DDP. Presets: molviz train 6ega --data runs/prepared/6ega.npz --out runs/6ega. "
        "Your own molecules: `molviz train library mols.csv --out runs/mine` (an auto-encoder over many "
        "molecules, the freesolv recipe) or `molviz train ensemble top.pdb traj.dcd --out runs/md` (an "
        "auto-decoder over the conformers of one system, the nmr recipe); inputs that cannot be used are "
        "listed in DIR/skipped.csv.",
    )
    p.add_argument("preset", choices=PRESET_NAMES + RECIPE_NAMES, metavar="PRESET",
                   help=f"a preset ({', '.join(PRESET_NAMES)}), or library / ensemble followed by INPUT...")
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="library: SMILES files (.smi, .csv, .tsv, also .gz), SDF files (one molecule per record), "
                        "structure files, folders or globs of them, SMILES; ensemble: a multi-MODEL PDB/mmCIF, "
                        "multi-record SDF or multi-frame XYZ, or a topology (PDB/PSF/GRO/PRMTOP) and trajectory "
                        "files (DCD/XTC/TRR/NetCDF)")
    g = p.add_argument_group("your own molecules (library / ensemble)")
    g.add_argument("--channels", metavar="SPEC",
                   help="channel spec (default for library/ensemble: elements+density, one channel per element "
                        "present plus all atoms; e.g. 'C,N,O,density')")
    g.add_argument("--smiles-column", metavar="COLUMN",
                   help="library tables: the SMILES column (default: one named smiles, canonical_smiles, ...)")
    g.add_argument("--name-column", metavar="COLUMN",
                   help="library tables and SD fields: the name column (default: name, title, id, ...; SDF: the "
                        "title line)")
    g.add_argument("--max-atoms", type=int, metavar="N",
                   help="library: skip molecules with more atoms; ensemble: refuse a system with more")
    g.add_argument("--stride", type=int, metavar="K", help="ensemble: every K-th frame / model (default 1)")
    g.add_argument("--start", type=int, metavar="I", help="ensemble: first frame (0-based)")
    g.add_argument("--stop", type=int, metavar="J", help="ensemble: stop before frame J")
    g.add_argument("--shard", metavar="K/N",
                   help="library, with --prepare-only: prepare only the K-th of N blocks of the inputs (0-based), "
                        "so N processes or machines share a large library; train from all N files in order with "
                        "--data part0.npz ... (the same data as one preparation)")
    g.add_argument("--workers", type=int, metavar="N",
                   help="library: prepare in parts on N worker processes with a progress bar and ETA; each part "
                        "is saved as it finishes (DIR/prepared/, or FILE.parts/ beside --prepare-only FILE.npz) "
                        "and a rerun resumes from the parts already there")
    g.add_argument("--geometry", choices=("mmff", "etkdg"),
                   help="library: how SMILES get 3D coordinates: ETKDGv3 then MMFF94 (mmff, default, as the "
                        "presets) or ETKDGv3 alone (etkdg: about 2x faster on drug-like molecules, for 100k; "
                        "heavy atoms ~0.8 A RMSD from the MMFF geometry)")
    g.add_argument("--parts", type=int, metavar="P", help="library, with --workers: how many parts (default 8 x N)")
    g.add_argument("--select", metavar="SELECTION",
                   help="ensemble: atoms to keep, in MDAnalysis's selection language ('protein', "
                        "'not resname SOL')")
    p.add_argument("--prepare-only", metavar="NPZ", help="only write the prepared data file and stop")
    p.add_argument("--data", metavar="NPZ", nargs="+",
                   help="prepared data file (default: prepare now, needs RDKit); a library's --shard parts, in order")
    p.add_argument("--out", metavar="DIR", help="bundle folder (checkpoints and history.jsonl go there too)")
    p.add_argument("--quick", action="store_true", help="shrink everything for a smoke run")
    p.add_argument("--steps", type=int)
    p.add_argument("--size", choices=SIZE_NAMES, help="model size (molviz.models.MODEL_SIZES)")
    p.add_argument("--latent-dim", type=int)
    p.add_argument("--w0", type=float, help="first-layer SIREN frequency (default 30)")
    p.add_argument("--modulation", choices=("mehta", "film"))
    p.add_argument("--protocol", choices=("grid", "continuous"))
    p.add_argument("--points", type=int, help="points per item per step (default: the whole grid / 8192)")
    p.add_argument("--near-fraction", type=float, help="continuous: share of points around atoms")
    p.add_argument("--pool-points", type=int, help="continuous: exact targets precomputed per item")
    p.add_argument("--pool-refresh", type=int, help="continuous: fresh pool every K steps (0: never)")
    p.add_argument("--grid-fraction", type=float, metavar="F",
                   help="continuous: share of each step's points at the training grid's voxel centres "
                        "(0: none, default), to fit the grid exactly and the field between voxels too")
    p.add_argument("--loss", choices=("l1", "mse"))
    p.add_argument("--channel-balance", type=float, metavar="P",
                   help="weight each channel's error by (mean energy / channel energy)^P, capped at 20 "
                        "(0: off, default; 0.5: square root), against sparse channels decoding to nothing")
    p.add_argument("--encoder-box", action="store_true", default=None,
                   help="auto-encoder: the encoder also reads each molecule's box size, so latents keep the "
                        "physical size that per-molecule boxes remove")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="auto-encoder, grid protocol: turn each training item by a random 180-degree rotation "
                        "about a box axis (or leave it) every step; exact on voxel grids, against encoder "
                        "overfitting (the freesolv preset's default; --no-augment turns it off)")
    p.add_argument("--lr", type=float)
    p.add_argument("--latent-lr", type=float)
    p.add_argument("--warmup", type=int)
    p.add_argument("--batch", type=int, help="items per step (global over DDP ranks)")
    p.add_argument("--resolution", type=int, help="training grid voxels per axis")
    p.add_argument("--max-items", type=int, help="prepare: keep only the first K molecules")
    p.add_argument("--box", choices=("fit", "shared", "spacing"),
                   help="prepare: one fitted box per item (paper), one for all, or fixed --spacing")
    p.add_argument("--spacing", type=float, metavar="A", help="prepare: voxel spacing for --box spacing")
    p.add_argument("--hydrogens", choices=("keep", "remove", "add"), help="prepare: hydrogens (default keep)")
    p.add_argument("--precision", choices=("fp32", "tf32", "bf16"),
                   help="CUDA only: tf32 matmuls or bf16 autocast (default fp32)")
    p.add_argument("--eval-every", type=int)
    p.add_argument("--ckpt-every", type=int)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    p.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint exactly")
    p.add_argument("--init-from", metavar="BUNDLE",
                   help="start from a trained bundle's weights and latents (same architecture, channels "
                        "and items) with a fresh optimiser and schedule: train longer or on another machine")
    p.add_argument("--seed", type=int)
    p.add_argument("--time-limit", type=float, metavar="SECONDS", help="stop cleanly, checkpoint and write the bundle")
    p.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="like --time-limit, but the cosine schedule is compressed to end on time")
    p.add_argument("--threads", type=int, help="CPU threads for torch (1 is fastest on a busy machine)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_train)

    p = sub.add_parser("eval", help="PSNR of a bundle against its recomputed fields; ridge R^2 of latents",
                       description="PSNR = 20 log10(1/sqrt(MSE)), MSE over all voxels and channels, fields "
                       "in [0, 1] (the paper's protocol), per item, per channel and mean. "
                       "Example: molviz eval runs/6ega --resolution 32 128 --write")
    p.add_argument("bundle")
    p.add_argument("--resolution", type=int, nargs="+", help="default: the training resolution")
    p.add_argument("--items", choices=("train", "heldout", "all"), default="all")
    p.add_argument("--max-items", type=int)
    p.add_argument("--ridge", action="store_true", help="5-fold ridge regression latents -> descriptors "
                   "(alone, without --resolution: only that)")
    p.add_argument("--levels", type=float, nargs="+", default=[0.5, 0.2], metavar="L",
                   help="isosurface levels for the IoU (default 0.5, the field's half height, and 0.2, the app's)")
    p.add_argument("--atoms-resolution", type=int, default=64, metavar="N",
                   help="grid on which atoms are recovered from each decoded field (default 64; 0: skip atom "
                        "recovery, the slow part: seconds per small molecule, minutes per protein)")
    p.add_argument("--tolerance", type=float, default=0.5, metavar="A",
                   help="a recovered atom matches a true one within this many angstrom (default 0.5)")
    p.add_argument("--refine", type=int, default=0, metavar="K",
                   help="evaluate each item's latent after K refinement steps against its true field, the "
                        "network frozen (what `molviz encode --refine K` gives a new molecule; 0: the stored "
                        "latents, default)")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.add_argument("--write", action="store_true", help="merge the results into BUNDLE/eval.json")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_eval)


def _config_from_args(args):
    from molviz.training._config import get_preset
    cfg = get_preset(args.preset, quick=args.quick)
    for flag, attr in [("steps", "steps"), ("size", "size"), ("latent_dim", "latent_dim"), ("w0", "w0"),
                       ("modulation", "modulation"), ("protocol", "protocol"), ("points", "points"),
                       ("near_fraction", "near_fraction"), ("grid_fraction", "grid_fraction"),
                       ("pool_points", "pool_points"), ("pool_refresh", "pool_refresh"), ("loss", "loss"), ("lr", "lr"),
                       ("channel_balance", "channel_balance"), ("encoder_box", "encoder_box"), ("augment", "augment"),
                       ("latent_lr", "latent_lr"), ("warmup", "warmup"), ("batch", "batch"),
                       ("precision", "precision"), ("eval_every", "eval_every"),
                       ("ckpt_every", "ckpt_every"), ("seed", "seed")]:
        val = getattr(args, flag)
        if val is not None:
            setattr(cfg, attr, val)
    if args.resolution is not None:
        cfg.data.resolution = args.resolution
    if args.max_items is not None:
        cfg.data.max_items = args.max_items
    for name in ("box", "spacing", "hydrogens"):
        if getattr(args, name) is not None:
            setattr(cfg.data, name, getattr(args, name))
    if args.seed is not None:
        cfg.data.seed = args.seed
    for name in RECIPE_DATA:
        value = getattr(args, name)
        if value not in (None, []):
            setattr(cfg.data, name, list(value) if name == "inputs" else value)
    cfg.warmup = min(cfg.warmup, max(1, cfg.steps // 10)) if args.steps is not None and args.warmup is None else cfg.warmup
    return cfg


def _check_inputs(args) -> None:
    from molviz.errors import InputError
    recipe = args.preset in RECIPE_NAMES
    if not recipe and args.inputs:
        raise InputError(f"the preset {args.preset!r} brings its own molecules, so INPUT "
                         f"({' '.join(args.inputs[:3])}) has no place here; for your own molecules use "
                         "`molviz train library INPUT...` or `molviz train ensemble INPUT...`")
    if recipe and not args.inputs and not args.data:
        raise InputError(f"molviz train {args.preset} needs INPUT files (or --data FILE.npz prepared from them), "
                         f"e.g. molviz train {args.preset} "
                         + ("mols.csv --out runs/mine" if args.preset == "library" else "top.pdb traj.dcd --out runs/md"))
    flags = [f"--{n.replace('_', '-')}" for n in RECIPE_DATA if n not in ("inputs", "channels")
             and getattr(args, n) is not None]
    if not recipe and flags:
        raise InputError(f"{', '.join(flags)}: only for `molviz train library | ensemble INPUT...`")
    if (args.workers or args.parts) and args.preset != "library":
        raise InputError("--workers/--parts prepare a library in parts: `molviz train library INPUT... --workers 2`")
    if args.workers is not None and not 1 <= args.workers <= 256 or args.parts is not None and args.parts < 1:
        raise InputError("--workers: give 1 to 256 processes; --parts: at least 1")
    if args.shard and not args.prepare_only:
        raise InputError("--shard prepares one part of a library: use it with --prepare-only PART.npz, then train "
                         "from all parts with --data PART0.npz PART1.npz ...")


def _report_inputs(data, cfg, where) -> None:
    """Say how many inputs were used and skipped, and list the skipped ones in ``where``."""
    from molviz.training._data import write_skipped
    if cfg.data.dataset not in RECIPE_NAMES:
        return
    info = data.meta.get("inputs") or {"n": data.n_items, "used": data.n_items, "skipped": []}
    path = write_skipped(where, data.skipped)
    for note in info.get("notes") or []:
        print(f"note: {note}")
    print(f"{cfg.data.dataset}: {info['n']} input(s), {data.n_items} used as items, {len(data.skipped)} skipped "
          f"(listed in {path})")


def _prepare(cfg, args, skipped_csv):
    """prepare(), and when nothing at all could be used, the reasons in ``skipped_csv`` too."""
    from pathlib import Path

    from molviz.errors import InputError
    from molviz.training._data import prepare, prepare_in_parts, write_skipped
    try:
        if args.workers:
            folder = (Path(args.out) / "prepared" if args.out and not args.prepare_only
                      else Path(args.prepare_only).with_suffix(".parts"))
            return prepare_in_parts(cfg.data, folder, workers=args.workers, parts=args.parts,
                                    progress=not args.no_progress)
        return prepare(cfg.data, progress=not args.no_progress)
    except InputError as exc:
        rows = getattr(exc, "skipped", None)
        if rows:
            skipped_csv.parent.mkdir(parents=True, exist_ok=True)
            write_skipped(skipped_csv, rows)
            raise InputError(f"{exc}; every input is listed in {skipped_csv}") from None
        raise


def _train(args) -> int:
    from pathlib import Path

    from molviz.errors import InputError
    from molviz.training._data import PreparedData
    _check_inputs(args)
    cfg = _config_from_args(args)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    command = command_line(args)
    if args.prepare_only:
        data = _prepare(cfg, args, Path(args.prepare_only).with_name(
            Path(args.prepare_only).name.removesuffix(".npz") + ".skipped.csv"))
        path = data.save(args.prepare_only)
        _report_inputs(data, cfg, path.with_name(path.name.removesuffix(".npz") + ".skipped.csv"))
        print(f"prepared {data.n_items} item(s), {data.n_channels} channels "
              f"({', '.join(data.meta['channel_names'])}), {len(data.xyz)} atom rows -> {path}")
        return 0
    if not args.out:
        raise InputError("molviz train needs --out DIR (the bundle folder), or --prepare-only FILE.npz")
    if args.data:
        data = PreparedData.concat([PreparedData.load(f) for f in args.data])
        recipe = tuple(n for n in RECIPE_DATA if n != "shard") if args.preset in RECIPE_NAMES else ()
        for name in ("box", "spacing", "hydrogens", *recipe):   # how the file was prepared, unless overridden
            if getattr(args, name) in (None, []):
                setattr(cfg.data, name, getattr(data.data_config, name))
    else:
        data = _prepare(cfg, args, Path(args.out) / "skipped.csv")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    _report_inputs(data, cfg, Path(args.out) / "skipped.csv")
    from molviz.training._train import train
    summary = train(cfg, data, args.out, device=args.device, resume=args.resume, init_from=args.init_from,
                    time_limit=args.time_limit, time_budget=args.time_budget,
                    progress=not args.no_progress, data_path=", ".join(args.data) if args.data else None,
                    command=command)
    if "bundle" in summary:
        extra = f", held-out {summary['heldout_psnr']:.2f} dB" if "heldout_psnr" in summary else ""
        print(f"{summary['stopped']} at step {summary['step']} in {summary['seconds']:.1f} s on "
              f"{summary['device']} (x{summary['world_size']}): train PSNR {summary['train_psnr']:.2f} dB"
              f"{extra} -> {summary['bundle']}")
    return 0


def _eval(args) -> int:
    from molviz._io import atomic_write_text
    from molviz.errors import InputError
    from molviz.models import load_model, resolve_bundle
    from molviz.models._refine import check_refine_steps
    from molviz.training._eval import evaluate_bundle, ridge_report
    bundle = load_model(resolve_bundle(args.bundle))
    # `--ridge` alone is the latent report only; PSNR runs when asked for or when there is no ridge
    report = {"results": {}, "n_items": 0}
    if args.resolution or not args.ridge:
        from molviz.fields import MAX_RESOLUTION, MIN_RESOLUTION
        bad = [n for n in (args.resolution or []) if not MIN_RESOLUTION <= n <= MAX_RESOLUTION]
        if bad or args.atoms_resolution and not MIN_RESOLUTION <= args.atoms_resolution <= MAX_RESOLUTION:
            raise InputError(f"--resolution / --atoms-resolution: give {MIN_RESOLUTION}..{MAX_RESOLUTION} voxels "
                             "per axis (--atoms-resolution 0 skips atom recovery)")
        if not all(0.0 < lv <= 1.0 for lv in args.levels) or not args.tolerance > 0:
            raise InputError("--levels: give values in (0, 1] (fields peak at 1); --tolerance: a positive distance")
        check_refine_steps(args.refine)
        report = evaluate_bundle(bundle, resolutions=tuple(args.resolution) if args.resolution else None,
                                 items=args.items, max_items=args.max_items, device=args.device,
                                 progress=not args.json, levels=tuple(args.levels),
                                 recovery_resolution=args.atoms_resolution or None, tolerance=args.tolerance,
                                 refine=args.refine)
    ridge = ridge_report(bundle) if args.ridge else None
    if args.json:
        print(json.dumps({**report, **({"ridge": ridge} if ridge else {})}, indent=1))
    else:
        for n, r in report["results"].items():
            chans = ", ".join(f"{c} {v:.1f}" for c, v in r["channel_psnr"].items())
            refined = f", latents refined {args.refine} steps" if args.refine else ""
            print(f"{n}^3, {report['n_items']} {args.items} item(s){refined}: mean PSNR {r['mean_psnr']:.2f} dB "
                  f"(median {r['median_psnr']:.2f}, min {r['min_psnr']:.2f}); per channel: {chans}")
            if r["median_peak_ratio"] is not None:
                peaks = ", ".join(f"{c} {v:.2f}" for c, v in r["channel_peak_ratio"].items() if v is not None)
                print(f"  peak ratio (decoded max / true max, 1 is right): median {r['median_peak_ratio']:.2f}, "
                      f"{100 * r['lost_fraction']:.0f}% of present channels below half; per channel: {peaks}")
            ious = ", ".join(f"IoU@{lv} {v:.3f}" for lv, v in (r.get("mean_iou") or {}).items() if v is not None)
            spur = r.get("mean_spurious_fraction")
            print(f"  shape: {ious or 'IoU -'}; spurious {'-' if spur is None else f'{100 * spur:.2f}%'} of voxels "
                  f">= 0.5 where the truth is < 0.05; PSNR gain over all-zero {r.get('mean_psnr_gain', float('nan')):.2f} dB")
            at = r.get("atoms")
            if at:
                def pct(v):
                    return "-" if v is None else f"{100 * v:.1f}%"
                rmsd = "-" if at["rmsd"] is None else f"{at['rmsd']:.2f} A"
                print(f"  atoms (found on a {args.atoms_resolution}^3 decode, matched within {args.tolerance} A): "
                      f"recall {pct(at['recall'])}, precision {pct(at['precision'])}, element accuracy "
                      f"{pct(at['element_accuracy'])}, RMSD {rmsd}, "
                      f"complete molecules {pct(at['complete_fraction'])}")
        if ridge:
            print("ridge R^2 (5-fold, held-out folds): "
                  + ", ".join(f"{k} {v:.3f}" for k, v in ridge["r2"].items()))
    if args.write and bundle.path is not None:
        path = bundle.path / "eval.json"
        with locked_folder(bundle.path):           # evaluations run side by side merge without losing each other
            old = json.loads(path.read_text()) if path.exists() else {}
            psnr, command = old.get("psnr", {}), command_line(args)
            for n, r in report["results"].items():
                key = f"{args.items}@{n}" + (f"/max{args.max_items}" if args.max_items else "") \
                    + (f"/refine{args.refine}" if args.refine else "")
                psnr[key] = {**r, "items": args.items, "n_items": report["n_items"], "refine": report.get("refine", 0),
                             "command": command}
            # every command that wrote into the file, oldest first (a repeat moves to the end)
            earlier = old.get("commands") or ([old["command"]] if "command" in old else [])  # older files: one
            commands = [c for c in earlier if c != command] + [command]
            new = {**{k: v for k, v in old.items() if k != "command"}, "psnr": psnr, "commands": commands}
            if ridge:
                new["ridge"] = {**ridge, "command": command}
            atomic_write_text(path, json.dumps(new, indent=1))
        if not args.json:
            print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m molviz.training train ...``): only this module's commands,
    so a bare GPU box needs nothing but torch, numpy and safetensors."""
    from molviz._cmd import run
    parser = argparse.ArgumentParser(prog="python -m molviz.training")
    register(parser.add_subparsers(dest="command", metavar="COMMAND"))
    return run(parser, argv)
