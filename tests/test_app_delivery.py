"""The remote view's picture delivery (molviz.app._delivery): a change answers with a half-size frame and
the still frame follows (latest wins), and a push waits for VTK's JPEG encoder instead of sending the
previous frame. The delivery object here stands in for trame-vtk's ``vtkWebPublishImageDelivery`` (same
attributes and calls); the real one is driven in chromium by tests/test_app_daily.py and ``molviz bench
app``."""
from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("trame_vtk")

from molviz.app import _delivery  # noqa: E402
from molviz.app._delivery import PREVIEW_QUALITY, PREVIEW_RATIO, ImagePusher  # noqa: E402


class _Interactor:
    def EnableRenderOff(self):  # noqa: N802 - VTK's name
        pass


class _Window:
    samples = 4                                   # one render window, as the app's

    def GetInteractor(self):  # noqa: N802
        return _Interactor()

    def GetMultiSamples(self):  # noqa: N802
        return _Window.samples

    def SetMultiSamples(self, n):  # noqa: N802
        _Window.samples = n


class _App:
    """The encoder finishes a frame after ``encode_polls`` looks at it."""

    def __init__(self, encode_polls: int = 2):
        self.encode_polls = encode_polls
        self.polls = 0
        self.invalidated = 0

    def InvalidateCache(self, _view):  # noqa: N802
        self.invalidated += 1

    def GetHasImagesBeingProcessed(self, _view):  # noqa: N802
        return self.polls < self.encode_polls

    def StillRenderToBuffer(self, _view, _t, _quality):  # noqa: N802
        self.polls += 1
        return b"new frame"

    def GetLastStillRenderToMTime(self):  # noqa: N802
        return 7


class _Delivery:
    def __init__(self):
        self.app = _App()
        self.tracking_views = {"1": {"ratio": 1, "quality": 95}}
        self.views_in_animations = []
        self.pushed: list[tuple[float, int]] = []

    def get_global_id(self, _window):
        return 1

    def get_view(self, _vid):
        return _Window()

    def push_render(self, vid, *_a):
        info = self.tracking_views[vid]
        self.pushed.append((info["ratio"], info["quality"]))

    def still_render(self, _options):            # the encoder has not finished: the old frame, "stale"
        self.rendered_samples = _Window.samples
        return {"stale": True, "image": b"old frame", "mtime": 3, "memsize": 9}


class _Server:
    def add_protocol_to_configure(self, fn):
        self.configure = fn


def _pusher() -> tuple[ImagePusher, _Delivery]:
    server, delivery = _Server(), _Delivery()
    pusher = ImagePusher(server)
    pusher.delivery = delivery
    return pusher, delivery


def test_a_push_sends_a_half_size_frame_then_one_still_frame_for_a_quick_series():
    async def run():
        pusher, d = _pusher()
        fallbacks = []
        for _ in range(3):                       # three quick changes
            pusher.push(_Window(), fallback=lambda: fallbacks.append(1))
        assert d.pushed == [(PREVIEW_RATIO, PREVIEW_QUALITY)] * 3
        assert d.tracking_views["1"] == {"ratio": 1, "quality": 95}      # the still settings are back
        await asyncio.sleep(_delivery.STILL_AFTER_S + 0.05)
        assert d.pushed[3:] == [(1, 95)]          # latest wins: one still frame
        assert not fallbacks and (pusher.previews, pusher.stills) == (3, 1)
    asyncio.run(run())


def test_the_still_frame_waits_until_the_preview_has_been_sent():
    """The still frame's render blocks the event loop: it starts once wslink has written the preview's
    message (trame's ``network_completion``), at most ``SENT_WAIT_S`` later."""
    async def run():
        server, d = _Server(), _Delivery()
        pusher = ImagePusher(server)
        pusher.delivery = d
        server.network_completion = asyncio.get_running_loop().create_future()     # the message is pending
        pusher.push(_Window(), fallback=lambda: None)
        await asyncio.sleep(_delivery.STILL_AFTER_S + 0.05)
        assert d.pushed == [(PREVIEW_RATIO, PREVIEW_QUALITY)]
        server.network_completion.set_result(None)                                  # written
        await asyncio.sleep(0.02)
        assert d.pushed[1:] == [(1, 95)] and pusher.stills == 1
        server.network_completion = asyncio.get_running_loop().create_future()     # never written
        pusher.push(_Window(), fallback=lambda: None)
        await asyncio.sleep(_delivery.STILL_AFTER_S + _delivery.SENT_WAIT_S + 0.05)
        assert pusher.stills == 2
    asyncio.run(run())


def test_while_the_user_drags_or_without_a_loop_trame_pushes_as_before():
    pusher, d = _pusher()
    calls = []
    pusher.push(_Window(), fallback=lambda: calls.append("no loop"))
    assert calls == ["no loop"] and d.pushed == []

    async def run():
        d.views_in_animations.append("1")         # a drag: trame sends its own half-size frames
        pusher.push(_Window(), fallback=lambda: calls.append("dragging"))
        d.views_in_animations.clear()
        pusher.delivery = None                    # the page has not subscribed yet
        pusher.push(_Window(), fallback=lambda: calls.append("no delivery"))
    asyncio.run(run())
    assert calls == ["no loop", "dragging", "no delivery"] and d.pushed == []


def test_a_push_waits_for_the_encoder_instead_of_sending_the_old_frame():
    d = _Delivery()
    _delivery._wait_for_encoder(d)
    reply = d.still_render({"view": "1", "quality": 95})
    assert reply["image"] == b"new frame" and reply["stale"] is False and reply["mtime"] == 7
    d.app = _App(encode_polls=10 ** 9)            # an encoder that never finishes: trame's timer takes over
    reply = d.still_render({"view": "1", "quality": 95})
    assert reply["image"] == b"old frame" and reply["stale"] is True


def test_small_frames_are_rendered_without_multisampling_and_the_still_frame_with_it():
    d = _Delivery()
    d.tracking_views["1"]["originalSize"] = [670, 836]
    _delivery._wait_for_encoder(d)
    d.still_render({"view": "1", "quality": 70, "size": [335, 418]})       # a half-size answer or drag frame
    assert d.rendered_samples == _delivery.PREVIEW_SAMPLES == 0
    assert _Window.samples == 4                   # put back at once: a PNG export renders with it
    d.still_render({"view": "1", "quality": 95, "size": [670, 836]})       # the still frame
    assert d.rendered_samples == 4 and _Window.samples == 4
