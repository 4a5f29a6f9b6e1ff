"""Element symbols and element inference from PDB atom and residue names.

numpy-free and parser-free: used on the text of PDB files before gemmi reads
them, so that files with empty element columns (common from MD programs) get
the elements structural-biology tools would give them.
"""
from __future__ import annotations

SYMBOLS = (
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn "
    "Ga Ge As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce "
    "Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn "
    "Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl "
    "Mc Lv Ts Og"
).split()
ATOMIC_NUMBER = {s.upper(): z for z, s in enumerate(SYMBOLS, start=1)}
ATOMIC_NUMBER.update({"D": 1, "T": 1})  # deuterium, tritium: hydrogen for every purpose here

AMINO_ACIDS = frozenset(
    "ALA ARG ASN ASP CYS GLN GLU GLY HIS ILE LEU LYS MET PHE PRO SER THR TRP TYR VAL "
    "SEC PYL ASX GLX UNK "
    # protonation / disulfide variants written by MD programs (Amber, CHARMM, GROMACS)
    "HID HIE HIP HSD HSE HSP HISD HISE HISH CYX CYM CYS2 ASH GLH LYN ARN".split()
)
NUCLEOTIDES = frozenset("A C G U T I N DA DC DG DT DU DI DN RA RC RG RU".split())
WATERS = frozenset("HOH WAT DOD TIP TIP3 TIP4 TIP5 SOL H2O SPC T3P T4P".split())
STANDARD_RESIDUES = AMINO_ACIDS | NUCLEOTIDES | WATERS

# Residue names of single-atom ions -> element symbol (the residue name is the element,
# with the wwPDB exceptions spelled out).
ION_RESIDUES = {
    **{s: s for s in (
        "LI NA K RB CS MG CA SR BA MN FE CO NI CU ZN CD HG PT AU AG AL GA F CL BR "
        "PB TL SM EU GD YB CR V IN".split())},
    "IOD": "I", "FE2": "FE", "CU1": "CU", "MN3": "MN",  # (CO3 is carbonate, not an ion)
    "3CO": "CO", "ZN2": "ZN", "NI2": "NI", "HG2": "HG", "SOD": "NA", "POT": "K", "CLA": "CL",
    "CAL": "CA", "CES": "CS", "LIT": "LI", "MG2": "MG",
}

METALS_AND_HALIDES = frozenset(
    "LI NA K RB CS MG CA SR BA MN FE CO NI CU ZN CD HG PT AU AG AL GA PB TL SM EU GD YB CR V "
    "IN F CL BR I".split()
)

# Two-letter elements accepted from a multi-atom ligand's 3-character name starting in
# column 13: only those common in ligands whose first letter is not an organic element
# that the name could equally mean (CAF is a carbon, not calcium; NAY a nitrogen).
_LIGAND_TWO_LETTER = frozenset("CL BR FE ZN MG MN CU NI SE SI PT RU IR RH PD AU AG AS AL GA GE SN TE".split())


def atomic_number(symbol: str) -> int:
    """Atomic number of an element symbol (case-insensitive; D and T are hydrogen); 0 if unknown."""
    return ATOMIC_NUMBER.get(symbol.strip().upper(), 0)


def infer_element(name_field: str, residue_name: str, *, n_residue_atoms: int = 2) -> str:
    """Element symbol for a PDB atom whose element columns are empty.

    Parameters
    ----------
    name_field
        Columns 13-16 of the ATOM/HETATM record, padding kept (``" CA "``, ``"1HB "``,
        ``"CAF "``, ``"CL1 "``). A stripped name works too, without the column rule.
    residue_name
        Columns 18-20 (``"ALA"``, ``"HOH"``, ``"CO"``).
    n_residue_atoms
        Atoms in this residue: single-atom residues are candidate ions.

    Returns
    -------
    str
        Upper-case symbol, or ``""`` when nothing sensible can be inferred.

    Notes
    -----
    The rules of structural-biology tools:

    - standard residues (amino acids, nucleotides, water): the first letter of the
      name after stripping digits (CA -> C, HG1 -> H, 1HB -> H, OXT -> O, SD -> S);
    - ions: the residue name is the element (a CA residue is calcium);
    - anything else: the PDB column rule (the element symbol is right-justified in
      columns 13-14, so a name starting in column 13 may carry a two-letter element),
      restricted for multi-atom ligands to elements common there (CL1 -> Cl, FE1 -> Fe,
      but CAF -> C and NAY -> N), falling back to the first letter.

    Examples
    --------
    >>> infer_element(" CA ", "ALA"), infer_element("CA  ", "CA", n_residue_atoms=1)
    ('C', 'CA')
    >>> infer_element("HG1 ", "THR"), infer_element("CAF ", "J8A"), infer_element("CL1 ", "LIG")
    ('H', 'C', 'CL')
    """
    res = residue_name.strip().upper()
    raw = name_field.upper()
    name = raw.strip()
    letters = name.lstrip("0123456789'*\" ")
    if not letters:
        return ""
    if res in STANDARD_RESIDUES:
        first = letters[0]
        return first if first in ATOMIC_NUMBER else ""
    if n_residue_atoms == 1 and res in ION_RESIDUES:
        return ION_RESIDUES[res]
    alpha = "".join(c for c in letters if c.isalpha())
    if n_residue_atoms == 1 and alpha in ATOMIC_NUMBER:
        return alpha  # a lone atom named after its element: FE, ZN, CL, O
    padded = len(raw) == 4 and raw != name
    starts_col13 = raw[:1].isalpha() if padded else len(name) < 4
    if starts_col13 and len(letters) >= 2:
        two = letters[:2]
        if two in ATOMIC_NUMBER:
            short = len(name) < 4
            if n_residue_atoms == 1 or (short and (two in _LIGAND_TWO_LETTER)):
                return two
    first = letters[0]
    return first if first in ATOMIC_NUMBER else ""


# --------------------------------------------------------------------------- the periodic table
# One table for all of molviz: symbols above; colours and radii here; field widths (which are
# a modelling choice, with their sources) in molviz.fields._elements, keyed by these numbers.

# Jmol's CPK colours (https://jmol.sourceforge.net/jscolors/), Z = 1..109, hex RGB. Jmol stops at
# meitnerium; the superheavy elements RDKit also knows (110..118) take meitnerium's colour.
_JMOL = (
    "FFFFFF D9FFFF CC80FF C2FF00 FFB5B5 909090 3050F8 FF0D0D 90E050 B3E3F5 AB5CF2 8AFF00 BFA6A6 F0C8A0 "
    "FF8000 FFFF30 1FF01F 80D1E3 8F40D4 3DFF00 E6E6E6 BFC2C7 A6A6AB 8A99C7 9C7AC7 E06633 F090A0 50D050 "
    "C88033 7D80B0 C28F8F 668F8F BD80E3 FFA100 A62929 5CB8D1 702EB0 00FF00 94FFFF 94E0E0 73C2C9 54B5B5 "
    "3B9E9E 248F8F 0A7D8C 006985 C0C0C0 FFD98F A67573 668080 9E63B5 D47A00 940094 429EB0 57178F 00C900 "
    "70D4FF FFFFC7 D9FFC7 C7FFC7 A3FFC7 8FFFC7 61FFC7 45FFC7 30FFC7 1FFFC7 00FF9C 00E675 00D452 00BF38 "
    "00AB24 4DC2FF 4DA6FF 2194D6 267DAB 266696 175487 D0D0E0 FFD123 B8B8D0 A6544D 575961 9E4FB5 AB5C00 "
    "754F45 428296 420066 007D00 70ABFA 00BAFF 00A1FF 008FFF 0080FF 006BFF 545CF2 785CE3 8A4FE3 A136D4 "
    "B31FD4 B31FBA B30DA6 BD0D87 C70066 CC0059 D1004F D90045 E00038 E6002E EB0026"
).split()
ELEMENT_COLORS: dict[int, str] = {z: "#" + _JMOL[min(z, len(_JMOL)) - 1] for z in range(1, len(SYMBOLS) + 1)}
UNKNOWN_ELEMENT_COLOR = "#FF1493"          # an atomic number outside the table (0: unknown)

# Covalent radii (angstrom), Cordero et al., Dalton Trans. 2832 (2008), Z = 1..96 (sp3 carbon,
# low-spin Mn, Fe, Co); heavier elements take curium's. For drawing balls and finding bonds.
_CORDERO = (
    "0.31 0.28 1.28 0.96 0.84 0.76 0.71 0.66 0.57 0.58 1.66 1.41 1.21 1.11 1.07 1.05 1.02 1.06 2.03 1.76 "
    "1.70 1.60 1.53 1.39 1.39 1.32 1.26 1.24 1.32 1.22 1.22 1.20 1.19 1.20 1.20 1.16 2.20 1.95 1.90 1.75 "
    "1.64 1.54 1.47 1.46 1.42 1.39 1.45 1.44 1.42 1.39 1.39 1.38 1.39 1.40 2.44 2.15 2.07 2.04 2.03 2.01 "
    "1.99 1.98 1.98 1.96 1.94 1.92 1.92 1.89 1.90 1.87 1.87 1.75 1.70 1.62 1.51 1.44 1.41 1.36 1.36 1.32 "
    "1.45 1.46 1.48 1.40 1.50 1.50 2.60 2.21 2.15 2.06 2.00 1.96 1.90 1.87 1.80 1.69"
).split()
COVALENT_RADII: dict[int, float] = {z: float(_CORDERO[min(z, len(_CORDERO)) - 1])
                                    for z in range(1, len(SYMBOLS) + 1)}


def element_symbol(z: int) -> str:
    """Symbol of atomic number ``z`` (``6 -> "C"``); ``"Z0"``-style for numbers outside the table.

    Examples
    --------
    >>> element_symbol(17), element_symbol(0)
    ('Cl', 'Z0')
    """
    return SYMBOLS[int(z) - 1] if 1 <= int(z) <= len(SYMBOLS) else f"Z{int(z)}"


def parse_element(token: str) -> int | None:
    """Atomic number of an element symbol, case-insensitively (``"cl" -> 17``), else None.
    Deuterium and tritium are hydrogen."""
    return ATOMIC_NUMBER.get(str(token).strip().upper())


def element_color(z: int) -> str:
    """Jmol CPK colour of atomic number ``z``, ``"#RRGGBB"``."""
    return ELEMENT_COLORS.get(int(z), UNKNOWN_ELEMENT_COLOR)
