"""``molviz bench engine``: decode throughput against the matmul ceiling, interactive updates,
adaptive against dense decoding, scikit-image against VTK.

The decode part needs torch only (the GPU box has no RDKit, gemmi or PyVista);
mesh rows are skipped with a note when PyVista / scikit-image are missing.

Rows
- ``ceiling``: a torch matrix product chain of exactly the network's layer shapes
  (chunk x 3 -> H, (depth - 1) x H -> H, H -> C) in the engine's precision,
  timed in the same run: the FLOP/s this machine gives these shapes.
- ``decode``: dense decode of one latent (points/s, FLOP/s from the layer
  shapes, % of the ceiling), timed with the volume left on the device
  (``on_device_ms``, the decode itself; the share of the ceiling uses it) and
  copied to a host array (``to_host_ms``, what :meth:`Engine.decode` returns).
- ``update``: one interactive update at N^3 = dense decode + isosurfaces of all
  channels (level 0.5: trained fields are normalised to peak 1; random stand-ins
  use half-way from median to maximum), the same with adaptive decoding (and
  ``adaptive_level_change_ms``: the levels moved 10 % lower, reusing the voxels
  the first adaptive decode evaluated), and
  ``update_on_device_ms``: :meth:`Engine.surfaces` (decode and marching cubes on
  the engine's device, only the meshes copied back; PyVista not needed).
- ``adaptive``: decoded fraction and the error against dense (max |difference| in
  the cells the dense surface crosses; vertex counts and Hausdorff distance of
  the meshes).
- ``mesh``: ms per isosurface, scikit-image against VTK flying edges (and the
  engine's torch marching cubes, run on the CPU, for reference).
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

TARGETS = {
    "cpu_decode_fraction": 0.5,        # 2-core CPU: decode >= 50 % of the matmul ceiling
    "cpu_freesolv_update_64": 0.3,     # s, FreeSolv bundle, 64^3 interactive update
    "gpu_update_128": 0.020,           # s, H100
    "gpu_update_256": 0.150,           # s, H100
}


class _Skip(Exception):
    pass


def _timeit(fn, *, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _have_mesh() -> tuple[bool, str]:
    try:
        import pyvista  # noqa: F401
        import skimage  # noqa: F401
        return True, ""
    except ImportError as exc:
        return False, f"mesh rows skipped: {exc.name} is not installed"


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


# ----------------------------------------------------------------------------- bundles

RANDOM = {  # stand-ins with the shipped models' shapes, for throughput where no bundle exists
    "random-freesolv": ("freesolv-shape (random weights)", "M", 11, 512),
    "random-6ega": ("6ega-shape (random weights)", "L", 6, 128),
}


def _bundles(args) -> list[tuple[str, object]]:
    """(label, Bundle) pairs: --bundle folders (or random-freesolv / random-6ega), else the
    shipped models, else the random stand-ins."""
    from molviz.models import bundled_models_dir, find_bundles, load_model, resolve_bundle
    paths = list(args.bundle or []) or [str(p) for p in find_bundles(bundled_models_dir())] or list(RANDOM)
    out = []
    for p in paths:
        if p in RANDOM:
            label, size, channels, latent = RANDOM[p]
            out.append((label, _random_bundle(size, channels, latent)))
        else:
            out.append((Path(resolve_bundle(p)).name, load_model(resolve_bundle(p))))
    return out


def _random_bundle(size: str, channels: int, latent: int):
    from molviz.models import Bundle, ModulatedSiren, config_for_size
    torch.manual_seed(0)
    cfg = config_for_size(size, out_dim=channels, latent_dim=latent)
    box = np.array([[[-8.0] * 3, [8.0] * 3]], np.float32)
    return Bundle(config={"model": cfg.to_dict()}, model=ModulatedSiren(cfg),
                  latents=torch.randn(2, latent) * 0.1, boxes=box.repeat(2, axis=0))


# ----------------------------------------------------------------------------- rows

def _ceiling(eng, n_points: int, repeats: int) -> float:
    """FLOP/s of a matmul chain with the network's shapes, chunk by chunk, in the engine's precision."""
    cfg, dev = eng.cfg, eng.device
    chunk = min(eng.chunk_points, n_points)
    half = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[eng.precision]
    x0 = torch.randn(chunk, cfg.in_dim, device=dev)
    w0 = torch.randn(cfg.in_dim, cfg.hidden, device=dev)
    h = torch.randn(chunk, cfg.hidden, device=dev, dtype=half)
    wh = torch.randn(cfg.hidden, cfg.hidden, device=dev, dtype=half) / math.sqrt(cfg.hidden)
    wl = torch.randn(cfg.hidden, cfg.out_dim, device=dev)
    n_chunks = math.ceil(n_points / chunk)

    def run():
        for _ in range(n_chunks):
            torch.mm(x0, w0)
            for _ in range(cfg.depth - 1):
                torch.mm(h, wh)
            torch.mm(h.float(), wl)
        _sync(dev)

    seconds = _timeit(run, repeats=repeats)
    return eng.model.flops_per_point() * n_chunks * chunk / seconds


def _levels(vol: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    """Half-way from each channel's background (median) to its maximum: 0.5 x max for a trained
    field (background ~0), and still a surface for random stand-in weights. NaN: flat channel."""
    flat = vol.reshape(vol.shape[0], -1)
    med, top = np.median(flat, axis=1), flat.max(axis=1)
    return np.where(top - med > 1e-3, med + fraction * (top - med), np.nan)


def _surfaces(vol: np.ndarray, grid, levels: np.ndarray, backend: str = "auto") -> int:
    from molviz.mesh import isosurface
    n = 0
    for c in range(vol.shape[0]):
        if np.isfinite(levels[c]):
            n += isosurface(vol[c], grid, level=float(levels[c]), mode="absolute", backend=backend).n_points
    return n


def _crossed(vol: np.ndarray, level: float) -> np.ndarray:
    nx, ny, nz = vol.shape
    corners = np.stack([vol[i:nx - 1 + i, j:ny - 1 + j, k:nz - 1 + k]
                        for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    return (corners.min(0) <= level) & (corners.max(0) > level)


def _adaptive_error(dense: np.ndarray, adaptive: np.ndarray, levels: np.ndarray) -> dict:
    worst, cells_equal = 0.0, True
    for c in range(dense.shape[0]):
        if not np.isfinite(levels[c]):
            continue
        d, a = _crossed(dense[c], levels[c]), _crossed(adaptive[c], levels[c])
        cells_equal &= bool(np.array_equal(d, a))
        if d.any():
            nx, ny, nz = dense.shape[1:]
            for i in (0, 1):
                for j in (0, 1):
                    for k in (0, 1):
                        sl = (slice(i, nx - 1 + i), slice(j, ny - 1 + j), slice(k, nz - 1 + k))
                        worst = max(worst, float(np.abs(dense[c][sl] - adaptive[c][sl])[d].max()))
    return {"max_abs_diff_surface_cells": worst, "same_crossed_cells": cells_equal}


def _mesh_distance(dense: np.ndarray, adaptive: np.ndarray, grid, levels: np.ndarray) -> dict:
    from scipy.spatial import cKDTree

    from molviz.mesh import isosurface
    h, dv, av = 0.0, 0, 0
    for c in range(dense.shape[0]):
        if not np.isfinite(levels[c]):
            continue
        a = isosurface(adaptive[c], grid, level=float(levels[c]), mode="absolute")
        d = isosurface(dense[c], grid, level=float(levels[c]), mode="absolute")
        dv, av = dv + d.n_points, av + a.n_points
        if a.n_points and d.n_points:
            h = max(h, cKDTree(a.points).query(d.points)[0].max(), cKDTree(d.points).query(a.points)[0].max())
        elif a.n_points != d.n_points:
            h = math.inf
    return {"hausdorff_voxels": h / min(grid.spacing), "dense_vertices": dv, "adaptive_vertices": av}


def _one_vertex_per_crossed_edge(eng, z, n: int, levels: np.ndarray, surfs) -> bool:
    """The device surfaces' check where no mesh library exists: one vertex per grid edge whose
    ends straddle the level, counted on the same device from the dense volume."""
    vol = eng.decode_tensor(z, resolution=n)[0]
    for c, s in enumerate(surfs):
        if not np.isfinite(levels[c]):
            continue
        inside = vol[c] > float(levels[c])
        crossed = sum(int((inside.narrow(a, 1, n - 1) != inside.narrow(a, 0, n - 1)).sum()) for a in range(3))
        if crossed != s.n_points:
            return False
    return True


def _molecule_field(resolution: int) -> tuple[np.ndarray, object] | None:
    """A real FreeSolv molecule's field (RDKit conformer) for the skimage/VTK comparison."""
    try:
        from molviz.chem import load
        from molviz.fields import fit_grid, parse_channels, sample_field
    except ImportError:
        return None
    try:
        s = load("O=C(O)c1ccccc1Oc1ccccc1Cl", seed=0)  # a FreeSolv-size aromatic molecule
        ch = parse_channels("density")
        grid = fit_grid(s, ch, resolution=resolution, beta=0.75)
        return sample_field(s, ch, grid, beta=0.75)[0], grid
    except Exception:  # noqa: BLE001 - RDKit missing on a bare box
        return None


def run(args: argparse.Namespace) -> int:
    from molviz.engine import Engine
    quick = bool(getattr(args, "quick", False))
    device = getattr(args, "device", "auto") or "auto"
    mesh_ok, mesh_note = _have_mesh()
    results: dict = {"targets": TARGETS, "rows": [], "notes": []}
    if mesh_note:
        results["notes"].append(mesh_note)
    rows = results["rows"]

    def emit(row: dict) -> None:
        rows.append(row)
        print("  " + "  ".join(f"{k}={_fmt(v)}" for k, v in row.items()), flush=True)

    bundles = _bundles(args)
    first = Engine(bundles[0][1], device=device, cache_bytes=0)
    results["device"] = _device_name(first.device)
    results["torch"] = torch.__version__
    is_gpu = first.device.type == "cuda"
    print(f"molviz bench engine on {results['device']} (torch {torch.__version__})", flush=True)
    sizes = [32, 64] if quick else ([32, 64, 128, 256] if is_gpu else [32, 64, 128])
    if not is_gpu and not quick:
        results["notes"].append("256^3 skipped on CPU (minutes per decode); run it on a GPU")

    for label, bundle in bundles:
        eng = Engine(bundle, device=device, cache_bytes=0)
        cfg = eng.cfg
        print(f"\n[{label}] {cfg.depth} x {cfg.hidden} SIREN, latent {cfg.latent_dim}, {cfg.out_dim} channels, "
              f"{eng.model.flops_per_point() / 1e3:.0f} kFLOP/point, {eng.precision}, chunk {eng.chunk_points}",
              flush=True)
        z = eng.latents[0]
        reps = 2 if quick else 3

        # --- throughput against the ceiling: the decode on the device, and with the copy to the host
        n_tp = 64 if (quick or not is_gpu) else 128
        pts = n_tp ** 3

        def on_device():
            eng.decode_tensor(z, resolution=n_tp)
            _sync(eng.device)

        t_dev = _timeit(on_device, repeats=reps)
        t_dec = _timeit(lambda: eng.decode(z, resolution=n_tp, cache=False), repeats=reps)
        ceiling = _ceiling(eng, pts, reps)
        achieved = eng.model.flops_per_point() * pts / t_dev
        emit({"bundle": label, "row": "decode", "resolution": n_tp, "points_per_s": pts / t_dev,
              "GFLOP_per_s": achieved / 1e9, "ceiling_GFLOP_per_s": ceiling / 1e9,
              "fraction_of_ceiling": achieved / ceiling, "on_device_ms": t_dev * 1e3, "to_host_ms": t_dec * 1e3,
              "target": None if is_gpu else f">= {TARGETS['cpu_decode_fraction']:.0%} of ceiling"})

        if is_gpu:  # precision and torch.compile: do they pay here?
            ref = Engine(bundle, device=device, precision="fp32", cache_bytes=0)
            a, b = ref.decode(z, resolution=64, cache=False), eng.decode(z, resolution=64, cache=False)
            t32 = _timeit(lambda: ref.decode(z, resolution=n_tp, cache=False), repeats=reps)
            emit({"bundle": label, "row": "precision", "compare": f"{eng.precision} vs fp32",
                  "max_abs_diff": float(np.abs(a - b).max()),
                  "psnr_vs_fp32_dB": float(20 * np.log10(1 / max(np.sqrt(np.mean((a - b) ** 2)), 1e-12))),
                  "fp32_ms": t32 * 1e3, f"{eng.precision}_ms": t_dec * 1e3})
            try:
                if quick or label != bundles[0][0]:   # compiling costs tens of seconds: once per run
                    raise _Skip("measured on the first bundle only" if not quick else "skipped with --quick")
                comp = Engine(bundle, device=device, cache_bytes=0, compile=True)
                comp.decode(z, resolution=n_tp, cache=False)  # compile
                tc = _timeit(lambda: comp.decode(z, resolution=n_tp, cache=False), repeats=reps)
                emit({"bundle": label, "row": "compile", "resolution": n_tp, "eager_ms": t_dec * 1e3,
                      "compiled_ms": tc * 1e3, "speedup": t_dec / tc})
            except _Skip as why:
                emit({"bundle": label, "row": "compile", "note": str(why)})
            except Exception as exc:  # noqa: BLE001 - report, do not fail the benchmark
                emit({"bundle": label, "row": "compile", "error": f"{type(exc).__name__}: {exc}"[:200]})
        elif not quick:  # CPU chunk size: where does throughput flatten?
            for chunk in (1 << 12, 1 << 13, 1 << 14, 1 << 15):
                e2 = Engine(bundle, device=device, cache_bytes=0, chunk_points=chunk)
                t = _timeit(lambda: e2.decode(z, resolution=48, cache=False), repeats=2)
                emit({"bundle": label, "row": "chunk", "chunk": chunk, "points_per_s": 48 ** 3 / t})

        # --- interactive updates: dense and adaptive, decode + isosurfaces of every channel
        stand_in = "random weights" in label
        if bundle.spec.normalize == "max" and "normalize" in bundle.config:   # trained: every channel peaks near 1
            levels = np.full(eng.n_channels, 0.5)
        else:                                         # untrained: half-way to its own maximum
            levels = _levels(eng.decode(z, resolution=32, cache=False)[0])
        if stand_in:
            results["notes"].append(f"{label}: decode timings only; its fields are not molecules, so "
                                    "adaptive and mesh rows would say nothing")
        for n in sizes:
            r = 1 if n >= 128 else reps
            grid = eng.item_grid(0, n)
            dense, t_dense = None, math.inf
            for _ in range(r if n >= 128 else r + 1):   # (the first small run warms up)
                t0 = time.perf_counter()
                dense = eng.decode(z, resolution=n, cache=False)[0]
                t_dense = min(t_dense, time.perf_counter() - t0)
            if stand_in:
                emit({"bundle": label, "row": "update", "resolution": n, "dense_decode_ms": t_dense * 1e3})
                continue
            adaptive, t_adapt = None, math.inf
            for _ in range(r):
                t0 = time.perf_counter()
                adaptive = eng.decode_adaptive(z, resolution=n, levels=levels)
                t_adapt = min(t_adapt, time.perf_counter() - t0)
            # a level dragged 10 % lower: the next adaptive decode reuses this one's voxels
            t_drag = _timeit(lambda: eng.decode_adaptive(z, resolution=n, levels=0.9 * levels, known=adaptive),
                             repeats=r, warmup=0)
            row = {"bundle": label, "row": "update", "resolution": n, "dense_decode_ms": t_dense * 1e3,
                   "adaptive_decode_ms": t_adapt * 1e3, "adaptive_fraction": adaptive.fraction,
                   "adaptive_level_change_ms": t_drag * 1e3}
            if mesh_ok:
                t_mesh = _timeit(lambda: _surfaces(dense, grid, levels), repeats=r, warmup=0)
                t_mesh_a = _timeit(lambda: _surfaces(adaptive.volume, grid, levels), repeats=r, warmup=0)
                row.update(mesh_ms=t_mesh * 1e3, update_dense_ms=(t_dense + t_mesh) * 1e3,
                           update_adaptive_ms=(t_adapt + t_mesh_a) * 1e3)
            # The update on the device: decode, marching cubes there, only the meshes come back.
            surfs = []
            t_surf = _timeit(lambda: surfs.append(eng.surfaces(z, levels, resolution=n, item_box=eng.boxes[0])),
                             repeats=r, warmup=1)
            row.update(update_on_device_ms=t_surf * 1e3,
                       vertices_on_device=sum(s.n_points for s in surfs[-1]),
                       vertices_match_crossed_edges=_one_vertex_per_crossed_edge(eng, z, n, levels, surfs[-1]))
            if "freesolv" in label and n == 64 and not is_gpu:
                row["target"] = f"<= {TARGETS['cpu_freesolv_update_64'] * 1e3:.0f} ms"
            if is_gpu and n in (128, 256):
                row["target"] = f"<= {TARGETS[f'gpu_update_{n}'] * 1e3:.0f} ms (H100)"
            emit(row)
            if n > 128:  # the numpy check costs minutes of CPU at 256^3; the bound is checked below that
                continue
            err = _adaptive_error(dense, adaptive.volume, levels)
            if mesh_ok:
                err.update(_mesh_distance(dense, adaptive.volume, grid, levels))
            emit({"bundle": label, "row": "adaptive", "resolution": n, **err})

    # --- isosurface backends on a real molecular field
    if mesh_ok:
        print("\n[isosurface backends] density of a FreeSolv-size molecule (RDKit conformer), level 0.5", flush=True)
        for n in sizes + ([256] if 256 not in sizes and not quick else []):
            mol = _molecule_field(n)
            if mol is None:
                results["notes"].append("backend rows skipped: RDKit unavailable")
                break
            vol, grid = mol
            row = {"row": "mesh", "resolution": n}
            for backend in ("skimage", "vtk"):
                from molviz.mesh import isosurface
                t = _timeit(lambda: isosurface(vol, grid, level=0.5, backend=backend),
                            repeats=3 if n < 256 else 2)
                row[f"{backend}_ms"] = t * 1e3
            from molviz.engine import marching_cubes
            vt = torch.from_numpy(np.ascontiguousarray(vol, np.float32))[None]
            t = _timeit(lambda: marching_cubes(vt, torch.tensor([0.5]), origin=grid.origin, spacing=grid.spacing),
                        repeats=3 if n < 256 else 2)
            row["torch_cpu_ms"] = t * 1e3           # the engine's device-side extraction, run on the CPU
            row["faster"] = "vtk" if row["vtk_ms"] < row["skimage_ms"] else "skimage"
            emit(row)

    for note in results["notes"]:
        print(f"note: {note}")
    if getattr(args, "json", None):
        from molviz.mesh import atomic_path
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(results, indent=1, default=float))
        print(f"results written to {args.json}")
    return 0


def _fmt(v) -> str:
    if isinstance(v, float):
        if v == 0 or math.isinf(v) or math.isnan(v):
            return str(v)
        if abs(v) >= 1e5:
            return f"{v:.3g}"
        return f"{v:.4g}" if abs(v) >= 1e-3 else f"{v:.2e}"
    return str(v)
