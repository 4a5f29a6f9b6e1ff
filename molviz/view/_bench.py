"""``molviz bench search``: finding molecules in a 93,000-item bundle (MUV's SMILES).

Builds :class:`molviz.view.search.ItemIndex` over the first N SMILES of
``assets/data/muv/muv.csv.gz`` (:func:`molviz.training._bench.muv_path`; all 93,087 by default,
5,000 with ``--quick``) and times the index and one query of each kind: an exact molecule
(canonical SMILES), a rare and a common substructure (SMILES and SMARTS), a name and a miss;
then stores the index (:meth:`ItemIndex.save`, what ``molviz map --search-index`` writes beside a
bundle), reads it back (:meth:`ItemIndex.load`, what the app does instead of building) and times
the same queries on the index read back. Target (issue 18): every query <= 1 s at 93k on the
2-core CPU.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

QUERIES = (
    ("molecule", "Cn1ccnc1SCC(=O)Nc1ccc(Oc2ccccc2)cc1"),
    ("substructure (rare, SMILES)", "c1ccc2ncccc2c1"),
    ("substructure (SMARTS)", "[#6]S(=O)(=O)N"),
    ("substructure (common, capped)", "C(=O)N"),
    ("name", "MUV 123"),
    ("no match", "xyzzy"),
)


def muv_smiles(n: int | None) -> list[str]:
    """The SMILES of MUV (:func:`molviz.training._bench.muv_path`), the first ``n`` (None: all)."""
    import csv
    import gzip

    from molviz.training._bench import muv_path
    with gzip.open(muv_path(), "rt") as f:
        rows = [r["smiles"] for r in csv.DictReader(f)]
    return rows[:n] if n else rows


def run(args: argparse.Namespace) -> int:
    import tempfile

    from molviz.view.search import ItemIndex
    n = 5000 if getattr(args, "quick", False) else None
    smiles = muv_smiles(n)
    items = [{"name": f"MUV {i}", "smiles": s} for i, s in enumerate(smiles)]
    t0 = time.perf_counter()
    index = ItemIndex(items)
    rows = [{"row": "index built", "items": len(items), "seconds": round(time.perf_counter() - t0, 2)}]

    def queries(ix: ItemIndex, where: str) -> None:
        for label, q in QUERIES:
            r = ix.search(q)
            rows.append({"row": f"{label}{where}", "query": q, "kind": r.kind, "found": r.message,
                         "ms": round(r.seconds * 1e3, 1), "target_ms": 1000, "met": r.seconds <= 1.0})

    queries(index, "")
    with tempfile.TemporaryDirectory(prefix="molviz-bench-search-") as folder:
        t0 = time.perf_counter()
        path = index.save(folder, items)
        rows.append({"row": "index stored", "seconds": round(time.perf_counter() - t0, 2),
                     "mb": round(path.stat().st_size / 2**20, 1),
                     "bytes_per_item": round(path.stat().st_size / max(1, len(items)))})
        t0 = time.perf_counter()
        again = ItemIndex.load(folder, items)
        rows.append({"row": "index read back", "items": len(items), "seconds": round(time.perf_counter() - t0, 2),
                     "ok": again is not None})
    if again is not None:
        queries(again, " (read back)")
    for r in rows:
        print("  ".join(f"{k}={v}" for k, v in r.items()))
    if getattr(args, "json", None):
        Path(args.json).write_text(json.dumps({"benchmark": "search", "rows": rows}, indent=1))
    return 0
