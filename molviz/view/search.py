"""Finding items in a large bundle: by name, by exact molecule (canonical SMILES) and by substructure.

:class:`ItemIndex` is built once per bundle and then answers each query in well under a second
at MUV's size (93,087 molecules):

- a name, id or SMILES fragment: case-insensitive, prefix matches first;
- an exact molecule: the query's canonical SMILES against every item's (two spellings of one
  molecule find each other);
- a substructure (SMARTS, or a SMILES read as a pattern): RDKit's substructure library, whose
  pattern fingerprints screen the items before atom-by-atom matching on every core.

Building parses every SMILES once (its canonical form, and the molecule the matcher keeps in
RDKit's binary form) and computes the pattern fingerprints on every core; the fingerprints are
most of the work. :meth:`ItemIndex.save` stores what is costly to recompute beside a bundle
(``search.safetensors``: each item's canonical SMILES and its pattern fingerprint, as plain
arrays, no pickle), and :meth:`ItemIndex.for_bundle` reads it back instead of building when it
belongs to the same items and the same RDKit (a few items' fingerprints are recomputed and
compared; any difference, and the index is built afresh). Nothing stored is trusted as code or
as a molecule: the SMILES are parsed and sanitised again (the cheap part), and a wrong
fingerprint bit could at worst hide a match, which the spot check guards against.

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

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

MAX_QUERY = 300                   # characters: the app's text-field limit
MAX_MATCHES = 5000                # a substructure search stops here ("5000+"): a common fragment in
                                  # 93k molecules would otherwise match for seconds
INDEX_FILE = "search.safetensors"  # the stored index beside a bundle (ItemIndex.save)
INDEX_FORMAT = "molviz-search-1"
FP_BYTES = 256                    # RDKit's pattern fingerprint (PatternHolder): 2048 bits
SPOT_CHECK = 16                   # stored fingerprints recomputed and compared when an index is read


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

    def __init__(self, items: Sequence[dict], *, progress: Callable[[int, int], None] | None = None,
                 threads: int = -1, _stored: tuple[list[str], list[bytes]] | None = None) -> None:
        from rdkit import Chem, DataStructs, RDLogger
        from rdkit.Chem import rdSubstructLibrary

        self.n = len(items)
        self._text = [" ".join(str(it.get(k) or "") for k in ("name", "id", "smiles")).lower() for it in items]
        self._names = [str(it.get("name") or it.get("id") or "").lower() for it in items]
        self._by_canon: dict[str, list[int]] = {}
        self._canon: list[str | None] = []
        # RDKit's substructure library: molecules kept in RDKit's binary form (no re-parsing per query),
        # pattern fingerprints screen them, matching runs in C++ on every core
        holder = rdSubstructLibrary.CachedMolHolder()
        # threads=0: each molecule's fingerprint made in this loop, one short RDKit call at a time (the
        # app's background build: one long all-core call would hold Python's lock, and the page, for it)
        one_by_one = threads == 0 and _stored is None
        patterns = rdSubstructLibrary.PatternHolder() if one_by_one else None
        rows: list[int] = []                    # library row -> item index
        RDLogger.DisableLog("rdApp.*")
        try:
            for i, it in enumerate(items):
                if _stored is not None:         # the canonical SMILES stored: parse it, skip canonicalising
                    canon = _stored[0][i]
                    mol = Chem.MolFromSmiles(canon) if canon else None
                else:
                    mol = Chem.MolFromSmiles(str(it["smiles"])) if it.get("smiles") else None
                    canon = Chem.MolToSmiles(mol) if mol is not None else None
                self._canon.append(canon if mol is not None else None)
                if mol is not None:
                    self._by_canon.setdefault(canon, []).append(i)
                    holder.AddMol(mol)
                    if patterns is not None:
                        patterns.AddFingerprint(patterns.MakeFingerprint(mol))
                    rows.append(i)
                if one_by_one and i % 16 == 15:
                    # step aside: a thread looping over RDKit calls would take Python's lock back at once,
                    # and a decode beside it waits 5 ms for each of its hundreds of torch calls (7x slower)
                    time.sleep(0.002)
                if progress is not None and (i + 1) % 5000 == 0:
                    progress(i + 1, self.n)
            if one_by_one:
                self._library = rdSubstructLibrary.SubstructLibrary(holder, patterns)
            elif _stored is not None:
                patterns = rdSubstructLibrary.PatternHolder()
                for fp in _stored[1]:
                    patterns.AddFingerprint(DataStructs.CreateFromBinaryText(fp))
                self._library = rdSubstructLibrary.SubstructLibrary(holder, patterns)
            else:                               # the fingerprints, in C++ on ``threads`` cores (-1: all)
                self._library = rdSubstructLibrary.SubstructLibrary(holder)
                rdSubstructLibrary.AddPatterns(self._library, threads)
        finally:
            RDLogger.EnableLog("rdApp.*")
        self._rows = np.asarray(rows, np.int64)

    # ------------------------------------------------------------------ stored form
    @staticmethod
    def _fingerprint(canon: str) -> bytes:
        from rdkit import Chem, DataStructs
        from rdkit.Chem import rdSubstructLibrary
        return DataStructs.BitVectToBinaryText(
            rdSubstructLibrary.PatternHolder().MakeFingerprint(Chem.MolFromSmiles(canon)))

    @staticmethod
    def _items_key(items: Sequence[dict]) -> str:
        """SHA-256 of the items' SMILES (and how many): a stored index belongs to exactly these."""
        h = hashlib.sha256(str(len(items)).encode())
        for it in items:
            h.update(b"\n" + str(it.get("smiles") or "").encode())
        return h.hexdigest()

    def save(self, folder: str | os.PathLike, items: Sequence[dict]) -> Path:
        """Write ``folder/search.safetensors`` (atomically): canonical SMILES and pattern fingerprints.

        ``items`` are the items the index was built from (their SMILES are hashed, so the file is
        read back only for the same items). About 300 bytes per molecule.
        """
        from rdkit import DataStructs, rdBase
        from safetensors.numpy import save_file

        from molviz._io import atomic_path
        if len(items) != self.n:
            raise ValueError(f"the index holds {self.n} items, {len(items)} given")
        fps = self._library.GetFpHolder()
        blob = np.zeros((len(self._rows), FP_BYTES), np.uint8)
        for r in range(len(self._rows)):
            raw = DataStructs.BitVectToBinaryText(fps.GetFingerprint(r))
            if len(raw) != FP_BYTES:
                raise RuntimeError(f"RDKit's pattern fingerprint is {len(raw)} bytes, not {FP_BYTES}")
            blob[r] = np.frombuffer(raw, np.uint8)
        text = "\n".join(c or "" for c in self._canon).encode()
        meta = {"format": INDEX_FORMAT, "rdkit": rdBase.rdkitVersion, "items": str(self.n),
                "items_sha256": self._items_key(items), "fingerprint": f"rdkit PatternHolder {8 * FP_BYTES} bits"}
        path = Path(folder) / INDEX_FILE
        with atomic_path(path) as tmp:
            save_file({"canonical_smiles": np.frombuffer(text, np.uint8).copy(), "rows": self._rows,
                       "fingerprints": blob}, str(tmp), metadata=meta)
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike, items: Sequence[dict], *,
             progress: Callable[[int, int], None] | None = None) -> ItemIndex | None:
        """The index stored in ``folder`` for these ``items``; None when there is none, or it was made for
        other items or another RDKit, or is damaged (then build one: :meth:`for_bundle`)."""
        from rdkit import rdBase
        from safetensors import safe_open

        path = Path(folder) / INDEX_FILE
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                if (meta.get("format") != INDEX_FORMAT or meta.get("rdkit") != rdBase.rdkitVersion
                        or meta.get("items") != str(len(items)) or meta.get("items_sha256") != cls._items_key(items)):
                    return None
                canon = f.get_tensor("canonical_smiles").tobytes().decode().split("\n")
                rows, blob = f.get_tensor("rows"), f.get_tensor("fingerprints")
            present = [i for i, c in enumerate(canon) if c]
            if len(canon) != len(items) or blob.shape != (len(rows), FP_BYTES) or rows.tolist() != present:
                return None
            fps = [blob[r].tobytes() for r in range(len(rows))]
            for r in (np.linspace(0, len(rows) - 1, min(SPOT_CHECK, len(rows))).astype(int) if len(rows) else []):
                if cls._fingerprint(canon[rows[r]]) != fps[r]:
                    return None
        except Exception:  # noqa: BLE001 - a damaged or foreign file: build instead
            return None
        out = cls(items, progress=progress, _stored=(canon, fps))
        return out if out._rows.tolist() == present else None

    @classmethod
    def for_bundle(cls, folder: str | os.PathLike | None, items: Sequence[dict], *,
                   progress: Callable[[int, int], None] | None = None, threads: int = -1) -> ItemIndex:
        """The bundle's stored index (``folder/search.safetensors``) when it fits ``items``, else a new one
        (``threads`` as for the constructor)."""
        stored = cls.load(folder, items, progress=progress) if folder is not None else None
        return stored if stored is not None else cls(items, progress=progress, threads=threads)

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
