"""``molviz bench library``: preparing your own molecules (``molviz train library``), per molecule.

FreeSolv's SMILES (642 small molecules, 3-44 atoms with hydrogens) written to a CSV with
their experimental values as a property, prepared as ``molviz train library`` does it (RDKit
ETKDGv3 + MMFF94 per SMILES, seeded; element channels plus density; the freesolv recipe's
16^3 boxes): seconds per molecule, atom rows and npz bytes per molecule, and the same library
in 2 shards (``--shard K/2``) merged by :meth:`PreparedData.concat`, checked equal to one
preparation. The last line extrapolates the time to a 93,000-molecule library on one core,
and with ``--shard`` over the machine's cores; embedding dominates, and drug-like molecules
(25-70 atoms) take several times longer than FreeSolv's.

Each size runs in a fresh process so its peak RSS is its own. Registered in ``molviz bench``
as ``library`` (``BENCHMARKS["library"] = "molviz.training._bench:run"``).

On the shared 2-core CPU (load 8): 642 molecules in 21.6 s, 33.6 ms and 338 npz bytes per
molecule, peak RSS 361 MB; in 2 shards merged: equal to one preparation.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

LIBRARY_SIZE = 93_000      # the scale the extrapolation is for


def row(n: int, shards: int = 1) -> dict:
    """Prepare the first ``n`` FreeSolv SMILES (in ``shards`` parts, merged); timings and sizes."""
    import csv
    import resource
    import time

    import numpy as np
    import torch

    from molviz.chem import read_freesolv
    from molviz.training import PreparedData, get_preset, prepare

    torch.set_num_threads(1)
    folder = Path(tempfile.mkdtemp(prefix="molviz-bench-library-"))
    table = folder / "freesolv.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["compound_id", "smiles", "iupac", "expt"])
        w.writerows([r["compound_id"], r["smiles"], r["iupac"], r["expt"]] for r in read_freesolv()[:n])
    cfg = get_preset("library").data
    cfg.inputs = [str(table)]
    t0 = time.perf_counter()
    if shards == 1:
        data = prepare(cfg, progress=False)
    else:
        parts = []
        for k in range(shards):
            cfg.shard = f"{k}/{shards}"
            parts.append(prepare(cfg, progress=False))
        data = PreparedData.concat(parts)
    seconds = time.perf_counter() - t0
    path = data.save(folder / "library.npz")
    out = {"molecules": n, "shards": shards, "items": data.n_items, "skipped": len(data.skipped),
           "seconds": round(seconds, 3), "ms_per_molecule": round(1000 * seconds / n, 2),
           "atom_rows": int(len(data.xyz)), "channels": data.n_channels,
           "npz_bytes_per_molecule": round(path.stat().st_size / n, 1),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if shards > 1:
        cfg.shard = None
        whole = prepare(cfg, progress=False)
        out["equal_to_one_preparation"] = all(np.array_equal(getattr(whole, k), getattr(data, k)) for k in (
            "xyz", "channel", "width", "offsets", "boxes", "divisors", "split"))
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()
    return out


def _fresh(n: int, shards: int) -> dict:
    code = (f"import json; from molviz.training._bench import row; print(json.dumps(row({n}, {shards})))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=3600)
    if proc.returncode:
        return {"molecules": n, "shards": shards, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> int:
    from molviz._io import atomic_write_text

    sizes = [(20, 1), (20, 2)] if args.quick else [(100, 1), (642, 1), (642, 2)]
    rows = []
    print("molviz bench library: FreeSolv SMILES as `molviz train library` prepares them "
          "(ETKDGv3 + MMFF94, elements+density, 16^3), one torch thread, a fresh process per row")
    print(f"{'molecules':>9} {'shards':>6} {'items':>6} {'seconds':>8} {'ms/mol':>7} {'rows/mol':>8} "
          f"{'npz B/mol':>9} {'peak RSS':>9}")
    if os.getloadavg()[0] > (os.cpu_count() or 1):
        print("note: the machine is busy (load > CPUs): times include waiting for a core")
    for n, shards in sizes:
        r = _fresh(n, shards)
        rows.append(r)
        if "error" in r:
            print(f"{n:>9} {shards:>6}  failed: {r['error']}")
            continue
        same = "" if "equal_to_one_preparation" not in r else (
            "  = one preparation" if r["equal_to_one_preparation"] else "  DIFFERS from one preparation")
        print(f"{n:>9} {shards:>6} {r['items']:>6} {r['seconds']:>8.2f} {r['ms_per_molecule']:>7.1f} "
              f"{r['atom_rows'] / n:>8.1f} {r['npz_bytes_per_molecule']:>9.0f} {r['peak_rss_mb']:>7.0f} MB{same}")
    good = [r for r in rows if "error" not in r and r["shards"] == 1]
    if good:
        ms = good[-1]["ms_per_molecule"]
        cores = os.cpu_count() or 1
        minutes = LIBRARY_SIZE * ms / 1000 / 60
        print(f"{LIBRARY_SIZE:,} FreeSolv-sized molecules at {ms:.1f} ms each: ~{minutes:.0f} min on one core, "
              f"~{minutes / cores:.0f} min as {cores} shards (--shard K/{cores}) on this machine's {cores} cores")
    failed = any("error" in r or r.get("equal_to_one_preparation") is False for r in rows)
    if getattr(args, "json", None):
        atomic_write_text(args.json, json.dumps({"benchmark": "library", "rows": rows}, indent=1))
    return 1 if failed else 0
