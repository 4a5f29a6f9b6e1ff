"""Optimising one latent against a known field with the network frozen.

The one loop behind auto-decoder inference (:func:`molviz.engine.fit_latent`, which starts from
the mean training latent) and latent refinement (an auto-encoder's latent, or a stored one, taken
further against the field its atoms give: :meth:`molviz.engine.Engine.encode` with ``refine``,
``molviz eval --refine``). An encoder amortises this optimisation over a whole data set; for one
molecule whose atoms are known, a few hundred steps of it recover shape the encoder missed.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

REFINE_STEPS = 200         # refinement steps where a caller asks for "refined" without a number
REFINE_LR = 1e-2           # Adam's step on the latent (fit_latent's too)
MAX_REFINE_STEPS = 100_000  # the most a command line may ask for (`--refine K`)


def check_refine_steps(steps: int) -> None:
    """Refuse a ``--refine`` count outside 0..:data:`MAX_REFINE_STEPS` with what to give instead."""
    from molviz.errors import InputError
    if not 0 <= steps <= MAX_REFINE_STEPS:
        raise InputError(f"--refine: give 0..{MAX_REFINE_STEPS} steps")


@dataclass
class Refined:
    latent: torch.Tensor             # (L,) on the CPU
    prediction: torch.Tensor         # (R^3, C) the decode at the end, on the target's device
    steps: int
    converged: bool
    losses: list[float] = field(default_factory=list)


def refine_latent(model, start, target: torch.Tensor, *, resolution: int, steps: int = REFINE_STEPS,
                  lr: float = REFINE_LR, tol: float = 1e-3, window: int = 50, l1: bool = False,
                  on_step: Callable[[int, int], None] | None = None, progress: bool = False,
                  desc: str = "fit latent") -> Refined:
    """Adam on a latent so that ``model`` decodes ``target`` (R^3, C) on the ``resolution``^3 training grid.

    ``start`` (L,) is where it begins (left untouched). The network's parameters are frozen during
    the loop and their ``requires_grad`` flags restored afterwards, also when ``on_step(step, steps)``
    raises (a cancel button: it reaches the caller). Stops after ``steps``, or when the mean loss
    of the last ``window`` steps improved on the window before it by less than ``tol`` (relative);
    ``steps=0`` only decodes ``start``.

    Examples
    --------
    >>> r = refine_latent(bundle.model, bundle.latents[0], target, resolution=16)  # doctest: +SKIP
    >>> r.losses[-1] < r.losses[0]  # doctest: +SKIP
    True
    """
    from molviz._progress import tqdm
    from molviz.fields._tables import normalized_coords
    dev = target.device
    coords = normalized_coords(int(resolution), device=dev)[None]                      # (1, R^3, 3)
    target = target[None]                                                              # (1, R^3, C)
    z = torch.as_tensor(np.asarray(start, np.float32) if not torch.is_tensor(start) else start)
    z = z.detach().reshape(1, -1).to(dev, torch.float32).clone().requires_grad_(True)  # (1, L)
    was_training = model.training
    model.eval()
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam([z], lr=lr)
    losses: list[float] = []
    converged = False
    bar = tqdm(range(steps), desc=desc, disable=not progress, dynamic_ncols=True)
    try:
        for step in bar:
            err = model(coords, z) - target
            loss = err.abs().mean() if l1 else (err ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if step % 10 == 0:
                bar.set_postfix(loss=f"{losses[-1]:.3e}",
                                psnr=f"{-10 * np.log10(max(float((err.detach() ** 2).mean()), 1e-30)):.2f}dB")
            if on_step is not None:
                on_step(step + 1, steps)
            if len(losses) >= 2 * window:
                prev, cur = np.mean(losses[-2 * window:-window]), np.mean(losses[-window:])
                if prev - cur < tol * prev:
                    converged = True
                    break
        with torch.no_grad():
            pred = model(coords, z)[0]
    finally:
        bar.close()
        for p, flag in zip(model.parameters(), flags):   # leave the network as we found it
            p.requires_grad_(flag)
        model.train(was_training)
    return Refined(latent=z.detach()[0].cpu(), prediction=pred, steps=len(losses), converged=converged,
                   losses=losses)
