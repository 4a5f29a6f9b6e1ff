"""Validation of everything a browser can set: clamp or refuse, never trust.

Client state is untrusted input (issue: hardening). Every value the app uses
from the browser goes through one of these functions first; they return a clean
Python value or raise :class:`~molviz.errors.InputError` /
:class:`~molviz.errors.ResourceLimitError` with a message that says what to fix.
No client value is ever used as a file path: models are picked by index into a
server-side list, and typed molecules are accepted only as SMILES.

Examples
--------
>>> lim = Limits()
>>> clean_resolution("64", lim)
64
>>> clean_float(float("nan"), "level", 0.0, 1.0)
Traceback (most recent call last):
...
molviz.errors.InputError: level must be a finite number between 0 and 1, got nan
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from molviz.errors import InputError, ResourceLimitError


@dataclass
class Limits:
    """Server-side limits (configurable at start-up; the browser cannot change them)."""

    max_resolution: int = 256         # voxels per axis of a decoded view
    min_resolution: int = 8
    max_frames: int = 600             # frames of an exported movie
    max_supersample: int = 4          # PNG screenshot scale factor
    max_text: int = 300               # characters of a typed SMILES or search string
    max_voxels_bytes: int = 3 << 30   # bytes of one decoded view (C x n^3 float32), truth and mesh aside
    max_upload_mb: float = 20.0       # a structure file sent from the browser


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or value is None:
        raise InputError(f"{name} must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {str(value)[:40]!r}") from None
    return x


def clean_float(value: Any, name: str, lo: float, hi: float, *, clamp: bool = False) -> float:
    """A finite float in [lo, hi]; NaN/inf refused, out-of-range refused (or clamped)."""
    x = _number(value, name)
    if not math.isfinite(x) or (not clamp and not lo <= x <= hi):
        raise InputError(f"{name} must be a finite number between {lo:g} and {hi:g}, got {x!r}")
    return min(max(x, lo), hi)


def clean_int(value: Any, name: str, lo: int, hi: int) -> int:
    """An integer in [lo, hi] (refuses NaN, fractions, strings that are not numbers)."""
    x = _number(value, name)
    if not math.isfinite(x) or x != int(x) or not lo <= x <= hi:
        raise InputError(f"{name} must be a whole number from {lo} to {hi}, got {value!r}")
    return int(x)


def clean_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(repr, choices))}, got {str(value)[:40]!r}")
    return value


def clean_bool(value: Any) -> bool:
    return bool(value) if isinstance(value, (bool, int)) else False


def clean_resolution(value: Any, limits: Limits, *, n_channels: int = 1) -> int:
    """Voxels per axis: a whole number within the limits, and small enough for memory."""
    n = _number(value, "resolution")
    if not math.isfinite(n) or n != int(n) or n < limits.min_resolution:
        raise InputError(f"resolution must be a whole number of voxels per axis, at least "
                         f"{limits.min_resolution}; got {value!r}")
    n = int(n)
    if n > limits.max_resolution:
        raise ResourceLimitError(f"resolution {n} is above this server's limit of {limits.max_resolution} voxels "
                                 f"per axis; choose {limits.max_resolution} or less (start the server with "
                                 "--max-resolution to change the limit)")
    need = 4 * n_channels * n ** 3
    if need > limits.max_voxels_bytes:
        largest = int((limits.max_voxels_bytes / (4 * n_channels)) ** (1 / 3))
        raise ResourceLimitError(f"resolution {n} needs {need / 2**30:.1f} GiB for {n_channels} channels; "
                                 f"the largest that fits is {largest}")
    return n


def clean_text(value: Any, name: str, limits: Limits) -> str:
    """A short single-line string (search text, SMILES)."""
    if not isinstance(value, str):
        raise InputError(f"{name} must be text, got {type(value).__name__}")
    text = value.strip()
    if len(text) > limits.max_text:
        raise InputError(f"{name} is {len(text)} characters long; the limit is {limits.max_text}")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InputError(f"{name} contains control characters; type it on one line")
    return text


def clean_smiles(value: Any, limits: Limits) -> str:
    """A SMILES string RDKit parses, and never something that names a file on the server."""
    text = clean_text(value, "SMILES", limits)
    if not text:
        raise InputError("type a SMILES string first, e.g. CCO for ethanol")
    if text.startswith(("/", "~", "\\", ".")) or ".." in text or os.path.lexists(text):
        raise InputError(f"{text[:60]!r} looks like a file path; the app accepts molecules only as SMILES "
                         "(e.g. c1ccccc1O)")
    from rdkit import Chem, RDLogger
    RDLogger.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(text)
    finally:
        RDLogger.EnableLog("rdApp.*")
    if mol is None or mol.GetNumAtoms() == 0:
        raise InputError(f"{text[:60]!r} is not a valid SMILES string; check brackets, ring-closure digits and "
                         "element symbols (e.g. CCO, c1ccccc1O, CC(=O)O)")
    return text


UPLOAD_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif", ".sdf", ".mol", ".mol2", ".xyz")   # each also .gz


def clean_upload(value: Any, limits: Limits) -> tuple[str, bytes]:
    """A file sent from the browser (trame's ``{name, size, content}``): its base name and bytes.

    The name is used only for its suffix (the format) and as a label; the bytes are checked
    against ``limits.max_upload_mb``. Nothing here touches the server's disk.

    Examples
    --------
    >>> clean_upload({"name": "../x.pdb", "size": 4, "content": b"ATOM"}, Limits())
    ('x.pdb', b'ATOM')
    >>> clean_upload({"name": "x.exe", "size": 1, "content": b"M"}, Limits())
    Traceback (most recent call last):
    ...
    molviz.errors.InputError: 'x.exe' is not a structure file molviz reads: send a .pdb, .ent, .cif, .mmcif, .sdf, .mol, .mol2 or .xyz file (also gzipped)
    """
    if isinstance(value, list):
        value = value[0] if value else None
    if not isinstance(value, dict) or "content" not in value:
        raise InputError("no file arrived: choose a structure file (PDB, mmCIF, SDF, MOL2 or XYZ) again")
    if value.get("error"):
        raise InputError(f"the browser could not read the file: {str(value['error'])[:200]}")
    raw_name = str(value.get("name") or "upload")[: limits.max_text]
    name = raw_name.replace("\\", "/").rsplit("/", 1)[-1].strip() or "upload"
    lower = name.lower()
    base = lower[:-3] if lower.endswith(".gz") else lower
    if not base.endswith(UPLOAD_SUFFIXES):
        raise InputError(f"{name[:60]!r} is not a structure file molviz reads: send a "
                         f"{', '.join(UPLOAD_SUFFIXES[:-1])} or {UPLOAD_SUFFIXES[-1]} file (also gzipped)")
    content = value["content"]
    if isinstance(content, memoryview):
        content = content.tobytes()
    if not isinstance(content, (bytes, bytearray)):
        raise InputError(f"{name[:60]!r} arrived without its content; choose the file again")
    limit = int(limits.max_upload_mb * 1e6)
    size = max(len(content), int(_number(value.get("size", 0) or 0, "file size")))
    if size > limit:
        raise ResourceLimitError(f"{name[:60]!r} is {size / 1e6:.1f} MB, above the server's upload limit of "
                                 f"{limits.max_upload_mb:g} MB: send a smaller file (one model, fewer frames) "
                                 "or use `molviz encode FILE` on the command line")
    if not content:
        raise InputError(f"{name[:60]!r} is empty")
    return name, bytes(content)


__all__ = ["UPLOAD_SUFFIXES", "Limits", "clean_bool", "clean_choice", "clean_float", "clean_int", "clean_resolution",
           "clean_smiles", "clean_text", "clean_upload"]
