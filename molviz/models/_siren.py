"""Modulated SIREN: a sine network whose hidden layers are modulated by a latent.

The synthesis network maps a point in the item's box (normalised to [-1, 1]^3)
to all d channels in one pass. A separate modulator turns the latent into
per-layer modulations, computed once per latent and reused for every point, so
decoding a volume costs one matrix product per layer and point.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

Modulation = Literal["mehta", "film"]


@dataclass
class SirenConfig:
    out_dim: int = 1            # d: one output per channel
    hidden: int = 256
    depth: int = 4              # number of sine layers
    latent_dim: int = 128
    w0: float = 30.0            # frequency of the first layer (Sitzmann et al. 2020)
    w0_hidden: float = 1.0      # frequency of later layers; their init is scaled to match
    in_dim: int = 3
    modulation: Modulation = "mehta"  # "mehta": ReLU modulator scales sine outputs (reference);
                                      # "film": scale (centred at 1) and shift inside the sine

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SirenConfig:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


# Named sizes; the CLI offers the keys as choices.
MODEL_SIZES: dict[str, dict] = {
    "XS": dict(hidden=32, depth=3, latent_dim=16),     # tests and smoke runs
    "S": dict(hidden=128, depth=4, latent_dim=128),
    "M": dict(hidden=256, depth=4, latent_dim=512),    # the reference's FreeSolv auto-encoder
    "L": dict(hidden=256, depth=8, latent_dim=128),    # the reference's 6EGA auto-decoder
    "XL": dict(hidden=512, depth=8, latent_dim=256),
}


def config_for_size(size: str, *, out_dim: int, **overrides) -> SirenConfig:
    """Return the :class:`SirenConfig` of a named size with ``out_dim`` channels.

    Examples
    --------
    >>> config_for_size("XS", out_dim=6).hidden
    32
    """
    if size not in MODEL_SIZES:
        raise ValueError(f"unknown model size {size!r}; choose one of {sorted(MODEL_SIZES)}")
    return SirenConfig(out_dim=out_dim, **{**MODEL_SIZES[size], **overrides})


class Sine(nn.Module):
    def __init__(self, w0: float):
        super().__init__()
        self.w0 = w0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.w0 * x)


class SineLayer(nn.Module):
    """Linear map followed by sin(w0 x), with SIREN initialisation."""

    def __init__(self, dim_in: int, dim_out: int, *, w0: float, is_first: bool):
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)
        self.w0 = w0
        self.is_first = is_first
        self.init_siren()

    @torch.no_grad()
    def init_siren(self) -> None:
        # First layer: U(-1/fan_in, 1/fan_in); later: U(-sqrt(6/fan_in)/w0, ...), so that
        # pre-activations stay distributed like arcsine across depth (Sitzmann et al. 2020).
        fan_in = self.linear.in_features
        bound = 1.0 / fan_in if self.is_first else math.sqrt(6.0 / fan_in) / self.w0
        self.linear.weight.uniform_(-bound, bound)
        self.linear.bias.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor, scale: torch.Tensor | None = None,
                shift: torch.Tensor | None = None, *, inside: bool = False) -> torch.Tensor:
        h = self.linear(x)
        if inside:  # FiLM: modulate the pre-activation
            if scale is not None:
                h = h * scale
            if shift is not None:
                h = h + shift
            return torch.sin(self.w0 * h)
        h = torch.sin(self.w0 * h)
        return h if scale is None else h * scale


class LatentToModulation(nn.Module):
    """Latent -> per-layer modulations, one (scale, shift) pair per sine layer.

    ``mehta``: a ReLU MLP whose layer i reads [h_{i-1}, z] (Mehta et al. 2021);
    its outputs multiply the sine outputs; no shift.
    ``film``: one linear map to 2 x depth x hidden values; scale = 1 + gamma
    (centred at 1), shift = beta, both applied inside the sine (functa, FuncMol).
    """

    def __init__(self, cfg: SirenConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.modulation == "mehta":
            self.layers = nn.ModuleList(
                [nn.Linear(cfg.latent_dim, cfg.hidden)]
                + [nn.Linear(cfg.hidden + cfg.latent_dim, cfg.hidden) for _ in range(cfg.depth - 1)]
            )
        elif cfg.modulation == "film":
            self.proj = nn.Linear(cfg.latent_dim, 2 * cfg.depth * cfg.hidden)
            nn.init.zeros_(self.proj.weight)  # start as a plain SIREN: scale 1, shift 0
            nn.init.zeros_(self.proj.bias)
        else:
            raise ValueError(f"unknown modulation {cfg.modulation!r}; use 'mehta' or 'film'")

    def forward(self, z: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        cfg = self.cfg
        mods: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        if cfg.modulation == "mehta":
            h = torch.relu(self.layers[0](z))                                  # (B, L) -> (B, H)
            mods.append((h[:, None, :], None))
            for layer in self.layers[1:]:
                h = torch.relu(layer(torch.cat([h, z], dim=-1)))               # (B, H+L) -> (B, H)
                mods.append((h[:, None, :], None))
        else:
            gb = self.proj(z).view(z.shape[0], cfg.depth, 2, cfg.hidden)       # (B, depth, 2, H)
            for i in range(cfg.depth):
                mods.append((1.0 + gb[:, None, i, 0], gb[:, None, i, 1]))
        return mods


class ModulatedSiren(nn.Module):
    """The modulated periodic-activation network with d outputs.

    Examples
    --------
    >>> net = ModulatedSiren(config_for_size("XS", out_dim=4))
    >>> net(torch.zeros(2, 10, 3), torch.zeros(2, 16)).shape
    torch.Size([2, 10, 4])
    """

    def __init__(self, cfg: SirenConfig):
        super().__init__()
        self.cfg = cfg
        self.layers = nn.ModuleList(
            [SineLayer(cfg.in_dim, cfg.hidden, w0=cfg.w0, is_first=True)]
            + [SineLayer(cfg.hidden, cfg.hidden, w0=cfg.w0_hidden, is_first=False)
               for _ in range(cfg.depth - 1)]
        )
        self.modulator = LatentToModulation(cfg)
        self.last = nn.Linear(cfg.hidden, cfg.out_dim)
        with torch.no_grad():
            bound = math.sqrt(6.0 / cfg.hidden) / cfg.w0_hidden
            self.last.weight.uniform_(-bound, bound)
            self.last.bias.zero_()

    def modulations(self, latent: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """Per-layer modulations of a batch of latents: (B, L) -> depth x ((B, 1, H), shift)."""
        return self.modulator(latent)

    def synthesis(self, coords: torch.Tensor, mods) -> torch.Tensor:
        """Decode points with precomputed modulations: (B, P, 3) -> (B, P, C)."""
        inside = self.cfg.modulation == "film"
        h = coords
        for layer, (scale, shift) in zip(self.layers, mods):
            h = layer(h, scale, shift, inside=inside)                          # (B, P, H)
        return self.last(h)                                                    # (B, P, C)

    def forward(self, coords: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """(B, P, 3) coordinates in [-1, 1] and (B, L) latents -> (B, P, C)."""
        return self.synthesis(coords, self.modulations(latent))

    def flops_per_point(self) -> int:
        """Multiply-adds x 2 of the synthesis network per decoded point (modulations excluded)."""
        c = self.cfg
        macs = c.in_dim * c.hidden + (c.depth - 1) * c.hidden * c.hidden + c.hidden * c.out_dim
        return 2 * macs
