"""Finding items in a large bundle: by name, by exact molecule (canonical SMILES) and by substructure.

:class:`ItemIndex` is built once per bundle (RDKit parses every SMILES: about 20 s for the
93,087 molecules of MUV on one core, so the app builds it in the background) and then answers
each query in well under a second at that size:

- a name, id or SMILES fragment: case-insensitive, prefix matches first;
- an exact molecule: the query's canonical SMILES against every item's (two spellings of one
  molecule find each other);
- a substructure (SMARTS, or a SMILES read as a pattern): RDKit's substructure library, whose
  pattern fingerprints screen the items before atom-by-atom matching on every core.

Examples
--------
>>> index = ItemIndex([{"name": "ethanol", "smiles": "OCC"}, {"name": "phenol", "smiles": "c1ccccc1O"}])
>>> index.search("CCO").indices, index.search("CCO").kind
([0], 'molecule')
>>> index.search("c1ccccc1").indices, index.search("c1ccccc1").kind
([1], 'substructure')
>>> index.search("phen").indices
[1]
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

MAX_QUERY = 300                   # characters: the app's text-field limit
MAX_MATCHES = 5000                # a substructure search stops here ("5000+"): a common fragment in
                                  # 93k molecules would otherwise match for seconds


@dataclass
class SearchResult:
    """What a query found: item indices (best first), how it was read, and a line for the user."""

    indices: list[int]
    kind: Literal["name", "molecule", "substructure", "none"]
    total: int = 0                                  # matches before ``limit``
    message: str = ""
    seconds: float = field(default=0.0, compare=False)


class ItemIndex:
    """Name, canonical-SMILES and substructure search over a bundle's items (see the module doc)."""

    def __init__(self, items: Sequence[dict], *, progress: Callable[[int, int], None] | None = None) -> None:
        from rdkit import Chem, RDLogger
        from rdkit.Chem import rdSubstructLibrary

        self.n = len(items)
        self._text = [" ".join(str(it.get(k) or "") for k in ("name", "id", "smiles")).lower() for it in items]
        self._names = [str(it.get("name") or it.get("id") or "").lower() for it in items]
        self._by_canon: dict[str, list[int]] = {}
        # RDKit's substructure library: molecules kept as RDKit's binary form (no re-parsing), pattern fingerprints
        # screen them, matching runs in C++ on every core
        self._library = rdSubstructLibrary.SubstructLibrary(rdSubstructLibrary.CachedMolHolder(),
                                                            rdSubstructLibrary.PatternHolder())
        rows: list[int] = []                    # library row -> item index
        RDLogger.DisableLog("rdApp.*")
        try:
            for i, it in enumerate(items):
                mol = Chem.MolFromSmiles(str(it["smiles"])) if it.get("smiles") else None
                if mol is not None:
                    self._by_canon.setdefault(Chem.MolToSmiles(mol), []).append(i)
                    self._library.AddMol(mol)
                    rows.append(i)
                if progress is not None and (i + 1) % 5000 == 0:
                    progress(i + 1, self.n)
        finally:
            RDLogger.EnableLog("rdApp.*")
        self._rows = np.asarray(rows, np.int64)

    # ------------------------------------------------------------------ queries
    def by_name(self, text: str) -> list[int]:
        """Items whose name, id or SMILES contains ``text`` (case-insensitive); names that start with it first."""
        low = text.strip().lower()
        if not low:
            return []
        hits = [i for i, t in enumerate(self._text) if low in t]
        return sorted(hits, key=lambda i: (not self._names[i].startswith(low), i))

    def by_molecule(self, smiles: str) -> list[int] | None:
        """Items that are the molecule ``smiles`` (canonical SMILES equal); None if it is no SMILES."""
        from molviz.chem import canonical_smiles
        canon = canonical_smiles(smiles)
        return None if canon is None else list(self._by_canon.get(canon, []))

    def by_substructure(self, pattern: str, *, max_results: int = MAX_MATCHES) -> list[int] | None:
        """Items containing ``pattern`` (SMARTS, or a SMILES read as SMARTS), in item order, at most
        ``max_results`` of them (-1: all); None if it parses as neither."""
        from rdkit import Chem, RDLogger
        RDLogger.DisableLog("rdApp.*")
        try:   # a SMILES query keeps its rings and aromaticity, so its fingerprint screens far better
            query = None if any(c in pattern for c in "[~*$;&,") else Chem.MolFromSmiles(pattern)
            query = query if query is not None else Chem.MolFromSmarts(pattern)
        finally:
            RDLogger.EnableLog("rdApp.*")
        if query is None:
            return None
        hits = np.asarray(self._library.GetMatches(query, numThreads=-1, maxResults=max_results), np.int64)
        return sorted(self._rows[hits].tolist()) if hits.size else []

    def search(self, text: str, *, limit: int = 200) -> SearchResult:
        """Read ``text`` as a molecule, then a substructure, then a name; say what was found.

        A query that parses as a SMILES is first looked up as a whole molecule; when no item is that
        molecule, as a substructure. Anything else is a name search (a SMARTS with ``[``, ``~`` or
        ``*`` is a substructure search).
        """
        import time
        t0 = time.perf_counter()
        q = str(text).strip()[:MAX_QUERY]
        if not q:
            return SearchResult([], "none", 0, "type a name, a SMILES or a SMARTS pattern")
        found: list[int] | None = None
        kind: Literal["name", "molecule", "substructure", "none"] = "none"
        looks_chemical = not any(c.isspace() for c in q)
        if looks_chemical:
            found = self.by_molecule(q)
            if found:
                kind = "molecule"
            else:
                sub = self.by_substructure(q) if (found is not None or any(c in q for c in "[~*$")) else None
                if sub:
                    found, kind = sub, "substructure"
        if kind == "none":
            names = self.by_name(q)
            if names:
                found, kind = names, "name"
        found = found or []
        what = {"molecule": "item(s) are this molecule", "substructure": "item(s) contain this substructure",
                "name": "item(s) match this name"}.get(kind, "")
        count = f"{MAX_MATCHES}+" if kind == "substructure" and len(found) >= MAX_MATCHES else str(len(found))
        message = f"{count} {what}" if found else f"no match for {q[:60]!r} (as a molecule, a substructure or a name)"
        return SearchResult(found[:limit], kind if found else "none", len(found), message,
                            time.perf_counter() - t0)
