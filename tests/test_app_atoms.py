"""Atoms on an interpolation frame (issue 19): by default ("auto") the frame shows the atoms its own decoded
field implies once it settles, not the two ends' atoms fading into each other. Without a browser: the
app's worker lanes run inline without an event loop, on the shipped FreeSolv network."""
from __future__ import annotations

import uuid

import pytest
from app_bundles import SHIPPED

pytest.importorskip("trame")
pytestmark = pytest.mark.slow

if not (SHIPPED / "bundle.json").is_file():
    pytest.skip("the shipped FreeSolv bundle is not here", allow_module_level=True)


def test_an_interpolation_frame_shows_its_own_atoms_by_default():
    from trame.app import get_server

    from molviz.app import MolvizApp

    server = get_server(f"molviz-atoms-{uuid.uuid4().hex[:8]}", client_type="vue3")
    app = MolvizApp(server, bundle=SHIPPED, window_size=(320, 240))
    app.state.ready()
    app.on_server_ready()
    assert app.state.atoms_source == "auto" and app._atoms_shown() == "true"      # a stored item: its atoms

    def visible(tag: str) -> list[str]:
        return [n for n, a in app.scene._actors.items() if n.split(":")[1] == "atoms" and tag in n
                and a.GetVisibility()]

    assert visible("") and not visible(":field")
    for k, v in dict(endpoint_a=1, endpoint_b=14, resolution_choice="32").items():
        app.state[k] = v
    app.state.flush()
    app.state.view_source = "interpolation"
    app.state.interp_t = 0.5
    app.state.flush()
    assert app.current.extra.get("t") == pytest.approx(0.5)
    assert app._atoms_shown() == "field", app.state.atoms_text
    assert "this frame's own atoms" in app.state.atoms_text
    assert visible(":field")
    assert not [n for n in visible("") if ":field" not in n]                  # no cross-fade drawn
    app.state.atoms_source = "true"                                           # the fade, on request
    app.state.flush()
    assert app._atoms_shown() == "true" and not visible(":field") and visible("")
