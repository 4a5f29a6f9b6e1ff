"""Prepared training data: one ``.npz`` of atom tables that a bare GPU box can train from.

Preparation (here, with RDKit and gemmi through :mod:`molviz.chem`) turns the
molecules of a preset into per-item atom tables (one row per atom and channel
it belongs to: centre, channel, width), per-item boxes, per-item channel
divisors (``normalize="max"``) and item metadata. Training needs only torch and
numpy: every target, on the grid or anywhere in the box, is recomputed from the
tables with :func:`molviz.fields.field_from_table`.

File layout (``np.load(path, allow_pickle=False)``)::

    xyz (A, 3) float32      channel (A,) int64      width (A,) float32
    offsets (N + 1,) int64  item i owns rows offsets[i]:offsets[i + 1]
    boxes (N, 2, 3) float32 first and last voxel centre of each item's training grid (angstrom)
    divisors (N, C) float32 each channel's continuous maximum (normalize="max")
    split (N,) int8         0 train, 1 held out
    meta ()  str            JSON: data config, channels, channel names, items, inputs, provenance

``meta["inputs"]`` counts the inputs of your own molecules (``molviz train library |
ensemble``): ``n`` read, ``used`` (the items) and ``skipped``, one ``{source, index,
reason}`` per input that could not be used, so that ``used + len(skipped) == n``;
``notes`` says what the reader of an ensemble did (elements inferred, atoms selected).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from molviz._io import save_npz
from molviz.chem._datasets import LIGAND_SMILES_6EGA
from molviz.errors import InputError, MolvizError
from molviz.training._config import RECIPES, DataConfig, data_key

FORMAT = "molviz-prepared"
VERSION = 1
DESCRIPTORS = ("MolMR", "ExactMolWt", "TPSA", "MolLogP", "NumRotatableBonds")


@dataclass
class PreparedData:
    """Atom tables, boxes, divisors and metadata of every training item."""

    xyz: np.ndarray          # (A, 3) float32
    channel: np.ndarray      # (A,) int64
    width: np.ndarray        # (A,) float32
    offsets: np.ndarray      # (N + 1,) int64
    boxes: np.ndarray        # (N, 2, 3) float32
    divisors: np.ndarray     # (N, C) float32
    split: np.ndarray        # (N,) int8, 1 = held out
    meta: dict[str, Any]

    @property
    def n_items(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_channels(self) -> int:
        return len(self.meta["channel_names"])

    @property
    def items(self) -> list[dict]:
        return self.meta["items"]

    @property
    def data_config(self) -> DataConfig:
        return DataConfig(**self.meta["data"])

    @property
    def skipped(self) -> list[dict]:
        """The inputs that could not be used: ``{"source", "index", "reason"}`` each."""
        return list((self.meta.get("inputs") or {}).get("skipped") or [])

    def table(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The atom table of item ``i``: xyz (A_i, 3), channel (A_i,), width (A_i,)."""
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.xyz[a:b], self.channel[a:b], self.width[a:b]

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "xyz": self.xyz, "channel": self.channel, "width": self.width, "offsets": self.offsets,
            "boxes": self.boxes, "divisors": self.divisors, "split": self.split,
            "meta": np.array(json.dumps(self.meta)),
        }

    @classmethod
    def from_arrays(cls, d: dict[str, np.ndarray], *, source: str = "arrays") -> PreparedData:
        missing = [k for k in ("xyz", "channel", "width", "offsets", "boxes", "divisors", "split", "meta") if k not in d]
        if missing:
            raise InputError(f"{source} is not a molviz prepared-data file (missing {', '.join(missing)}); "
                             "make one with `molviz train PRESET --prepare-only FILE.npz`")
        bad = f"{source} is not a valid molviz prepared-data file"
        try:
            meta = json.loads(str(np.asarray(d["meta"]).reshape(-1)[0]))
        except (ValueError, IndexError) as exc:
            raise InputError(f"{bad}: its 'meta' is not JSON ({exc}); prepare it again with --prepare-only") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise InputError(f"{source} is not a molviz prepared-data file (format tag {FORMAT!r} missing)")
        try:
            out = cls(
                xyz=np.asarray(d["xyz"], np.float32), channel=np.asarray(d["channel"], np.int64),
                width=np.asarray(d["width"], np.float32), offsets=np.asarray(d["offsets"], np.int64),
                boxes=np.asarray(d["boxes"], np.float32), divisors=np.asarray(d["divisors"], np.float32),
                split=np.asarray(d["split"], np.int8), meta=meta,
            )
        except (TypeError, ValueError) as exc:
            raise InputError(f"{bad}: an array has the wrong type ({exc})") from None
        out._check(bad)
        return out

    def _check(self, bad: str) -> None:
        """Shapes, ranges and finiteness agree, so training never indexes out of a table."""
        A, N = len(self.xyz), len(self.boxes)
        names = self.meta.get("channel_names")
        C = self.divisors.shape[1] if self.divisors.ndim == 2 else -1
        problems = []
        if self.xyz.shape != (A, 3) or self.channel.shape != (A,) or self.width.shape != (A,):
            problems.append("xyz must be (A, 3) with channel and width (A,)")
        if self.boxes.shape != (N, 2, 3) or self.divisors.shape[:1] != (N,) or self.split.shape != (N,):
            problems.append("boxes must be (N, 2, 3) with divisors (N, C) and split (N,)")
        if problems:
            raise InputError(f"{bad}: {'; '.join(problems)}; prepare it again with --prepare-only")
        if self.offsets.shape != (N + 1,) or (N + 1 and (self.offsets[0] != 0 or self.offsets[-1] != A
                                                         or np.any(np.diff(self.offsets) < 0))):
            problems.append("offsets must rise from 0 to the number of atom rows, one more than items")
        if C < 1 or (isinstance(names, list) and len(names) != C) or (A and not 0 <= self.channel.min() <= self.channel.max() < C):
            problems.append("channel indices must lie within the channels the file names")
        for name in ("xyz", "width", "boxes", "divisors"):
            if not np.isfinite(getattr(self, name)).all():
                problems.append(f"{name} holds NaN or infinite values")
        if A and self.width.min() <= 0 or N and self.divisors.min() <= 0:
            problems.append("widths and divisors must be positive")
        if problems:
            raise InputError(f"{bad}: {'; '.join(problems)}; prepare it again with --prepare-only")

    @classmethod
    def concat(cls, parts: list[PreparedData]) -> PreparedData:
        """The parts of a library prepared with ``--shard 0/N`` ... ``N-1/N``, in order, as one.

        Element channels are united (in atomic-number order, the order one preparation of the
        whole library gives) and the held-out split is drawn again over all items, so the result
        equals preparing every input at once.
        """
        if len(parts) == 1:
            return parts[0]
        cfgs = [p.data_config for p in parts]
        shards = [c.shard for c in cfgs]
        n_parts = len(parts)
        if shards != [f"{k}/{n_parts}" for k in range(n_parts)]:
            raise InputError(f"the prepared files are shards {', '.join(str(x) for x in shards)}; give all N parts "
                             f"of one library in order (--shard 0/N ... N-1/N), here N = {n_parts}")
        keys = [data_key(c) for c in cfgs]
        if any(k != keys[0] for k in keys[1:]) or len({(c.resolution, c.heldout, c.seed) for c in cfgs}) > 1:
            raise InputError("the prepared parts were made with different settings; prepare every shard with the "
                             "same command, only --shard changing")
        from molviz.fields import Channel
        defs: dict[str, dict] = {}
        for p in parts:
            for d in p.meta["channels"]:
                defs.setdefault(d["name"], d)
        names = [n for n in defs if all(n in p.meta["channel_names"] for p in parts)]
        if len(names) < len(defs):   # channels some parts lack: only element channels differ between parts
            if cfgs[0].channels not in ("elements", "elements+density"):
                raise InputError("the prepared parts have different channels; prepare them again with the same "
                                 "--channels")
            chans = {n: Channel.from_dict(d) for n, d in defs.items()}
            element = [n for n, c in chans.items() if c.elements is not None and len(c.elements) == 1]
            names = sorted(element, key=lambda n: next(iter(chans[n].elements))) + [n for n in chans if
                                                                                    n not in element]
        C = len(names)
        channel, divisors, offsets, items = [], [], [0], []
        for p in parts:
            remap = np.array([names.index(n) for n in p.meta["channel_names"]], np.int64)
            channel.append(remap[p.channel])
            div = np.ones((p.n_items, C), np.float32)   # a channel without atoms divides by 1
            div[:, remap] = p.divisors
            divisors.append(div)
            offsets.extend((offsets[-1] + p.offsets[1:]).tolist())
            items.extend(p.items)
        first = parts[0].meta
        infos = [p.meta.get("inputs") or {} for p in parts]
        data = {**first["data"], "shard": None}
        meta = {**first, "data": data, "channels": [defs[n] for n in names], "channel_names": names,
                "items": items,
                "inputs": {"n": sum(i.get("n", 0) for i in infos), "used": len(items),
                           "skipped": [r for i in infos for r in i.get("skipped", [])],
                           "notes": list(dict.fromkeys(x for i in infos for x in i.get("notes", [])))},
                "provenance": {**first.get("provenance", {}), "shards": n_parts, "prepared_seconds": round(sum(
                    p.meta.get("provenance", {}).get("prepared_seconds", 0) for p in parts), 1)}}
        out = cls(xyz=np.concatenate([p.xyz for p in parts]), channel=np.concatenate(channel),
                  width=np.concatenate([p.width for p in parts]), offsets=np.asarray(offsets, np.int64),
                  boxes=np.concatenate([p.boxes for p in parts]), divisors=np.concatenate(divisors),
                  split=held_out(len(items), cfgs[0].heldout, cfgs[0].seed), meta=meta)
        out._check("the merged shards are not valid")
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write the npz atomically (temporary file in the same folder, then rename)."""
        return save_npz(path, self.to_arrays())

    @classmethod
    def load(cls, path: str | os.PathLike) -> PreparedData:
        """Read a prepared file (never unpickles)."""
        from molviz._io import read_npz
        path = Path(path)
        if not path.is_file():
            raise InputError(f"prepared data {str(path)!r} does not exist; make it with "
                             "`molviz train PRESET --prepare-only FILE.npz` on a machine with RDKit")
        return cls.from_arrays(read_npz(path, what="prepared data"), source=repr(str(path)))

    def check_matches(self, cfg: DataConfig) -> None:
        """Refuse a prepared file made for other molecules, channels or beta than ``cfg`` asks for."""
        have, want = data_key(self.data_config), data_key(cfg)
        diff = {k: (have[k], want[k]) for k in want if have[k] != want[k]}
        if diff:
            text = "; ".join(f"{k}: file has {a!r}, this run wants {b!r}" for k, (a, b) in diff.items())
            raise InputError(f"the prepared data was made for another preset or other inputs ({text}); "
                             f"prepare it again for this run with --prepare-only")


def write_skipped(path: str | os.PathLike, rows: list[dict]) -> Path:
    """``skipped.csv`` (``source,index,reason``, a header line even when empty), written atomically.

    Examples
    --------
    >>> import tempfile
    >>> p = write_skipped(tempfile.mkdtemp() + "/skipped.csv", [{"source": "a.csv", "index": 3, "reason": "bad"}])
    >>> p.read_text().splitlines()
    ['source,index,reason', 'a.csv,3,bad']
    """
    import csv
    import io

    from molviz._io import atomic_write_text
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["source", "index", "reason"])
    for r in rows:
        writer.writerow([r.get("source", ""), "" if r.get("index") is None else r["index"], r.get("reason", "")])
    return atomic_write_text(path, buf.getvalue())


# ----------------------------------------------------------------------------- sources

def _data_path(*parts: str) -> Path:
    from molviz._assets import asset_path
    return asset_path("data", *parts)


def descriptors(smiles: str | None) -> dict[str, float]:
    """RDKit descriptors the paper coloured its latent map by (empty when there is no SMILES)."""
    if not smiles:
        return {}
    from rdkit import Chem
    from rdkit.Chem import Descriptors
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return {}
    return {name: float(getattr(Descriptors, name)(mol)) for name in DESCRIPTORS}


def _progress(iterable, *, total: int, desc: str, enabled: bool):
    from molviz._progress import tqdm
    return tqdm(iterable, total=total, desc=desc, disable=not enabled, unit="mol", dynamic_ncols=True)


def _freesolv_structures(cfg: DataConfig, progress: bool, skipped: list[dict]):
    from molviz.chem import load, read_freesolv
    rows = read_freesolv(_data_path("freesolv", "database.txt"))
    if cfg.max_items:
        rows = rows[: cfg.max_items]
    out = []
    for r in _progress(rows, total=len(rows), desc="conformers (RDKit ETKDG+MMFF)", enabled=progress):
        s = load(r["smiles"], conformers=1, hydrogens=cfg.hydrogens, name=r["compound_id"], seed=cfg.seed)
        item = {"name": r["iupac"], "id": r["compound_id"], "smiles": r["smiles"], "source": "FreeSolv v0.52",
                "conformer": 0, "expt": r["expt"], **descriptors(r["smiles"])}
        out.append((s, 0, item))
    return out




def _6ega_structures(cfg: DataConfig, progress: bool, skipped: list[dict]):
    from molviz.chem import shipped_structure
    s = shipped_structure("6ega", hydrogens=cfg.hydrogens)
    item = {"name": "6EGA IRAK4 + J8A", "smiles": LIGAND_SMILES_6EGA,
            "source": "PDB 6EGA (protein: minf data/6ega_protein.pdb; ligand J8A with H)",
            "conformer": 0, **descriptors(LIGAND_SMILES_6EGA)}
    return [(s, 0, item)]


def _nmr_structures(cfg: DataConfig, progress: bool, skipped: list[dict]):
    from molviz.chem import shipped_structure
    s = shipped_structure("nmr", hydrogens=cfg.hydrogens)
    n = s.n_conformers if not cfg.max_items else min(cfg.max_items, s.n_conformers)
    return [(s, i, {"name": f"2JUY model {i + 1}", "smiles": None, "source": "PDB 2JUY (NMR ensemble)",
                    "conformer": i}) for i in range(n)]


def _skip(source: str, index: int | None, reason: object) -> dict:
    """One row of skipped.csv: where the input was and why it was not used (one line)."""
    text = " ".join(str(reason).split()) or type(reason).__name__
    return {"source": str(source), "index": index, "reason": text}


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 0 <= K < N.

    >>> parse_shard("1/4")
    (1, 4)
    """
    try:
        k, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        k = n = -1
    if not 0 <= k < n:
        raise InputError(f"--shard {text!r}: give K/N with 0 <= K < N, e.g. 0/4 ... 3/4 for four parts")
    return k, n


def _library_structures(cfg: DataConfig, progress: bool, skipped: list[dict]):
    """Every molecule of the inputs (SMILES tables, SDF records, structure files) that can be built."""
    from molviz.chem import library_records, record_structure, typed_properties
    from molviz.chem._library import property_key
    if not cfg.inputs:
        raise InputError("molviz train library needs INPUT: SMILES files (.smi, .csv, .tsv, also .gz), SDF "
                         "files, folders or globs of structure files")
    records = library_records(*cfg.inputs, smiles_column=cfg.smiles_column, name_column=cfg.name_column)
    if cfg.max_items:
        records = records[: cfg.max_items]
    if cfg.shard:
        k, n = parse_shard(cfg.shard)
        records = records[k * len(records) // n:(k + 1) * len(records) // n]
    built = []
    how = "RDKit ETKDG" if cfg.geometry == "etkdg" else "RDKit ETKDG+MMFF"
    for r in _progress(records, total=len(records), desc=f"molecules ({how})", enabled=progress):
        try:
            s = record_structure(r, hydrogens=cfg.hydrogens, seed=cfg.seed, max_atoms=cfg.max_atoms,
                                 geometry=cfg.geometry)
        except Exception as exc:  # noqa: BLE001 - one unusable input never stops the library
            skipped.append(_skip(r.source, r.index, exc if isinstance(exc, MolvizError)
                                 else f"{type(exc).__name__}: {exc}"))
            continue
        built.append((s, r))
    out = []
    for (s, r), props in zip(built, typed_properties([r.properties for _, r in built])):
        props = {property_key(k): v for k, v in props.items()}
        item = {"name": s.name, "smiles": s.smiles, "source": r.source, "index": r.index, "conformer": 0,
                **descriptors(s.smiles), **props, "properties": list(props)}
        out.append((s, 0, item))
    return out


_LABELS = {"pdb": "model", "cif": "model", "sdf": "record", "mol": "record", "mol2": "record", "xyz": "frame"}


def _ensemble_structures(cfg: DataConfig, progress: bool, skipped: list[dict]):
    """The conformers of one system (models, records, frames, an MD trajectory), superposed on the first."""
    from molviz.chem import load, needs_mdanalysis, read_trajectory, superpose
    from molviz.chem._library import expand_inputs
    from molviz.chem._readers import file_format
    if not cfg.inputs:
        raise InputError("molviz train ensemble needs INPUT: a multi-MODEL PDB/mmCIF, a multi-record SDF, a "
                         "multi-frame XYZ, or a topology and trajectory files (PDB/PSF/GRO/PRMTOP + "
                         "DCD/XTC/TRR/NetCDF)")
    paths = []
    for source, path, reason in expand_inputs(cfg.inputs):
        if path is None:
            raise InputError(f"{source}: {reason}; an ensemble is one system, every input is needed")
        paths.append(path)
    window = slice(cfg.start, cfg.stop, cfg.stride)
    if needs_mdanalysis(paths) or cfg.select:
        t = read_trajectory(paths[0], *paths[1:], stride=cfg.stride, start=cfg.start, stop=cfg.stop,
                            select=cfg.select, hydrogens=cfg.hydrogens, max_atoms=cfg.max_atoms)
        skipped.extend(_skip(src, frame, why) for src, frame, why in t.skipped)
        s = t.structure
        where = [(" + ".join(s.sources), int(f), f"{s.name} frame {int(f)}", {"time": float(tm)})
                 for f, tm in zip(t.frames, t.times)]
    else:
        parts, where = [], []
        for path in paths:
            try:
                part = load(str(path), hydrogens=cfg.hydrogens, max_atoms=cfg.max_atoms, seed=cfg.seed)
                if parts and (part.n_atoms != parts[0].n_atoms
                              or not np.array_equal(part.atomic_numbers, parts[0].atomic_numbers)):
                    raise InputError(f"{path}: other atoms ({part.n_atoms}) than {paths[0]} ({parts[0].n_atoms}); "
                                     "conformers of one system need the same atoms in the same order")
            except MolvizError as exc:
                if len(paths) == 1:
                    raise
                skipped.append(_skip(str(path), None, exc))
                continue
            label = _LABELS.get(file_format(path) or "", "conformer")
            parts.append(part)
            stem = path.name.split(".")[0]
            where += [(str(path), k, f"{stem} {label} {k + 1}", {}) for k in range(part.n_conformers)]
        if not parts:
            raise InputError("no input of the ensemble could be read: "
                             + "; ".join(f"{r['source']}: {r['reason']}" for r in skipped))
        coords = np.concatenate([p.coords for p in parts])[window]
        where = where[window]
        s = parts[0]._replace(coords=coords, sources=tuple(str(p) for p in paths),
                              warnings=tuple(w for p in parts for w in p.warnings))
        if not len(coords):
            raise InputError(f"no conformers in {cfg.start}:{cfg.stop}:{cfg.stride} of the inputs")
    solute = ~np.isin(s.components, ("water", "ion"))
    s = superpose(s, mask=solute if solute.sum() >= 3 else None)   # solvent would blur the fit
    n = s.n_conformers if not cfg.max_items else min(cfg.max_items, s.n_conformers)
    out = []
    for i in range(n):
        source, index, label, extra = where[i]
        item = {"name": label, "smiles": s.smiles, "source": source, "index": index,
                "conformer": i, **extra, "properties": list(extra)}
        out.append((s, i, item))
    return out


_SOURCES = {"6ega": _6ega_structures, "freesolv": _freesolv_structures, "nmr": _nmr_structures,
            "library": _library_structures, "ensemble": _ensemble_structures}


# ----------------------------------------------------------------------------- prepare

def prepare(cfg: DataConfig, *, progress: bool = True) -> PreparedData:
    """Load the molecules of ``cfg``, build channels, boxes and atom tables (needs RDKit/gemmi).

    Examples
    --------
    >>> from molviz.training import get_preset
    >>> data = prepare(get_preset("6ega", quick=True).data, progress=False)  # doctest: +SKIP
    >>> data.n_items, data.n_channels  # doctest: +SKIP
    (1, 6)
    """

    if cfg.dataset not in _SOURCES:
        raise InputError(f"unknown dataset {cfg.dataset!r}; choose one of {', '.join(_SOURCES)}")
    if cfg.shard and cfg.dataset != "library":
        raise InputError("--shard splits a library (molviz train library INPUT...); an ensemble or a preset "
                         "is prepared whole")
    if cfg.shard and cfg.box == "shared":
        raise InputError("--shard needs a box per item: one box shared by all (--box shared) needs every molecule")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # many tiny tensors: threads only add contention (10-50x slower on a busy box)
    try:
        return _prepare(cfg, progress)
    finally:
        torch.set_num_threads(threads)


def held_out(n: int, fraction: float, seed: int) -> np.ndarray:
    """The split (N,) int8: ``round(fraction * n)`` items held out (1), drawn with ``seed``."""
    split = np.zeros(n, np.int8)
    n_held = int(round(fraction * n))
    if n_held:
        perm = np.random.default_rng(seed).permutation(n)
        split[perm[:n_held]] = 1
    return split


def _usable(entries: list, cfg: DataConfig, skipped: list[dict]) -> list:
    """The entries whose atoms the channels can draw (every element has a width); the rest skipped."""
    from molviz.fields import atom_table, parse_channels
    element_wise = cfg.channels in ("elements", "elements+density")
    out, seen = [], {}
    for s, conf, item in entries:
        key = id(s)                       # an ensemble's conformers share one structure: check it once
        if key not in seen:
            try:
                atom_table(s.conformer(conf), parse_channels(cfg.channels, [s] if element_wise else None))
                seen[key] = None
            except MolvizError as exc:
                seen[key] = exc
        if seen[key] is None:
            out.append((s, conf, item))
        else:
            skipped.append(_skip(item.get("source", ""), item.get("index"), seen[key]))
    return out


def _prepare(cfg: DataConfig, progress: bool) -> PreparedData:
    from molviz.fields import atom_table, fit_grid, parse_channels, peaks_of_tables, rule_grid
    t0 = time.time()
    skipped: list[dict] = []
    entries = _SOURCES[cfg.dataset](cfg, progress, skipped)
    n_inputs = len(entries) + len(skipped)
    if cfg.dataset in RECIPES:
        entries = _usable(entries, cfg, skipped)
        if not entries:
            shown = "; ".join(f"{r['source']}" + (f" #{r['index']}" if r["index"] is not None else "")
                              + f": {r['reason']}" for r in skipped[:5])
            error = InputError(f"none of the {n_inputs} input(s) could be used ({shown}"
                               f"{'; ...' if len(skipped) > 5 else ''})")
            error.skipped = skipped      # type: ignore[attr-defined]  (the CLI lists them in skipped.csv)
            raise error
    structures = [s for s, _, _ in entries]
    # what the reader of one system wants said (elements inferred, atoms selected); a library's
    # per-molecule notes (force field used ...) would only be noise
    notes = list(dict.fromkeys(w for s in structures[:1] for w in s.warnings)) if cfg.dataset == "ensemble" else []
    channels = parse_channels(cfg.channels, structures if cfg.channels in ("elements", "elements+density")
                              else None)
    C = len(channels)

    shared = None
    if cfg.box == "shared":
        confs = [s.conformer(i) for s, i, _ in entries]
        shared = fit_grid(confs, channels, resolution=cfg.resolution, beta=cfg.beta)

    xyz, chan, wid, offsets, boxes = [], [], [], [0], []
    it = _progress(entries, total=len(entries), desc="atom tables", enabled=progress and len(entries) > 20)
    for s, conf, _item in it:
        grid = rule_grid(s.conformer(conf), channels, rule=cfg.box, resolution=cfg.resolution, beta=cfg.beta,
                         spacing=cfg.spacing, shared=shared)
        x, c, w = atom_table(s, channels, conformer=conf)
        box = np.array([grid.lo, grid.hi], np.float32)
        xyz.append(np.asarray(x, np.float32))
        chan.append(np.asarray(c, np.int64))
        wid.append(np.asarray(w, np.float32))
        offsets.append(offsets[-1] + len(x))
        boxes.append(box)
    xyz, chan, wid = np.concatenate(xyz).reshape(-1, 3), np.concatenate(chan), np.concatenate(wid)
    divisors = peaks_of_tables(xyz, chan, wid, offsets, C, beta=cfg.beta)     # all at once: 5x faster

    n = len(entries)
    split = held_out(n, cfg.heldout, cfg.seed)
    items = [item for _, _, item in entries]
    meta = {
        "format": FORMAT, "version": VERSION,
        "data": dataclasses.asdict(cfg),
        "channels": [ch.to_dict() for ch in channels],
        "channel_names": [ch.name for ch in channels],
        "items": items,
        "inputs": {"n": n_inputs, "used": n, "skipped": skipped, "notes": notes},
        "provenance": {"prepared_seconds": round(time.time() - t0, 1),
                       "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "normalize": "max", "box_convention": "lo/hi = first/last voxel centre"},
    }
    return PreparedData(
        xyz=xyz, channel=chan, width=wid,
        offsets=np.asarray(offsets, np.int64), boxes=np.stack(boxes).astype(np.float32),
        divisors=divisors, split=split, meta=meta,
    )


# ----------------------------------------------------------------------------- parallel, resumable preparation

def _prepare_part(data: dict, shard: str, path: str) -> tuple[str | None, list[dict]]:
    """One part of a library, prepared in a worker process and saved to ``path`` (atomically); a part
    with no usable input returns None and its skipped rows (an exception's attributes do not cross
    processes)."""
    cfg = DataConfig(**{**data, "shard": shard})
    try:
        prepare(cfg, progress=False).save(path)
    except InputError as exc:
        if getattr(exc, "skipped", None):
            return None, list(exc.skipped)       # type: ignore[attr-defined]
        raise
    return path, []


def prepare_in_parts(cfg: DataConfig, folder: str | os.PathLike, *, workers: int = 2, parts: int | None = None,
                     progress: bool = True) -> PreparedData:
    """Prepare a library in ``parts`` shards on ``workers`` processes, with a progress bar and ETA.

    Each part is saved as ``folder/part-K-of-N.npz`` the moment it is done, so a rerun of the same
    command (same settings and ``parts``) reuses the parts already there and prepares only the rest:
    an interrupted preparation of a large library resumes where it stopped. Memory grows with the
    atom tables only: no grid is held. The parts are merged by :meth:`PreparedData.concat`, which
    equals one preparation of every input.

    Examples
    --------
    >>> prepare_in_parts(cfg, "runs/muv/prepared", workers=2)   # doctest: +SKIP
    """
    import concurrent.futures as cf
    import multiprocessing

    from molviz._progress import tqdm
    if cfg.dataset != "library":
        raise InputError("--workers prepares a library in parts (molviz train library INPUT...); an ensemble or a "
                         "preset is prepared whole")
    workers = max(1, int(workers))
    n = int(parts) if parts else 8 * workers
    if not 1 <= n <= 100_000:
        raise InputError(f"--parts {parts}: give 1 to 100000 parts")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    settings = {**dataclasses.asdict(cfg), "shard": None}
    paths = [folder / f"part-{k}-of-{n}.npz" for k in range(n)]
    done: dict[int, PreparedData] = {}
    for k, path in enumerate(paths):           # resume: a part already there, made with these settings
        if path.is_file():
            try:
                part = PreparedData.load(path)
            except InputError:
                continue
            if {**dataclasses.asdict(part.data_config), "shard": None} == settings:
                done[k] = part
    todo = [k for k in range(n) if k not in done]
    lost: list[dict] = []                      # skipped rows of parts with nothing usable
    bar = tqdm(total=n, initial=len(done), desc=f"prepare ({workers} worker(s))", unit="part", disable=not progress,
               dynamic_ncols=True)
    try:
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_prepare_part, settings, f"{k}/{n}", str(paths[k])): k for k in todo}
            for fut in cf.as_completed(futures):
                k = futures[fut]
                path, skipped = fut.result()
                done[k] = PreparedData.load(path) if path else None
                lost.extend(skipped)
                bar.update(1)
    finally:
        bar.close()
    usable = [done[k] for k in range(n) if done.get(k) is not None]
    if not usable:
        error = InputError(f"no input of the library could be used (parts in {folder})")
        error.skipped = lost                   # type: ignore[attr-defined]
        raise error
    if len(usable) < n:      # renumber the shards of the usable parts so concat sees a complete set
        usable = [_as_shard(p, f"{i}/{len(usable)}") for i, p in enumerate(usable)]
    out = PreparedData.concat(usable)
    if lost:
        info = out.meta.setdefault("inputs", {})
        info["skipped"] = list(info.get("skipped", [])) + lost
        info["n"] = int(info.get("n", 0)) + len(lost)
    return out


def _as_shard(part: PreparedData, shard: str) -> PreparedData:
    meta = {**part.meta, "data": {**part.meta["data"], "shard": shard}}
    return dataclasses.replace(part, meta=meta)
