"""Atomic file writes: a file the user keeps is either the old one or the complete new one.

Write to a temporary file in the same folder, then ``os.replace`` it over the
target; on any error the temporary file is removed and the target is untouched.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, mkdir: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix); on success give it ordinary modes
    (mkstemp makes it 0600; the umask decides) and rename it to ``path``.

    Examples
    --------
    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("done")
    >>> (d / "a.txt").read_text()
    'done'
    """
    final = Path(path)
    if mkdir:
        final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=final.suffix, dir=final.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        publish(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def publish(tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Give a finished temporary file ordinary modes (mkstemp makes it 0600; the umask decides)
    and rename it over ``final`` (atomic within one file system)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, final)


def save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], *, compressed: bool = True) -> Path:
    """Write plain arrays (loadable with ``allow_pickle=False``) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            (np.savez_compressed if compressed else np.savez)(f, **arrays)
    return Path(path)
