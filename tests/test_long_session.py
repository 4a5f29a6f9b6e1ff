"""A long session (issue 7): 500+ scripted interactions against the running app.

Driven in-process: the real :class:`~molviz.app.MolvizApp` on a real trame server
object, with a running asyncio event loop so that every reaction goes through the
app's worker-thread lanes (latest-wins, stale results dropped) exactly as under
``molviz serve``; only the browser's websocket is left out (a browser-driven run
of 500 steps takes several times longer on two shared cores and measures chromium
more than molviz). State is set and flushed as the websocket would do it.

Checked: no unhandled exception (the app's logger and the event loop's exception
handler), resident memory (VmRSS) after the first 100 interactions grows by at
most 10 %, and the view lane ends idle with nothing pending (no backlog of stale
renders) and showing the last thing asked for.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import random
import time
import uuid
import weakref
from pathlib import Path

import pytest

pytest.importorskip("trame")

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "assets" / "models"
N_INTERACTIONS = 520
WARMUP = 100


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _hostile(rng: random.Random) -> tuple[str, object]:
    return rng.choice([
        ("resolution_custom", -5), ("resolution_custom", float("nan")), ("resolution_custom", 10**9),
        ("item_index", "../../etc/passwd"), ("model_index", "/etc/passwd"), ("ch0_level", float("inf")),
        ("interp_t", float("nan")), ("compare", "../../x"), ("map_search", "x" * 5000), ("fps", 10**9),
    ])


@pytest.mark.slow
def test_five_hundred_interactions(tmp_path):
    from trame.app import get_server

    from molviz.app import MolvizApp
    from molviz.models import find_bundles

    wanted = [p for p in find_bundles(MODELS) if p.name in ("nmr-2juy", "6ega")]
    if len(wanted) < 2:
        pytest.skip("needs the bundled models assets/models/nmr-2juy and assets/models/6ega")
    errors = _Errors()
    logging.getLogger("molviz").addHandler(errors)
    loop_errors: list[dict] = []
    rng = random.Random(7)
    counts: dict[str, int] = {}
    rss: dict[str, int] = {}
    memo: dict[str, str] = {}
    explorers = weakref.WeakSet()

    server = get_server(f"molviz-long-{uuid.uuid4().hex[:8]}", client_type="vue3")
    app = MolvizApp(server, bundle=MODELS / "nmr-2juy", window_size=(320, 240))
    app.state.ready()
    titles = [o["title"] for o in app.state.model_options]
    model_ids = [titles.index(p.name) for p in wanted]

    def put(**values) -> None:
        for k, v in values.items():
            app.state[k] = v
        app.state.flush()

    def visible_channel() -> int:
        on = [i for i in range(app.state.n_channels) if app.state[f"ch{i}_visible"]]
        return on[0] if on else 0

    def held() -> str:
        ex = app.ex
        return (f"engine cache {ex.engine.cache._bytes / 2**20:.0f} MiB, {len(ex._truths)} truths, "
                f"{len(explorers)} explorers alive")

    async def session() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: loop_errors.append(ctx))
        app.on_server_ready()
        await app.idle()
        put(resolution_choice="custom", resolution_custom=32)
        await app.idle()
        t = 0.0
        for k in range(N_INTERACTIONS):
            kind = rng.choices(["level", "scrub", "resolution", "item", "model", "compare", "export", "hostile"],
                               weights=[30, 40, 8, 8, 0, 4, 0, 6])[0]
            # the warm-up does every kind of thing once: model switches there and back, an export
            if k in (50, 70, 250, 270, 450, 470):
                kind = "model"
            elif k in (40, 400):
                kind = "export"
            elif kind in ("model", "export"):
                kind = "level"
            counts[kind] = counts.get(kind, 0) + 1
            explorers.add(app.ex)
            if kind == "level":
                ch = visible_channel()
                put(**{f"ch{ch}_mode": "absolute", f"ch{ch}_level": round(rng.uniform(0.05, 0.9), 2)})
            elif kind == "scrub":                        # a drag: several values in a row, no waiting
                if app.state.endpoint_b == app.state.endpoint_a:
                    put(endpoint_b=(app.state.endpoint_a + 1) % max(2, len(app.state.item_options)))
                t = min(1.0, max(0.0, round(t + rng.choice([-1, 1]) * rng.uniform(0.01, 0.15), 2)))
                put(interp_t=t)
            elif kind == "resolution":
                put(resolution_choice="custom", resolution_custom=rng.choice([24, 32, 48]))
            elif kind == "item":
                put(item_index=rng.randrange(len(app.state.item_options)))
            elif kind == "model":
                current = app.state.model_index
                put(model_index=next(m for m in model_ids if m != current) if current in model_ids
                    else model_ids[0])
                await app.idle()
            elif kind == "compare":
                put(compare=rng.choice(["reconstruction", "truth", "side_by_side"]))
            elif kind == "export":
                put(export_format="gif", export_size="480p", export_frames=3, export_fps=6)
                data = await app.export_movie()
                assert isinstance(data, bytes) and data[:6] in (b"GIF89a", b"GIF87a"), app.state.error_text
            elif kind == "hostile":
                key, value = _hostile(rng)
                put(error_show=False)
                put(**{key: value})
                assert app.state.error_show, f"{key}={str(value)[:40]!r} was not refused"
            # most steps let the loop breathe briefly (the browser's pace); every 10th waits for the picture
            if k % 10 == 9:
                await app.idle()
            else:
                await asyncio.sleep(0.005)
            if k + 1 == WARMUP:
                await app.idle()
                gc.collect()
                rss["warm"] = _rss_kib()
                memo["warm"] = held()
        await app.idle()
        gc.collect()
        rss["end"] = _rss_kib()
        memo["end"] = held()

    t0 = time.perf_counter()
    try:
        asyncio.run(session())
    finally:
        logging.getLogger("molviz").removeHandler(errors)
    seconds = time.perf_counter() - t0
    lane = app.view_lane
    growth = (rss["end"] - rss["warm"]) / rss["warm"]
    print(f"\n{N_INTERACTIONS} interactions in {seconds:.0f} s: {counts}; RSS after {WARMUP}: "
          f"{rss['warm'] / 1024:.0f} MiB ({memo['warm']}), at the end {rss['end'] / 1024:.0f} MiB ({100 * growth:+.1f} %; {memo['end']}); "
          f"view lane: {lane.generation} submitted, {lane.completed} completed, {lane.dropped} dropped as stale")

    assert not errors.records, [r.getMessage() for r in errors.records][:5]
    assert not loop_errors, loop_errors[:3]
    assert growth <= 0.10, f"resident memory grew {100 * growth:.1f} % after warm-up"
    # no backlog: nothing running or pending, every submitted job either drawn or dropped as stale
    assert not lane.busy and lane._pending is None
    assert not app.aux_lane.busy and not app.map_lane.busy
    assert lane.completed + lane.dropped <= lane.generation
    assert lane.dropped > 0                                  # drags were coalesced, not queued
    assert lane.generation - lane.completed - lane.dropped < 0.05 * lane.generation   # (refused jobs only)
    # the picture is the last one asked for, at the chosen resolution
    req = app.current.extra["request"]
    assert req == app._request(int(app.state.resolution)), (req, app._request(int(app.state.resolution)))
    assert app.current.volume.shape[1] == int(app.state.resolution)
