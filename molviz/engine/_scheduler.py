"""Latest-wins decoding for interactive use (a slider that moves faster than decoding).

One background worker thread and one pending slot: a new request replaces the
pending one (which is dropped and counted as *superseded*); a request that is
already decoding stops at its next chunk, or, if it finishes anyway, its
result is dropped and counted as *stale*. Only results of the newest request
reach the callback, coarse stage first when progressive.
"""
from __future__ import annotations

import itertools
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from molviz.engine._coords import Box, check_shape
from molviz.engine._types import Cancelled


@dataclass
class DecodeRequest:
    """What to decode; ``then`` runs on the result in the worker (e.g. isosurfaces)."""

    latents: Any                                  # (L,) or (B, L)
    resolution: int | Sequence[int] = 64
    box: Box | None = None
    progressive: bool = True                      # deliver a coarse volume first
    coarse: int = 32                              # voxels per axis of the coarse stage
    then: Callable[[np.ndarray], Any] | None = None   # post-processing, also latest-wins
    tag: Any = None                               # handed back untouched


@dataclass
class DecodeResult:
    request_id: int
    stage: str                                    # "coarse" or "final"
    shape: tuple[int, int, int]
    volume: np.ndarray | None                     # (B, C, nx, ny, nz)
    output: Any = None                            # what ``then`` returned
    seconds: float = 0.0                          # since submission
    tag: Any = None
    error: BaseException | None = None


@dataclass
class SchedulerStats:
    submitted: int = 0
    superseded: int = 0       # replaced while still pending: never started
    stale: int = 0            # started, then overtaken: cancelled or result dropped
    delivered: int = 0        # results (stages) handed to callbacks
    errors: int = 0


@dataclass
class Ticket:
    """Handle of one submitted request."""

    request_id: int
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    result: DecodeResult | None = None            # the final stage; None if superseded
    superseded: bool = False

    def wait(self, timeout: float | None = None) -> DecodeResult | None:
        """Block until the request finished or was superseded; the final result or None."""
        self._done.wait(timeout)
        return self.result

    @property
    def done(self) -> bool:
        return self._done.is_set()


class LatestWins:
    """The engine's latest-wins worker (``Engine.submit`` creates one)."""

    def __init__(self, engine):
        self.engine = engine
        self.stats = SchedulerStats()
        self._cv = threading.Condition()
        self._pending: tuple[DecodeRequest, Callable | None, Ticket, float] | None = None
        self._latest = 0
        self._ids = itertools.count(1)
        self._closed = False
        self._busy = False
        self._thread = threading.Thread(target=self._loop, name="molviz-engine", daemon=True)
        self._thread.start()

    def submit(self, request: DecodeRequest, callback: Callable[[DecodeResult], Any] | None = None) -> Ticket:
        with self._cv:
            if self._closed:
                raise RuntimeError("the engine's scheduler is closed")
            rid = next(self._ids)
            ticket = Ticket(rid)
            if self._pending is not None:
                old = self._pending[2]
                old.superseded = True
                old._done.set()
                self.stats.superseded += 1
            self._pending = (request, callback, ticket, time.perf_counter())
            self._latest = rid
            self.stats.submitted += 1
            self._cv.notify()
            return ticket

    def _current(self, rid: int) -> bool:
        return rid == self._latest and not self._closed

    def _loop(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                request, callback, ticket, t_submit = self._pending
                self._pending = None
                self._busy = True
            try:
                self._serve(request, callback, ticket, t_submit)
            finally:
                with self._cv:
                    self._busy = False
                    ticket._done.set()
                    self._cv.notify_all()

    def _serve(self, request: DecodeRequest, callback, ticket: Ticket, t_submit: float) -> None:
        rid = ticket.request_id
        stop = lambda: not self._current(rid)  # noqa: E731
        try:
            target = check_shape(request.resolution)
            coarse = request.coarse if request.progressive else 0
            for shape, vol in self.engine.decode_progressive(request.latents, resolution=request.resolution,
                                                             box=request.box, coarse=coarse, should_stop=stop):
                if stop():
                    raise Cancelled()
                out = request.then(vol) if request.then is not None else None
                if stop():
                    raise Cancelled()
                final = shape == target
                res = DecodeResult(rid, "final" if final else "coarse", shape, vol, out,
                                   time.perf_counter() - t_submit, request.tag)
                if final:
                    ticket.result = res
                self.stats.delivered += 1
                if callback is not None:
                    callback(res)
        except Cancelled:
            ticket.superseded = True
            self.stats.stale += 1
        except Exception as exc:  # never kill the worker: report the error to the caller
            self.stats.errors += 1
            res = DecodeResult(rid, "final", (0, 0, 0), None, None, time.perf_counter() - t_submit,
                               request.tag, error=exc)
            res.output = traceback.format_exc()
            ticket.result = res
            if callback is not None:
                try:
                    callback(res)
                except Exception:  # noqa: BLE001 - a failing callback must not stop the worker
                    pass

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is pending or running; False on timeout."""
        end = None if timeout is None else time.perf_counter() + timeout
        with self._cv:
            while self._pending is not None or self._busy:
                left = None if end is None else end - time.perf_counter()
                if left is not None and left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def close(self) -> None:
        with self._cv:
            self._closed = True
            if self._pending is not None:
                self._pending[2]._done.set()
                self._pending = None
            self._cv.notify_all()
        self._thread.join(timeout=10)
