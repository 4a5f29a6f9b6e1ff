"""``molviz results``: the results table of the bundled models, read from their own eval.json files."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

# (bundle, PSNR threshold, measure, paper's figure, molviz target): the first in-training evaluation
# at or above the threshold, read from the bundle's history.jsonl
TIME_ROWS = (
    ("6ega", 38.5, "time to reach 38.5 dB on 6EGA (32^3, in-training evaluation)", "~37 min on a GPU",
     "less, on a 2-core CPU"),
)

# (bundle, eval key, measure, paper's figure, molviz target)
ROWS = (
    ("6ega", "all@32", "6EGA auto-decoder, 32^3 PSNR", "38.5 dB", ">= 42 dB"),
    ("6ega", "all@128", "6EGA, 128^3 super-resolution PSNR", "27.2 dB", ">= 35 dB"),
    ("freesolv", "train@16", "FreeSolv auto-encoder, mean PSNR (train items), 16^3", "28.7 dB (16^3, all 642)", "-"),
    ("freesolv", "train@32", "FreeSolv auto-encoder, mean PSNR (train items), 32^3", "28.7 dB (16^3, all 642)", "-"),
    ("freesolv", "all@32", "FreeSolv auto-encoder, mean PSNR (all 642), 32^3", "28.7 dB (16^3, all 642)", ">= 32 dB"),
    ("freesolv", "heldout@16", "FreeSolv, held-out 10% (64), 16^3", "not reported", "reported"),
    ("freesolv", "heldout@32", "FreeSolv, held-out 10% (64), 32^3", "not reported", "reported"),
    ("freesolv", "heldout@128/max16", "FreeSolv, held-out (first 16), 128^3 super-resolution", "not reported", "reported"),
    ("nmr-2juy", "all@32", "2JUY 24 conformers auto-decoder, 32^3", "animation only (1OSL)", "reported"),
    ("nmr-2juy", "all@128", "2JUY, 128^3 super-resolution", "animation only", "reported"),
)


# (bundle, eval key, what, targets: IoU@0.5, atom recall, complete molecules, spurious): the shapes users see
SHAPE_ROWS = (
    ("freesolv", "heldout@32", "FreeSolv, held-out 64 molecules", (0.85, 0.95, 0.80, 0.01)),
    ("freesolv", "heldout@32/refine200", "FreeSolv, held-out 64, encoder + 200 refinement steps",
     (0.85, 0.95, 0.80, 0.01)),
    ("nmr-2juy", "all@32", "2JUY, 24 NMR conformers", (0.85, 0.95, None, 0.01)),
    ("6ega", "all@32", "6EGA, protein + ligand", (0.95, 0.99, None, 0.01)),
)


def shape_table(models: Path) -> str:
    """Markdown table of what a user sees: isosurface IoU, atoms recovered from the decoded field,
    spurious density, and PSNR beside its gain over the all-zero prediction (from eval.json).

    Rows whose evaluation predates these metrics are left out.
    """
    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}%"

    lines = ["| bundle (32^3) | IoU@0.5 (target) | IoU@0.2 | atoms recovered: recall / precision / element | "
             "complete molecules (target) | spurious (target) | PSNR (gain over all-zero) | command |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, key, what, (t_iou, t_recall, t_complete, t_spur) in SHAPE_ROWS:
        ev_path = models / name / "eval.json"
        rec = json.loads(ev_path.read_text()).get("psnr", {}).get(key) if ev_path.is_file() else None
        if not rec or "mean_iou" not in rec:
            continue
        iou = rec["mean_iou"]
        at = rec.get("atoms") or {}
        spur = rec.get("mean_spurious_fraction")
        res = rec["resolution"]
        refine = f" --refine {rec['refine']}" if rec.get("refine") else ""
        cmd = f"`molviz eval assets/models/{name} --resolution {res} --items {rec['items']}{refine}`"
        lines.append(
            f"| {what} | {iou.get('0.5', 0) or 0:.3f} (>= {t_iou}) | {iou.get('0.2', 0) or 0:.3f} | "
            f"{pct(at.get('recall'))} / {pct(at.get('precision'))} / {pct(at.get('element_accuracy'))} "
            f"(recall >= {100 * t_recall:.0f}%) | "
            f"{pct(at.get('complete_fraction')) if t_complete else '-'}{f' (>= {100 * t_complete:.0f}%)' if t_complete else ''} | "
            f"{'-' if spur is None else f'{100 * spur:.2f}%'} (<= {100 * t_spur:.0f}%) | {rec['mean_psnr']:.2f} dB ({rec.get('mean_psnr_gain', float('nan')):.2f} dB) | "
            f"{cmd} |")
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("results", help="print the results table of bundles from their eval.json files",
                       description=__doc__)
    p.add_argument("--models", default=None, help="folder of bundles (default: assets/models)")
    p.set_defaults(func=_run)


def results_table(models: Path) -> str:
    """Markdown table: measure, paper, target, molviz, peak ratio, where it ran, the command that gives the number.

    Peak ratio: median over present channels of decoded max / true max, and in brackets the share of
    present channels decoded below half their true peak (:func:`molviz.training._eval.peak_ratios`).
    """
    lines = ["| measure | paper | molviz target | molviz | peak ratio (lost) | items | trained on | command |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, key, measure, paper, target in ROWS:
        ev_path, manifest_path = models / name / "eval.json", models / name / "bundle.json"
        if not ev_path.is_file() or not manifest_path.is_file():
            continue
        ev = json.loads(ev_path.read_text())
        prov = json.loads(manifest_path.read_text())["config"].get("provenance", {})
        rec = ev.get("psnr", {}).get(key)
        if rec is None:
            continue
        res = rec["resolution"]
        items = rec["items"]
        where = trained_on(prov)
        limit = f" --max-items {rec['n_items']}" if "/max" in key else ""
        cmd = f"`molviz eval assets/models/{name} --resolution {res} --items {items}{limit}`"
        peak = (f"{rec['median_peak_ratio']:.2f} ({100 * rec['lost_fraction']:.0f}%)"
                if rec.get("median_peak_ratio") is not None else "not measured")
        lines.append(f"| {measure} | {paper} | {target} | {rec['mean_psnr']:.2f} dB | {peak} | {rec['n_items']} | "
                     f"{where} | {cmd} |")
    for name, threshold, measure, paper, target in TIME_ROWS:
        hit = first_reaching(models / name / "history.jsonl", threshold)
        manifest_path = models / name / "bundle.json"
        if hit is None or not manifest_path.is_file():
            continue
        prov = json.loads(manifest_path.read_text())["config"].get("provenance", {})
        lines.append(f"| {measure} | {paper} | {target} | {hit['seconds'] / 60:.1f} min (step {hit['step']}, "
                     f"{hit['eval_psnr']:.2f} dB) | | 1 | {prov.get('device', '?')} | "
                     f"`molviz results` (assets/models/{name}/history.jsonl) |")
    ridge_path = models / "freesolv" / "eval.json"
    if ridge_path.is_file():
        ridge = json.loads(ridge_path.read_text()).get("ridge")
        if ridge:
            r2 = ridge["r2"]
            lines.append(f"| FreeSolv latent -> ExactMolWt ridge R^2 (5-fold, held-out folds) | not reported | >= 0.9 | "
                         f"{r2['ExactMolWt']:.3f} | | {ridge.get('n_items', '')} | CPU | `molviz eval assets/models/freesolv --ridge` |")
            rest = ", ".join(f"{k} {v:.2f}" for k, v in r2.items() if k != "ExactMolWt")
            lines.append(f"| FreeSolv latent -> other properties, ridge R^2 | not reported | - | {rest} | | | CPU | same |")
    return "\n".join(lines)


def trained_on(prov: dict) -> str:
    """Where and how long a bundle trained; a warm start (--init-from) also names the runs it continued.

    Examples
    --------
    >>> trained_on({"device": "cpu", "seconds": 60, "steps": 9, "init_from": {"device": "cuda", "seconds": 30,
    ...            "steps": 5}})
    'cpu, 60 s, 9 steps; continued (--init-from) 1 earlier run: 30 s, 5 steps on cuda; 90 s in all'
    """
    where = f"{prov.get('device', '?')}, {prov.get('seconds', 0):.0f} s, {prov.get('steps', '?')} steps"
    parents, parent = [], prov.get("init_from")
    while parent:
        parents.append(parent)
        parent = parent.get("init_from")
    if not parents:
        return where
    runs = "; ".join(f"{p.get('seconds', 0):.0f} s, {p.get('steps', '?')} steps on {p.get('device', '?')}"
                     for p in parents)
    total = sum(p.get("seconds", 0) for p in [prov, *parents])
    return (f"{where}; continued (--init-from) {len(parents)} earlier run{'s' if len(parents) > 1 else ''}: "
            f"{runs}; {total:.0f} s in all")


def first_reaching(history: Path, threshold: float) -> dict | None:
    """The first evaluation record of a training history at or above ``threshold`` dB (None if none)."""
    if not history.is_file():
        return None
    for line in history.read_text().splitlines():
        rec = json.loads(line) if line.strip() else {}
        if rec.get("eval_psnr", float("-inf")) >= threshold:
            return rec
    return None


def _run(args: argparse.Namespace) -> int:
    from molviz.models._discover import bundled_models_dir

    models = Path(args.models) if args.models else bundled_models_dir()
    print(shape_table(models))
    print()
    print(results_table(models))
    return 0
