"""The page: toolbar, drawer of panels, 3D view beside the latent map, error snackbar."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from trame.ui.vuetify3 import SinglePageWithDrawerLayout
from trame.widgets import html
from trame.widgets import plotly as plotly_widgets
from trame.widgets import vtk as vtk_widgets
from trame.widgets import vuetify3 as v3

from molviz.app.ui.panels import (
    ChannelsPanel,
    DisplayPanel,
    EncodePanel,
    InterpolationPanel,
    LatentMapPanel,
)
from molviz.app.ui.tips import tip
from molviz.app.ui.view_controls import FirstRunHelp, SliceControls, ViewOverlays
from molviz.view.slices import COLORMAPS

HELP = (
    "Pick a model and a molecule in the toolbar (type a name or a SMILES). The 3D view shows each channel's "
    "isosurface; drag to turn it, scroll to zoom; the axis button gives reset, front, side, top and fit; the "
    "picture button sets the PNG's size, supersampling and background, the camera button downloads it.",
    "Resolution: 32 to 256 voxels per axis, or 'custom' (type a number, then Enter). A coarse picture comes first; "
    "the refined one follows (its percentage; the cross stops it). The PSNR chip compares with the ground truth "
    "(from a voxel sample above 64^3).",
    "Channels: tick to show, drag or type a level (absolute, fraction of max, % voxels enclosed, or sigma above "
    "the mean), colour and opacity. Display: atoms (true, found in the decoded field, or both), outline, clip "
    "plane; 'side by side': the decoded volume and its ground truth in two views that turn together (an "
    "interpolation frame beside the nearest stored item); a slice plane colours one channel's values (value bar "
    "at the right; move it with its slider).",
    "Interpolation: choose A and B (or click the map in 'click: A, B' mode), move t or play; export a GIF or MP4 "
    "with a title. 'item' in the toolbar goes back to the molecule.",
    "Latent map: each point is a molecule; hover for its drawing, click to show it; search by name, by SMILES "
    "(the same molecule) or by a substructure (SMILES or SMARTS).",
    "Encode a molecule: type a SMILES, Enter: it is encoded, placed on the map, and its nearest items listed.",
)


@dataclass
class Page:
    """What :func:`build_layout` made: the layout, and the widgets the app updates later."""

    layout: Any
    view: Any            # the 3D view (VtkRemoteLocalView)
    figure: Any          # the latent map's plotly figure


def build_layout(server, *, render_window, max_channels: int, resolutions: Sequence[str],
                 on_map_click: Callable, on_map_hover: Callable, on_map_select: Callable,
                 picture_sizes: Sequence[str] = ("view",)) -> Page:
    """Compose the panels into the page. Binds only state keys and controller names (``server.controller``:
    reset_camera, encode_smiles, ...), so it needs no app object; returns the widgets the app drives."""
    ctrl = server.controller
    made: dict[str, Any] = {}
    with SinglePageWithDrawerLayout(server, width=380, full_height=True) as layout:
        layout.title.set_text("molviz")
        with layout.toolbar.clear():
            v3.VAppBarNavIcon(click="main_drawer = !main_drawer", title="show or hide the panels")
            v3.VToolbarTitle("molviz", classes="flex-grow-0 mr-4")
            # the selectors keep their width (flex: none); only the caption chip shrinks, with an ellipsis
            with tip("the model bundle: a trained network and its stored molecules"):
                v3.VSelect(label="model", v_model=("model_index",), items=("model_options",), density="compact",
                           hide_details=True, style="flex: none; width: 170px;", classes="mr-2",
                           raw_attrs=['data-testid="model"'])
            v3.VBtn(icon="mdi-refresh", size="x-small", variant="text", click=ctrl.refresh_models,
                    style="flex: none;", classes="mr-1",
                    title="look again for model bundles (ones trained since the app started)",
                    raw_attrs=['data-testid="refresh-models"'])
            with v3.VAutocomplete(label="molecule (name or SMILES)", v_model=("item_index",), items=("item_options",),
                                  density="compact", hide_details=True, style="flex: none; width: 300px;",
                                  classes="mr-2", raw_attrs=['data-testid="item"'],
                                  title="the stored molecule to show: type part of its name, id or SMILES"):
                # picking the item already chosen (say, after scrubbing an interpolation) shows it again:
                # the v-model does not change then, so the click itself says "show the item"
                with v3.Template(v_slot_item="{ props }"):
                    v3.VListItem(v_bind="props", click="view_source = 'item'")
            with tip("voxels per axis of the decoded volume (a coarse picture comes first)"):
                v3.VSelect(label="resolution", v_model=("resolution_choice",),
                           items=("resolution_options", list(resolutions)), density="compact",
                           hide_details=True, style="flex: none; width: 120px;", raw_attrs=['data-testid="resolution"'])
            # typed freely; the server sees the number only when the user commits it (Enter or leaving the field)
            v3.VTextField(v_show=("resolution_choice === 'custom'",), v_model_number=("resolution_typed",),
                          type="number", label="voxels", density="compact", hide_details=True,
                          style="flex: none; width: 90px;", classes="ml-1",
                          keyup_enter="resolution_custom = resolution_typed",
                          blur="resolution_custom = resolution_typed",
                          __events=[("keyup_enter", "keyup.enter"), "blur"],
                          title="type voxels per axis, then Enter", raw_attrs=['data-testid="resolution-custom"'])
            v3.VBtn("item", prepend_icon="mdi-keyboard-return", v_show=("view_source !== 'item'",), size="small",
                    variant="tonal", classes="ml-1", click="view_source = 'item'",
                    title="back to the chosen item", raw_attrs=['data-testid="back-to-item"'])
            v3.VChip("{{ psnr_text }}", v_show=("psnr_text",), classes="ml-2", size="small", color="primary",
                     variant="tonal", style="flex: none;", raw_attrs=['data-testid="psnr"'],
                     title="peak signal-to-noise ratio of the decoded volume against the ground truth (Eq. 1)")
            with v3.VChip(classes="ml-2", size="small", variant="outlined", title=("view_caption",),
                          style="flex: 0 1 auto; min-width: 40px; max-width: 100%; overflow: hidden;",
                          raw_attrs=['data-testid="caption"']):
                html.Span("{{ view_caption }}", classes="text-truncate", style="display: block; min-width: 0;")
            v3.VSpacer()
            with html.Div(v_if=("encoding",), classes="d-flex align-center mr-2", style="flex: none;",
                          raw_attrs=['data-testid="encode-progress"']):
                v3.VProgressCircular(model_value=("encode_progress",), size=22, width=3, color="secondary",
                                     classes="mr-1", title="encoding the typed molecule")
                html.Div("{{ encode_stage }}", classes="text-caption mr-1 text-truncate", style="max-width: 220px;",
                         title=("encode_stage",))
                v3.VBtn(icon="mdi-close-circle", size="x-small", variant="text", click=ctrl.cancel_encode,
                        title="cancel the encoding", raw_attrs=['data-testid="cancel-encode"'])
            # a refinement shows its percentage: chunks decoded of those expected (molviz.app._views)
            v3.VProgressCircular(v_show=("busy",), indeterminate=("!refine_progress",), model_value=("refine_progress",),
                                 size=22, width=3, color="primary", classes="mr-2", style="flex: none;",
                                 raw_attrs=['data-testid="busy"'])
            html.Div("{{ busy_text }}{{ refine_progress ? ' \u00b7 ' + refine_progress + '%' : '' }}",
                     v_show=("busy",), classes="text-caption mr-1 text-truncate",
                     style="flex: 0 1 auto; max-width: 180px;", title=("busy_text",),
                     raw_attrs=['data-testid="busy-text"'])
            v3.VBtn(icon="mdi-close-circle", v_show=("busy",), size="x-small", variant="text", classes="mr-2",
                    click=ctrl.cancel_view, title="stop this decode (the picture stays as it is)",
                    style="flex: none;", raw_attrs=['data-testid="cancel-view"'])
            # camera and picture settings each in one menu: the toolbar keeps room for the caption (issue 20)
            with v3.VMenu(location="bottom"):
                with v3.Template(v_slot_activator="{ props }"):
                    v3.VBtn(icon="mdi-axis-arrow", v_bind="props", size="small", style="flex: none;",
                            title="camera: reset, front, side, top, fit", raw_attrs=['data-testid="camera-presets"'])
                with v3.VList(density="compact"):
                    v3.VListItem(title="reset", click=ctrl.reset_camera, prepend_icon="mdi-crop-free",
                                 raw_attrs=['data-testid="camera-reset"'])
                    for preset in ("front", "side", "top", "fit"):
                        v3.VListItem(title=preset, click=(ctrl.camera_preset, f"['{preset}']"),
                                     raw_attrs=[f'data-testid="camera-{preset}"'])
            with v3.VMenu(location="bottom", close_on_content_click=False):
                with v3.Template(v_slot_activator="{ props }"):
                    v3.VBtn(icon="mdi-image-size-select-large", v_bind="props", size="small", style="flex: none;",
                            title="PNG size, supersampling and background", raw_attrs=['data-testid="png-options"'])
                with v3.VCard(classes="pa-2", style="width: 240px;"):
                    with tip("'view': the view's size times the supersampling"):
                        v3.VSelect(label="PNG size (pixels)", v_model=("screenshot_size",),
                                   items=("picture_sizes", list(picture_sizes)), density="compact", hide_details=True,
                                   raw_attrs=['data-testid="png-size"'])
                    with tip("renders the picture this many times larger in each direction"):
                        v3.VSelect(v_model=("screenshot_scale",), items=("[1, 2, 3, 4]",), density="compact",
                                   hide_details=True, label="supersampling (x)", classes="mt-2",
                                   raw_attrs=['data-testid="png-scale"'])
                    with tip("a PNG with an alpha channel"):
                        v3.VCheckbox(label="transparent background", v_model=("screenshot_transparent",),
                                     density="compact", hide_details=True,
                                     raw_attrs=['data-testid="png-transparent"'])
            v3.VBtn(icon="mdi-help-circle-outline", size="small", title="how to use molviz", click="help_show = true",
                    style="flex: none;", raw_attrs=['data-testid="help"'])
            v3.VBtn(icon="mdi-camera", size="small", title="PNG screenshot",
                    click="utils.download('molviz.png', trigger('screenshot_png'), 'image/png')",
                    raw_attrs=['data-testid="screenshot"'])
        with layout.drawer:
            FirstRunHelp()
            with v3.VExpansionPanels(multiple=True, v_model=("open_panels", [0, 1]), variant="accordion"):
                with v3.VExpansionPanel(title="Channels"):
                    with v3.VExpansionPanelText():
                        ChannelsPanel(max_channels)
                with v3.VExpansionPanel(title="Display"):
                    with v3.VExpansionPanelText():
                        DisplayPanel(atoms="show_atoms", outline="show_outline", clip_axis="clip_axis",
                                     clip_position="clip_position", compare="compare", view_mode="view_mode")
                        SliceControls()
                with v3.VExpansionPanel(title="Interpolation"):
                    with v3.VExpansionPanelText():
                        InterpolationPanel(
                            a="endpoint_a", b="endpoint_b", options="endpoint_options", mode="interp_mode",
                            t="interp_t", playing="playing", loop="loop", round_trip="round_trip", fps="fps",
                            export_format="export_format", export_size="export_size",
                            export_frames="export_frames", export_fps="export_fps", export_orbit="export_orbit",
                            export_title="export_title",
                            exporting="exporting", export_progress="export_progress",
                            ctrl_export="utils.download('molviz-interpolation.' + export_format, "
                                        "trigger('export_movie', "
                                        "[export_format, export_size, export_frames, export_fps, export_orbit, "
                                        "round_trip, export_title]), "
                                        "export_format === 'gif' ? 'image/gif' : 'video/mp4')")
                with v3.VExpansionPanel(title="Encode a molecule"):
                    with v3.VExpansionPanelText():
                        EncodePanel(smiles="smiles", neighbours="neighbours", placement="placement_text",
                                    ctrl_encode=ctrl.encode_smiles, ctrl_use_a=ctrl.encoded_as_a,
                                    ctrl_use_b=ctrl.encoded_as_b, ctrl_view=ctrl.show_encoded,
                                    ctrl_item_neighbours=ctrl.item_neighbours,
                                    has_encoded="has_encoded")
        with layout.content:
            with html.Div(style="display: flex; height: calc(100vh - 64px); width: 100%;"):
                with html.Div(style="flex: 3 1 0; position: relative; min-width: 0;",
                              raw_attrs=['data-testid="view3d"']):
                    view = vtk_widgets.VtkRemoteLocalView(
                        render_window, namespace="view", mode=("view_mode", "remote"),
                        # drags render half-size frames: a camera move answers within ~200 ms on a
                        # loaded 2-core CPU while a decode runs (issue 20); the still frame is full size
                        interactive_ratio=0.5, interactive_quality=70, still_quality=95,
                    )
                    ViewOverlays(colors=COLORMAPS["viridis"])
                    ctrl.view_update_image = view.update_image
                    ctrl.view_update_geometry = view.update_geometry
                    ctrl.view_reset_camera = view.reset_camera
                with html.Div(style="flex: 2 1 0; min-width: 0; border-left: 1px solid #ddd;",
                              raw_attrs=['data-testid="latent-map"']):
                    LatentMapPanel(lambda: made.setdefault("figure", _figure(on_map_click, on_map_hover,
                                                                            on_map_select)),
                                   color_by="map_color_by", color_options="map_color_options",
                                   pick_mode="map_pick_mode", source="map_source", hover_svg="hover_svg",
                                   hover_text="hover_text", search="map_search", load="map_load",
                                   ctrl_clear_selection=ctrl.clear_map_selection, style="height: 100%;")
            with v3.VDialog(v_model=("help_show", False), max_width=620):
                with v3.VCard(title="molviz: how to use it", raw_attrs=['data-testid="help-dialog"']):
                    with v3.VCardText():
                        for line in HELP:
                            html.Div(line, classes="mb-2")
                    with v3.VCardActions():
                        v3.VSpacer()
                        v3.VBtn("close", click="help_show = false")
            v3.VSnackbar("{{ error_text }}", v_model=("error_show",), timeout=8000, color="error",
                         location="top", multi_line=True, raw_attrs=['data-testid="error"'])
    server.state.trame__title = "molviz"
    return Page(layout=layout, view=view, figure=made.get("figure"))


# only plain numbers leave the browser: plotly's event objects hold functions and cycles
_POINTS = ("{points: ($event.points || []).map(p => ({curveNumber: p.curveNumber, pointIndex: p.pointIndex, "
           "customdata: p.customdata}))}")


# a selection sends only the indices of the items' trace (curve 0): 93k points stay a small message
_SELECTED = "[($event && $event.points || []).filter(p => p.curveNumber === 0).map(p => p.pointIndex)]"


def _figure(on_click: Callable, on_hover: Callable, on_select: Callable):
    fig = plotly_widgets.Figure(
        state_variable_name="map_figure", display_mode_bar=("true",), display_logo=False, responsive=True,
        click=(on_click, f"[{_POINTS}]"),
        hover=(on_hover, f"[{_POINTS}]"),
        selected=(on_select, _SELECTED),
        deselect=(on_select, "[[]]"),
        unhover="hover_svg = ''; hover_text = ''",
        style="height: 100%; width: 100%;",
    )
    # the items' trace and the overlays are two state keys: a new ring or path leaves the
    # (possibly 93k-point) items trace untouched, so plotly does not redraw it
    fig.data = ("map_items.concat(map_figure.data)",)
    return fig


__all__ = ["Page", "build_layout"]
