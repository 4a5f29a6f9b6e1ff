"""Small types the engine's modules share (so none of them imports the Engine itself)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


class Cancelled(Exception):
    """A decode was stopped because a newer request superseded it."""


@dataclass
class EngineStats:
    decoded_points: int = 0
    decode_seconds: float = 0.0
    oom_retries: int = 0
    chunk: int = 0               # chunk size in use (points)


@dataclass
class Encoded:
    """A new input in the bundle's latent space."""

    latent: np.ndarray           # (L,) float32
    box: np.ndarray              # (2, 3) angstrom: first and last voxel centre of its grid
    method: str                  # "encoder", "encoder+refine" (auto-encoder) or "fit" (auto-decoder, network frozen)
    psnr: float | None = None    # reconstruction at the bundle's training resolution
    name: str = ""
    structure: Any = field(default=None, repr=False)
    warnings: list[str] = field(default_factory=list)   # where the input lies outside the training set
    encoder_latent: np.ndarray | None = None   # "encoder+refine": the encoder's latent the refinement began at
    refine_steps: int = 0                      # ... and the steps it took

    @property
    def placed_latent(self) -> np.ndarray:
        """The latent to compare with the stored ones (neighbours, domain warnings, the map): the encoder's
        when the drawn latent was refined away from it, else the latent itself."""
        return self.latent if self.encoder_latent is None else self.encoder_latent
