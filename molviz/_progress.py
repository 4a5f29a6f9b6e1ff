"""Progress bars: tqdm when installed, else a plain line every few seconds (bare GPU boxes)."""
from __future__ import annotations

import sys
import time


class _Lines:
    """The part of tqdm's interface the training code uses, printed as occasional lines."""

    def __init__(self, iterable=None, *, total=None, initial=0, desc="", disable=False, every=10.0, **_):
        self.iterable, self.total, self.n, self.desc = iterable, total, initial, desc
        self.disable, self.every, self.postfix = disable, every, ""
        self.t0 = self.last = time.time()
        self.n0 = initial
        if self.total is None and iterable is not None and hasattr(iterable, "__len__"):
            self.total = len(iterable)

    def __iter__(self):
        for x in self.iterable:
            yield x
            self.update(1)

    def set_postfix(self, **kw):
        self.postfix = ", ".join(f"{k}={v}" for k, v in kw.items())

    def update(self, n=1):
        self.n += n
        now = time.time()
        if not self.disable and (now - self.last >= self.every or (self.total and self.n >= self.total)):
            self.last = now
            rate = (self.n - self.n0) / max(now - self.t0, 1e-9)
            eta = (self.total - self.n) / rate if self.total and rate > 0 else float("nan")
            tot = f"/{self.total}" if self.total else ""
            print(f"{self.desc}: {self.n}{tot} [{rate:.2f} it/s, ETA {eta:.0f} s] {self.postfix}",
                  file=sys.stderr, flush=True)

    def write(self, s):
        print(s, file=sys.stderr, flush=True)

    def close(self):
        pass


def tqdm(iterable=None, **kw):
    try:
        from tqdm.auto import tqdm as _tqdm
    except ImportError:
        return _Lines(iterable, **kw)
    return _tqdm(iterable, **kw)
