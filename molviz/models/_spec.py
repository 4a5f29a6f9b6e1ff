"""What a bundle's fields are, typed: the one reader of ``bundle.json``'s config.

Every part of molviz that needs to know how a bundle's fields were sampled
(channels, beta, normalisation, box rule, training resolution, hydrogens and
conformer seed) or what its network is reads :class:`BundleSpec`, never the
config dict's keys. :func:`read_spec` is the only place that knows the keys,
their types and the fallbacks for bundles written by earlier versions.

Examples
--------
>>> spec = read_spec({"channel_names": ["C", "density"], "beta": 0.75, "resolution": 16})
>>> [c.name for c in spec.channels], spec.beta, spec.box
(['C', 'density'], 0.75, 'fit')
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from molviz.errors import BundleError

BoxRule = Literal["fit", "shared", "spacing"]
BOX_RULES = ("fit", "shared", "spacing")


@dataclass(frozen=True)
class BundleSpec:
    """How a bundle's training fields were made; what a new input must be sampled like."""

    channels: tuple = ()                   # molviz.fields.Channel, in network output order
    beta: float | None = None              # Eq. 1's sharpness (None: an old bundle that did not say)
    normalize: str = "max"                 # "max": each channel divided by its continuous maximum
    resolution: int | None = None          # training grid, voxels per axis
    box: BoxRule = "fit"                   # one fitted box per item, one shared box, or fixed spacing
    spacing: float | None = None           # angstrom, for box == "spacing"
    hydrogens: str = "keep"                # how training molecules were prepared
    seed: int = 0                          # RDKit conformer seed of training
    geometry: str = "mmff"                 # how training SMILES were embedded (ETKDGv3 + MMFF94, or "etkdg")
    loss: str = "l1"
    mode: str | None = None                # "autoencoder" / "autodecoder" as trained (None: unknown)
    data: dict = field(default_factory=dict, compare=False)   # the training data settings, merged

    @property
    def channel_names(self) -> list[str]:
        return [c.name for c in self.channels]

    def require_sampling(self, bundle_name: str, what: str) -> None:
        """Refuse ``what`` (e.g. "encode new molecules") when the bundle does not say how its
        fields were sampled."""
        missing = [k for k, ok in (("channels", bool(self.channels)), ("beta", self.beta is not None),
                                   ("resolution", self.resolution is not None)) if not ok]
        if missing:
            raise BundleError(f"bundle {bundle_name!r} does not record how its fields were sampled "
                              f"({', '.join(missing)} missing from bundle.json's config), so it cannot "
                              f"{what}; retrain it with `molviz train`")


def _get(config: Mapping, key: str, kind, default=None, *, where: str = "config"):
    """``config[key]`` checked against ``kind`` (a type or tuple), or ``default`` when absent/None."""
    value = config.get(key)
    if value is None:
        return default
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = float(value)
        if not math.isfinite(value):
            raise BundleError(f"bundle.json: {where}[{key!r}] is {value}; it must be a finite number")
        return value
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        want = getattr(kind, "__name__", None) or " or ".join(k.__name__ for k in kind)
        raise BundleError(f"bundle.json: {where}[{key!r}] is {type(value).__name__} {value!r}; "
                          f"it must be {want}")
    return value


def _channels(config: Mapping) -> tuple:
    from molviz.fields import Channel, parse_channels
    defs = config.get("channel_defs")
    if defs is not None:
        if not isinstance(defs, list) or not all(isinstance(d, Mapping) for d in defs):
            raise BundleError("bundle.json: config['channel_defs'] must be a list of channel objects")
        try:
            return tuple(Channel.from_dict(d) for d in defs)
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"bundle.json: config['channel_defs'] holds a malformed channel ({exc})") from None
    names = _get(config, "channel_names", list, [])
    spec = ",".join(map(str, names)) if names else _get(config, "channels", str, "")
    if not spec:
        return ()
    try:
        return tuple(parse_channels(spec))
    except Exception:        # free-form names (a hand-made bundle): the channels are unknown, so the
        return ()            # bundle decodes but cannot sample new inputs (require_sampling says so)


def read_spec(config: Mapping[str, Any]) -> BundleSpec:
    """The typed spec of a bundle config (``bundle.json``'s ``config``); BundleError names a bad key.

    Older bundles kept some settings only under ``training.data`` / ``data`` or named channels
    only by ``channel_names``; those still read.
    """
    if not isinstance(config, Mapping):
        raise BundleError(f"bundle.json: config must be an object, not {type(config).__name__}")
    training = _get(config, "training", dict, {})
    data = dict(_get(training, "data", dict, {}, where="config['training']"))
    data.update({k: v for k, v in _get(config, "data", dict, {}).items() if v is not None})
    grid = _get(config, "grid", dict, {})
    box = _get(grid, "mode", str, data.get("box") or "fit", where="config['grid']")
    if box not in BOX_RULES:
        raise BundleError(f"bundle.json: config['grid']['mode'] is {box!r}; it must be one of {', '.join(BOX_RULES)}")
    resolution = _get(config, "resolution", int, None) or _get(grid, "resolution", int, None, where="config['grid']")
    beta = _get(config, "beta", float, None)
    if beta is None:
        beta = _get(data, "beta", float, None, where="config['data']")
    if beta is not None and beta <= 0:
        raise BundleError(f"bundle.json: config['beta'] is {beta}; it must be positive")
    if resolution is not None and resolution < 2:
        raise BundleError(f"bundle.json: config['resolution'] is {resolution}; it must be at least 2")
    return BundleSpec(
        channels=_channels(config),
        beta=beta,
        normalize=_get(config, "normalize", str, "max"),
        resolution=resolution,
        box=box,                                                    # type: ignore[arg-type]
        spacing=_get(grid, "spacing", float, None, where="config['grid']"),
        hydrogens=_get(data, "hydrogens", str, "keep", where="config['data']"),
        seed=_get(data, "seed", int, 0, where="config['data']"),
        geometry=_get(data, "geometry", str, "mmff", where="config['data']"),
        loss=_get(config, "loss", str, "l1"),
        mode=_get(config, "mode", str, None),
        data=data,
    )
