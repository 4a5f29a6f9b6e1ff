"""The training side of ``molviz bench library``: preparing MUV molecules, and a training step at scale.

:func:`prep_row` prepares the first N molecules of MUV (``assets/data/muv/muv.csv.gz``,
93,087 drug-like molecules, 44 atoms with hydrogens on average) as ``molviz train library``
does, with one ``--geometry`` (ETKDGv3 + MMFF94, or ETKDGv3 alone) on ``--workers`` processes
(:func:`molviz.training.prepare_in_parts`), and reports molecules per second, the peak memory of
the main process and of the largest worker (``VmHWM``), and the time extrapolated to all of MUV.

:func:`step_row` times the library recipe's training step (auto-encoder, size M, latent 512,
batch 16, 16^3 grid, 180-degree augmentation: the freesolv recipe) over N items made by tiling
the atom tables of a few prepared MUV molecules, as :func:`molviz.training.train` runs it:
``targets="held"`` computes every item's grid once up front (what ``train`` does today, memory
N x C x 16^3), ``targets="batch"`` computes the 16 grids of each step from their atom tables
(memory flat in N). The step itself gathers 16 items whatever N is.

Both run inside a fresh process each (``molviz.view._library_bench`` starts them), so the peak
memory is the row's own. Targets (issue 18): all of MUV prepared in <= 30 min and <= 4 GB on the
2-core machine; step time and memory flat within 10% from 1k to 93k items.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

MUV_SIZE = 93_087       # molecules in MUV: the scale the extrapolations are for


def muv_path() -> Path:
    """MUV's ``muv.csv.gz``: the project's shared data beside the repository (``../shared/data/muv``) or the
    copy shipped under ``assets/data/muv`` (the same file)."""
    from molviz._assets import asset_path
    here = Path(__file__).resolve().parents[2]
    for path in (here.parent / "shared" / "data" / "muv" / "muv.csv.gz",
                 asset_path("data", "muv", "muv.csv.gz", must_exist=False)):
        if path.is_file():
            return path
    raise FileNotFoundError("MUV's muv.csv.gz was not found beside the repository (../shared/data/muv) nor under "
                            "assets/data/muv")


def muv_rows(n: int, *, spread: bool = False) -> tuple[list[str], list[list[str]]]:
    """The header and the first ``n`` rows of MUV (SMILES and the 17 assay columns); with ``spread``,
    ``n`` rows evenly spaced over the whole file (the file is ordered by assay, so its start need not be
    typical of all of it)."""
    import csv
    import gzip
    import itertools

    step = max(1, MUV_SIZE // n) if spread else 1
    with gzip.open(muv_path(), "rt", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        return header, list(itertools.islice(reader, 0, n * step, step))


def peak_rss_mb() -> float:
    """This process's peak resident memory (``VmHWM`` of /proc/self/status; ru_maxrss elsewhere), MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def children_peak_rss_mb() -> float:
    """The peak resident memory of the largest finished child process (the preparation workers), MB."""
    import resource
    return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its finished children: on a shared machine the
    wall time includes waiting for a core, the CPU time mostly does not."""
    import resource
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def prep_row(n: int, geometry: str = "mmff", workers: int = 1, channels: str = "elements+density",
             spread: bool = False) -> dict:
    """Prepare the first ``n`` MUV molecules (``spread``: ``n`` spread over the file) with ``workers``
    processes and ``geometry``; speed and memory."""
    import csv
    import dataclasses
    import shutil

    import torch

    from molviz.training import get_preset, prepare
    from molviz.training._data import prepare_in_parts

    torch.set_num_threads(1)
    folder = Path(tempfile.mkdtemp(prefix="molviz-bench-prep-"))
    try:
        header, rows = muv_rows(n, spread=spread)
        table = folder / "muv.csv"
        with open(table, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
        cfg = get_preset("library").data
        cfg.inputs, cfg.geometry, cfg.channels = [str(table)], geometry, channels
        # start-up (importing RDKit and torch, the first embedding) is paid once per process, not per
        # molecule: a few molecules first, untimed, so the rate extrapolates to 93k
        warm = folder / "warm.csv"
        with open(warm, "w", newline="") as f:
            csv.writer(f).writerows([header, *rows[:4]])
        t0 = time.perf_counter()
        prepare(dataclasses.replace(cfg, inputs=[str(warm)]), progress=False)
        startup = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), cpu_seconds()
        if workers > 1:
            data = prepare_in_parts(cfg, folder / "parts", workers=workers, progress=False)
        else:
            data = prepare(cfg, progress=False)
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        npz = data.save(folder / "prepared.npz")
        rate = n / seconds
        return {"row": "prepare", "molecules": n, "geometry": geometry, "workers": workers, "spread": spread,
                "items": data.n_items, "skipped": len(data.skipped), "seconds": round(seconds, 2),
                "molecules_per_s": round(rate, 2), "atom_rows": int(len(data.xyz)),
                "npz_bytes_per_molecule": round(npz.stat().st_size / n, 1),
                "peak_rss_mb": peak_rss_mb(), "worker_peak_rss_mb": children_peak_rss_mb() if workers > 1 else None,
                "muv_minutes": round(MUV_SIZE / rate / 60, 1), "cpu_s": round(cpu, 1),
                "startup_s": round(startup, 1),
                "molecules_per_cpu_s": round(n / cpu, 2),
                # all of MUV on ``workers`` idle cores, from the CPU time (perfect scaling assumed)
                "muv_minutes_idle": round(MUV_SIZE * cpu / n / workers / 60, 1)}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def tiled_data(n_items: int, *, base: int = 32, channels: str = "elements+density", seed: int = 0):
    """A :class:`PreparedData` of ``n_items`` items: the atom tables, boxes and divisors of the first
    ``base`` MUV molecules (ETKDGv3 only, the quickest) repeated; item metadata kept minimal."""
    import csv

    import numpy as np

    from molviz.training import PreparedData, get_preset, prepare

    with tempfile.TemporaryDirectory(prefix="molviz-bench-tile-") as folder:
        header, rows = muv_rows(base)
        table = Path(folder) / "muv.csv"
        with open(table, "w", newline="") as f:
            csv.writer(f).writerows([header[:1], *(r[:1] for r in rows)])
        cfg = get_preset("library").data
        cfg.inputs, cfg.geometry, cfg.channels, cfg.heldout = [str(table)], "etkdg", channels, 0.0
        small = prepare(cfg, progress=False)
    pick = np.arange(n_items) % small.n_items
    sizes = np.diff(small.offsets)[pick]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    rows_of = np.concatenate([np.arange(small.offsets[i], small.offsets[i + 1]) for i in pick])
    meta = {**small.meta, "items": [{"name": f"tile {i}"} for i in range(n_items)]}
    return PreparedData(xyz=small.xyz[rows_of], channel=small.channel[rows_of], width=small.width[rows_of],
                        offsets=offsets, boxes=small.boxes[pick], divisors=small.divisors[pick],
                        split=np.zeros(n_items, np.int8), meta=meta)


def step_row(n_items: int, targets: str = "held", steps: int = 12, warmup: int = 3) -> dict:
    """Median seconds of the library recipe's training step over ``n_items`` tiled MUV items."""
    import numpy as np
    import torch

    from molviz.fields._tables import normalized_coords
    from molviz.training import get_preset
    from molviz.training._train import BatchFields, build_net, grid_fields, rotate_180

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = get_preset("library")
    data = tiled_data(n_items)
    R, C, B = cfg.data.resolution, data.n_channels, cfg.batch
    t0 = time.perf_counter()
    fields = None
    if targets == "held":     # as train(): every item's grid, fp16 once it passes 2 GB
        dtype = torch.float32 if n_items * C * R**3 * 4 < 2 << 30 else torch.float16
        fields = grid_fields(data, R, data.divisors, device=torch.device("cpu"), dtype=dtype)
    setup = time.perf_counter() - t0
    net = build_net(cfg, C, n_items, data.boxes)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    coords = normalized_coords(R)                                                   # (R^3, 3)
    gen = torch.Generator().manual_seed(1)
    times, cpu = [], []
    for _ in range(warmup + steps):
        t, c = time.perf_counter(), time.process_time()
        idx = torch.randint(n_items, (B,), generator=gen)
        if fields is not None:
            grids = fields[idx].float()                                             # (B, C, R, R, R)
        else:
            grids = BatchFields(data, R, data.divisors, device=torch.device("cpu"))[idx]    # as train() does
        if cfg.augment:
            grids = rotate_180(grids, torch.randint(4, (B,), generator=gen))
        target = grids.flatten(2).transpose(1, 2)                                   # (B, R^3, C)
        pred = net(coords.expand(B, -1, -1), idx, grids)                            # (B, R^3, C)
        loss = ((pred - target) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    step = float(np.median(times[warmup:]))
    return {"row": "train step", "items": n_items, "targets": targets, "channels": C, "batch": B,
            "setup_s": round(setup, 2), "step_ms": round(1000 * step, 1),
            "step_cpu_ms": round(1000 * float(np.median(cpu[warmup:])), 1),
            "held_grids_mb": round(fields.numel() * fields.element_size() / 2**20, 1) if fields is not None else 0.0,
            "tables_mb": round(sum(a.nbytes for a in data.to_arrays().values()) / 2**20, 1),
            "peak_rss_mb": peak_rss_mb()}


def in_fresh_process(call: str, timeout: float = 3600) -> dict:
    """Run ``call`` (a Python expression returning a dict, e.g. ``"prep_row(40)"`` with this module's
    names, or a ``module:function(...)``) in a new interpreter; its dict, or ``{"error": ...}``."""
    import json
    import subprocess
    import sys

    module, _, expr = call.rpartition(":")
    module = module or __name__
    code = f"import json; from {module} import *; print(json.dumps({expr}))"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"ran past {timeout:.0f} s"}
    if proc.returncode:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])
