"""The remote 3D view's pictures: each push carries the frame just rendered, and a change answers with a
half-size frame first (issue 20: toggles, panel changes and slice moves within 200 ms while a decode runs).

Two things made a change's picture late, measured in chromium with a 128^3 decode running (2-core CPU):

- trame-vtk renders on the event loop and hands the frame to VTK's threaded JPEG encoder
  (``vtkWebApplication.StillRenderToBuffer``), then sends what the encoder has *finished*: the previous
  frame, or nothing. The new frame followed when a timer fired half a second later
  (``vtkWebPublishImageDelivery.delta_stale_time_before_render``). :class:`ImagePusher` waits for the
  encoder instead: 5-15 ms for a 671 x 836 JPEG.
- A still frame (full size, 4x multisampled, translucent surfaces) takes llvmpipe 100-120 ms on an idle
  2-core CPU and 200-500 ms beside a decode. A camera drag already answers with half-size frames
  (``interactive_ratio``); :meth:`ImagePusher.push` does the same for changes made on the server side:
  a half-size frame at once, the still frame just after it (latest wins: a quick series of changes
  renders one still frame).
- Most of a frame's cost on llvmpipe is its 4x multisampling: beside other jobs (load 3.4) a half-size
  frame took 51 ms with it and 25 ms without, the full-size one 140 ms and 60 ms. The small frames (the
  half-size answers and a drag's frames) are rendered without it (:data:`PREVIEW_SAMPLES`); the still
  frame that follows, and every PNG, keep the view's 4. Switching costs nothing measurable.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time

log = logging.getLogger("molviz.app")

ENCODE_WAIT_S = 0.25               # longest wait for the encoder; past it trame's half-second timer takes over
POLL_S = 0.001
PREVIEW_RATIO = 0.5                # the answer's size, as the camera drag's frames (layout: interactive_ratio)
PREVIEW_QUALITY = 70               # its JPEG quality (interactive_quality)
STILL_AFTER_S = 0.03               # the still frame follows once the preview has left the event loop
SENT_WAIT_S = 0.25                 # longest wait for the preview's message to be written to the socket
PREVIEW_SAMPLES = 0                # multisamples of the small frames (the still frame keeps the view's 4)


class ImagePusher:
    """Pushes the remote view's pictures through trame-vtk's image delivery (see the module's text).

    Parameters
    ----------
    server : trame server
        Create after the remote view is built: trame-vtk registers its protocols first, and
        :meth:`_configure` finds its image delivery among them when the server starts.

    Examples
    --------
    >>> pusher = ImagePusher(app.server)                        # doctest: +SKIP
    >>> pusher.push(render_window, fallback=view.update_image)  # doctest: +SKIP
    """

    def __init__(self, server) -> None:
        self.delivery = None
        self.server = server
        self._still: asyncio.Task | None = None
        self.previews = 0                                         # counts, for tests and benches
        self.stills = 0
        server.add_protocol_to_configure(self._configure)

    def _configure(self, protocol) -> None:
        try:
            from trame_vtk.modules.vtk.protocols import vtkWebPublishImageDelivery
        except ImportError:                      # pragma: no cover - trame-vtk without its VTK protocols
            return
        for link in protocol.getLinkProtocols():
            if isinstance(link, vtkWebPublishImageDelivery) and not getattr(link, "_molviz_fresh", False):
                _wait_for_encoder(link)
                self.delivery = link

    def push(self, render_window, *, fallback) -> None:
        """Send the view's new picture: a half-size frame now and the still frame right after, or, while
        the user drags (trame sends half-size frames then) or before the page has subscribed,
        ``fallback()`` (trame's own push)."""
        d = self.delivery
        vid = str(d.get_global_id(render_window)) if d is not None else ""
        info = d.tracking_views.get(vid) if d is not None else None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if info is None or loop is None or d.views_in_animations or float(info.get("ratio", 1)) < 1:
            fallback()
            return
        render_window.GetInteractor().EnableRenderOff()           # as trame's push: no render from the interactor
        ratio, quality = info.get("ratio", 1), info.get("quality", 100)
        info["ratio"], info["quality"] = PREVIEW_RATIO, PREVIEW_QUALITY
        try:
            d.app.InvalidateCache(render_window)
            d.push_render(vid)
        finally:
            info["ratio"], info["quality"] = ratio, quality
        self.previews += 1
        if self._still is not None:
            self._still.cancel()
        self._still = loop.create_task(self._still_after_preview(render_window, vid))

    async def _still_after_preview(self, render_window, vid: str) -> None:
        """The still frame blocks the event loop while llvmpipe renders it (150-350 ms beside other jobs): start
        it only once the preview's message has been written (wslink sends it from a task of its own, which a
        fixed 30 ms did not always leave time for under load, and the preview then reached the page after
        the still frame's render)."""
        await asyncio.sleep(STILL_AFTER_S)
        sent = getattr(self.server, "network_completion", None)
        if sent is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(sent, SENT_WAIT_S)
        self._still = None
        self._push_still(render_window, vid)

    def _push_still(self, render_window, vid: str) -> None:
        d = self.delivery
        if d is None or vid not in d.tracking_views or d.views_in_animations:
            return                                                # a drag's own frames took over
        d.app.InvalidateCache(render_window)
        d.push_render(vid)
        self.stills += 1


def _wait_for_encoder(delivery) -> None:
    """Make ``delivery.still_render`` return the frame it rendered: wait for VTK's encoder (bounded by
    :data:`ENCODE_WAIT_S`) rather than send the previous frame and the new one half a second later."""
    still_render = delivery.still_render

    def fresh_still_render(options):
        view = delivery.get_view(options["view"])
        samples = view.GetMultiSamples()
        cheap = samples != PREVIEW_SAMPLES and _smaller_than_view(delivery, options)
        if cheap:                                # a preview or a drag's frame: no multisampling
            view.SetMultiSamples(PREVIEW_SAMPLES)
        try:
            return _fresh(options)
        finally:
            if cheap:                            # the still frame and the PNG export multisample again
                view.SetMultiSamples(samples)

    def _fresh(options):
        reply = still_render(options)
        if not reply.get("stale"):
            return reply
        view = delivery.get_view(options["view"])
        app = delivery.app
        quality = options.get("quality", 100)
        deadline = time.perf_counter() + ENCODE_WAIT_S
        image = None
        while app.GetHasImagesBeingProcessed(view) and time.perf_counter() < deadline:
            time.sleep(POLL_S)                   # releases the GIL; VTK's encoder threads need no Python
            image = app.StillRenderToBuffer(view, 0, quality)    # no new render: the encoder's latest output
        if image is None or app.GetHasImagesBeingProcessed(view):
            return reply                         # still encoding: trame's timer sends it later
        reply["image"] = memoryview(image).tobytes()
        reply["mtime"] = app.GetLastStillRenderToMTime()
        reply["memsize"] = len(reply["image"])
        reply["stale"] = False
        return reply

    delivery.still_render = fresh_still_render
    delivery._molviz_fresh = True


def _smaller_than_view(delivery, options) -> bool:
    """The frame asked for is smaller than the view (trame's ``ratio`` below 1): a half-size answer or a
    drag's frame, not the still frame."""
    full = delivery.tracking_views.get(str(options.get("view")), {}).get("originalSize")
    size = options.get("size")
    return bool(full and size) and int(size[0]) < int(full[0])


__all__ = ["ENCODE_WAIT_S", "PREVIEW_QUALITY", "PREVIEW_RATIO", "ImagePusher"]
