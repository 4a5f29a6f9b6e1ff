"""Where molviz finds its shipped data (``assets/`` next to the package).

The repository layout is ``<root>/molviz`` (the package) and ``<root>/assets``.
``MOLVIZ_ASSETS`` overrides the location, for installs that keep the data elsewhere.
"""
from __future__ import annotations

import os
from pathlib import Path

from molviz.errors import InputError


def assets_dir() -> Path:
    """The ``assets`` folder: ``$MOLVIZ_ASSETS`` if set, else the one beside the package."""
    env = os.environ.get("MOLVIZ_ASSETS")
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parent.parent / "assets"


def asset_path(*parts: str, must_exist: bool = True) -> Path:
    """Path of a shipped file, e.g. ``asset_path("data", "6ega", "6ega_protein.pdb")``.

    Raises
    ------
    InputError
        If ``must_exist`` and the file is missing (say where molviz looked and how to fix it).

    Examples
    --------
    >>> asset_path("data", "freesolv", "database.txt").name
    'database.txt'
    """
    path = assets_dir().joinpath(*parts)
    if must_exist and not path.exists():
        raise InputError(
            f"shipped data file {'/'.join(parts)!r} not found at {path}; run molviz from a "
            "repository checkout (the assets/ folder beside molviz/) or set MOLVIZ_ASSETS "
            "to the folder that holds data/"
        )
    return path
