"""Channels: which atoms feed a field channel, and how wide each atom's blob is.

A spec is a comma-separated list of tokens or one preset name:

=============================  ==============================================
``ligand:C``                   carbon atoms of the ligand component, vdW width
``C``                          carbon atoms of every component
``density``                    every atom, Wigner-Seitz-density width
``protein:density``            every protein atom, density width
``electronegativity``          every atom, Pauling-electronegativity width
``paper-6ega``                 ligand:H,ligand:C,ligand:density,protein:C,protein:H,protein:density
``freesolv``                   H,C,N,O,F,P,S,Cl,Br,I,density
``elements``                   one channel per element present (needs structures)
``elements+density``           ``elements`` plus ``density``
=============================  ==============================================

``paper-6ega`` follows the paper's text; the reference code actually used
``protein:N`` as its fifth channel (REFERENCE.md), spell it out to reproduce that.
``freesolv`` gives every FreeSolv element its own channel: unlike the reference,
there is no "others" channel, so no channel aliases another.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from molviz.errors import InputError
from molviz.fields._elements import ATOM_WIDTHS, WIDTH_KINDS, element_symbol, parse_element

if TYPE_CHECKING:
    from molviz.chem import Structure

COMPONENTS = ("ligand", "protein", "nucleic", "water", "ion")  # = molviz.chem.COMPONENTS
PROPERTY_TOKENS = {"density": "density", "electronegativity": "electronegativity"}

PRESETS: dict[str, str] = {
    "paper-6ega": "ligand:H,ligand:C,ligand:density,protein:C,protein:H,protein:density",
    "freesolv": "H,C,N,O,F,P,S,Cl,Br,I,density",
    "elements": "elements",
    "elements+density": "elements,density",
}


_TABLE_SIZE = 128     # atomic numbers index the lookup tables below (anything else: no element)


@functools.lru_cache(maxsize=None)
def _element_mask(elements: frozenset[int]) -> np.ndarray:
    table = np.zeros(_TABLE_SIZE, dtype=bool)
    table[[e for e in elements if 0 <= e < _TABLE_SIZE]] = True
    return table


@functools.lru_cache(maxsize=None)
def _width_array(kind: str) -> np.ndarray:
    """``ATOM_WIDTHS[kind]`` as an array by atomic number, NaN where the table has no width."""
    table = np.full(_TABLE_SIZE, np.nan)
    for z, value in ATOM_WIDTHS[kind].items():
        if 0 <= int(z) < _TABLE_SIZE:
            table[int(z)] = value
    return table


def _lookup(table: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``table[z]``, with atomic numbers outside the table read as its "none" value (False, NaN)."""
    inside = (z >= 0) & (z < len(table))
    if inside.all():
        return table[z]
    out = np.full(len(z), np.nan if table.dtype.kind == "f" else False, dtype=table.dtype)
    out[inside] = table[z[inside]]
    return out


@dataclass(frozen=True)
class Channel:
    """One field channel: an atom selection and a width per atom.

    Parameters
    ----------
    name : str
        Canonical spec token, e.g. ``"ligand:C"``, ``"density"``, ``"protein:density"``.
    elements : frozenset of int or None
        Atomic numbers selected; None selects every element.
    components : frozenset of str or None
        Components selected (see ``molviz.chem.COMPONENTS``); None selects all.
    width : {"vdw", "electronegativity", "density"}
        Which :data:`~molviz.fields.ATOM_WIDTHS` table gives each atom's width.

    Examples
    --------
    >>> Channel("ligand:C", frozenset({6}), frozenset({"ligand"})).width
    'vdw'
    """

    name: str
    elements: frozenset[int] | None
    components: frozenset[str] | None
    width: Literal["vdw", "electronegativity", "density"] = "vdw"

    def select(self, atomic_numbers: np.ndarray, components: np.ndarray) -> np.ndarray:
        """Boolean mask of the atoms this channel takes."""
        z = np.asarray(atomic_numbers, dtype=np.int64)
        mask = np.ones(len(z), dtype=bool)
        if self.elements is not None:
            mask &= _lookup(_element_mask(self.elements), z)
        if self.components is not None:
            mask &= np.isin(np.asarray(components).astype(str), list(self.components))
        return mask

    def widths(self, atomic_numbers: np.ndarray) -> np.ndarray:
        """Width (angstrom) of each given atom; InputError for an element without one."""
        z = np.asarray(atomic_numbers, dtype=np.int64)
        values = _lookup(_width_array(self.width), z)
        if np.isnan(values).any():
            missing = sorted({int(v) for v in z[np.isnan(values)]})
            names = ", ".join(element_symbol(v) for v in missing)
            raise InputError(
                f"channel {self.name!r}: no {self.width} width for element(s) {names}; "
                f"use a channel that excludes them or another width "
                f"(tables: molviz.fields.ATOM_WIDTHS)"
            )
        return values.astype(np.float32)

    @property
    def key(self) -> tuple:
        return (self.elements, self.components, self.width)

    def to_dict(self) -> dict:
        """Plain JSON form (bundle.json's ``channel_defs``, prepared data's meta).

        Examples
        --------
        >>> ch = Channel("ligand:C", frozenset({6}), frozenset({"ligand"}))
        >>> Channel.from_dict(ch.to_dict()) == ch
        True
        """
        return {"name": self.name,
                "elements": None if self.elements is None else sorted(int(e) for e in self.elements),
                "components": None if self.components is None else sorted(self.components),
                "width": self.width}

    @classmethod
    def from_dict(cls, d: dict) -> Channel:
        """Inverse of :meth:`to_dict` (``width`` defaults to ``"vdw"``)."""
        def _set(v):
            return None if v is None else frozenset(v)
        return cls(name=str(d["name"]), elements=_set(d.get("elements")), components=_set(d.get("components")),
                   width=d.get("width", "vdw"))


def _valid_help() -> str:
    return (
        "valid tokens: ELEMENT (e.g. C, Cl), COMPONENT:ELEMENT (e.g. ligand:C), density, "
        "electronegativity, COMPONENT:density, COMPONENT:electronegativity; components: "
        f"{', '.join(COMPONENTS)}; presets: {', '.join(PRESETS)}"
    )


def _present_elements(structures) -> list[int]:
    if structures is None:
        raise InputError(
            "channel spec 'elements' needs the structures to featurize: "
            "call parse_channels(spec, structures)"
        )
    if not isinstance(structures, Sequence):
        structures = [structures]
    zs: set[int] = set()
    for s in structures:
        zs.update(int(z) for z in np.unique(np.asarray(s.atomic_numbers)))
    return sorted(zs)


def _parse_token(token: str, spec: str) -> Channel:
    comp: str | None = None
    body = token
    if ":" in token:
        comp, body = (t.strip() for t in token.split(":", 1))
        if comp not in COMPONENTS:
            raise InputError(f"channel spec {spec!r}: unknown component {comp!r} in {token!r}; "
                             + _valid_help())
    comps = frozenset({comp}) if comp else None
    if body in PROPERTY_TOKENS:
        name = f"{comp}:{body}" if comp else body
        return Channel(name, None, comps, PROPERTY_TOKENS[body])  # type: ignore[arg-type]
    z = parse_element(body)
    if z is None:
        raise InputError(f"channel spec {spec!r}: unknown element or property {body!r} in "
                         f"{token!r}; " + _valid_help())
    sym = element_symbol(z)
    name = f"{comp}:{sym}" if comp else sym
    return Channel(name, frozenset({z}), comps, "vdw")


def parse_channels(
    spec: str | Sequence[Channel],
    structures: Structure | Sequence[Structure] | None = None,
) -> list[Channel]:
    """Parse a channel spec (tokens or a preset) into channels.

    Parameters
    ----------
    spec : str or list of Channel
        Comma-separated tokens or a preset name (see the module docstring); a list
        of channels is returned as a list unchanged (after the duplicate check).
    structures : Structure or sequence of Structure, optional
        Needed by ``elements``: one channel per element present in any of them.

    Returns
    -------
    list of Channel
        In spec order. Duplicates, unknown tokens, components or elements raise
        :class:`~molviz.errors.InputError` listing the valid options.

    Examples
    --------
    >>> [c.name for c in parse_channels("ligand:C,density")]
    ['ligand:C', 'density']
    """
    if not isinstance(spec, str):
        channels = list(spec)
    else:
        text = spec.strip()
        if not text:
            raise InputError("channel spec is empty; " + _valid_help())
        text = PRESETS.get(text, text)
        channels = []
        for raw in text.split(","):
            token = raw.strip()
            if not token:
                raise InputError(f"channel spec {spec!r} has an empty token; " + _valid_help())
            if token in PRESETS and PRESETS[token] != token:
                raise InputError(f"channel spec {spec!r}: preset {token!r} must be used alone")
            if token == "elements":
                channels.extend(Channel(element_symbol(z), frozenset({z}), None, "vdw")
                                for z in _present_elements(structures))
            else:
                channels.append(_parse_token(token, spec))
    seen: dict[tuple, str] = {}
    for ch in channels:
        if ch.width not in WIDTH_KINDS:
            raise InputError(f"channel {ch.name!r}: width must be one of {WIDTH_KINDS}")
        if ch.key in seen:
            raise InputError(f"channel spec {spec!r}: channel {ch.name!r} duplicates "
                             f"{seen[ch.key]!r}; each channel may appear once")
        seen[ch.key] = ch.name
    if not channels:
        raise InputError(f"channel spec {spec!r} selects no channels")
    return channels


def channel_names(channels: Sequence[Channel]) -> list[str]:
    """Names of the channels, in order."""
    return [c.name for c in channels]


# --------------------------------------------------------------------------- channel looks
# Property channels (density, electronegativity) have no element: a fixed palette.
PROPERTY_COLORS = {"density": "#5B8FD9", "electronegativity": "#C77DDB"}


def channel_element(name: str) -> int | None:
    """Atomic number a channel selects (``"ligand:C"`` -> 6), None for property channels.

    Examples
    --------
    >>> channel_element("ligand:Cl"), channel_element("Na"), channel_element("protein:density")
    (17, 11, None)
    """
    from molviz.chem._elements import SYMBOLS
    token = str(name).split(":")[-1]
    return SYMBOLS.index(token) + 1 if token in SYMBOLS else None


def channel_color(name: str) -> str:
    """Default colour of a channel, ``"#RRGGBB"``: its element's CPK colour (every element of the
    periodic table), or the property palette.

    Examples
    --------
    >>> channel_color("ligand:C"), channel_color("O"), channel_color("Na"), channel_color("protein:density")
    ('#909090', '#FF0D0D', '#AB5CF2', '#5B8FD9')
    """
    from molviz.chem._elements import UNKNOWN_ELEMENT_COLOR, element_color
    z = channel_element(name)
    if z is not None:
        return element_color(z)
    token = str(name).split(":")[-1]
    for prop, color in PROPERTY_COLORS.items():
        if token.startswith(prop):
            return color
    return UNKNOWN_ELEMENT_COLOR


def channel_rgb(name: str) -> tuple[float, float, float]:
    """:func:`channel_color` as RGB floats in [0, 1] (for glTF materials)."""
    c = channel_color(name).lstrip("#")
    return tuple(int(c[i:i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]
