"""Tooltips that show over the whole control.

Vuetify 3 hands a field's ``title`` to its ``<input>``: over a select's text, a switch's or a checkbox's
label no tooltip shows, and a slider drops the attribute. :func:`tip` puts the title on a wrapper that
takes no room of its own (``display: contents``), so a hover anywhere on the control finds it.
"""
from __future__ import annotations

from trame.widgets import html


def tip(text: str, **kwargs) -> html.Div:
    """A wrapper whose ``title`` is the tooltip of the controls built inside it (``with tip("..."):``)."""
    return html.Div(title=text, style="display: contents;", **kwargs)


__all__ = ["tip"]
