"""Per-element atom widths for Eq. 1 (vdW, electronegativity, density); symbols come from
:mod:`molviz.chem`'s periodic table.

Every width is the element's property divided by carbon's, used as a length in
angstrom in Eq. 1 (carbon has width 1.0 in every table), as the reference code
(daenuprobst/minf, ``metamol/atomic_props.py``) did.

Sources
-------
``vdw``
    van der Waals radii (A): Bondi, J. Phys. Chem. 68, 441 (1964); for main-group
    elements Bondi lacks (Be, B, Al, Ca, Ge, Rb, Sr, Sb, Cs, Ba, Bi) Mantina et al.,
    J. Phys. Chem. A 113, 5806 (2009). These are the ``radius_vanDerWaals`` values of
    the ``elementy`` 0.0.18 table the reference used (Sc 2.11, Pt 1.75 included).
    Ti, V, Cr, Mn, Fe, Co (missing from both): Alvarez, Dalton Trans. 42, 8617 (2013).
``electronegativity``
    Pauling scale (Allred, J. Inorg. Nucl. Chem. 17, 215 (1961) revision), the
    ``electronegativity_pauling`` values of ``elementy`` 0.0.18. Noble gases: none.
``density``
    The "Wigner-Seitz electron density" n_ws of Miedema's cohesion model (de Boer,
    Boom, Mattens, Miedema, Niessen, *Cohesion in Metals*, 1988), the
    ``wigner_seitz_electron_density`` values of ``elementy`` 0.0.18, i.e. exactly the
    table the reference read (H 3.38, C 5.55, N 4.49, O 1.70, F 1.44, P 4.49,
    S 1.31, Cl 1.17). The reference silently gave every other element 0; here the
    table covers every element listed below (Br 1.11, I 1.03, Co 5.36, Zn 2.30,
    Fe 5.55, Mg 1.60, Ca 0.75, Na 0.55, K 0.27, Mn 4.17, Cu 3.18, Se 1.22 ...).

Fallback rule (all three tables): an element without a value takes the value of
the nearest element *above it in the same group* that has one; such entries are
listed in :data:`FALLBACKS`. An element with no value and no donor (noble gases
for ``electronegativity`` and ``density``) is absent, and asking for it raises
:class:`~molviz.errors.InputError`; a width is never silently zero.
"""
from __future__ import annotations

from molviz.chem._elements import SYMBOLS, element_symbol, parse_element  # noqa: F401  (re-exported)

ATOMIC_NUMBERS: dict[str, int] = {s: i + 1 for i, s in enumerate(SYMBOLS)}

# Periodic-table group of each covered element (1..18); lanthanides are not covered.
_GROUPS = {
    "H": 1, "He": 18, "Li": 1, "Be": 2, "B": 13, "C": 14, "N": 15, "O": 16, "F": 17, "Ne": 18,
    "Na": 1, "Mg": 2, "Al": 13, "Si": 14, "P": 15, "S": 16, "Cl": 17, "Ar": 18, "K": 1, "Ca": 2,
    "Sc": 3, "Ti": 4, "V": 5, "Cr": 6, "Mn": 7, "Fe": 8, "Co": 9, "Ni": 10, "Cu": 11, "Zn": 12,
    "Ga": 13, "Ge": 14, "As": 15, "Se": 16, "Br": 17, "Kr": 18, "Rb": 1, "Sr": 2, "Y": 3,
    "Zr": 4, "Nb": 5, "Mo": 6, "Tc": 7, "Ru": 8, "Rh": 9, "Pd": 10, "Ag": 11, "Cd": 12,
    "In": 13, "Sn": 14, "Sb": 15, "Te": 16, "I": 17, "Xe": 18, "Cs": 1, "Ba": 2, "Hf": 4,
    "Ta": 5, "W": 6, "Re": 7, "Os": 8, "Ir": 9, "Pt": 10, "Au": 11, "Hg": 12, "Tl": 13,
    "Pb": 14, "Bi": 15,
}

_VDW = {  # angstrom; Bondi 1964 / Mantina 2009 (elementy 0.0.18), Alvarez 2013 for Ti..Co
    "H": 1.2, "He": 1.40, "Li": 1.82, "Be": 1.53, "B": 1.92, "C": 1.7, "N": 1.55, "O": 1.52,
    "F": 1.47, "Ne": 1.54, "Na": 2.27, "Mg": 1.73, "Al": 1.84, "Si": 2.1, "P": 1.8, "S": 1.8,
    "Cl": 1.75, "Ar": 1.88, "K": 2.75, "Ca": 2.31, "Sc": 2.11,
    "Ti": 2.46, "V": 2.42, "Cr": 2.45, "Mn": 2.45, "Fe": 2.44, "Co": 2.40,  # Alvarez 2013
    "Ni": 1.63, "Cu": 1.4, "Zn": 1.39, "Ga": 1.87, "Ge": 2.11, "As": 1.85, "Se": 1.9,
    "Br": 1.85, "Kr": 2.02, "Rb": 3.03, "Sr": 2.49, "Pd": 1.63, "Ag": 1.72, "Cd": 1.58,
    "In": 1.93, "Sn": 2.17, "Sb": 2.06, "Te": 2.06, "I": 1.98, "Xe": 2.16, "Cs": 3.43,
    "Ba": 2.68, "Pt": 1.75, "Au": 1.66, "Hg": 1.55, "Tl": 1.96, "Pb": 2.02, "Bi": 2.07,
}
_PAULING = {
    "H": 2.2, "Li": 0.98, "Be": 1.57, "B": 2.04, "C": 2.55, "N": 3.04, "O": 3.44, "F": 3.98,
    "Na": 0.93, "Mg": 1.31, "Al": 1.61, "Si": 1.9, "P": 2.19, "S": 2.58, "Cl": 3.16, "K": 0.82,
    "Ca": 1.0, "Sc": 1.36, "Ti": 1.54, "V": 1.63, "Cr": 1.66, "Mn": 1.55, "Fe": 1.83, "Co": 1.88,
    "Ni": 1.91, "Cu": 1.9, "Zn": 1.65, "Ga": 1.81, "Ge": 2.01, "As": 2.18, "Se": 2.55,
    "Br": 2.96, "Rb": 0.82, "Sr": 0.95, "Y": 1.22, "Zr": 1.33, "Nb": 1.6, "Mo": 2.16, "Tc": 1.9,
    "Ru": 2.2, "Rh": 2.28, "Pd": 2.2, "Ag": 1.93, "Cd": 1.69, "In": 1.78, "Sn": 1.96,
    "Sb": 2.05, "Te": 2.1, "I": 2.66, "Cs": 0.79, "Ba": 0.89, "Hf": 1.3, "Ta": 1.5, "W": 2.36,
    "Re": 1.9, "Os": 2.2, "Ir": 2.2, "Pt": 2.28, "Au": 2.54, "Hg": 2.0, "Tl": 1.62, "Pb": 1.87,
    "Bi": 2.02,
}
_WIGNER_SEITZ = {  # Miedema n_ws (density units), elementy 0.0.18
    "H": 3.38, "Li": 0.94, "Be": 4.66, "B": 5.36, "C": 5.55, "N": 4.49, "O": 1.7, "F": 1.44,
    "Na": 0.55, "Mg": 1.6, "Al": 2.7, "Si": 3.38, "P": 4.49, "S": 1.31, "Cl": 1.17, "K": 0.27,
    "Ca": 0.75, "Sc": 2.05, "Ti": 3.51, "V": 4.41, "Cr": 5.18, "Mn": 4.17, "Fe": 5.55,
    "Co": 5.36, "Ni": 5.36, "Cu": 3.18, "Zn": 2.3, "Ga": 2.25, "Ge": 2.57, "As": 3.0,
    "Se": 1.22, "Br": 1.11, "Rb": 0.22, "Sr": 0.59, "Y": 1.77, "Zr": 2.8, "Nb": 4.41,
    "Mo": 5.55, "Tc": 5.93, "Ru": 6.13, "Rh": 5.45, "Pd": 4.66, "Ag": 2.52, "Cd": 1.91,
    "In": 1.6, "Sn": 1.9, "Sb": 2.0, "Te": 2.3526, "I": 1.03, "Cs": 0.17, "Ba": 0.53,
    "Hf": 3.05, "Ta": 4.33, "W": 5.93, "Re": 6.33, "Os": 6.33, "Ir": 6.13, "Pt": 5.64,
    "Au": 3.87, "Hg": 1.91, "Tl": 1.4, "Pb": 1.52, "Bi": 1.56,
}

WIDTH_KINDS = ("vdw", "electronegativity", "density")
RAW_PROPERTIES: dict[str, dict[str, float]] = {
    "vdw": _VDW, "electronegativity": _PAULING, "density": _WIGNER_SEITZ,
}
WIDTH_SOURCES: dict[str, str] = {
    "vdw": "van der Waals radius: Bondi 1964, Mantina et al. 2009 (via elementy 0.0.18); "
           "Ti-Co Alvarez 2013",
    "electronegativity": "Pauling electronegativity (Allred 1961), via elementy 0.0.18",
    "density": "Miedema Wigner-Seitz electron density n_ws (de Boer et al. 1988), via "
               "elementy 0.0.18 (the reference's table)",
}


def _complete(table: dict[str, float]) -> tuple[dict[str, float], dict[str, str]]:
    """Apply the fallback rule: nearest element above in the same group."""
    out = dict(table)
    donors: dict[str, str] = {}
    order = [s for s in SYMBOLS if s in _GROUPS]  # increasing period within each group
    for sym in order:
        if sym in out:
            continue
        group = _GROUPS[sym]
        above = [s for s in order[: order.index(sym)] if _GROUPS[s] == group and s in table]
        if above:
            out[sym] = table[above[-1]]
            donors[sym] = above[-1]
    return out, donors


_COMPLETED = {kind: _complete(RAW_PROPERTIES[kind]) for kind in WIDTH_KINDS}

#: ``ATOM_WIDTHS[kind][Z]``: width in angstrom (property / carbon's property).
ATOM_WIDTHS: dict[str, dict[int, float]] = {
    kind: {ATOMIC_NUMBERS[s]: v / values["C"] for s, v in values.items()}
    for kind, (values, _) in _COMPLETED.items()
}
#: ``FALLBACKS[kind][symbol] = donor symbol`` for every value taken from the element above.
FALLBACKS: dict[str, dict[str, str]] = {kind: donors for kind, (_, donors) in _COMPLETED.items()}
