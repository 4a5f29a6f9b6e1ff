"""Heavy work off the event loop: latest-wins lanes of worker-thread jobs.

Each lane runs one job at a time in its own worker thread. Submitting to a busy
lane replaces the lane's pending job (a slider dragged across ten values decodes
the first and the last, not all ten), and the running job is asked to stop at
its next chunk (``should_stop``). Results are applied on the event loop, in
order, and only if no newer job of the lane has been submitted since (stale
results are dropped).

Without a running event loop (unit tests, scripts) jobs run inline, at once.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("molviz.app")


@dataclass
class Job:
    """A unit of work: ``work(should_stop)`` in a thread, then ``done(result)`` on the loop."""

    work: Callable[[Callable[[], bool]], Any]
    done: Callable[[Any], None]
    error: Callable[[BaseException], None]
    generation: int = 0


class Lane:
    """One latest-wins queue with its own worker thread."""

    def __init__(self, name: str, *, nice: int = 0) -> None:
        self.name = name
        self.generation = 0               # bumped by every submit
        self._pending: Job | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"molviz-{name}",
                                            initializer=_lower_priority, initargs=(nice,))
        self.dropped = 0                  # superseded before they ran or finished
        self.completed = 0
        self.on_busy: Callable[[bool], None] | None = None

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def stale(self, generation: int) -> bool:
        return generation != self.generation

    def submit(self, work, done, error) -> int:
        """Queue a job; returns its generation. Runs inline when no event loop is running."""
        self.generation += 1
        job = Job(work, done, error, self.generation)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            self._run_inline(job)
            return job.generation
        if self._pending is not None:
            self.dropped += 1
        self._pending = job
        if not self.busy:
            self._task = loop.create_task(self._drain())
        return job.generation

    def _run_inline(self, job: Job) -> None:
        try:
            result = job.work(lambda: False)
        except Exception as exc:  # noqa: BLE001 - reported through the job's error callback
            job.error(exc)
            return
        job.done(result)
        self.completed += 1

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        if self.on_busy:
            self.on_busy(True)
        try:
            while self._pending is not None:
                job, self._pending = self._pending, None
                gen = job.generation
                try:
                    result = await loop.run_in_executor(self._executor, job.work, lambda: self.stale(gen))
                except Exception as exc:  # noqa: BLE001
                    if self.stale(gen):
                        self.dropped += 1
                        continue
                    _safe(job.error, exc)
                    continue
                if self.stale(gen):
                    self.dropped += 1
                    continue
                _safe(job.done, result)
                self.completed += 1
        finally:
            if self.on_busy:
                self.on_busy(False)

    async def idle(self) -> None:
        """Wait until the lane has nothing running or pending."""
        while self.busy or self._pending is not None:
            if self._task is not None:
                await asyncio.wait({self._task})
            else:
                await asyncio.sleep(0.01)

    def cancel(self) -> None:
        """Drop the pending job and ask the running one to stop (its result is dropped as stale)."""
        self.generation += 1
        if self._pending is not None:
            self.dropped += 1
        self._pending = None

    def close(self) -> None:
        self.generation += 1
        self._pending = None
        self._executor.shutdown(wait=False, cancel_futures=True)


def _lower_priority(nice: int) -> None:
    """Run this worker thread (and the threads it starts: torch's OpenMP team, VTK's) ``nice`` steps below
    the event loop's, so that renders and clicks get the CPU first while it decodes. Linux only: there
    ``setpriority`` on a thread id changes that thread alone."""
    if nice and sys.platform == "linux":
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        except OSError:
            log.debug("molviz app: could not lower the priority of a worker thread")


def _safe(fn, arg) -> None:
    try:
        fn(arg)
    except Exception:  # noqa: BLE001 - a UI callback must never kill the lane
        log.exception("molviz app: callback failed")


class Debounce:
    """Call ``fn`` once, ``delay`` seconds after the last ``trigger()`` (inline without a loop)."""

    def __init__(self, delay: float, fn: Callable[[], None]) -> None:
        self.delay = delay
        self.fn = fn
        self._handle: asyncio.TimerHandle | None = None

    def trigger(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.fn()
            return
        if self._handle is not None:
            self._handle.cancel()
        self._handle = loop.call_later(self.delay, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        _safe(lambda _: self.fn(), None)


__all__ = ["Debounce", "Job", "Lane"]
