"""Finding bundles: by path or by the name of a shipped model, and every bundle in a folder.

The one place that knows what a bundle folder looks like from outside (``bundle.json``
beside ``weights.safetensors``) and where the shipped models live (``assets/models``).
"""
from __future__ import annotations

import os
from pathlib import Path

from molviz.errors import InputError

DEFAULT_MODEL = "freesolv"


def bundled_models_dir() -> Path:
    """The shipped models' folder (``assets/models``, or ``$MOLVIZ_ASSETS/models``)."""
    from molviz._assets import assets_dir
    return assets_dir() / "models"


def is_bundle(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a bundle folder (``bundle.json`` and ``weights.safetensors``)."""
    p = Path(path)
    return (p / "bundle.json").is_file() and (p / "weights.safetensors").is_file()


def resolve_bundle(name: str | os.PathLike) -> Path:
    """A bundle folder from a path or the name of a shipped model (``assets/models/NAME``).

    Examples
    --------
    >>> resolve_bundle("freesolv").name
    'freesolv'
    """
    p = Path(name).expanduser()
    if p.exists():
        return p
    shipped = bundled_models_dir() / str(name)
    if is_bundle(shipped):
        return shipped
    names = ", ".join(b.name for b in find_bundles(bundled_models_dir())) or "none found"
    raise InputError(f"model bundle {str(name)!r} not found: give a bundle folder or the name of a shipped "
                     f"model ({names})")


def find_bundles(*folders: str | os.PathLike | None) -> list[Path]:
    """Bundle folders directly inside each folder (or the folder itself), in order, each once."""
    seen, out = set(), []
    for folder in folders:
        if folder is None:
            continue
        root = Path(folder).expanduser()
        if not root.is_dir():
            continue
        cands = [root] if is_bundle(root) else sorted(p for p in root.iterdir() if p.is_dir())
        for p in cands:
            if is_bundle(p):
                rp = p.resolve()
                if rp not in seen:
                    seen.add(rp)
                    out.append(rp)
    return out


def default_bundle() -> Path | None:
    """The shipped FreeSolv model when present, else the first shipped model, else None."""
    root = bundled_models_dir()
    if is_bundle(root / DEFAULT_MODEL):
        return (root / DEFAULT_MODEL).resolve()
    found = find_bundles(root)
    return found[0] if found else None
