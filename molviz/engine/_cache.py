"""An LRU cache of decoded volumes with a byte budget (thread-safe)."""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable

import numpy as np


def latent_key(latent: np.ndarray) -> str:
    """A hash of a latent's float32 bytes: equal latents share cache entries."""
    return hashlib.blake2b(np.ascontiguousarray(latent, dtype=np.float32).tobytes(), digest_size=16).hexdigest()


class VolumeCache:
    """Least-recently-used volumes, evicted when their bytes exceed ``budget``.

    Stored arrays are made read-only: a hit hands out the stored array itself
    (no copy of a 256^3 volume per slider step), so callers copy before writing.

    Examples
    --------
    >>> c = VolumeCache(budget=1000)
    >>> c.put("a", np.zeros(100, np.float32)); c.get("a").nbytes
    400
    >>> c.put("b", np.zeros(200, np.float32)); c.get("a") is None   # evicted: 400 + 800 > 1000
    True
    """

    def __init__(self, budget: int = 1 << 30):
        self.budget = int(budget)
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> np.ndarray | None:
        with self._lock:
            vol = self._items.get(key)
            if vol is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return vol

    def put(self, key: Hashable, volume: np.ndarray) -> None:
        if volume.nbytes > self.budget:
            return  # would evict everything and still not fit
        volume.setflags(write=False)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._items[key] = volume
            self._bytes += volume.nbytes
            while self._bytes > self.budget:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= evicted.nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)
