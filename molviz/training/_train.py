"""The training loop: flat, top to bottom, with small helpers (nanoGPT's train.py).

Runs on one CPU or GPU, or under ``torchrun`` as DDP (NCCL on GPUs, gloo on
CPUs). Every rank draws the same global batch from the same seeded generator
and keeps its shard (items when the batch divides evenly, else points), so N
ranks follow the trajectory of one process with the same global batch, up to
floating-point reduction order. Only rank 0 writes.
"""
from __future__ import annotations

import json
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from molviz._io import atomic_write_text
from molviz.errors import InputError
from molviz.fields._tables import grid_field, normalized_coords, table_field, table_grids
from molviz.training._checkpoint import load_checkpoint, save_checkpoint
from molviz.training._config import TrainConfig
from molviz.training._data import PreparedData

CHECKPOINT_DIR = "checkpoint"
HISTORY = "history.jsonl"


class FieldNet(nn.Module):
    """Network plus the part that makes latents: an encoder (auto-encoder) or a latent table."""

    def __init__(self, siren: nn.Module, *, encoder: nn.Module | None = None, table: nn.Module | None = None,
                 boxes: np.ndarray | None = None):
        super().__init__()
        self.siren, self.encoder, self.table = siren, encoder, table
        # the training items' boxes (N, 2, 3), for an encoder that reads the box size; not saved
        self.register_buffer("boxes", None if boxes is None else torch.as_tensor(boxes, dtype=torch.float32),
                             persistent=False)

    def encode(self, index: torch.Tensor, fields: torch.Tensor) -> torch.Tensor:
        box = self.boxes[index] if self.boxes is not None else None
        return self.encoder(fields, box)                                # (B, C, N, N, N) -> (B, L)

    def latents(self, index: torch.Tensor, fields: torch.Tensor | None) -> torch.Tensor:
        if self.encoder is not None:
            return self.encode(index, fields)                           # (B, C, N, N, N) -> (B, L)
        return self.table(index)                                        # (B,) -> (B, L)

    def forward(self, coords: torch.Tensor, index: torch.Tensor, fields: torch.Tensor | None = None) -> torch.Tensor:
        return self.siren(coords, self.latents(index, fields))          # (B, P, 3) -> (B, P, C)


# ----------------------------------------------------------------------------- set-up helpers

def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device} asked for CUDA, but this torch sees no GPU; use --device cpu")
    return torch.device(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    n = torch.get_num_threads()
    return (f"cpu: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
            f"{n} torch thread{'s' if n > 1 else ''}")


def dist_setup(device: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises torch.distributed when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, resolve_device(device)
    import torch.distributed as dist
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return rank, world, dev


def build_net(cfg: TrainConfig, n_channels: int, n_items: int, boxes: np.ndarray | None = None) -> FieldNet:
    from molviz.models import Encoder3D, EncoderConfig, LatentTable, ModulatedSiren, config_for_size
    over = {"modulation": cfg.modulation}
    if cfg.latent_dim:
        over["latent_dim"] = cfg.latent_dim
    if cfg.w0:
        over["w0"] = cfg.w0
    siren = ModulatedSiren(config_for_size(cfg.size, out_dim=n_channels, **over))
    L = siren.cfg.latent_dim
    if cfg.mode == "autoencoder":
        width = 8 if cfg.size == "XS" else 32
        enc = Encoder3D(EncoderConfig(in_channels=n_channels, latent_dim=L, width=width,
                                      downsample=cfg.data.resolution >= 16, box_scale=cfg.encoder_box))
        if cfg.encoder_box and boxes is None:
            raise ValueError("an encoder that reads the box size needs the items' boxes")
        return FieldNet(siren, encoder=enc, boxes=boxes if cfg.encoder_box else None)
    return FieldNet(siren, table=LatentTable(n_items, L))


def init_weights(net: FieldNet, path: str | os.PathLike, cfg: TrainConfig, data: PreparedData) -> dict:
    """Copy a bundle's network, encoder and latents into ``net`` (a warm start).

    The bundle must have the same architecture, channels and, for an auto-decoder, the same
    items. Returns the bundle's provenance (with its path), for the new bundle's record.
    """
    from molviz.models import load_model
    bundle = load_model(path)
    where = f"--init-from {path}"
    if bundle.config.get("mode") != cfg.mode:
        raise InputError(f"{where} is an {bundle.config.get('mode')} bundle; this run trains an {cfg.mode}")
    if bundle.channel_names != list(data.meta["channel_names"]):
        raise InputError(f"{where} has channels {bundle.channel_names}; the data has "
                         f"{list(data.meta['channel_names'])}. Train on data prepared like the bundle's.")
    mine, theirs = net.siren.cfg.to_dict(), bundle.model.cfg.to_dict()
    if mine != theirs:
        diff = ", ".join(f"{k} {theirs.get(k)} (run: {mine.get(k)})" for k in mine if mine[k] != theirs.get(k))
        raise InputError(f"{where}: the bundle's network differs: {diff}. Pass the bundle's --size, "
                         "--latent-dim, --w0 and --modulation.")
    if net.encoder is not None:
        if bundle.encoder is None or bundle.encoder.cfg != net.encoder.cfg:
            raise InputError(f"{where}: the bundle's encoder differs from this run's "
                             f"({None if bundle.encoder is None else bundle.encoder.cfg} vs {net.encoder.cfg}); "
                             "match --encoder-box and --size.")
        net.encoder.load_state_dict(bundle.encoder.state_dict())
    else:
        names = [it.get("name") for it in data.items]
        if [it.get("name") for it in bundle.items] != names:
            raise InputError(f"{where} was trained on other items ({bundle.n_items} vs {len(names)} here, or "
                             "in another order); an auto-decoder's latents belong to its own items.")
        with torch.no_grad():
            net.table.latents.copy_(bundle.latents)
    net.siren.load_state_dict(bundle.model.state_dict())
    prov = bundle.config.get("provenance", {})
    return {"bundle": str(path),
            **{k: prov[k] for k in ("device", "seconds", "steps", "command", "init_from") if k in prov}}


BALANCE_CAP = 20.0


def channel_energy(fields: torch.Tensor, items: np.ndarray) -> torch.Tensor:
    """Mean squared target of each channel (C,) over the training grids ``fields`` (N, C, R, R, R) of ``items``."""
    acc = torch.zeros(fields.shape[1], device=fields.device)
    idx = torch.from_numpy(np.asarray(items)).to(fields.device)
    for chunk in idx.split(64):                       # chunks: the grids may not fit twice in memory
        acc += (fields[chunk].float() ** 2).mean(dim=(2, 3, 4)).sum(0)
    return acc / max(1, len(idx))


def channel_weights(energy: torch.Tensor, power: float) -> torch.Tensor:
    """Loss weights (C,) = (mean energy of the channels / energy of c)^power, in [1, BALANCE_CAP].

    A channel without energy (absent from the data) gets weight 1.

    Examples
    --------
    >>> channel_weights(torch.tensor([1.0, 1e-4, 0.0]), 0.5).tolist()
    [1.0, 20.0, 1.0]
    """
    present = energy > 0
    w = torch.ones_like(energy)
    if present.any():
        w[present] = (energy[present].mean() / energy[present]) ** power
    return w.clamp(1.0, BALANCE_CAP)


def get_lr(step: int, cfg: TrainConfig, time_fraction: float = 0.0) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine down to ``min_lr_ratio``.

    ``time_fraction`` (elapsed / time budget) moves the cosine along when the time budget,
    not the step count, will end the run, so the schedule completes either way.
    """
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    t = max((step - cfg.warmup) / max(1, cfg.steps - cfg.warmup), time_fraction)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def grid_fields(data: PreparedData, resolution: int, divisors: np.ndarray, *, device: torch.device,
                dtype: torch.dtype, progress: bool = False) -> torch.Tensor:
    """Every item's normalised field on its training grid: (N, C, R, R, R)."""
    from molviz._progress import tqdm
    N, C, R = data.n_items, data.n_channels, resolution
    beta = data.data_config.beta
    out = torch.empty(N, C, R, R, R, dtype=dtype, device=device)
    step = 256
    with tqdm(total=N, desc="grid targets", disable=not progress or N < 20, dynamic_ncols=True) as bar:
        for lo in range(0, N, step):
            items = np.arange(lo, min(N, lo + step))
            out[lo:lo + len(items)] = table_grids(data.xyz, data.channel, data.width, data.offsets, C, data.boxes, R,
                                                  beta=beta, divisors=divisors, items=items,
                                                  device=device).to(dtype)          # (b, C, R, R, R)
            bar.update(len(items))
    return out


class BatchFields:
    """Items' training grids made when asked, never held: what :func:`grid_fields` returns, indexed the
    same way (an int, a slice, index tensors or arrays), for libraries whose grids would not fit in memory
    (``target_storage="batch"``; 93,087 MUV molecules at 16^3 and 9 channels are 6 GB in fp16).

    Examples
    --------
    >>> f = BatchFields(data, 16, data.divisors, device=torch.device("cpu"))     # doctest: +SKIP
    >>> f[torch.tensor([3, 7])].shape                                             # doctest: +SKIP
    torch.Size([2, 9, 16, 16, 16])
    """

    def __init__(self, data: PreparedData, resolution: int, divisors: np.ndarray, *, device: torch.device) -> None:
        self.data, self.R, self.divisors, self.device = data, int(resolution), divisors, device
        self.shape = (data.n_items, data.n_channels, self.R, self.R, self.R)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, (int, np.integer)):
            return self._one(int(key))
        if isinstance(key, slice):
            idx = range(*key.indices(self.shape[0]))
        else:
            idx = [int(i) for i in np.asarray(key.cpu() if isinstance(key, torch.Tensor) else key).reshape(-1)]
        if not len(idx):
            return torch.empty(0, *self.shape[1:], device=self.device)
        return self._grids(idx)

    def _one(self, i: int) -> torch.Tensor:
        return self._grids([i])[0]                                                  # (C, R, R, R)

    def _grids(self, idx) -> torch.Tensor:
        d = self.data
        return table_grids(d.xyz, d.channel, d.width, d.offsets, d.n_channels, d.boxes, self.R,
                           beta=d.data_config.beta, divisors=self.divisors, items=np.asarray(idx),
                           device=self.device)                                      # (b, C, R, R, R)


def target_storage(setting: str, n_items: int, n_channels: int, resolution: int, device: torch.device) -> str:
    """What ``target_storage="auto"`` means for a run: every grid in fp32 while they take under 2 GB
    (8 GB on a GPU), in fp16 while those take under that, else made per batch ("batch").

    Examples
    --------
    >>> target_storage("auto", 642, 11, 16, torch.device("cpu"))
    'fp32'
    >>> target_storage("auto", 93_087, 9, 16, torch.device("cpu"))
    'batch'
    """
    if setting != "auto":
        return setting
    limit = 8 << 30 if device.type == "cuda" else 2 << 30
    nbytes = n_items * n_channels * resolution**3 * 4
    return "fp32" if nbytes < limit else "fp16" if nbytes // 2 < limit else "batch"


def continuous_pool(data: PreparedData, items: np.ndarray, n_points: int, near_fraction: float,
                    divisors: np.ndarray, *, seed: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random points per item (a share around atom centres, the rest uniform) and their exact targets.

    Returns coords (N, P, 3) in [-1, 1] and targets (N, P, C) float32 (rows of items not in
    ``items`` stay zero). Depends only on ``seed``, so a resumed run rebuilds the same pool.
    """
    g = torch.Generator().manual_seed(seed)
    N, C = data.n_items, data.n_channels
    beta = data.data_config.beta
    coords = torch.zeros(N, n_points, 3, device=device)
    targets = torch.zeros(N, n_points, C, device=device)
    n_near = int(round(near_fraction * n_points))
    for i in items:
        xyz, ch, w = data.table(int(i))
        lo, hi = torch.from_numpy(data.boxes[i, 0]), torch.from_numpy(data.boxes[i, 1])
        uni = torch.rand(n_points - n_near, 3, generator=g) * (hi - lo) + lo
        rows = torch.randint(len(xyz), (n_near,), generator=g)
        # A blob exp(-beta d^2 / r^2) is a Gaussian of std r / sqrt(2 beta): sample inside it.
        std = torch.from_numpy(w)[rows, None] / math.sqrt(2 * beta)
        near = torch.from_numpy(xyz)[rows] + torch.randn(n_near, 3, generator=g) * std
        pts = torch.cat([near, uni]).clamp(min=lo, max=hi)                 # (P, 3) angstrom
        coords[i] = (2 * (pts - lo) / (hi - lo) - 1).to(device)
        targets[i] = table_field(xyz, ch, w, C, pts.to(device), beta=beta, divisors=divisors[i])
    return coords, targets


def rotate_180(grids: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """(b, C, X, Y, Z) voxel grids, item i turned 180 degrees about the x (``which[i] = 1``), y (2) or
    z (3) axis through its box centre, or left as it is (0).

    Flipping two axes of a grid whose voxel centres are symmetric about the box centre is exactly
    that rotation: the result is the field of the turned molecule on the same grid.

    Examples
    --------
    >>> g = torch.arange(8.0).reshape(1, 1, 2, 2, 2)
    >>> rotate_180(g, torch.tensor([3]))[0, 0, :, :, 0].tolist()   # about z: x and y flip
    [[6.0, 4.0], [2.0, 0.0]]
    """
    out = grids.clone()
    which = which.to(grids.device)
    for k, dims in ((1, (3, 4)), (2, (2, 4)), (3, (2, 3))):
        sel = which == k
        if bool(sel.any()):
            out[sel] = grids[sel].flip(dims)
    return out


def with_grid_points(coords: torch.Tensor, target: torch.Tensor, pidx: torch.Tensor, pool_size: int,
                     grid_coords: torch.Tensor, grids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Swap in voxel centres where a point index is ``pool_size + v`` (``grid_fraction``).

    ``coords`` (b, P, 3) and ``target`` (b, P, C) come from the continuous pool; index ``v`` is
    a voxel of the training grid: its coordinates from ``grid_coords`` (R^3, 3) and its value
    from ``grids`` (b, C, R, R, R).
    """
    on_grid = (pidx >= pool_size)[..., None]
    vox = (pidx - pool_size).clamp(min=0)
    flat = grids.flatten(2).transpose(1, 2)                                         # (b, R^3, C)
    voxel_target = torch.gather(flat, 1, vox[..., None].expand(-1, -1, flat.shape[-1]))
    return torch.where(on_grid, grid_coords[vox], coords), torch.where(on_grid, voxel_target, target)


def _rng_state(sampler: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    state = {"sampler": sampler.get_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(rng: dict[str, torch.Tensor], sampler: torch.Generator, device: torch.device) -> None:
    sampler.set_state(rng["sampler"])
    torch.set_rng_state(rng["torch"])
    if device.type == "cuda" and "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"], device)


# ----------------------------------------------------------------------------- the loop

def train(cfg: TrainConfig, data: PreparedData, out: str | os.PathLike, *, device: str = "auto",
          resume: bool = False, init_from: str | os.PathLike | None = None,
          time_limit: float | None = None, time_budget: float | None = None, stop_after: int | None = None,
          progress: bool = True, data_path: str | None = None, command: str | None = None) -> dict[str, Any]:
    """Train ``cfg`` on prepared ``data``; checkpoints and the final bundle go to ``out``.

    ``time_limit`` (seconds of this session) and ``stop_after`` (steps of this session) stop
    early, save a checkpoint and still write a usable bundle. ``time_budget`` (seconds) also
    stops, but first compresses the cosine schedule so it ends on time (the run is then no
    longer bit-reproducible: the schedule depends on the clock). ``init_from`` (a bundle folder)
    starts from that bundle's weights and latents with a fresh optimiser and schedule; the
    bundle's provenance is kept. Returns a summary dict.

    Examples
    --------
    >>> from molviz.training import get_preset, PreparedData
    >>> cfg = get_preset("6ega", quick=True)
    >>> summary = train(cfg, PreparedData.load("runs/prepared/6ega.npz"), "runs/x")  # doctest: +SKIP
    """
    from molviz._progress import tqdm

    out = Path(out)
    rank, world, dev = dist_setup(device)
    master = rank == 0
    data.check_matches(cfg.data)
    R, C = cfg.data.resolution, data.n_channels
    beta = data.data_config.beta
    train_items = np.flatnonzero(data.split == 0)
    held_items = np.flatnonzero(data.split == 1)
    if cfg.mode == "autodecoder":      # an auto-decoder has no held-out items: each needs its own latent
        train_items = np.arange(data.n_items)
    if len(train_items) == 0:
        raise InputError("the prepared data has no training items")
    if master:
        out.mkdir(parents=True, exist_ok=True)

    # ---- seeds and data on the device
    torch.manual_seed(cfg.seed)
    sampler = torch.Generator().manual_seed(cfg.seed + 1)
    divisors = data.divisors   # continuous channel maxima: valid at any resolution
    store = target_storage(cfg.target_storage, data.n_items, C, R, dev)
    need_grid = cfg.protocol == "grid" or cfg.mode == "autoencoder" or cfg.grid_fraction > 0
    if not need_grid:
        fields = None
    elif store == "batch":              # a library too large to hold: each batch's grids from the atom tables
        fields = BatchFields(data, R, divisors, device=dev)
    else:
        fields = grid_fields(data, R, divisors, device=dev, progress=progress and master,
                             dtype=torch.float16 if store == "fp16" else torch.float32)
    grid_coords = normalized_coords(R, device=dev)                          # (R^3, 3)
    n_points = cfg.points or (R**3 if cfg.protocol == "grid" else 8192)
    pool_size = max(n_points, cfg.pool_points or min(8 * R**3, 1 << 18)) if cfg.protocol == "continuous" else 0
    n_grid = int(round(cfg.grid_fraction * n_points)) if cfg.protocol == "continuous" else 0
    if not 0.0 <= cfg.grid_fraction <= 1.0:
        raise InputError(f"--grid-fraction {cfg.grid_fraction}: give a share between 0 and 1")
    if cfg.augment and (cfg.mode != "autoencoder" or cfg.protocol != "grid"):
        raise InputError("--augment turns the voxel grids an auto-encoder reads and is scored on: it needs an "
                         "auto-encoder preset (freesolv, nmr-ae) with --protocol grid; pass --no-augment "
                         "(augment=False) for this run")
    pool_key = None
    pool = None

    # ---- model and optimiser
    net = build_net(cfg, C, data.n_items, data.boxes)
    parent = None
    if init_from is not None:
        if resume:
            raise InputError("--init-from starts a new run and --resume continues one; use one of them")
        parent = init_weights(net, init_from, cfg, data)
    net = net.to(dev)
    groups = [{"params": list(net.siren.parameters()), "lr": cfg.lr, "base_lr": cfg.lr}]
    if net.encoder is not None:
        groups.append({"params": list(net.encoder.parameters()), "lr": cfg.lr, "base_lr": cfg.lr})
    if net.table is not None:
        groups.append({"params": list(net.table.parameters()), "lr": cfg.latent_lr, "base_lr": cfg.latent_lr})
    opt = torch.optim.Adam(groups)
    model = net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        model = DDP(net, device_ids=[dev.index] if dev.type == "cuda" else None)
    use_amp = dev.type == "cuda" and cfg.precision == "bf16"
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = cfg.precision == "tf32"

    step, elapsed_before = 0, 0.0
    ckpt_dir = out / CHECKPOINT_DIR
    if resume:
        step, rng, info = load_checkpoint(ckpt_dir, module=net, opt=opt, device=dev)
        _set_rng_state(rng, sampler, dev)
        elapsed_before = float(info.get("elapsed", 0.0))
        if info.get("config") and info["config"] != json.loads(json.dumps(cfg.to_dict())):
            changed = sorted(k for k in cfg.to_dict() if info["config"].get(k) != cfg.to_dict()[k])
            if master:
                print(f"molviz train: resuming with changed settings: {', '.join(changed)}", file=sys.stderr)
        if master:   # keep the history consistent with the checkpoint
            hist = out / HISTORY
            if hist.exists():
                lines = [ln for ln in hist.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
                atomic_write_text(hist, "".join(ln + "\n" for ln in lines))

    def get_batch(step: int):
        """The global batch of ``step`` (identical on every rank), then this rank's shard."""
        nonlocal pool, pool_key
        B = cfg.batch
        idx = torch.from_numpy(train_items)[torch.randint(len(train_items), (B,), generator=sampler)]
        if cfg.protocol == "grid":
            if cfg.points and cfg.points < R**3:
                pidx = torch.randint(R**3, (B, cfg.points), generator=sampler)      # (B, P)
            else:
                pidx = None
        else:
            key = step // cfg.pool_refresh if cfg.pool_refresh else 0   # a function of the step: resumable
            if pool_key != key:
                pool = None   # free the old pool before drawing the next
                pool = continuous_pool(data, train_items, pool_size, cfg.near_fraction, divisors,
                                       seed=cfg.seed * 7919 + key, device=dev)
                pool_key = key
            # indices >= pool_size stand for voxel centres of the training grid (grid_fraction)
            pidx = torch.randint(pool_size, (B, n_points - n_grid), generator=sampler)
            if n_grid:
                pidx = torch.cat([pidx, pool_size + torch.randint(R**3, (B, n_grid), generator=sampler)], 1)
        # shard: items if they divide evenly over the ranks, else points
        if world > 1 and B % world == 0:
            sl = slice(rank * B // world, (rank + 1) * B // world)
            idx = idx[sl]
            pidx = pidx[sl] if pidx is not None else None
        elif world > 1:
            P = pidx.shape[1] if pidx is not None else R**3
            if pidx is None:
                pidx = torch.arange(R**3).expand(B, -1)
            pidx = pidx[:, rank * P // world:(rank + 1) * P // world]
        idx_d = idx.to(dev)
        grids = fields[idx_d].float() if fields is not None else None              # (b, C, R, R, R)
        if cfg.augment:
            grids = rotate_180(grids, torch.randint(4, (len(idx),), generator=sampler))
        enc_in = grids if cfg.mode == "autoencoder" else None
        if cfg.protocol == "grid":
            flat = grids.flatten(2).transpose(1, 2)                                 # (b, R^3, C)
            if pidx is None:
                coords = grid_coords.expand(len(idx), -1, -1)                      # (b, R^3, 3)
                target = flat
            else:
                pidx_d = pidx.to(dev)
                coords = grid_coords[pidx_d]                                        # (b, P, 3)
                target = torch.gather(flat, 1, pidx_d[..., None].expand(-1, -1, C))
        else:
            pidx_d = pidx.to(dev)
            at = pidx_d.clamp(max=pool_size - 1)[..., None]
            coords = torch.gather(pool[0][idx_d], 1, at.expand(-1, -1, 3))
            target = torch.gather(pool[1][idx_d], 1, at.expand(-1, -1, C))
            if n_grid:
                coords, target = with_grid_points(coords, target, pidx_d, pool_size, grid_coords, grids)
        return idx_d, coords, target, enc_in

    @torch.no_grad()
    def evaluate(items: np.ndarray) -> float:
        """Mean PSNR over ``items`` on the full training grid (the paper's measure)."""
        from molviz.models import psnr
        net.eval()
        vals = []
        for i in items:
            i_t = torch.tensor([int(i)], device=dev)
            if fields is not None:
                truth = fields[i_t].float()                                         # (1, C, R, R, R)
            else:
                truth = grid_field(*data.table(int(i)), C, data.boxes[i], R, beta=beta,
                                   divisors=divisors[i], device=dev)[None]          # (1, C, R, R, R)
            z = net.latents(i_t, truth if net.encoder is not None else None)
            pred = net.siren(grid_coords[None], z).transpose(1, 2).reshape(1, C, R, R, R)
            vals.append(psnr(pred, truth))
        net.train()
        return float(np.mean(vals)) if vals else float("nan")

    def write_history(record: dict) -> None:
        if master:
            with open(out / HISTORY, "a") as f:
                f.write(json.dumps(record) + "\n")

    def checkpoint(step: int, elapsed: float) -> None:
        if master:
            save_checkpoint(ckpt_dir, step=step, module=net, opt=opt, rng=_rng_state(sampler, dev),
                            info={"elapsed": elapsed, "config": cfg.to_dict(), "world_size": world})

    eval_train = train_items[: cfg.eval_items]
    eval_held = held_items[: cfg.eval_items]
    t_start = time.time()
    first_step = step
    stopped = "completed"
    last = {"loss": float("nan"), "psnr": float("nan")}
    time_fraction = 0.0   # elapsed / time_budget, synchronised over ranks at every log step
    bar = tqdm(total=cfg.steps, initial=step, disable=not (progress and master), dynamic_ncols=True,
               desc=f"train {cfg.preset}", unit="step")
    net.train()
    weights = None                        # per-channel loss weights (channel_balance); a function of the data
    if cfg.channel_balance:               # and the seed only, so a resumed run uses the same
        if fields is not None:
            # per-batch grids: the channels' energy from a fixed sample of 2,000 training items
            some = (train_items if not isinstance(fields, BatchFields) or len(train_items) <= 2000 else
                    np.random.default_rng(cfg.seed).choice(train_items, 2000, replace=False))
            energy = channel_energy(fields, some)
        else:
            first_pool = continuous_pool(data, train_items, pool_size, cfg.near_fraction, divisors,
                                         seed=cfg.seed * 7919, device=dev)
            energy = (first_pool[1].float() ** 2).mean(dim=(0, 1))
            del first_pool
        weights = channel_weights(energy, cfg.channel_balance)
        if master:
            write_history({"step": step, "channel_weights": [round(float(w), 4) for w in weights]})
    while step < cfg.steps:
        if time_limit is not None and time.time() - t_start > time_limit:
            stopped = "time-limit"
            break
        if stop_after is not None and step - first_step >= stop_after:
            stopped = "stop-after"
            break
        if time_budget is not None and world == 1:   # DDP ranks agree on the clock at log steps
            time_fraction = (time.time() - t_start) / time_budget
        if time_budget is not None and time_fraction >= 1.0:
            stopped = "time-budget"
            break
        mult = get_lr(step, cfg, time_fraction)
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * mult
        idx, coords, target, enc_in = get_batch(step)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp):
            pred = model(coords, idx, enc_in)                                       # (b, P, C)
        pred = pred.float()
        err = pred - target
        per = err.abs() if cfg.loss == "l1" else err**2
        loss = (per * weights).mean() if weights is not None else per.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        step += 1

        if step % cfg.log_every == 0 or step == cfg.steps:
            frac = (time.time() - t_start) / time_budget if time_budget else 0.0
            stats = torch.stack([loss.detach(), (err.detach() ** 2).mean(),
                                 torch.tensor(frac, device=dev)])
            if world > 1:
                import torch.distributed as dist
                dist.all_reduce(stats)
                stats /= world
            lv, mse, time_fraction = stats.tolist()   # rank 0 and the others agree on the clock
            last = {"loss": lv, "psnr": -10 * math.log10(max(mse, 1e-30))}
            elapsed = elapsed_before + time.time() - t_start
            write_history({"step": step, "loss": lv, "psnr": round(last["psnr"], 4), "lr": cfg.lr * mult,
                           "seconds": round(elapsed, 3)})
            bar.set_postfix(loss=f"{lv:.2e}", psnr=f"{last['psnr']:.2f}dB")
        bar.update(1)
        if master and cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.steps:
            rec = {"step": step, "eval_psnr": round(evaluate(eval_train), 4),
                   "seconds": round(elapsed_before + time.time() - t_start, 3)}
            if len(eval_held) and cfg.mode == "autoencoder":
                rec["heldout_psnr"] = round(evaluate(eval_held), 4)
            write_history(rec)
            bar.write(f"step {step}: train PSNR {rec['eval_psnr']:.2f} dB"
                      + (f", held-out {rec['heldout_psnr']:.2f} dB" if "heldout_psnr" in rec else ""))
        if cfg.ckpt_every and step % cfg.ckpt_every == 0 and step < cfg.steps:
            checkpoint(step, elapsed_before + time.time() - t_start)
    bar.close()
    elapsed = elapsed_before + time.time() - t_start
    checkpoint(step, elapsed)

    summary: dict[str, Any] = {"step": step, "stopped": stopped, "seconds": round(elapsed, 2),
                               "loss": last["loss"], "batch_psnr": last["psnr"], "world_size": world,
                               "device": device_name(dev)}
    if master:
        summary["train_psnr"] = evaluate(eval_train)
        if len(eval_held) and cfg.mode == "autoencoder":
            summary["heldout_psnr"] = evaluate(eval_held)
        write_history({"step": step, "eval_psnr": round(summary["train_psnr"], 4), "seconds": round(elapsed, 3),
                       **({"heldout_psnr": round(summary["heldout_psnr"], 4)} if "heldout_psnr" in summary else {})})
        summary["bundle"] = str(write_bundle(cfg, data, net, fields, divisors, out, summary=summary,
                                             data_path=data_path, command=command, device=dev, parent=parent))
    if world > 1:
        import torch.distributed as dist
        dist.barrier()
    return summary


@torch.no_grad()
def write_bundle(cfg: TrainConfig, data: PreparedData, net: FieldNet, fields: torch.Tensor | BatchFields | None,
                 divisors: np.ndarray, out: Path, *, summary: dict, data_path: str | None,
                 command: str | None, device: torch.device, parent: dict | None = None) -> Path:
    """Save the trained network, latents, boxes, items and atom tables via molviz.models.save_bundle."""
    from molviz.models import Bundle, save_bundle
    net.eval()
    if net.encoder is not None:
        lat = torch.cat([net.encode(torch.arange(i, min(i + 64, data.n_items), device=fields.device),
                                    fields[i:i + 64].float()) for i in range(0, data.n_items, 64)])
    else:
        lat = net.table.latents.detach()
    items = []
    for i, it in enumerate(data.items):
        items.append({**it, "split": "heldout" if data.split[i] else "train"})
    config = {
        "name": cfg.preset,
        "preset": cfg.preset,
        "mode": cfg.mode,
        "channels": data.meta["data"]["channels"],
        "channel_defs": data.meta["channels"],
        "channel_names": data.meta["channel_names"],
        "grid": {"mode": cfg.data.box, "resolution": cfg.data.resolution, "spacing": cfg.data.spacing,
                 "box_convention": "boxes hold the first and last voxel centre; network coords "
                                   "p_norm = 2 (p - lo) / (hi - lo) - 1"},
        "resolution": cfg.data.resolution,
        "beta": cfg.data.beta,
        "normalize": "max",
        "divisors": "arrays['divisors'] (N, C): channel maxima over each item's training grid",
        "protocol": cfg.protocol,
        "loss": cfg.loss,
        "training": cfg.to_dict(),
        "data": {"prepared_file": data_path, "dataset": cfg.data.dataset, "n_items": data.n_items,
                 "n_heldout": int(data.split.sum()), "provenance": data.meta.get("provenance", {})},
        "metrics": {"train_psnr": summary.get("train_psnr"), "heldout_psnr": summary.get("heldout_psnr"),
                    "resolution": cfg.data.resolution, "eval_items": cfg.eval_items},
        "provenance": {"device": device_name(device), "world_size": summary["world_size"],
                       "seconds": summary["seconds"], "steps": summary["step"], "stopped": summary["stopped"],
                       "torch": torch.__version__,
                       "command": command or " ".join(shlex.quote(a) for a in sys.argv),
                       "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       **({"init_from": parent} if parent else {})},
    }
    arrays = {"atoms_xyz": data.xyz, "atoms_channel": data.channel, "atoms_width": data.width,
              "atoms_offsets": data.offsets, "divisors": np.asarray(divisors, np.float32),
              "split": data.split.astype(np.int8)}
    bundle = Bundle(config=config, model=net.siren.cpu(), latents=lat.float().cpu(), boxes=data.boxes,
                    items=items, encoder=None if net.encoder is None else net.encoder.cpu(), arrays=arrays)
    # save_bundle replaces its whole folder; ``out`` also keeps the checkpoint and history, so
    # write the bundle beside it and move its files in (each move is atomic).
    import shutil

    from molviz._io import temp_folder_beside
    tmp = temp_folder_beside(out.with_name(out.name + ".bundle"))
    try:
        written = save_bundle(bundle, tmp / "bundle")
        for f in written.iterdir():
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    net.to(device)
    return out
