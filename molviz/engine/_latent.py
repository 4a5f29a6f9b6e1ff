"""Moving through latent space: interpolation, paths through keyframes, neighbours."""
from __future__ import annotations

from typing import Literal

import numpy as np

from molviz.errors import InputError

Mode = Literal["linear", "slerp"]
_PARALLEL = 1e-6   # sin(angle) below this: directions are (anti)parallel, slerp degenerates


def _vec(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    v = np.asarray(x, dtype=np.float64)
    if v.ndim != 1 or not np.all(np.isfinite(v)):
        raise InputError(f"{name} must be one finite latent vector (L,), got shape {v.shape}")
    return v


def interpolate(a, b, t, *, mode: Mode = "linear") -> np.ndarray:
    """Latents between ``a`` and ``b`` at ``t`` (0 gives a, 1 gives b).

    ``"linear"``: ``(1 - t) a + t b``. ``"slerp"``: the direction moves along the
    great circle between a's and b's directions and the norm moves linearly from
    |a| to |b|, so the norm stays constant when |a| = |b| (plain linear
    interpolation shrinks it midway). Near-parallel or opposite directions (no
    unique great circle) and zero vectors fall back to linear.

    Parameters
    ----------
    a, b : array-like (L,)
    t : float or array-like (T,)
    mode : {"linear", "slerp"}

    Returns
    -------
    np.ndarray
        (L,) for a scalar ``t``, else (T, L); float32.

    Examples
    --------
    >>> a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    >>> np.round(interpolate(a, b, 0.5, mode="slerp"), 4)
    array([0.7071, 0.7071], dtype=float32)
    >>> np.round(interpolate(a, b, 0.5), 4)
    array([0.5, 0.5], dtype=float32)
    """
    va, vb = _vec(a, "a"), _vec(b, "b")
    if va.shape != vb.shape:
        raise InputError(f"cannot interpolate latents of shapes {va.shape} and {vb.shape}")
    scalar = np.ndim(t) == 0
    tt = np.atleast_1d(np.asarray(t, dtype=np.float64))[:, None]                 # (T, 1)
    linear = (1.0 - tt) * va + tt * vb
    if mode == "linear":
        out = linear
    elif mode == "slerp":
        na, nb = np.linalg.norm(va), np.linalg.norm(vb)
        if na == 0.0 or nb == 0.0:
            out = linear
        else:
            ua, ub = va / na, vb / nb
            omega = np.arccos(np.clip(ua @ ub, -1.0, 1.0))
            s = np.sin(omega)
            if s < _PARALLEL:
                out = linear
            else:
                u = (np.sin((1.0 - tt) * omega) * ua + np.sin(tt * omega) * ub) / s  # unit directions
                out = ((1.0 - tt) * na + tt * nb) * u
                out[tt[:, 0] == 0.0] = va  # exact endpoints
                out[tt[:, 0] == 1.0] = vb
    else:
        raise InputError(f"interpolation mode {mode!r} is unknown: use 'linear' or 'slerp'")
    out = out.astype(np.float32)
    return out[0] if scalar else out


def path(keyframes, n_frames: int, *, mode: Mode = "linear") -> np.ndarray:
    """``n_frames`` latents along keyframes (K, L), passing through every keyframe.

    Frames are spread uniformly over the K - 1 segments (equal time per segment);
    the first frame is keyframes[0] and the last keyframes[-1].

    Examples
    --------
    >>> path(np.eye(3), 5).round(2)[:, 0]
    array([1. , 0.5, 0. , 0. , 0. ], dtype=float32)
    """
    if hasattr(keyframes, "detach"):
        keyframes = keyframes.detach().cpu().numpy()
    keys = np.asarray(keyframes, dtype=np.float64)
    if keys.ndim != 2 or len(keys) < 1:
        raise InputError(f"keyframes must be (K, L) with K >= 1, got shape {keys.shape}")
    n_frames = int(n_frames)
    if n_frames < 1:
        raise InputError(f"n_frames must be >= 1, got {n_frames}")
    if len(keys) == 1 or n_frames == 1:
        return np.repeat(keys[:1], n_frames, axis=0).astype(np.float32)
    s = np.linspace(0.0, len(keys) - 1, n_frames)                                # global parameter
    seg = np.minimum(s.astype(int), len(keys) - 2)
    out = np.empty((n_frames, keys.shape[1]), np.float32)
    for i, (g, t) in enumerate(zip(seg, s - seg)):
        out[i] = interpolate(keys[g], keys[g + 1], float(t), mode=mode)
    return out


def neighbours(table, latent, k: int = 5, *, metric: Literal["l2", "cosine"] = "l2",
               exclude: int | None = None) -> list[tuple[int, float]]:
    """The ``k`` rows of ``table`` (N, L) nearest to ``latent``: [(index, distance)], nearest first.

    Examples
    --------
    >>> neighbours(np.eye(3), np.array([1.0, 0.1, 0.0]), 2)[0][0]
    0
    """
    tab = np.asarray(table, np.float64)
    z = _vec(latent, "latent")
    if tab.ndim != 2 or tab.shape[1] != z.shape[0]:
        raise InputError(f"latent of size {z.shape[0]} does not fit a table of shape {tab.shape}")
    if metric == "l2":
        d = np.linalg.norm(tab - z, axis=1)
    elif metric == "cosine":
        denom = np.linalg.norm(tab, axis=1) * np.linalg.norm(z)
        d = 1.0 - (tab @ z) / np.where(denom > 0, denom, 1.0)
    else:
        raise InputError(f"metric {metric!r} is unknown: use 'l2' or 'cosine'")
    if exclude is not None:
        d[int(exclude)] = np.inf
    k = max(0, min(int(k), len(d) - (exclude is not None)))
    order = np.argsort(d, kind="stable")[:k]
    return [(int(i), float(d[i])) for i in order]
