"""Training configuration: one dataclass, one preset per experiment (nanoGPT style).

A preset fixes the data (which molecules, channels, beta, grid) and the recipe
(model size, steps, schedule, batch). Command-line flags override single fields;
``quick`` shrinks everything for smoke tests.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from molviz.errors import InputError

Mode = Literal["autodecoder", "autoencoder"]
Protocol = Literal["grid", "continuous"]


@dataclass
class DataConfig:
    """What ``prepare`` builds: the molecules, their channels and their boxes."""

    dataset: Literal["6ega", "freesolv", "nmr", "library", "ensemble"]
    channels: str                       # a molviz.fields channel spec ("paper-6ega", "freesolv", ...)
    beta: float                         # sharpness of Eq. 1 (paper: 0.25 for 6EGA, 0.75 otherwise)
    resolution: int = 32                # voxels per axis of the training grid
    box: Literal["fit", "shared", "spacing"] = "fit"  # fit: one box per item (paper); shared: one for all
    spacing: float | None = None        # angstrom, only for box="spacing"
    hydrogens: Literal["keep", "remove", "add"] = "keep"
    max_items: int | None = None        # keep only the first K molecules (smoke tests, quick runs)
    heldout: float = 0.0                # fraction of items held out of training (auto-encoder)
    seed: int = 0                       # conformer generation and split
    # your own molecules (dataset "library" or "ensemble"); the presets leave these empty
    inputs: list[str] = field(default_factory=list)  # files, folders, globs (SMILES too for a library)
    smiles_column: str | None = None    # library tables: None finds a column named smiles, canonical_smiles ...
    name_column: str | None = None      # library tables / SD fields: None finds name, title, id ...
    max_atoms: int | None = None        # skip (library) or refuse (ensemble) more atoms; None: molviz.chem's limit
    stride: int = 1                     # ensemble: every stride-th frame / model
    start: int | None = None            # ensemble: frames start:stop (Python slice rules)
    stop: int | None = None
    select: str | None = None           # ensemble: MDAnalysis selection ("protein and not name H*")
    shard: str | None = None            # library: "K/N" prepares only the K-th of N blocks of the inputs;
                                        # PreparedData.concat of the N files in order is the whole library
    geometry: Literal["mmff", "etkdg"] = "mmff"  # library SMILES: ETKDGv3 + MMFF94 (as the presets), or
                                        # ETKDGv3 only: ~2x faster embedding on MUV, heavy atoms 0.8 A
                                        # median RMSD from the MMFF geometry (molviz bench library)


@dataclass
class TrainConfig:
    """Everything one training run needs; saved whole into checkpoints and the bundle."""

    preset: str
    mode: Mode
    data: DataConfig
    size: str = "M"                     # a key of molviz.models.MODEL_SIZES
    latent_dim: int | None = None       # None: the size's default
    w0: float | None = None             # first-layer frequency of the SIREN (None: 30, Sitzmann et al.)
    modulation: Literal["mehta", "film"] = "mehta"
    protocol: Protocol = "grid"
    points: int | None = None           # points per item per step; None: the whole grid (grid protocol)
    near_fraction: float = 0.5          # continuous: share of points drawn around atom centres
    pool_points: int | None = None      # continuous: exact targets precomputed per item (None: 8 R^3, <= 2^18)
    pool_refresh: int = 0               # continuous: draw a fresh pool every K steps (0: one pool per run)
    grid_fraction: float = 0.0          # continuous: share of each step's points drawn at the training grid's
                                        # voxel centres (the grid the paper scores); on 6EGA, 0.5 gave 33.4 dB
                                        # at 32^3 in 300 s against 34.9 dB without, so the presets keep 0
    loss: Literal["l1", "mse"] = "l1"   # the paper used L1; the presets use MSE: on 6EGA (S, 16^3, 400
                                        # steps) L1 at 2e-4 sat at the all-zero solution (22.9 dB),
                                        # MSE at 1e-3 reached 27.0 dB
    channel_balance: float = 0.0        # 0: every channel's error counts alike; p > 0: channel c's error is
                                        # weighted by (mean energy / energy of c)^p, capped at BALANCE_CAP, so
                                        # sparse channels (ligand, N, O, halogens) are not traded for big ones
    encoder_box: bool = False           # auto-encoder: the encoder also reads each box's size, which
                                        # per-molecule boxes otherwise hide from the latents
    augment: bool = False               # auto-encoder, grid protocol: each item turned by a random 180-degree
                                        # rotation about a box axis (or not) per step; flipping two axes of
                                        # a voxel grid is exactly that rotation about the box centre
    steps: int = 2000
    batch: int = 1                      # items per step (global, over all DDP ranks)
    lr: float = 1e-4                    # peak learning rate of the network (paper: 1e-4 constant)
    latent_lr: float = 1e-3             # auto-decoder latent table
    warmup: int = 100                   # linear warm-up steps
    min_lr_ratio: float = 0.05          # cosine decays to lr * min_lr_ratio
    grad_clip: float = 0.0              # 0: off
    precision: Literal["fp32", "tf32", "bf16"] = "fp32"  # CUDA only: tf32 matmuls, or bf16 autocast;
                                        # SIREN's w0=30 first layer is precision-hungry, so fp32 by default
    seed: int = 0
    eval_every: int = 250               # steps between full-grid PSNR evaluations (0: only at the end)
    eval_items: int = 32                # items used by the in-loop evaluation
    ckpt_every: int = 1000              # steps between checkpoints (0: only at the end)
    log_every: int = 10                 # steps between history lines
    target_storage: Literal["auto", "fp32", "fp16", "batch"] = "auto"  # grid fields kept on the device, or
                                                                   # made per batch (auto: when they would not fit)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        d["data"] = DataConfig(**d["data"])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def _6ega() -> TrainConfig:
    return TrainConfig(
        preset="6ega", mode="autodecoder",
        data=DataConfig(dataset="6ega", channels="paper-6ega", beta=0.25, resolution=32),
        # The paper: 8 layers x 256 (size L) on the grid. Measured on the 2-core CPU (one thread): in
        # 300-s runs on the continuous protocol, 2048 points per step beat 8192, 1024 and 512, and a
        # half-grid sample (--grid-fraction 0.5) did not help. Short runs misjudge size: M was behind S
        # at 300 s (29.5 vs 34.9 dB at 32^3) but passed 42 dB after 24 minutes, where S plateaued at
        # 38.6 dB in 37; L at lr 1e-3 had not started learning after 340 s.
        size="M", latent_dim=128, protocol="continuous", points=2048,
        steps=60000, batch=1, loss="mse", lr=1e-3, latent_lr=1e-3, warmup=200, pool_refresh=2000,
        eval_every=1000, ckpt_every=5000,
    )


def _freesolv() -> TrainConfig:
    return TrainConfig(
        preset="freesolv", mode="autoencoder",
        data=DataConfig(dataset="freesolv", channels="freesolv", beta=0.75, resolution=16,
                        heldout=0.1),
        size="M", latent_dim=512,       # the paper: 4 layers x 256, latent 512
        encoder_box=True,               # ExactMolWt ridge R^2 0.82 -> 0.92 in equal 9-min CPU runs
        augment=True,                   # held-out 29.56 -> 30.73 dB at 32^3 in a 90-min continuation
        steps=20000, batch=16, loss="mse", lr=1e-3, warmup=500,
        eval_every=1000, ckpt_every=5000, eval_items=64,
    )


def _nmr() -> TrainConfig:
    return TrainConfig(
        preset="nmr", mode="autodecoder",
        data=DataConfig(dataset="nmr", channels="elements+density", beta=0.75, resolution=32,
                        box="shared"),
        # 300-s CPU A/B (one thread): 1024 points x 4 conformers at lr 2e-3 25.9 dB at 32^3, 4096 points
        # at 1e-3 23.1 dB. Run longer, S at lr 2e-3 gave 28.76 dB in 30 minutes; M at lr 1e-3 (the
        # shipped 2JUY bundle) 31.13 dB in 80
        size="M", latent_dim=64, protocol="continuous", points=1024,
        steps=60000, batch=4, loss="mse", lr=1e-3, latent_lr=1e-3, warmup=200,
        eval_every=1000, ckpt_every=5000,
    )


def _nmr_ae() -> TrainConfig:
    cfg = _nmr()
    cfg.preset, cfg.mode = "nmr-ae", "autoencoder"
    return cfg


def _library() -> TrainConfig:
    """Your own molecules (``molviz train library INPUT...``): the FreeSolv recipe, element channels."""
    cfg = _freesolv()
    cfg.preset = "library"
    cfg.data.dataset, cfg.data.channels = "library", "elements+density"
    return cfg


def _ensemble() -> TrainConfig:
    """Conformers of one system (``molviz train ensemble INPUT...``): the NMR recipe."""
    cfg = _nmr()
    cfg.preset, cfg.data.dataset = "ensemble", "ensemble"
    return cfg


PRESETS = {"6ega": _6ega, "freesolv": _freesolv, "nmr": _nmr, "nmr-ae": _nmr_ae,
           "library": _library, "ensemble": _ensemble}
RECIPES = ("library", "ensemble")     # presets over the user's INPUT files


def get_preset(name: str, *, quick: bool = False) -> TrainConfig:
    """The configuration of a named preset, optionally shrunk for a smoke run.

    Examples
    --------
    >>> get_preset("6ega").data.beta
    0.25
    >>> get_preset("freesolv", quick=True).data.resolution
    8
    """
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    cfg = PRESETS[name]()
    if quick:
        cfg.data.resolution = 8
        cfg.data.max_items = {"freesolv": 12, "nmr": 4}.get(cfg.data.dataset)
        cfg.size, cfg.latent_dim = "XS", 16
        cfg.steps, cfg.warmup = 20, 2
        cfg.batch = min(cfg.batch, 4)
        cfg.eval_every, cfg.ckpt_every, cfg.log_every = 10, 10, 1
        cfg.eval_items = 4
    return cfg


def data_key(d: DataConfig) -> dict[str, Any]:
    """The fields of a DataConfig that a prepared file must match to be reused."""
    return {k: getattr(d, k) for k in ("dataset", "channels", "beta", "box", "spacing", "hydrogens", "inputs",
                                       "smiles_column", "name_column", "max_atoms", "stride", "start", "stop",
                                       "select", "geometry")}


__all__ = ["DataConfig", "TrainConfig", "PRESETS", "RECIPES", "get_preset", "data_key"]
