"""Checks of a model bundle before anything is allocated, and of its numbers after loading.

A bundle is a folder someone may have edited or damaged. :func:`validate_bundle` reads
``bundle.json`` (bounded) and the safetensors headers (the 8-byte length and the JSON
after it, never the tensors), and refuses, with the key or tensor named:

- wrong types in ``bundle.json`` (``items`` not a list, a string where a number goes);
- architectures outside sane sizes (depth 1,000,000 or width 10^9 is refused in
  milliseconds, before a layer is built);
- tensor shapes that disagree with the architecture (found by building the network on
  torch's ``meta`` device, which allocates nothing), and headers whose offsets do not
  fit the file.

:func:`check_finite` then refuses NaN or infinite weights, latents and boxes.

Examples
--------
>>> validate_bundle("assets/models/6ega")  # doctest: +SKIP
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from molviz.errors import BundleError

MAX_MANIFEST_BYTES = 64 << 20     # bundle.json; the shipped ones are < 1 MB
MAX_HEADER_BYTES = 16 << 20       # a safetensors JSON header (the shipped ones are ~3 kB)
MAX_PARAMETERS = 1 << 30          # network weights (4 GB of float32)

# (low, high) of every integer field of the architectures; floats must be finite and > 0
SIREN_LIMITS = {"out_dim": (1, 4096), "hidden": (1, 16384), "depth": (1, 256), "latent_dim": (1, 65536),
                "in_dim": (1, 16)}
SIREN_FLOATS = ("w0", "w0_hidden")
SIREN_CHOICES = {"modulation": ("mehta", "film")}
ENCODER_LIMITS = {"in_channels": (1, 4096), "latent_dim": (1, 65536), "width": (1, 4096), "blocks": (1, 12)}
ENCODER_BOOLS = ("downsample", "box_scale")
ENCODER_CHOICES = {"norm": ("batch", "group")}
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                "BOOL": 1, "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}


def _type_name(value) -> str:
    return "null" if value is None else type(value).__name__


def _fail(where: str, value, want: str) -> BundleError:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return BundleError(f"bundle.json: {where} is {_type_name(value)} {shown}; it must be {want}. "
                       "Fix that key in bundle.json, or re-save the bundle")


def _whole(value, where: str, low: int, high: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, value, f"a whole number from {low:,} to {high:,}")
    if not low <= value <= high:
        raise BundleError(f"bundle.json: {where} is {value:,}, outside {low:,}..{high:,} (a model of that "
                          "size is not something molviz wrote); fix that key, or re-save the bundle")
    return value


def read_manifest(root: str | os.PathLike) -> dict:
    """``bundle.json`` of the bundle folder ``root``, read with a size limit, as a dict."""
    path = Path(root) / "bundle.json"
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise BundleError(f"{path} is {size / 2**20:,.0f} MB, more than a bundle manifest can be "
                              f"({MAX_MANIFEST_BYTES >> 20} MB); the bundle is damaged: re-save it")
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON ({exc}); the bundle is damaged: re-save it.") from None
    if not isinstance(manifest, dict):
        raise _fail("the top level", manifest, "an object")
    return manifest


def check_manifest(manifest: dict) -> None:
    """Types of everything in ``bundle.json`` that loading reads; the error names the key.

    Examples
    --------
    >>> check_manifest({"format": "molviz-bundle", "version": 1, "items": "x",
    ...                 "config": {"model": {}}})
    Traceback (most recent call last):
    ...
    molviz.errors.BundleError: bundle.json: items is str 'x'; it must be a list of objects. Fix that key in bundle.json, or re-save the bundle
    """
    for key, kind, want in (("format", str, "a string"), ("config", dict, "an object"),
                            ("items", list, "a list of objects"), ("extras", dict, "an object")):
        if key in manifest and not isinstance(manifest[key], kind):
            raise _fail(key, manifest[key], want)
    if "version" in manifest:
        _whole(manifest["version"], "version", 0, 1_000_000)
    for i, item in enumerate(manifest.get("items") or []):
        if not isinstance(item, dict):
            raise _fail(f"items[{i}]", item, "an object (name, smiles, source, ...)")
        for key in ("name", "smiles", "source"):
            if item.get(key) is not None and not isinstance(item[key], str):
                raise _fail(f"items[{i}][{key!r}]", item[key], "a string")
        if item.get("conformer") is not None:
            _whole(item["conformer"], f"items[{i}]['conformer']", 0, 10**9)
    config = manifest.get("config") or {}
    if "model" not in config:
        raise BundleError("bundle.json: config['model'] is missing; a bundle records its network there. "
                          "Re-save the bundle with molviz.models.save_bundle")
    _check_section(config["model"], "config['model']", SIREN_LIMITS, SIREN_FLOATS, (), SIREN_CHOICES)
    if config.get("encoder") is not None:
        _check_section(config["encoder"], "config['encoder']", ENCODER_LIMITS, (), ENCODER_BOOLS,
                       ENCODER_CHOICES)
    for key in ("beta", "resolution"):
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value <= 0):
            raise _fail(f"config[{key!r}]", value, "a positive number")
    for key in ("channel_names",):
        value = config.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise _fail(f"config[{key!r}]", value, "a list of strings")


def _check_section(section, where: str, limits: dict, floats, bools, choices: dict) -> None:
    if not isinstance(section, dict):
        raise _fail(where, section, "an object")
    for key, (low, high) in limits.items():
        if key in section:
            _whole(section[key], f"{where}[{key!r}]", low, high)
    for key in floats:
        value = section.get(key)
        if key in section and (isinstance(value, bool) or not isinstance(value, (int, float))
                               or not math.isfinite(value) or value <= 0):
            raise _fail(f"{where}[{key!r}]", value, "a finite number > 0")
    for key in bools:
        if key in section and not isinstance(section[key], bool):
            raise _fail(f"{where}[{key!r}]", section[key], "true or false")
    for key, allowed in choices.items():
        if key in section and section[key] not in allowed:
            raise _fail(f"{where}[{key!r}]", section[key], f"one of {', '.join(map(repr, allowed))}")


def read_header(path: str | os.PathLike) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{name: (dtype, shape)}`` from a safetensors file's header, checked against the file's size;
    the tensors are not read.

    Examples
    --------
    >>> read_header("assets/models/6ega/weights.safetensors")["latents"]  # doctest: +SKIP
    ('F32', (1, 128))
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 2 <= n <= min(MAX_HEADER_BYTES, size - 8):
                raise BundleError(f"{path}: the safetensors header length ({n:,} bytes) does not fit the file "
                                  f"({size:,} bytes); the file is truncated or damaged: re-save the bundle")
            header = json.loads(f.read(n).decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: unreadable safetensors header ({exc}); re-save the bundle") from None
    if not isinstance(header, dict):
        raise BundleError(f"{path}: the safetensors header is not an object; re-save the bundle")
    data = size - 8 - n
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        ok = (isinstance(entry, dict) and entry.get("dtype") in _DTYPE_BYTES
              and isinstance(entry.get("shape"), list) and isinstance(entry.get("data_offsets"), list)
              and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                      for v in entry["shape"] + entry["data_offsets"]) and len(entry["data_offsets"]) == 2)
        if not ok:
            raise BundleError(f"{path}: tensor {name!r} has a malformed header entry; re-save the bundle")
        begin, end = entry["data_offsets"]
        count = math.prod(entry["shape"])
        if not begin <= end <= data or end - begin != count * _DTYPE_BYTES[entry["dtype"]]:
            raise BundleError(f"{path}: tensor {name!r} of shape {tuple(entry['shape'])} does not fit its bytes "
                              f"({begin:,}..{end:,} of {data:,}); the file is truncated or was edited: "
                              "re-save the bundle")
        out[name] = (entry["dtype"], tuple(entry["shape"]))
    return out


def _expected_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of the architecture, from a network built on the meta device (no memory)."""
    import torch

    from molviz.models._encoder import Encoder3D, EncoderConfig
    from molviz.models._siren import ModulatedSiren, SirenConfig

    with torch.device("meta"):
        shapes = {f"model.{k}": tuple(v.shape)
                  for k, v in ModulatedSiren(SirenConfig.from_dict(config["model"])).state_dict().items()}
        if config.get("encoder"):
            encoder = Encoder3D(EncoderConfig.from_dict(config["encoder"]))
            shapes.update({f"encoder.{k}": tuple(v.shape) for k, v in encoder.state_dict().items()})
    return shapes


def _parameters(model: dict) -> int:
    """Weights of a SIREN config, counted without building it (both modulations)."""
    from molviz.models._siren import SirenConfig

    c = SirenConfig.from_dict(model)
    synthesis = (c.in_dim + 1) * c.hidden + (c.depth - 1) * (c.hidden + 1) * c.hidden + (c.hidden + 1) * c.out_dim
    if c.modulation == "film":
        return synthesis + (c.latent_dim + 1) * 2 * c.depth * c.hidden
    return synthesis + (c.latent_dim + 1) * c.hidden + (c.depth - 1) * (c.hidden + c.latent_dim + 1) * c.hidden


def validate_bundle(root: str | os.PathLike) -> dict:
    """Check the bundle folder ``root`` before anything is allocated; return its manifest.

    Raises :class:`~molviz.errors.BundleError` naming the key or tensor at fault.
    """
    root = Path(root)
    manifest = read_manifest(root)
    check_manifest(manifest)
    config = manifest.get("config") or {}
    n_params = _parameters(config["model"])
    if n_params > MAX_PARAMETERS:
        raise BundleError(f"bundle.json: config['model'] describes {n_params:,} weights, more than "
                          f"{MAX_PARAMETERS:,}; the architecture was edited or damaged: re-save the bundle")
    header = read_header(root / "weights.safetensors")
    if (root / "arrays.safetensors").is_file():
        read_header(root / "arrays.safetensors")
    expected = _expected_shapes(config)
    latent_dim = int(config["model"].get("latent_dim", 128))
    for name in ("latents", "boxes"):
        if name not in header:
            raise BundleError(f"{root / 'weights.safetensors'} has no {name!r} tensor; re-save the bundle")
    n = header["latents"][1][0] if header["latents"][1] else -1
    expected.update({"latents": (n, latent_dim), "boxes": (n, 2, 3)})
    got = {k: v[1] for k, v in header.items() if k.startswith(("model.", "encoder.")) or k in expected}
    for name, shape in expected.items():
        if name not in got:
            raise BundleError(f"{root}: tensor {name!r} of shape {shape} is missing from weights.safetensors; "
                              "bundle.json's architecture and the weights disagree: re-save the bundle")
        if got[name] != shape:
            raise BundleError(f"{root}: tensor {name!r} has shape {got[name]} in weights.safetensors but "
                              f"bundle.json's architecture needs {shape}; the two disagree: re-save the bundle")
    extra = sorted(set(got) - set(expected))
    if extra:
        raise BundleError(f"{root}: weights.safetensors has tensors the architecture lacks ({', '.join(extra[:3])}); "
                          "bundle.json's architecture and the weights disagree: re-save the bundle")
    return manifest


def check_finite(tensors: dict, root: str | os.PathLike) -> None:
    """Refuse NaN or infinite values in any floating tensor (weights, latents, boxes), by name."""
    import torch

    for name, t in tensors.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise BundleError(f"{root}: tensor {name!r} holds {bad:,} NaN or infinite value(s); the weights are "
                              "damaged (or training diverged): re-train or re-save the bundle")
