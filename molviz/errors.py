"""Errors raised by molviz.

Every error a user can cause is a :class:`MolvizError`; its message names the
input and says what to change. Parsers' own exceptions never escape.
"""
from __future__ import annotations


class MolvizError(Exception):
    """Base class of every error molviz raises on purpose."""


class InputError(MolvizError, ValueError):
    """A molecule file, SMILES string, channel spec or argument is unusable."""


class BundleError(MolvizError):
    """A model bundle is missing, malformed or not a safetensors+JSON bundle."""


class ResourceLimitError(MolvizError):
    """A request would exceed a configured limit (memory, atoms, frames, upload size)."""
