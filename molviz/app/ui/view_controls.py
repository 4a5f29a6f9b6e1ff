"""Controls of the 3D view's extras: the slice plane (in the Display panel), and the first-run help. Bind
state keys only; the reactions are :class:`molviz.app._views.ViewExtras`' ``@change`` methods."""
from __future__ import annotations

from trame.widgets import client, html
from trame.widgets import vuetify3 as v3

from molviz.app.ui.tips import tip

HELP_SEEN = "molviz-help-seen"      # localStorage key: the first-run help was dismissed in this browser
FIRST_RUN = (
    ("mdi-tune-variant", "Left, these panels: what the view draws (channels, display, slice), interpolation "
                         "between two molecules, and encoding a typed SMILES."),
    ("mdi-rotate-3d-variant", "Middle, the 3D view: drag to turn, scroll to zoom; the axis button has presets."),
    ("mdi-scatter-plot", "Right, the latent map: each point is a stored molecule; hover to see it, click to "
                         "show it, search by name or SMILES."),
)


class ViewOverlays(html.Div):
    """Over the 3D view while the browser renders it (vtk.js draws no VTK text): each viewport's label, the
    line between two viewports, and the slice's value bar. Server-side pictures carry their own."""

    def __init__(self, *, mode: str = "view_mode", labels: str = "view_labels", bar: str = "slice_bar",
                 colors: tuple[str, ...] = (), **kwargs) -> None:
        super().__init__(v_if=(f"{mode} === 'local'",), style="position: absolute; inset: 0; pointer-events: none;",
                         raw_attrs=['data-testid="view-overlays"'], **kwargs)
        gradient = f"linear-gradient(to top, {', '.join(colors)})"
        with self:
            with html.Div(v_if=(f"{labels}.length > 1",)):
                html.Div(style="position: absolute; left: 50%; top: 0; bottom: 0; border-left: 2px solid #bbb;")
                html.Div(f"{{{{ {labels}[0] }}}}", classes="text-subtitle-1 font-weight-bold",
                         style="position: absolute; left: 1.5%; top: 6px; max-width: 47%; overflow: hidden; "
                               "text-overflow: ellipsis; white-space: nowrap;")
                html.Div(f"{{{{ {labels}[1] }}}}", classes="text-subtitle-1 font-weight-bold",
                         style="position: absolute; left: 51.5%; top: 6px; max-width: 47%; overflow: hidden; "
                               "text-overflow: ellipsis; white-space: nowrap;")
            with html.Div(v_if=(bar,), classes="text-caption",
                          style="position: absolute; right: 14px; top: 15%; height: 60%; width: 64px;"):
                html.Div(f"{{{{ {bar}.title }}}}", classes="font-weight-bold", style="height: 20px;")
                html.Div(style=f"position: absolute; top: 22px; bottom: 0; left: 0; width: 16px; background: {gradient};")
                html.Div(f"{{{{ {bar}.hi.toFixed(2) }}}}", style="position: absolute; top: 16px; left: 22px;")
                html.Div(f"{{{{ {bar}.lo.toFixed(2) }}}}", style="position: absolute; bottom: -6px; left: 22px;")


class FirstRunHelp(html.Div):
    """What the three areas of the page do, shown on a browser's first visit until dismissed ("got it" is
    remembered in the browser's localStorage); "more help" opens the help dialog. Not modal: nothing waits
    for it."""

    def __init__(self, *, show: str = "help_first", dialog: str = "help_show", **kwargs) -> None:
        super().__init__(**kwargs)
        with self:
            client.ClientTriggers(mounted=f"{show} = !utils.get('localStorage').getItem('{HELP_SEEN}')")
            with v3.VAlert(v_if=(show,), type="info", variant="tonal", density="compact", classes="ma-2",
                           title="New to molviz? The page has three areas", raw_attrs=['data-testid="first-run"']):
                for icon, line in FIRST_RUN:
                    with html.Div(classes="d-flex text-body-2 mt-1"):
                        v3.VIcon(icon, size="small", classes="mr-2 mt-1")
                        html.Div(line)
                with html.Div(classes="d-flex mt-2"):
                    v3.VBtn("more help", size="small", variant="text", click=f"{dialog} = true",
                            title="how to use molviz, in six points", raw_attrs=['data-testid="first-run-more"'])
                    v3.VSpacer()
                    v3.VBtn("got it", size="small", variant="flat", color="info",
                            click=f"utils.get('localStorage').setItem('{HELP_SEEN}', '1'); {show} = false",
                            title="hide this note (this browser remembers it)",
                            raw_attrs=['data-testid="first-run-done"'])


class SliceControls(html.Div):
    """Slice plane: on/off, the channel, the axis and the position along it, and what it shows."""

    def __init__(self, *, on: str = "slice_on", channel: str = "slice_channel", axis: str = "slice_axis",
                 position: str = "slice_position", text: str = "slice_text", names: str = "channel_names",
                 **kwargs) -> None:
        super().__init__(classes="mt-2", **kwargs)
        with self:
            with html.Div(classes="d-flex align-center"):
                with tip("a plane through the volume coloured by one channel's values (viridis), "
                                 "with its value bar"):
                    v3.VSwitch(label="slice plane", v_model=(on,), density="compact", hide_details=True, color="primary",
                               classes="flex-grow-0 mr-2", raw_attrs=['data-testid="slice-on"'])
                with tip("the channel whose values the slice shows"):
                    v3.VSelect(label="channel", v_model=(channel,), density="compact", hide_details=True,
                               items=(f"{names}.map((n, i) => ({{title: n, value: i}}))",), disabled=(f"!{on}",),
                               style="max-width: 150px;", raw_attrs=['data-testid="slice-channel"'])
            with html.Div(classes="d-flex align-center"):
                with v3.VBtnToggle(v_model=(axis,), mandatory=True, density="compact", variant="outlined",
                                   divided=True, disabled=(f"!{on}",), classes="mr-2",
                                   raw_attrs=['data-testid="slice-axis"']):
                    for a in "xyz":
                        v3.VBtn(a, value=a, size="small", title=f"the slice across the {a} axis",
                                raw_attrs=[f'data-testid="slice-axis-{a}"'])
                with tip("where the slice lies along its axis: 0 at the box's first voxel, 1 at its last"):
                    v3.VSlider(v_model=(position,), min=0.0, max=1.0, step=0.01, density="compact", hide_details=True,
                               thumb_label=True, disabled=(f"!{on}",), raw_attrs=['data-testid="slice-position"'])
            html.Div(f"{{{{ {text} }}}}", v_show=(f"{on} && {text}",), classes="text-caption",
                     raw_attrs=['data-testid="slice-text"'])


__all__ = ["FIRST_RUN", "FirstRunHelp", "HELP_SEEN", "SliceControls", "ViewOverlays"]
