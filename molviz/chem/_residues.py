"""Residue names that molecular-dynamics programs write for protein and nucleic residues.

CHARMM, AMBER and GROMACS name protonation states, disulfides, caps and chain
termini with their own residue names (HSD, HIE, CYX, ACE, NALA, DA5 ...). Structure
tools do not know them, so a PDB entity set-up calls them ligands; here they are
one table, and a residue named in it is protein or nucleic whatever its entity says.

Examples
--------
>>> polymer_component("HSD"), polymer_component("nala"), polymer_component("DA5"), polymer_component("J8A")
('protein', 'protein', 'nucleic', None)
"""
from __future__ import annotations

_AMINO = ("ALA ARG ASN ASP CYS GLN GLU GLY HIS ILE LEU LYS MET PHE PRO SER THR TRP TYR VAL "
          "SEC PYL").split()

# protonation / disulfide / charge variants (CHARMM, AMBER, GROMACS)
_PROTEIN_VARIANTS = (
    "HSD HSE HSP HID HIE HIP HISD HISE HISH HISP HISA HISB HIS1 HIS2 "   # histidine
    "CYX CYM CYN CYS1 CYS2 CYSH "                                        # cysteine
    "ASH ASPH ASPP GLH GLUH GLUP LYN LSN LYSH LYP ARN TYM"               # acids and bases
).split()
_CAPS = "ACE NME NMA NHE NH2 CT3".split()  # N-terminal acetyl, C-terminal amides

# N- and C-terminal residues (AMBER, GROMACS): NALA ... CALA ..., also of the variants
_TERMINI = [f"{end}{base}" for end in "NC" for base in _AMINO + "HID HIE HIP CYX CYM ASH GLH LYN".split()]

# nucleic acids: AMBER 5'/3'/lone-nucleotide names, older AMBER RNA names, CHARMM names
_NUCLEIC = (
    [f"D{b}{end}" for b in "ACGT" for end in ("5", "3", "N")]
    + [f"R{b}{end}" for b in "ACGU" for end in ("5", "3", "N")]
    + [f"{b}{end}" for b in "ACGU" for end in ("5", "3")]
)
# CHARMM's nucleotide names are also the wwPDB codes of the free bases (ADE is adenine):
# they count as nucleic only when the residue has a sugar (a C1' atom), see polymer_component.
CHARMM_NUCLEOTIDES = frozenset("ADE CYT GUA THY URA".split())

MD_RESIDUES: dict[str, str] = {
    **{name: "protein" for name in _PROTEIN_VARIANTS + _CAPS + _TERMINI},
    **{name: "nucleic" for name in _NUCLEIC},
}

# residue names longer than 3 characters (CHARMM writes them in columns 18-21)
FOUR_CHARACTER = frozenset(n for n in MD_RESIDUES if len(n) == 4) | frozenset(
    "TIP3 TIP4 TIP5 SPCE".split())


def polymer_component(name: str, atom_names=()) -> str | None:
    """``"protein"`` or ``"nucleic"`` for a residue name of :data:`MD_RESIDUES`, else None.

    ``atom_names`` decides CHARMM's nucleotide names (ADE, CYT, GUA, THY, URA): nucleic when
    the residue has a sugar atom C1' (a free base has none).
    """
    key = name.strip().upper()
    found = MD_RESIDUES.get(key)
    if found is None and key in CHARMM_NUCLEOTIDES:
        sugar = {"C1'", "C1*"}
        return "nucleic" if any(a.strip().upper() in sugar for a in atom_names) else None
    return found
