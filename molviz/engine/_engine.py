"""The inference engine: latents -> volumes at any resolution, on any (sub-)box.

Decoding computes each latent's modulations once (``model.modulations``) and
then runs only the synthesis network (``model.synthesis``) over chunks of
voxel centres, so a volume costs one small matrix product per layer and point.
Chunks are sized from free memory and the hidden width; a CUDA out-of-memory
error halves the chunk and retries, down to :data:`MIN_CHUNK` points, and then
raises :class:`~molviz.errors.ResourceLimitError` (never a raw CUDA error).
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from molviz.engine._cache import VolumeCache, latent_key
from molviz.engine._coords import Box, box_axes, check_box, check_shape, flat_coords, sub_box_angstrom
from molviz.engine._types import Cancelled, Encoded, EngineStats  # noqa: F401  (Encoded: the type encode returns)
from molviz.errors import BundleError, InputError, ResourceLimitError

if TYPE_CHECKING:  # pragma: no cover
    from molviz.fields import Grid
    from molviz.models import Bundle

Precision = Literal["auto", "fp32", "bf16", "fp16"]
MIN_CHUNK = 1024                 # below this an OOM is not a chunking problem
# CPU chunks hold about 2^20 activations per layer (4 MB in fp32, cache-sized): interleaved runs on
# the 2-core box gave 4096 points 20% more points/s than 16384 for the 256-wide 6EGA network and
# 8192 4% more for the 128-wide FreeSolv one; 32768 was slower for both.
CPU_CHUNK_ACTIVATIONS = 1 << 20
GPU_MAX_CHUNK = 1 << 22          # 4M points: large enough to saturate an H100
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def can_fold(model) -> bool:
    """Whether ``model`` is the :class:`~molviz.models.ModulatedSiren` layout that folding knows."""
    cfg = getattr(model, "cfg", None)
    return (getattr(cfg, "modulation", None) in ("mehta", "film") and hasattr(model, "layers")
            and hasattr(model, "last") and all(hasattr(layer, "linear") and hasattr(layer, "w0") for layer in model.layers))


def fold_modulations(model, mods, *, dtype: torch.dtype = torch.float32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One latent's synthesis network as plain (weight^T, bias) pairs: h <- sin(h @ Wt + b), last linear.

    ``mehta`` (scale after the sine): ``sin(w0 (W a + b)) * s`` feeds the next layer, so
    ``s`` becomes a column scale of the next weight: ``W' = W diag(s)``.
    ``film`` (scale and shift inside): ``sin(w0 (s (W a + b) + t))`` = ``sin((w0 s W) a + w0 (s b + t))``.
    The first layer (3 inputs, sine arguments up to ~w0) stays float32; the hidden and
    output layers use ``dtype`` (fp16/bf16 on CUDA, float32 on CPU).

    Examples
    --------
    >>> from molviz.models import ModulatedSiren, config_for_size
    >>> net = ModulatedSiren(config_for_size("XS", out_dim=2)).eval()
    >>> z, x = torch.randn(1, 16), torch.rand(1, 5, 3) * 2 - 1
    >>> w = fold_modulations(net, net.modulations(z))
    >>> bool(torch.allclose(folded_synthesis(x[0], w), net(x, z)[0], atol=1e-5))
    True
    """
    film = model.cfg.modulation == "film"
    out: list[tuple[torch.Tensor, torch.Tensor]] = []
    col: torch.Tensor | None = None
    for i, (layer, (scale, shift)) in enumerate(zip(model.layers, mods)):
        W = layer.linear.weight.float()                                            # (out, in)
        b = layer.linear.bias.float()
        if col is not None:
            W = W * col[None, :]
        s = scale.reshape(-1).float() if scale is not None else None
        if film:
            if s is not None:
                W, b = W * s[:, None], b * s
            if shift is not None:
                b = b + shift.reshape(-1).float()
            col = None
        else:
            col = s
        W, b = layer.w0 * W, layer.w0 * b
        dt = torch.float32 if i == 0 else dtype
        out.append((W.t().contiguous().to(dt), b.contiguous().to(dt)))
    W = model.last.weight.float()
    if col is not None:
        W = W * col[None, :]
    # The output layer runs in ``dtype`` too (fp32 accumulation inside the matmul; values in
    # [0, 1] lose < 5e-4 in fp16): an fp32 copy of the (P, H) activations would cost more
    # memory traffic than the layer itself.
    out.append((W.t().contiguous().to(dtype), model.last.bias.float().contiguous().to(dtype)))
    return out


def folded_synthesis(coords: torch.Tensor, weights: list[tuple[torch.Tensor, torch.Tensor]], *,
                     pointwise_first: bool = False) -> torch.Tensor:
    """(P, 3) normalised coordinates -> (P, C) float32 with :func:`fold_modulations`' weights.

    ``pointwise_first`` writes the 3-input first layer as three multiply-adds, which
    ``torch.compile`` fuses with its sine and the cast into one kernel (eager, the
    ``addmm`` is cheaper); the engine uses it only when compiling.
    """
    W0t, b0 = weights[0]
    if pointwise_first:
        h = (coords[:, 0:1] * W0t[0] + coords[:, 1:2] * W0t[1] + coords[:, 2:3] * W0t[2] + b0).sin()
    else:
        h = torch.addmm(b0, coords, W0t).sin_()                                    # (P, H) float32
    for Wt, b in weights[1:-1]:
        h = torch.addmm(b, h.to(Wt.dtype), Wt).sin_()                              # (P, H)
    Wt, b = weights[-1]
    return torch.addmm(b, h.to(Wt.dtype), Wt).float()                              # (P, C)


def _folded_pointwise_first(coords: torch.Tensor, weights) -> torch.Tensor:
    return folded_synthesis(coords, weights, pointwise_first=True)


def _cpu_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _available_cpu_bytes() -> int:
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 2 << 30


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    msg = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg)


class Engine:
    """Decode a bundle's latents into volumes, fast, at any resolution.

    Parameters
    ----------
    bundle : Bundle or path
        A :class:`molviz.models.Bundle` or a bundle folder.
    device : str
        ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
    precision : {"auto", "fp32", "bf16", "fp16"}
        ``"auto"``: fp32 on CPU; fp16 on CUDA for the hidden and output layers, with
        the first layer (sine arguments up to ~w0 = 30) in fp32. fp16 keeps 3
        more mantissa bits than bf16, and sine activations are bounded, so its range
        is enough. ``molviz bench engine`` reports the difference to fp32.
    chunk_points : int, optional
        Points per network call; default from free memory and the hidden width.
    cache_bytes : int
        Budget of the LRU cache of decoded volumes (0 disables it).
    compile : bool
        ``torch.compile`` the synthesis network (CUDA only; off by default: it pays
        only where ``molviz bench engine`` measures it to).
    threads : int, optional
        CPU threads for torch (default: all cores this process may use).
    fold : bool
        Fold each latent's modulations and the sine frequencies into per-latent
        weights (:func:`fold_modulations`), so a chunk costs one ``addmm`` and one
        in-place ``sin`` per layer. Off: call ``model.synthesis`` (the reference path).

    Examples
    --------
    >>> eng = Engine("assets/models/freesolv")                      # doctest: +SKIP
    >>> vol = eng.decode(eng.latents[0], resolution=64)            # doctest: +SKIP
    >>> vol.shape                                                   # doctest: +SKIP
    (1, 11, 64, 64, 64)
    >>> zoom = eng.decode(eng.latents[0], resolution=64, box=((-0.2,) * 3, (0.2,) * 3))  # doctest: +SKIP
    """

    def __init__(self, bundle: "Bundle | str | os.PathLike", *, device: str = "auto",
                 precision: Precision = "auto", chunk_points: int | None = None,
                 cache_bytes: int = 1 << 30, compile: bool = False, threads: int | None = None,
                 fold: bool = True):
        from molviz.models import Bundle, load_model
        if isinstance(bundle, (str, os.PathLike)):
            bundle = load_model(bundle)
        if not isinstance(bundle, Bundle):
            raise BundleError(f"Engine needs a molviz Bundle or a bundle folder, got {type(bundle).__name__}")
        self.bundle = bundle
        self.device = self._resolve_device(device)
        if self.device.type == "cpu":
            torch.set_num_threads(int(threads or _cpu_threads()))
        self.precision = self._resolve_precision(precision)
        self.model = bundle.model.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.fold = bool(fold) and can_fold(self.model)
        self._synthesis = self.model.synthesis
        self._folded = folded_synthesis
        if compile:
            if self.device.type != "cuda":
                raise InputError("compile=True needs CUDA (torch.compile does not pay for this network on CPU)")
            self._synthesis = torch.compile(self.model.synthesis, dynamic=True)
            self._folded = torch.compile(_folded_pointwise_first, dynamic=True)
        self.cfg = self.model.cfg
        self.latents = bundle.latents.detach().float().cpu().numpy()         # (N, L)
        self.boxes = np.asarray(bundle.boxes, np.float32)                     # (N, 2, 3)
        self.channel_names = list(bundle.channel_names) or [f"channel {i}" for i in range(self.cfg.out_dim)]
        self.stats = EngineStats()
        self.chunk_points = int(chunk_points) if chunk_points else self._auto_chunk()
        self.stats.chunk = self.chunk_points
        self.cache = VolumeCache(cache_bytes)
        self._lock = threading.RLock()  # one decode at a time on the device
        self._scheduler = None

    # ------------------------------------------------------------------ set-up
    @staticmethod
    def _resolve_device(device: str | torch.device) -> torch.device:
        if str(device) == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise InputError(f"device {device!r} is unknown: use 'auto', 'cpu' or 'cuda'") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise InputError(f"device {device!r} asked for CUDA, but this torch sees no GPU; use device='cpu'")
        return dev

    def _resolve_precision(self, precision: str) -> str:
        if precision == "auto":
            return "fp16" if self.device.type == "cuda" else "fp32"
        if precision not in _DTYPES:
            raise InputError(f"precision {precision!r} is unknown: use 'auto', 'fp32', 'bf16' or 'fp16'")
        if precision == "fp16" and self.device.type == "cpu":
            raise InputError("fp16 decoding is for CUDA; on CPU use precision='fp32' (or 'bf16')")
        return precision

    def _auto_chunk(self) -> int:
        # Live activations per point: the layer input, the linear output, the sine and the
        # modulated copy (~4 x hidden), plus the output row; x2 head-room for the allocator.
        elem = 4 if self.precision == "fp32" else 2
        per_point = (4 * self.cfg.hidden + self.cfg.out_dim + 8) * elem * 2
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            n = int(0.5 * free / per_point)
            cap = GPU_MAX_CHUNK
        else:
            n = int(0.25 * _available_cpu_bytes() / per_point)
            cap = CPU_CHUNK_ACTIVATIONS // self.cfg.hidden
        n = max(MIN_CHUNK, min(n, cap))
        return 1 << (n.bit_length() - 1)  # a power of two

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=_DTYPES[self.precision])

    # ------------------------------------------------------------------ items
    @property
    def n_items(self) -> int:
        return len(self.latents)

    @property
    def n_channels(self) -> int:
        return int(self.cfg.out_dim)

    def item_index(self, item: int | str) -> int:
        """An item's index from its index or name."""
        if isinstance(item, (int, np.integer)):
            if not -self.n_items <= int(item) < self.n_items:
                raise InputError(f"item {item} is out of range: the bundle has {self.n_items} items")
            return int(item) % self.n_items
        names = [str(it.get("name", "")) for it in self.bundle.items]
        if item in names:
            return names.index(item)
        raise InputError(f"no item named {item!r} in bundle {self.bundle.name!r}; "
                         f"names look like {names[:3]}")

    def item_grid(self, item: int | str, resolution: int | Sequence[int] = 64, *,
                  box: Box | None = None) -> "Grid":
        """The angstrom :class:`~molviz.fields.Grid` that ``decode_item(item, ...)`` samples."""
        return self.box_grid(self.boxes[self.item_index(item)], resolution, box=box)

    @staticmethod
    def box_grid(item_box: np.ndarray, resolution: int | Sequence[int] = 64, *,
                 box: Box | None = None) -> "Grid":
        """The angstrom grid of a (sub-)box of an item box (2, 3)."""
        from molviz.fields import Grid
        lo, hi = sub_box_angstrom(np.asarray(item_box), check_box(box))
        return Grid.from_box(lo, hi, check_shape(resolution))

    def decode_item(self, item: int | str, *, resolution: int | Sequence[int] = 64,
                    box: Box | None = None) -> np.ndarray:
        """Decode one stored item: (C, nx, ny, nz) float32."""
        return self.decode(self.latents[self.item_index(item)], resolution=resolution, box=box)[0]

    # ------------------------------------------------------------------ decoding
    def _as_latents(self, latents) -> np.ndarray:
        z = latents.detach().float().cpu().numpy() if isinstance(latents, torch.Tensor) else np.asarray(latents, np.float32)
        z = z[None] if z.ndim == 1 else z
        if z.ndim != 2 or z.shape[1] != self.cfg.latent_dim:
            raise InputError(f"latents of shape {tuple(np.shape(latents))} do not fit this bundle: "
                             f"give (L,) or (B, L) with L = {self.cfg.latent_dim}")
        if not np.all(np.isfinite(z)):
            raise InputError("latents contain NaN or infinity")
        return np.ascontiguousarray(z, dtype=np.float32)

    def cached(self, latent, *, resolution: int | Sequence[int] = 64, box: Box | None = None) -> np.ndarray | None:
        """The dense volume of one latent (C, nx, ny, nz) when the LRU cache holds it, else None (no decoding)."""
        z = self._as_latents(latent)
        if len(z) != 1:
            raise InputError("cached looks up one latent (L,) at a time")
        return self.cache.get((latent_key(z[0]), check_shape(resolution), check_box(box), self.precision))

    def decode(self, latents, *, resolution: int | Sequence[int] = 64, box: Box | None = None,
               cache: bool = True, should_stop: Callable[[], bool] | None = None) -> np.ndarray:
        """Decode latents on a regular grid of a (sub-)box.

        Parameters
        ----------
        latents : array-like
            (L,) or (B, L).
        resolution : int or (nx, ny, nz)
            Voxels per axis.
        box : (lo, hi), optional
            Sub-box in normalised [-1, 1] coordinates (default: the whole item box);
            voxel centres run from lo to hi inclusive on every axis.
        cache : bool
            Look up / store each latent's volume in the LRU cache. Volumes from the
            cache are read-only (copy before writing).
        should_stop : callable, optional
            Polled between chunks; when it returns True the decode raises
            :class:`Cancelled` (the latest-wins scheduler uses it).

        Returns
        -------
        np.ndarray
            (B, C, nx, ny, nz) float32.

        Examples
        --------
        >>> eng.decode(eng.latents[:2], resolution=(32, 32, 48)).shape   # doctest: +SKIP
        (2, 6, 32, 32, 48)
        """
        z = self._as_latents(latents)
        shape = check_shape(resolution)
        box_ = check_box(box)
        keys = [(latent_key(row), shape, box_, self.precision) for row in z] if cache else [None] * len(z)
        found = [self.cache.get(k) if k is not None else None for k in keys]
        todo = [i for i, v in enumerate(found) if v is None]
        if todo:
            fresh = self._decode_grid(z[todo], shape, box_, should_stop=should_stop)   # (b, C, nx, ny, nz)
            for j, i in enumerate(todo):
                found[i] = fresh[j]
                if cache:
                    self.cache.put(keys[i], fresh[j])
        if len(found) == 1:
            return found[0][None]
        return np.stack(found)

    def decode_progressive(self, latents, *, resolution: int | Sequence[int] = 64, box: Box | None = None,
                           coarse: int = 32, should_stop: Callable[[], bool] | None = None
                           ) -> Iterator[tuple[tuple[int, int, int], np.ndarray]]:
        """Yield ``(shape, volume)``: a coarse volume first, then the requested resolution.

        Examples
        --------
        >>> for shape, vol in eng.decode_progressive(z, resolution=128):   # doctest: +SKIP
        ...     show(vol)
        """
        shape = check_shape(resolution)
        if coarse and max(shape) > coarse:
            cshape = tuple(max(2, round(n * coarse / max(shape))) for n in shape)
            yield cshape, self.decode(latents, resolution=cshape, box=box, should_stop=should_stop)
        yield shape, self.decode(latents, resolution=shape, box=box, should_stop=should_stop)

    @torch.no_grad()
    def _modulations(self, z: np.ndarray):
        """One latent's network, ready for chunks: folded weights, or the raw modulations."""
        mods = self.model.modulations(torch.as_tensor(z, device=self.device))   # float32, once per latent
        if self.fold:
            return fold_modulations(self.model, mods, dtype=_DTYPES[self.precision])
        return mods

    def _decode_chunk(self, coords: torch.Tensor, mods) -> torch.Tensor:
        """One network call: (P, 3) coordinates with one latent's modulations -> (P, C) float32."""
        if self.fold:
            return self._folded(coords, mods)
        with self._autocast():
            return self._synthesis(coords[None], mods)[0].float()

    @torch.no_grad()
    def decode_points(self, latent, coords, *, should_stop: Callable[[], bool] | None = None) -> np.ndarray:
        """Decode one latent at arbitrary normalised points (P, 3): (P, C) float32."""
        z = self._as_latents(latent)
        if len(z) != 1:
            raise InputError("decode_points takes one latent (L,)")
        pts = torch.as_tensor(np.asarray(coords, np.float32), device=self.device).reshape(-1, 3)
        with self._lock:
            mods = self._modulations(z)
            out = torch.empty(len(pts), self.n_channels, device=self.device)
            self._run_chunks(len(pts), lambda s, e: pts[s:e], mods, out, should_stop)
        return out.cpu().numpy()

    @torch.no_grad()
    def decode_tensor(self, latents, *, resolution: int | Sequence[int] = 64, box: Box | None = None,
                      should_stop: Callable[[], bool] | None = None) -> torch.Tensor:
        """Like :meth:`decode`, but the volumes stay on the engine's device: a (B, C, nx, ny, nz)
        float32 tensor (no cache). For work that continues on the GPU, e.g. :meth:`surfaces`."""
        z = self._as_latents(latents)
        shape = check_shape(resolution)
        n = shape[0] * shape[1] * shape[2]
        self._check_output_fits(len(z) * self.n_channels * n * 4, shape)
        with self._lock:
            return self._grid_on_device(z, shape, check_box(box), should_stop).reshape(len(z), -1, *shape)

    def _grid_on_device(self, z: np.ndarray, shape, box: Box, should_stop,
                        out: torch.Tensor | None = None) -> torch.Tensor:
        """Decode into ``out`` (B, C, P) on the engine's device (a new tensor when None)."""
        n = shape[0] * shape[1] * shape[2]
        axes = box_axes(shape, box, device=self.device)
        if out is None:
            out = torch.empty(len(z), self.n_channels, n, device=self.device)             # (B, C, P)
        for b in range(len(z)):
            mods = self._modulations(z[b:b + 1])
            self._run_chunks(n, lambda s, e: flat_coords(axes, s, e), mods, out[b], should_stop,
                             channels_first=True)
        return out

    @torch.no_grad()
    def _decode_grid(self, z: np.ndarray, shape: tuple[int, int, int], box: Box, *,
                     should_stop: Callable[[], bool] | None = None) -> np.ndarray:
        n = shape[0] * shape[1] * shape[2]
        C = self.n_channels
        self._check_output_fits(len(z) * C * n * 4, shape)
        # The host array comes from numpy, which asks the kernel for huge pages on large
        # allocations: filling a fresh 92 MB torch buffer cost 58 ms on the development CPU,
        # 19 ms for a numpy one (page faults), 13 ms for a reused one. On the GPU that fill
        # is the copy back, so it decides the dense decode's time at 128^3 and above.
        host = np.empty((len(z), C, *shape), np.float32)
        flat = torch.from_numpy(host).reshape(len(z), C, n)
        with self._lock:
            if self.device.type == "cpu":  # decode straight into it
                self._grid_on_device(z, shape, box, should_stop, out=flat)
            else:
                flat.copy_(self._grid_on_device(z, shape, box, should_stop))
        return host                                                                        # (B, C, nx, ny, nz)

    @torch.no_grad()
    def surfaces(self, latent, levels, *, resolution: int | Sequence[int] = 64, box: Box | None = None,
                 item_box: np.ndarray | None = None, mode: str = "absolute",
                 should_stop: Callable[[], bool] | None = None) -> list:
        """Isosurfaces of every channel, extracted on the engine's device (:mod:`molviz.engine._surface`).

        Only the meshes come back to the host, never the volume: on a GPU this is the
        interactive update. ``levels``: one per channel (or one for all; NaN skips a channel),
        read by ``mode`` as in :func:`molviz.mesh.resolve_level`. ``item_box``: the item's
        angstrom box (2, 3) (:attr:`boxes`), for points in angstrom; without it points are in
        the network's normalised coordinates. Returns one :class:`~molviz.engine.Surface` per
        channel; ``molviz.mesh.polydata(surface)`` makes it a PyVista mesh.

        Examples
        --------
        >>> surfs = eng.surfaces(eng.latents[0], 0.5, resolution=128, item_box=eng.boxes[0])  # doctest: +SKIP
        >>> [s.n_points for s in surfs]                                                      # doctest: +SKIP
        """
        from molviz.engine._surface import marching_cubes, resolve_levels
        shape = check_shape(resolution)
        box_ = check_box(box)
        vol = self.decode_tensor(latent, resolution=shape, box=box_, should_stop=should_stop)[0]
        if np.size(levels) not in (1, self.n_channels):
            raise InputError(f"{np.size(levels)} levels for {self.n_channels} channels: give one per channel or one")
        lv = resolve_levels(vol, levels, mode)
        if item_box is None:
            lo, hi = np.asarray(box_[0]), np.asarray(box_[1])
        else:
            lo, hi = sub_box_angstrom(np.asarray(item_box, np.float64), box_)
        spacing = (hi - lo) / (np.asarray(shape) - 1)
        return marching_cubes(vol, lv, origin=tuple(map(float, lo)), spacing=tuple(map(float, spacing)))

    def _check_output_fits(self, nbytes: int, shape) -> None:
        """Refuse a volume that cannot fit (a clear error instead of the OS killing the process)."""
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            room, where = free, f"free memory on {self.device}"
        else:
            room, where = _available_cpu_bytes(), "available RAM"
        if nbytes > 0.8 * room:
            batch = max(1, round(nbytes / (4 * self.n_channels * shape[0] * shape[1] * shape[2])))
            largest = int((0.8 * room / (4 * self.n_channels * batch)) ** (1 / 3))
            while 4 * self.n_channels * batch * (largest + 1) ** 3 <= 0.8 * room:
                largest += 1
            while largest > 1 and 4 * self.n_channels * batch * largest ** 3 > 0.8 * room:
                largest -= 1
            raise ResourceLimitError(
                f"a {shape[0]}x{shape[1]}x{shape[2]} volume of {self.n_channels} channels x {batch} latent(s) "
                f"needs {nbytes / 2**30:.1f} GiB, more than the {where} allows ({room / 2**30:.1f} GiB): the "
                f"largest that fits is resolution {largest} ({largest}^3 x {self.n_channels} channels x {batch}); "
                "lower the resolution, decode a sub-box, or decode fewer latents at once")

    def _run_chunks(self, n: int, make_coords: Callable[[int, int], torch.Tensor], mods,
                    out: torch.Tensor, should_stop: Callable[[], bool] | None, *,
                    channels_first: bool = False) -> None:
        """Fill ``out`` ((n, C), or (C, n) with ``channels_first``) chunk by chunk.

        On an out-of-memory error the chunk halves and the same points are retried.
        """
        t0 = time.perf_counter()
        start = 0
        while start < n:
            if should_stop is not None and should_stop():
                raise Cancelled()
            stop = min(n, start + self.chunk_points)
            try:
                y = self._decode_chunk(make_coords(start, stop), mods)                  # (p, C)
                if channels_first:
                    out[:, start:stop] = y.T
                else:
                    out[start:stop] = y
            except Exception as exc:
                if not _is_oom(exc):
                    raise
                self._shrink_chunk(exc)
                continue
            start = stop
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.stats.decoded_points += n
        self.stats.decode_seconds += time.perf_counter() - t0

    def _shrink_chunk(self, exc: BaseException) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if self.chunk_points // 2 < MIN_CHUNK:
            raise ResourceLimitError(
                f"out of memory on {self.device} even with {self.chunk_points} points per chunk "
                f"({type(exc).__name__}); free GPU memory (close other jobs) or use device='cpu'") from None
        self.chunk_points //= 2
        self.stats.oom_retries += 1
        self.stats.chunk = self.chunk_points

    # ------------------------------------------------------------------ adaptive
    def decode_adaptive(self, latent, *, resolution: int | Sequence[int], levels, box: Box | None = None,
                        coarse_step: int = 8, safety: float = 2.0, known=None,
                        should_stop: Callable[[], bool] | None = None):
        """Volume that gives the same isosurfaces as :meth:`decode`, decoding only near them.

        See :func:`molviz.engine.adaptive.decode_adaptive` for the algorithm and its error bound;
        ``known`` (an earlier result at other levels) lends its decoded voxels.
        """
        from molviz.engine._adaptive import decode_adaptive
        return decode_adaptive(self, latent, resolution=resolution, levels=levels, box=box,
                               coarse_step=coarse_step, safety=safety, known=known, should_stop=should_stop)

    # ------------------------------------------------------------------ interactive
    def submit(self, request, callback: Callable | None = None):
        """Queue a :class:`~molviz.engine.DecodeRequest` on the latest-wins worker; returns a Ticket.

        A newer request supersedes any pending older one; a running one stops at its
        next chunk. ``callback(result)`` runs on the worker thread for each stage
        (coarse, then final) that is still current.
        """
        if self._scheduler is None:
            from molviz.engine._scheduler import LatestWins
            self._scheduler = LatestWins(self)
        return self._scheduler.submit(request, callback)

    @property
    def scheduler(self):
        if self._scheduler is None:
            from molviz.engine._scheduler import LatestWins
            self._scheduler = LatestWins(self)
        return self._scheduler

    def close(self) -> None:
        """Stop the background worker (if one was started)."""
        if self._scheduler is not None:
            self._scheduler.close()
            self._scheduler = None

    # ------------------------------------------------------------------ latent space
    def interpolate_items(self, a: int | str, b: int | str, t, *, mode: str = "slerp"
                          ) -> tuple[np.ndarray, np.ndarray]:
        """Latents and boxes between two items: ((T, L), (T, 2, 3)); boxes move linearly."""
        from molviz.engine._latent import interpolate
        i, j = self.item_index(a), self.item_index(b)
        z = interpolate(self.latents[i], self.latents[j], t, mode=mode)
        tt = np.atleast_1d(np.asarray(t, np.float32))[:, None, None]
        return z.reshape(-1, self.cfg.latent_dim), ((1 - tt) * self.boxes[i] + tt * self.boxes[j]).astype(np.float32)

    def item_path(self, items: Sequence[int | str], n_frames: int, *, mode: str = "slerp"
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Latents and boxes of ``n_frames`` along a path through several items."""
        from molviz.engine._latent import path
        idx = [self.item_index(i) for i in items]
        z = path(self.latents[idx], n_frames, mode=mode)
        boxes = path(self.boxes[idx].reshape(len(idx), 6), n_frames, mode="linear").reshape(-1, 2, 3)
        return z, boxes.astype(np.float32)

    def neighbours(self, latent, k: int = 5, *, metric: Literal["l2", "cosine"] = "l2",
                   exclude: int | None = None) -> list[tuple[int, float]]:
        """The ``k`` stored items nearest to ``latent``: [(index, distance)], nearest first.

        ``metric="l2"`` (default) is the Euclidean distance in the space the decoder
        reads; ``"cosine"`` is 1 - cosine similarity.
        """
        from molviz.engine._latent import neighbours
        return neighbours(self.latents, self._as_latents(latent)[0], k, metric=metric, exclude=exclude)

    def encode(self, source, *, details: bool = False, conformer: int = 0, steps: int = 2000,
               progress: bool = False, on_step=None, refine: int = 0):
        """Map a new input (SMILES, file, or Structure) into the bundle's latent space.

        Auto-encoder bundles run the encoder on the input's field sampled exactly as in
        training (channels, beta, box, normalisation from the bundle config);
        auto-decoder bundles fit a latent with the network frozen
        (:func:`molviz.engine.fit_latent`; ``on_step(step, steps)`` follows it, and whatever it
        raises stops it).

        ``refine=K`` (auto-encoder bundles) takes the encoder's latent K steps further against the
        field the input's atoms give, the network frozen (:func:`molviz.models._refine.refine_latent`;
        ``on_step`` follows it): the surfaces the encoder only approximates come closer to the truth
        (FreeSolv held-out molecules, 200 steps: mean IoU of the 0.5 isosurface 0.44 -> 0.56).
        The result's ``method`` is then ``"encoder+refine"`` and ``encoder_latent`` the start.

        Returns the latent (L,), or an :class:`Encoded` (latent, box, method, PSNR)
        with ``details=True``.
        """
        from molviz.engine._encode import encode
        enc = encode(self, source, conformer=conformer, steps=steps, progress=progress, on_step=on_step,
                     refine=refine)
        return enc if details else enc.latent
