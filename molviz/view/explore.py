"""What the app and the headless commands compute, on top of the engine (no trame, no rendering).

An :class:`Explorer` wraps one model bundle and its :class:`~molviz.engine.Engine`:
it names items, finds each item's atoms, decodes reconstructions, samples the
ground truth on the same grid (Eq. 1 through :func:`molviz.fields.sample_field`),
interpolates between endpoints and encodes new molecules.

Examples
--------
>>> ex = Explorer.open("assets/models/freesolv")          # doctest: +SKIP
>>> view = ex.item_view(ex.resolve_item("ethanol"), resolution=64)   # doctest: +SKIP
>>> view.volume.shape                                      # doctest: +SKIP
(11, 64, 64, 64)
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from molviz.errors import InputError
from molviz.view.scene import Atoms

if TYPE_CHECKING:  # pragma: no cover
    from molviz.chem import Structure
    from molviz.engine import Engine
    from molviz.fields import Grid
    from molviz.models import Bundle

InterpolationMode = Literal["linear", "slerp"]
FIELD_ATOMS_RESOLUTION = 32         # voxels per axis of the dense decode atoms are found in (field_atoms), with
FIELD_ATOMS_POLISH = 1              # one polishing sweep: on 10 FreeSolv items, CPU time per item 1.7-3.1 s
                                    # against 18.5 s at 48^3 with two sweeps, recall 0.462 against 0.466, matched
                                    # RMSD 0.299 A against 0.299 A (find_atoms on the decoded fields)
SAMPLED_VOXELS = 32_768             # voxels of a sampled PSNR (Explorer.sampled_psnr)


@dataclass
class Endpoint:
    """One end of an interpolation: a latent, its box and (when known) its atoms."""

    label: str
    latent: np.ndarray                  # (L,) float32
    box: np.ndarray                     # (2, 3) angstrom lo/hi (first/last voxel centre)
    atoms: Atoms | None = None
    item: int | None = None             # index in the bundle, None for an encoded molecule
    smiles: str | None = None
    warnings: list[str] = field(default_factory=list)   # where an encoded input lies outside the training set
    # where it sits among the stored latents (neighbours, map placement) when ``latent`` was refined away
    # from the encoder's (Engine.encode(refine=...)): the encoder's latent; None: ``latent`` itself
    map_latent: np.ndarray | None = None

    @property
    def placed_latent(self) -> np.ndarray:
        """The latent to compare with the stored ones (neighbours, the map)."""
        return self.latent if self.map_latent is None else self.map_latent


@dataclass
class View:
    """A decoded volume ready for the scene, with its ground truth when there is one."""

    label: str
    volume: np.ndarray | None           # (C, n, n, n) reconstruction; None when only its surfaces came back
    grid: Grid
    atoms: Atoms | None = None
    truth: np.ndarray | None = None     # (C, n, n, n) Eq. 1 on the same grid, when known
    item: int | None = None
    extra: dict = field(default_factory=dict)
    surfaces: list | None = None        # per channel, extracted on the engine's device (Engine.surfaces)

    @property
    def n_channels(self) -> int:
        return len(self.surfaces) if self.volume is None else int(self.volume.shape[0])

    def peak(self, c: int) -> float:
        """Channel ``c``'s maximum on the grid."""
        return float(self.surfaces[c].peak) if self.volume is None else float(np.max(self.volume[c]))

    @property
    def psnr(self) -> float | None:
        """PSNR (dB) of the reconstruction against the truth over all voxels and channels."""
        if self.truth is None:
            return None
        from molviz.models import psnr
        return float(psnr(self.volume, self.truth))


def _lru_get(cache: OrderedDict, key):
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    return None


def _lru_put(cache: OrderedDict, key, value, size: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)


class Explorer:
    """A bundle plus its engine, and everything the viewer derives from them.

    Thread-safe for the app's use: one worker thread computes while the event
    loop reads finished results (caches are guarded by a lock).
    """

    def __init__(self, bundle: Bundle, engine: Engine | None = None, *,
                 surfaces_on_device: bool | None = None) -> None:
        from molviz.engine import Engine

        self.bundle = bundle
        self.engine = engine if engine is not None else Engine(bundle)
        if surfaces_on_device is None:
            from molviz.engine import prefer_device_surfaces
            surfaces_on_device = prefer_device_surfaces(self.engine.device)
        # Reconstructions drawn at absolute levels: marching cubes on the engine's device, only
        # the meshes copied back (on a GPU the volume's copy to the host costs more than the decode).
        self.surfaces_on_device = bool(surfaces_on_device)
        self._lock = threading.RLock()
        self._index_lock = threading.Lock()        # one search index built at a time
        self._structures: OrderedDict = OrderedDict()
        self._truths: OrderedDict = OrderedDict()
        self._adaptive: OrderedDict = OrderedDict()
        self._found: OrderedDict = OrderedDict()      # atoms found in decoded fields (field_atoms)
        self._channels = None
        # typed and uploaded molecules of an auto-encoder bundle: the encoder's latent refined this many
        # steps against the field their atoms give (0: the encoder's latent as it is)
        from molviz.models._refine import REFINE_STEPS
        self.refine_steps = REFINE_STEPS

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | os.PathLike) -> Explorer:
        """Load a bundle folder (safetensors + JSON only) and start its engine."""
        from molviz.models import load_model
        return cls(load_model(path))

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def channel_names(self) -> list[str]:
        names = self.bundle.channel_names
        if not names:
            names = [c.name for c in self.channels]
        return names

    @property
    def n_items(self) -> int:
        return self.bundle.n_items

    @property
    def data_config(self) -> dict:
        """The data settings of training (dataset, hydrogens, seed, resolution, ...), merged."""
        return dict(self.bundle.spec.data)

    @property
    def beta(self) -> float:
        beta = self.bundle.spec.beta
        if beta is None:
            raise InputError(f"bundle {self.name!r} does not record beta; the ground truth cannot be sampled")
        return float(beta)

    @property
    def channels(self):
        """The bundle's channels as :class:`molviz.fields.Channel` objects."""
        if self._channels is None:
            self._channels = list(self.bundle.spec.channels)
        return self._channels

    # ------------------------------------------------------------------ items
    def item_label(self, i: int) -> str:
        item = self.bundle.items[i] if i < len(self.bundle.items) else {}
        return str(item.get("name") or item.get("id") or f"item {i}")

    def item_labels(self) -> list[str]:
        return [self.item_label(i) for i in range(self.n_items)]

    def resolve_item(self, key: int | str) -> int:
        """An item by index (``"3"``, ``3``), name, id or exact SMILES; InputError lists how to find one.

        Examples
        --------
        >>> ex.resolve_item("0")   # doctest: +SKIP
        0
        """
        n = self.n_items
        text = str(key).strip()
        if isinstance(key, (int, np.integer)) or text.lstrip("-").isdigit():
            i = int(text)
            if not 0 <= i < n:
                raise InputError(f"item index {i} is out of range: the bundle {self.name!r} has items 0..{n - 1}")
            return i
        low = text.lower()
        for i, item in enumerate(self.bundle.items):
            for k in ("name", "id", "smiles"):
                v = item.get(k)
                if v is not None and str(v).lower() == low:
                    return i
        close = [self.item_label(i) for i in self.search(text, limit=5)]
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise InputError(f"no item named {text!r} in bundle {self.name!r} (give an index 0..{n - 1}, "
                         f"a name, an id or a SMILES){hint}")

    def find(self, text: str, *, limit: int = 200) -> tuple[list[int], str, int]:
        """Items matching ``text`` read as a molecule (canonical SMILES), a substructure (SMILES or
        SMARTS) or a name (:class:`molviz.view.search.ItemIndex`, built once per bundle): up to ``limit``
        indices, how they matched ("same molecule", "substructure", "name" or ""), and how many did."""
        res = self.search_index().search(text, limit=limit)
        how = {"molecule": "same molecule", "substructure": "substructure", "name": "name"}.get(res.kind, "")
        return res.indices, how, res.total

    def search_index(self, progress: Callable[[int, int], None] | None = None):
        """The bundle's :class:`molviz.view.search.ItemIndex`: the one stored beside it
        (``search.safetensors``, written by ``molviz map --write``) when it fits the items, else built
        now (RDKit parses every SMILES: minutes at 93k molecules); kept for the session."""
        with self._index_lock:           # a search asked while the index is being built waits for that one
            index = getattr(self, "_index", None)
            if index is None:
                from molviz.view.search import ItemIndex
                # one molecule at a time: built beside a live app, never one long call that holds the page
                index = ItemIndex.for_bundle(self.bundle.path, self.bundle.items, progress=progress, threads=0)
                self._index = index
        return index

    @property
    def has_search_index(self) -> bool:
        return getattr(self, "_index", None) is not None

    def search(self, text: str, *, limit: int = 50) -> list[int]:
        """Items whose name, id or SMILES contains ``text`` (case-insensitive), best first."""
        low = str(text).strip().lower()
        if not low:
            return list(range(min(limit, self.n_items)))
        starts, contains = [], []
        for i, item in enumerate(self.bundle.items):
            fields = [str(item.get(k) or "").lower() for k in ("name", "id", "smiles")]
            if any(f.startswith(low) for f in fields):
                starts.append(i)
            elif any(low in f for f in fields):
                contains.append(i)
        return (starts + contains)[:limit]

    def item_structure(self, i: int) -> Structure | None:
        """The atoms item ``i`` was trained on: stored in the bundle, else re-loaded from its source."""
        with self._lock:
            hit = _lru_get(self._structures, i)
        if hit is not None:
            return hit
        s = self._stored_structure(i)
        if s is None:
            s = self._reload_structure(i)
        if s is not None:
            with self._lock:
                _lru_put(self._structures, i, s, 64)
        return s

    def _stored_structure(self, i: int):
        """Structures a bundle may carry in ``arrays``: ``structure.<i>.<field>`` (Structure.to_arrays)."""
        prefix = f"structure.{i}."
        keys = [k for k in self.bundle.arrays if k.startswith(prefix)]
        if not keys:
            return None
        from molviz.chem import Structure
        return Structure.from_arrays({k[len(prefix):]: self.bundle.arrays[k] for k in keys})

    def _reload_structure(self, i: int):
        from molviz.chem import load, shipped_structure

        item = self.bundle.items[i] if i < len(self.bundle.items) else {}
        data = self.data_config
        dataset = data.get("dataset")
        hydrogens = data.get("hydrogens", "keep")
        seed = int(data.get("seed", 0))
        if dataset == "6ega":
            return shipped_structure("6ega", hydrogens=hydrogens)
        if dataset == "nmr":
            with self._lock:
                ens = _lru_get(self._structures, "nmr-ensemble")
            if ens is None:
                ens = shipped_structure("nmr", hydrogens=hydrogens)
                with self._lock:
                    _lru_put(self._structures, "nmr-ensemble", ens, 64)
            return ens.conformer(int(item.get("conformer", i)))
        if item.get("smiles"):
            return load(str(item["smiles"]), conformers=1, hydrogens=hydrogens,
                        name=str(item.get("id") or item.get("name") or i), seed=seed)
        return None

    def item_atoms(self, i: int) -> Atoms | None:
        """Item ``i``'s atoms: from the bundle's atom tables when its channels name every element, else re-loaded."""
        atoms = self._table_atoms(i)
        if atoms is not None:
            return atoms
        s = self.item_structure(i)
        if s is None:
            return None
        conf = int((self.bundle.items[i] if i < len(self.bundle.items) else {}).get("conformer", 0))
        return Atoms.from_structure(s, conf if conf < s.n_conformers else 0)

    def _table_atoms(self, i: int) -> Atoms | None:
        """Atoms read back from the training atom table (exact positions, no RDKit).

        Possible when one-element channels cover every atom of the item: the
        "every atom" channel (density) has no more rows than they do together.
        """
        arrays = self.bundle.arrays
        if "atoms_offsets" not in arrays or i + 1 >= len(arrays["atoms_offsets"]):
            return None
        lo, hi = int(arrays["atoms_offsets"][i]), int(arrays["atoms_offsets"][i + 1])
        xyz, chan = arrays["atoms_xyz"][lo:hi], arrays["atoms_channel"][lo:hi]
        coords, numbers, comps, everyone = [], [], [], 0
        for c, ch in enumerate(self.channels):
            rows = chan == c
            if ch.elements is None:
                everyone = max(everyone, int(rows.sum()))
            elif len(ch.elements) == 1:
                coords.append(xyz[rows])
                numbers.append(np.full(int(rows.sum()), next(iter(ch.elements)), np.int64))
                comp = next(iter(ch.components)) if ch.components and len(ch.components) == 1 else "ligand"
                comps.append(np.full(int(rows.sum()), comp))
        if not coords or sum(len(n) for n in numbers) < everyone or everyone == 0:
            return None
        return Atoms(np.concatenate(coords).astype(np.float32), np.concatenate(numbers),
                     np.concatenate(comps).astype(str))

    def item_grid(self, i: int, resolution: int) -> Grid:
        return self.engine.item_grid(i, resolution)

    def present_channels(self, atoms: Atoms | None) -> list[bool]:
        """Which channels select any of ``atoms`` (empty channels start hidden)."""
        if atoms is None:
            return [True] * len(self.channel_names)
        comps = atoms.components if atoms.components is not None else np.array(["ligand"] * len(atoms.numbers))
        return [bool(ch.select(atoms.numbers, comps).any()) for ch in self.channels]

    # ------------------------------------------------------------------ volumes
    def decode(self, latent: np.ndarray, resolution: int, *, should_stop=None, levels=None) -> np.ndarray:
        """The engine's decode of one latent on its whole box: (C, n, n, n) float32 (read-only).

        With ``levels`` ((C,) absolute isosurface levels, NaN for channels not drawn) the decode is
        adaptive (:meth:`Engine.decode_adaptive`): the same isosurfaces at those levels, the network
        evaluated only near them; values away from the surfaces are interpolated, so such a volume
        is for drawing those surfaces only, never for PSNR or export. A dense volume already in the
        engine's cache is returned instead.
        """
        return self.decode_for_view(latent, resolution, should_stop=should_stop, levels=levels)[0]

    def decode_for_view(self, latent, resolution: int, *, should_stop=None, levels=None) -> tuple[np.ndarray, bool]:
        """:meth:`decode`, and whether the volume came from an adaptive decode."""
        z = np.asarray(latent, np.float32)
        dense = (self.engine.decode(z, resolution=int(resolution), should_stop=should_stop)[0] if levels is None
                 else self.engine.cached(z, resolution=int(resolution)))
        if dense is not None:
            return dense, False
        lv = np.asarray(levels, np.float64)
        where = (z.tobytes(), int(resolution))
        key = (*where, lv.tobytes())
        with self._lock:
            hit = _lru_get(self._adaptive, key)
            # the last decode of this latent and grid at other levels lends its decoded voxels
            known = next((r for k, r in reversed(self._adaptive.items()) if k[:2] == where), None)
        if hit is None:
            hit = self.engine.decode_adaptive(z, resolution=int(resolution), levels=lv, known=known,
                                              should_stop=should_stop)
            hit.volume.setflags(write=False)
            with self._lock:
                _lru_put(self._adaptive, key, hit, 4)
        return hit.volume, True

    def surfaces_for_view(self, latent, resolution: int, box, *, levels, should_stop=None) -> list:
        """Per-channel isosurfaces at absolute ``levels`` (NaN: not drawn), extracted on the engine's
        device (:meth:`Engine.surfaces`) in the angstrom ``box`` (2, 3): the view's meshes without its
        volume ever reaching the host."""
        return self.engine.surfaces(np.asarray(latent, np.float32), np.asarray(levels, np.float64),
                                    resolution=int(resolution), item_box=np.asarray(box, np.float64),
                                    should_stop=should_stop)

    def _device_view(self, levels, truth: bool = False) -> bool:
        return self.surfaces_on_device and levels is not None and not truth

    def latent(self, i: int) -> np.ndarray:
        return self.bundle.latents[i].detach().cpu().numpy().astype(np.float32)

    def ground_truth(self, i: int, resolution: int) -> np.ndarray | None:
        """Eq. 1 for item ``i`` sampled on its box at ``resolution`` (None when its atoms are unknown)."""
        key = (i, int(resolution))
        with self._lock:
            hit = _lru_get(self._truths, key)
        if hit is not None:
            return hit
        if "atoms_offsets" in self.bundle.arrays and "divisors" in self.bundle.arrays:
            # the bundle's own atom tables and divisors: the numbers `molviz eval` reports
            from molviz.models import ground_truth
            truth = np.asarray(ground_truth(self.bundle, i, int(resolution)), np.float32)
        else:
            s = self.item_structure(i)
            if s is None:
                return None
            from molviz.fields import sample_field
            conf = int((self.bundle.items[i] if i < len(self.bundle.items) else {}).get("conformer", 0))
            conf = conf if conf < s.n_conformers else 0
            truth = np.asarray(sample_field(s, self.channels, self.item_grid(i, resolution), beta=self.beta,
                                            normalize="max", conformer=conf), np.float32)
        with self._lock:
            _lru_put(self._truths, key, truth, 8)
        return truth

    def sampled_psnr(self, i: int, resolution: int, *, n: int = SAMPLED_VOXELS, seed: int = 0,
                     should_stop=None) -> tuple[float, int] | None:
        """PSNR (dB) of item ``i``'s reconstruction on its ``resolution``^3 grid, estimated from about ``n``
        of its voxels, and the number used: ``(psnr, voxels)``, or None when the item's atoms are unknown.

        The voxels form a sub-lattice (every ``s``-th voxel along each axis, from an offset drawn with
        ``seed``): the network is evaluated there and Eq. 1 on that sub-grid, which costs a fraction of a
        second at any resolution. For the grids the app decodes adaptively (that volume is exact only
        near the surfaces), where a dense decode and truth just for the chip would cost seconds and
        gigabytes. On the shipped bundles it is within ~0.15 dB of the full-grid PSNR at 64^3.
        """
        from molviz.fields import Grid, field_from_table, sample_field

        grid = self.item_grid(i, resolution)
        shape = np.asarray(grid.shape, np.int64)
        stride = max(1, int(round((float(np.prod(shape)) / n) ** (1.0 / 3.0))))
        off = np.random.default_rng(seed).integers(0, stride, 3)
        sub_shape = tuple(int(-(-(int(shape[a]) - int(off[a])) // stride)) for a in range(3))
        sub = Grid(origin=np.asarray(grid.origin) + off * np.asarray(grid.spacing),
                   spacing=np.asarray(grid.spacing) * stride, shape=sub_shape)
        ijk = off + stride * np.stack(np.meshgrid(*[np.arange(m) for m in sub_shape], indexing="ij"),
                                      axis=-1).reshape(-1, 3)                          # (P, 3), C order
        coords = 2.0 * ijk / np.maximum(shape - 1, 1) - 1.0                           # the network's [-1, 1]
        arrays = self.bundle.arrays
        if "atoms_offsets" in arrays and "divisors" in arrays:
            from molviz.models import item_table
            truth = field_from_table(*item_table(self.bundle, i), len(self.channel_names), sub, beta=self.beta,
                                     scale=np.asarray(arrays["divisors"][i], np.float32))
        else:
            s = self.item_structure(i)
            if s is None:
                return None
            conf = int((self.bundle.items[i] if i < len(self.bundle.items) else {}).get("conformer", 0))
            truth = sample_field(s, self.channels, sub, beta=self.beta, normalize="max",
                                 conformer=conf if conf < s.n_conformers else 0)
        truth = np.asarray(truth, np.float32).reshape(len(self.channel_names), -1).T  # (C, mx, my, mz) -> (P, C)
        pred = self.engine.decode_points(self.latent(i), coords, should_stop=should_stop)   # (P, C)
        mse = float(np.mean((pred - truth) ** 2))
        return (float("inf") if mse == 0 else float(-10.0 * np.log10(mse))), len(ijk)

    def latent_view(self, label: str, latent, box, resolution: int, *, atoms=None, should_stop=None,
                    levels=None) -> View:
        """A view of any latent in its own box (an encoded molecule): decoded densely, adaptively or
        as device-side surfaces, as :meth:`item_view` decodes a stored item; there is no truth."""
        from molviz.fields import Grid
        grid = Grid.from_box(box[0], box[1], resolution)
        if self.surfaces_on_device and levels is not None:
            return View(label=label, grid=grid, volume=None, atoms=atoms,
                        surfaces=self.surfaces_for_view(latent, resolution, box, levels=levels,
                                                        should_stop=should_stop),
                        extra={"adaptive": False, "latent": latent})
        vol, adaptive = self.decode_for_view(latent, resolution, should_stop=should_stop, levels=levels)
        return View(label=label, grid=grid, volume=vol, atoms=atoms, extra={"adaptive": adaptive, "latent": latent})

    def dense_volume(self, view: View) -> np.ndarray:
        """The reconstruction of ``view`` as a whole volume (C, nx, ny, nz): its own where it is dense,
        else decoded densely on its grid (adaptive decodes and device-side surfaces keep none)."""
        if view.volume is not None and not view.extra.get("adaptive"):
            return view.volume
        z = self.latent(view.item) if view.item is not None else view.extra.get("latent")
        if z is None:
            raise InputError("this view has no latent to decode; pick an item or an interpolation")
        return self.engine.decode(np.asarray(z, np.float32), resolution=view.grid.shape)[0]

    def item_view(self, i: int, resolution: int, *, truth: bool = True, should_stop=None, levels=None) -> View:
        """Reconstruction of item ``i`` at ``resolution`` (and its ground truth when asked).

        ``levels``: decode adaptively for these isosurfaces (see :meth:`decode`); ignored with ``truth``,
        whose PSNR needs the dense volume.
        """
        if self._device_view(levels, truth):
            surfs = self.surfaces_for_view(self.latent(i), resolution, self.bundle.boxes[i], levels=levels,
                                           should_stop=should_stop)
            return View(label=self.item_label(i), volume=None, grid=self.item_grid(i, resolution),
                        atoms=self.item_atoms(i), item=i, surfaces=surfs, extra={"adaptive": False})
        vol, adaptive = self.decode_for_view(self.latent(i), resolution, should_stop=should_stop,
                                             levels=None if truth else levels)
        gt = self.ground_truth(i, resolution) if truth else None
        return View(label=self.item_label(i), volume=vol, grid=self.item_grid(i, resolution),
                    atoms=self.item_atoms(i), truth=gt, item=i, extra={"adaptive": adaptive})

    # ------------------------------------------------------------------ interpolation
    def item_endpoint(self, i: int) -> Endpoint:
        item = self.bundle.items[i] if i < len(self.bundle.items) else {}
        return Endpoint(label=self.item_label(i), latent=self.latent(i),
                        box=np.asarray(self.bundle.boxes[i], np.float64), atoms=self.item_atoms(i),
                        item=i, smiles=item.get("smiles"))

    def encode(self, smiles: str, *, label: str | None = None,
               progress: Callable[[float, str], None] | None = None,
               should_stop: Callable[[], bool] | None = None) -> Endpoint:
        """Encode a SMILES string (already vetted by :func:`molviz.view.limits.clean_smiles`) into an endpoint.

        Runs in stages, each announced by ``progress(percent, what)``: a 3D conformer (RDKit; minutes
        for a molecule of hundreds of atoms), then the bundle's encoder on the sampled field (or, for an
        auto-decoder bundle, a latent fitted with the network frozen). ``should_stop()`` is asked
        between stages; True raises :class:`InterruptedError` (a stage under way runs to its end).
        """
        from molviz.chem import canonical_smiles
        from molviz.engine import as_structure
        from molviz.engine._encode import stored_spellings
        from molviz.view._conformer import CHILD_FROM_HEAVY_ATOMS, conformer_in_child

        def stage(pct: float, what: str) -> None:
            if should_stop is not None and should_stop():
                raise InterruptedError("encoding cancelled")
            if progress is not None:
                progress(pct, what)

        spec = self.bundle.spec
        n_heavy = _heavy_atoms(smiles)
        stage(5.0, f"3D conformer of {n_heavy} heavy atoms (RDKit)")
        spellings = stored_spellings(self.bundle)
        if n_heavy >= CHILD_FROM_HEAVY_ATOMS:      # minutes for hundreds of atoms: in a child that cancel kills
            canon = canonical_smiles(smiles) or smiles        # one spelling per molecule, as the engine does
            structure = conformer_in_child(spellings.get(canon, canon), hydrogens=spec.hydrogens, seed=spec.seed,
                                           should_stop=should_stop)
        else:
            structure = as_structure(smiles, hydrogens=spec.hydrogens, seed=spec.seed, spellings=spellings,
                                     geometry=spec.geometry)
        return self.encode_structure(structure, label=label or smiles, smiles=smiles, progress=progress,
                                     should_stop=should_stop, start=50.0)

    def encode_structure(self, structure, *, label: str, smiles: str | None = None,
                         progress: Callable[[float, str], None] | None = None,
                         should_stop: Callable[[], bool] | None = None, start: float = 0.0) -> Endpoint:
        """Encode a :class:`molviz.chem.Structure` (its first conformer) into an endpoint: the bundle's
        encoder with its latent then refined :attr:`refine_steps` steps against the field the atoms give
        (the endpoint's ``map_latent`` keeps the encoder's, for neighbours and the map), or for an
        auto-decoder bundle a latent fitted with the network frozen. Refinement and fitting steps are
        reported through ``progress`` (from ``start`` to 95 percent) and stopped by ``should_stop()``
        (:class:`InterruptedError`)."""
        def stage(pct: float, what: str) -> None:
            if should_stop is not None and should_stop():
                raise InterruptedError("encoding cancelled")
            if progress is not None:
                progress(pct, what)

        refine = int(self.refine_steps) if self.bundle.encoder is not None else 0
        if self.bundle.encoder is not None and not refine:
            stage(start, f"encoder: {structure.n_atoms} atoms")
            on_step = None
        else:
            what = (f"encoder, then its latent refined against {structure.n_atoms} atoms" if refine
                    else f"fitting a latent to {structure.n_atoms} atoms")
            stage(start, what)
            last = [0.0]

            def on_step(step: int, steps: int) -> None:
                pct = start + (95.0 - start) * step / max(steps, 1)
                if pct - last[0] >= 1.0 or (should_stop is not None and step % 10 == 0):
                    last[0] = pct
                    stage(pct, f"{what}: step {step}")
        enc = self.engine.encode(structure, details=True, on_step=on_step, refine=refine)
        stage(95.0, "placing it")
        atoms = Atoms.from_structure(enc.structure) if enc.structure is not None else None
        placed = None if enc.encoder_latent is None else np.asarray(enc.encoder_latent, np.float32).reshape(-1)
        return Endpoint(label=label, latent=np.asarray(enc.latent, np.float32).reshape(-1),
                        box=np.asarray(enc.box, np.float64), atoms=atoms, item=None, smiles=smiles,
                        warnings=list(getattr(enc, "warnings", []) or []), map_latent=placed)

    def neighbours(self, latent: np.ndarray, k: int = 5) -> list[tuple[int, float]]:
        """The ``k`` stored items nearest to ``latent`` (L2 in latent space), nearest first."""
        return [(int(i), float(d)) for i, d in self.engine.neighbours(np.asarray(latent, np.float32), k)]

    def frame(self, a: Endpoint, b: Endpoint, t: float, *, mode: InterpolationMode = "linear",
              resolution: int = 48, should_stop=None, levels=None) -> View:
        """The volume at ``t`` between two endpoints (the box and the atoms follow along)."""
        from molviz.engine import interpolate
        from molviz.fields import Grid

        t = float(np.clip(t, 0.0, 1.0))
        z = np.asarray(interpolate(a.latent, b.latent, t, mode=mode), np.float32)
        box = (1.0 - t) * a.box + t * b.box
        grid = Grid.from_box(box[0], box[1], int(resolution))
        label = f"{a.label} \u2192 {b.label}   t = {t:.2f}"
        atoms, fade = frame_atoms(a.atoms, b.atoms, t)
        if self._device_view(levels):
            surfs = self.surfaces_for_view(z, resolution, box, levels=levels, should_stop=should_stop)
            return View(label=label, volume=None, grid=grid, atoms=atoms, surfaces=surfs,
                        extra={"t": t, "latent": z, "adaptive": False, "more_atoms": fade})
        vol, adaptive = self.decode_for_view(z, resolution, should_stop=should_stop, levels=levels)
        return View(label=label, volume=vol, grid=grid, atoms=atoms,
                    extra={"t": t, "latent": z, "adaptive": adaptive, "more_atoms": fade,
                           "scales": (self.item_scale(a.item), self.item_scale(b.item))})

    def field_atoms(self, latent, box, *, resolution: int = FIELD_ATOMS_RESOLUTION, scale=None,
                    max_atoms: int = 300) -> Atoms:
        """The atoms a decoded field implies: :func:`molviz.fields.find_atoms` (greedy deconvolution with
        the bundle's blob shape) on a dense decode of ``latent`` in ``box`` at ``resolution``.

        ``scale``: the channels' divisors ((C,), the item's when known), else each atom is taken to peak
        at 1. Seconds on a CPU for a small molecule: the app runs it beside the view, not before it.
        ``max_atoms`` per channel bounds the time a noisy (untrained) field can take.
        """
        from molviz.fields import Grid, find_atoms

        z = np.asarray(latent, np.float32)
        key = (z.tobytes(), np.asarray(box, np.float64).tobytes(), int(resolution),
               None if scale is None else np.asarray(scale, np.float32).tobytes())
        with self._lock:
            hit = _lru_get(self._found, key)
        if hit is not None:
            return hit
        grid = Grid.from_box(np.asarray(box[0]), np.asarray(box[1]), int(resolution))
        vol = self.engine.decode(z, resolution=int(resolution))[0]              # the latent's whole box
        found = find_atoms(vol, grid, self.channels, beta=self.beta, scale=scale, max_atoms=max_atoms,
                           polish=FIELD_ATOMS_POLISH)
        atoms = Atoms(np.asarray(found.xyz, np.float32), np.asarray(found.element, np.int64))
        with self._lock:
            _lru_put(self._found, key, atoms, 32)
        return atoms

    def implied_atoms(self, view: View, *, resolution: int = FIELD_ATOMS_RESOLUTION) -> Atoms:
        """The atoms ``view``'s decoded field implies (:meth:`field_atoms` on the view's latent and box; an
        interpolation frame's channel scales interpolated between its stored ends)."""
        t = view.extra.get("t")
        z = view.extra.get("latent")
        if z is None and view.item is not None:
            z = self.latent(view.item)
        if z is None:
            raise InputError("this view has no latent to find atoms in")
        box = np.stack([np.asarray(view.grid.lo, np.float64), np.asarray(view.grid.hi, np.float64)])
        scale = self.item_scale(view.item)
        ends = view.extra.get("scales")
        if scale is None and t is not None and ends is not None and all(e is not None for e in ends):
            scale = (1.0 - t) * ends[0] + t * ends[1]                   # between two stored items
        return self.field_atoms(z, box, scale=scale, resolution=resolution, max_atoms=_atoms_cap(view))

    def view_field_atoms(self, view: View, *, true_too: bool, tolerance: float = 0.5) -> tuple[dict, str]:
        """The atoms ``view``'s decoded field implies, as scene actors, and a line saying what was found.

        With ``true_too`` and a view that has true atoms, each found atom is matched to a true atom of
        its element within ``tolerance`` angstrom: matched ones are drawn in their element's colour,
        extra ones (no true atom there) magenta, and the line counts matched, extra and missed.
        """
        from molviz.view.scene import atom_actors

        found = self.implied_atoms(view)
        truth = view.atoms if true_too else None
        opacity = 0.55 if true_too else 1.0
        if truth is None or not len(found.numbers):
            parts = atom_actors(found, "L0", ":field", opacity=opacity) if len(found.numbers) else {}
            return parts, f"atoms from the field: {len(found.numbers)} found"
        d = np.linalg.norm(found.coords[:, None, :] - truth.coords[None, :, :], axis=-1)       # (F, T)
        d[found.numbers[:, None] != truth.numbers[None, :]] = np.inf
        matched = np.zeros(len(found.numbers), bool)
        used = np.zeros(len(truth.numbers), bool)
        for k in np.argsort(d, axis=None):
            f, tr = np.unravel_index(k, d.shape)
            if not np.isfinite(d[f, tr]) or d[f, tr] > tolerance:
                break
            if not matched[f] and not used[tr]:
                matched[f] = used[tr] = True
        parts = {}
        if matched.any():
            parts.update(atom_actors(_subset(found, matched), "L0", ":field", opacity=opacity))
        if (~matched).any():
            parts.update(atom_actors(_subset(found, ~matched), "L0", ":field:extra", opacity=opacity,
                                     rgb=(255, 0, 255)))
        return parts, (f"atoms from the field: {int(matched.sum())} matched, {int((~matched).sum())} extra "
                       f"(magenta), {int((~used).sum())} missed of {len(truth.numbers)}")

    def item_scale(self, i: int | None) -> np.ndarray | None:
        """Item ``i``'s channel divisors (how high one atom peaks in its normalised field), when stored."""
        if i is None or "divisors" not in self.bundle.arrays:
            return None
        return np.asarray(self.bundle.arrays["divisors"][i], np.float32)


def _heavy_atoms(smiles: str) -> int:
    from rdkit import Chem, RDLogger
    RDLogger.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(smiles)
    finally:
        RDLogger.EnableLog("rdApp.*")
    return int(mol.GetNumHeavyAtoms()) if mol is not None else 0


def _subset(atoms: Atoms, mask: np.ndarray) -> Atoms:
    return Atoms(atoms.coords[mask], atoms.numbers[mask], None if atoms.components is None else atoms.components[mask])


FIELD_ATOMS_AUTO_MAX = 200   # atoms: larger systems (proteins) show their true atoms unless field atoms are asked


def _known_atoms(view: View) -> list[int]:
    """How many atoms the stored molecules of ``view`` have (an interpolation frame: each end)."""
    return [len(x.numbers) for x in [view.atoms, *(m[0] for m in view.extra.get("more_atoms", ()))]
            if x is not None]


def field_atoms_by_default(view: View) -> bool:
    """Whether "auto" (interpolation frames, movies) draws the atoms ``view``'s field implies: for small
    molecules (at most :data:`FIELD_ATOMS_AUTO_MAX` atoms at either end). A protein's field at 32^3 does
    not resolve its atoms one by one, and looking for hundreds takes minutes on a CPU."""
    known = _known_atoms(view)
    return bool(known) and max(known) <= FIELD_ATOMS_AUTO_MAX


def _atoms_cap(view: View) -> int:
    """At most this many atoms per channel are looked for in ``view``'s field: twice the most atoms its
    stored molecules have (an interpolation frame: either end), at least 16 and at most 300; 300 when
    none is known. A trained field implies about the true count; a noisy one (an untrained bundle, a
    latent far from the data) would otherwise cost seconds per spurious atom."""
    known = _known_atoms(view)
    return min(300, max(16, 2 * max(known))) if known else 300


def frame_atoms(a: Atoms | None, b: Atoms | None, t: float) -> tuple[Atoms | None, list]:
    """The atoms of an interpolation frame at ``t``: positions interpolated when both ends have the same
    atoms; else none moved, and both ends drawn fading into each other (A at opacity 1 - t, B at t), so
    nothing snaps from one molecule to the other at t = 0.5. Returns (atoms, [(atoms, opacity, tag)])."""
    if a is not None and b is not None and a.numbers.shape == b.numbers.shape and np.array_equal(a.numbers, b.numbers):
        return Atoms((1.0 - t) * a.coords + t * b.coords, a.numbers, a.components), []
    fade = [(x, w, tag) for x, w, tag in ((a, 1.0 - t, "a"), (b, t, "b")) if x is not None]
    return None, fade


def blend_atoms(a: Atoms | None, b: Atoms | None, t: float) -> Atoms | None:
    """Atoms at ``t``: positions interpolated when both ends have the same atoms, else the nearer end's."""
    if a is not None and b is not None and a.numbers.shape == b.numbers.shape and np.array_equal(a.numbers, b.numbers):
        return Atoms((1.0 - t) * a.coords + t * b.coords, a.numbers, a.components)
    return a if t < 0.5 else b


__all__ = ["Endpoint", "Explorer", "View", "blend_atoms", "field_atoms_by_default", "frame_atoms"]
