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
