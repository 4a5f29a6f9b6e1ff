"""Many molecules into an auto-encoder's latent space at once: atom tables -> fields -> encoder, in batches.

:meth:`molviz.engine.Engine.encode` takes one new input at a time (a SMILES is embedded, its
reconstruction decoded for a PSNR). A library of 100,000 molecules wants its latents in one
pass: :func:`encode_tables` samples the training-grid fields of a batch of items at once from their
atom tables (:func:`molviz.fields.table_grids`; the arrays ``molviz train`` stores in the bundle, or a
prepared file's), and runs
the encoder once per batch. Only one batch of fields is held, so memory does not grow with the
number of items beyond the tables and the latents.

Examples
--------
>>> from molviz.models import load_model
>>> bundle = load_model("assets/models/freesolv")                        # doctest: +SKIP
>>> a = bundle.arrays                                                     # doctest: +SKIP
>>> z = encode_tables(bundle, a["atoms_xyz"], a["atoms_channel"], a["atoms_width"], a["atoms_offsets"],
...                   bundle.boxes, a["divisors"])                        # doctest: +SKIP
>>> z.shape                                                               # doctest: +SKIP
(642, 512)
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from molviz.errors import InputError


@torch.no_grad()
def encode_tables(bundle, xyz: np.ndarray, channel: np.ndarray, width: np.ndarray, offsets: np.ndarray,
                  boxes: np.ndarray, divisors: np.ndarray, *, batch: int = 64, device: str | torch.device = "cpu",
                  workers: int = 1, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Latents (N, L) float32 of N items given as atom tables, through ``bundle``'s encoder.

    Parameters
    ----------
    bundle
        An auto-encoder :class:`molviz.models.Bundle` (its channels, beta and resolution are used).
    xyz, channel, width, offsets
        The atom tables: rows ``offsets[i]:offsets[i + 1]`` are item ``i``'s (centre (A, 3), channel
        (A,), width (A,)), in the bundle's channel order.
    boxes, divisors
        (N, 2, 3) first and last voxel centre, and (N, C) channel maxima, per item (as prepared).
    batch
        Items per encoder call; ``progress(done, total)`` is called after each (after each block of
        items with ``workers > 1``).
    workers
        CPU processes sharing the items (each with one torch thread); needs a bundle loaded from a folder. The latents do not depend on it.
    """
    from molviz.fields._tables import table_grids

    if bundle.encoder is None:
        raise InputError(f"{bundle.name}: an auto-decoder bundle has no encoder; its latents are fitted one "
                         "molecule at a time (Engine.encode)")
    spec = bundle.spec
    spec.require_sampling(bundle.name, "encode atom tables")
    R, C, beta = int(spec.resolution), len(spec.channels), float(spec.beta)
    offsets = np.asarray(offsets, np.int64)
    n = len(offsets) - 1
    if np.shape(boxes) != (n, 2, 3) or np.shape(divisors) != (n, C):
        raise InputError(f"encode_tables: {n} items need boxes ({n}, 2, 3) and divisors ({n}, {C}); got "
                         f"{np.shape(boxes)} and {np.shape(divisors)}")
    if workers > 1 and n > batch:
        return _encode_in_processes(bundle, xyz, channel, width, offsets, boxes, divisors, batch=batch,
                                    workers=workers, progress=progress)
    dev = torch.device(device)
    encoder = bundle.encoder.to(dev).eval()
    out = []
    for lo in range(0, n, max(1, int(batch))):
        hi = min(n, lo + max(1, int(batch)))
        fields = table_grids(xyz, channel, width, offsets, C, boxes, R, beta=beta, divisors=divisors,
                             items=np.arange(lo, hi), device=dev)                  # (b, C, R, R, R)
        box = torch.as_tensor(np.asarray(boxes[lo:hi], np.float32), device=dev)    # (b, 2, 3)
        out.append(encoder(fields, box).float().cpu())                             # (b, L)
        if progress is not None:
            progress(hi, n)
    latent_dim = int(bundle.latents.shape[1]) if getattr(bundle, "latents", None) is not None else 0
    return torch.cat(out).numpy() if out else np.zeros((0, latent_dim), np.float32)


_WORKER_BUNDLE: list = []     # the bundle a worker process loaded once (_encode_in_processes)


def _load_in_worker(path: str) -> None:
    from molviz.models import load_model
    torch.set_num_threads(1)
    _WORKER_BUNDLE[:] = [load_model(path)]


def _encode_block(xyz, channel, width, offsets, boxes, divisors, batch: int) -> np.ndarray:
    return encode_tables(_WORKER_BUNDLE[0], xyz, channel, width, offsets, boxes, divisors, batch=batch)


def _encode_in_processes(bundle, xyz, channel, width, offsets, boxes, divisors, *, batch: int, workers: int,
                         progress: Callable[[int, int], None] | None) -> np.ndarray:
    """:func:`encode_tables` over blocks of items on ``workers`` spawned processes, in item order."""
    import concurrent.futures as cf
    import multiprocessing

    path = getattr(bundle, "path", None)
    if path is None:
        raise InputError("encode_tables(workers > 1) loads the bundle in each worker: give a bundle loaded from a "
                         "folder (molviz.models.load_model), or workers=1")
    n = len(offsets) - 1
    step = max(batch, -(-n // (4 * workers)) // batch * batch)    # ~4 blocks per worker, whole batches
    blocks = [(lo, min(n, lo + step)) for lo in range(0, n, step)]
    out: dict[int, np.ndarray] = {}
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                initializer=_load_in_worker, initargs=(str(path),)) as pool:
        futures = {}
        for lo, hi in blocks:
            a, b = int(offsets[lo]), int(offsets[hi])
            futures[pool.submit(_encode_block, xyz[a:b], channel[a:b], width[a:b], offsets[lo:hi + 1] - a,
                                boxes[lo:hi], divisors[lo:hi], batch)] = lo
        done = 0
        for fut in cf.as_completed(futures):
            out[futures[fut]] = fut.result()
            done += len(out[futures[fut]])
            if progress is not None:
                progress(done, n)
    return np.concatenate([out[lo] for lo, _ in blocks])
