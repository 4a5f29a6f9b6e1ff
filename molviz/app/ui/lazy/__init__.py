"""``<molviz-lazy>``: a trame widget whose module script loads after the page has mounted.

trame loads every module's scripts before it mounts the page. plotly.js alone
(trame-plotly, 4.6 MB) takes seconds to evaluate on a 2-core machine, which
would delay the 3D view's first picture. :func:`make_lazy` turns a built widget
into a ``<molviz-lazy>`` stand-in (same attributes and events) and takes its
module's script and Vue plugin out of the start-up lists (the files stay
served). In the browser the stand-in loads them once its ``ready`` expression
is true and ``delay_ms`` more have passed, then renders the real component.
"""
from __future__ import annotations

from pathlib import Path

SERVE_PATH = "__molviz_lazy"
module = {
    "serve": {SERVE_PATH: str(Path(__file__).resolve().parent)},
    "scripts": [f"{SERVE_PATH}/molviz-lazy.js"],
    "vue_use": ["molviz_lazy"],
}


def defer_module(server, widget_module) -> tuple[str, str]:
    """Keep ``widget_module`` (already enabled) from loading at start; return (script URL, plugin name).

    It must hold exactly one script and one plain Vue plugin (as trame-plotly's does).
    """
    scripts, plugins = list(widget_module.scripts), list(widget_module.vue_use)
    if len(scripts) != 1 or len(plugins) != 1 or not isinstance(plugins[0], str):
        raise ValueError(f"defer_module needs one script and one plain Vue plugin, not {scripts} / {plugins}")
    server.enable_module(module)
    state = server.state
    state.trame__scripts = [s for s in state.trame__scripts if s != scripts[0]]
    state.trame__vue_use = [u for u in state.trame__vue_use
                            if (u[0] if isinstance(u, (list, tuple)) else u) != plugins[0]]
    return scripts[0], plugins[0]


def make_lazy(widget, widget_module, *, ready: str, delay_ms: int = 0):
    """Render ``widget`` (of ``widget_module``) through ``<molviz-lazy>``; ``ready`` is a JS expression."""
    src, plugin = defer_module(widget.server, widget_module)
    component = widget._elem_name
    widget._elem_name = "molviz-lazy"
    widget._attributes["_molviz_lazy"] = (f'component="{component}" src="{src}" plugin="{plugin}" '
                                          f':ready="{ready}" :delay="{int(delay_ms)}"')
    return widget


__all__ = ["defer_module", "make_lazy", "module"]
