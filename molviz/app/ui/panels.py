"""Small UI panels. Each takes the names of the state keys it binds and nothing else.

The panels only bind state and call triggers; every reaction lives in
:class:`molviz.app.MolvizApp` (``@change`` methods).
"""
from __future__ import annotations

from trame.widgets import html
from trame.widgets import vuetify3 as v3

from molviz.app.ui.lazy import make_lazy
from molviz.app.ui.tips import tip
from molviz.view.limits import UPLOAD_SUFFIXES

LEVEL_MODES = [
    {"title": "fraction of max", "value": "fraction"},
    {"title": "% voxels enclosed", "value": "percent"},
    {"title": "absolute", "value": "absolute"},
    {"title": "\u03c3 above the mean", "value": "sigma"},
]


class ChannelCard(v3.VCard):
    """One channel: visible, level (+ mode), colour, opacity, surface or wireframe.

    Parameters
    ----------
    prefix : str
        Prefix of this channel's state keys: ``{prefix}visible``, ``{prefix}level``,
        ``{prefix}mode``, ``{prefix}level_max``, ``{prefix}color``, ``{prefix}opacity``,
        ``{prefix}repr``.
    name_expr : str
        JavaScript expression of the channel's name (e.g. ``"channel_names[3]"``).
    """

    def __init__(self, prefix: str, name_expr: str, **kwargs) -> None:
        super().__init__(variant="outlined", density="compact", classes="mb-2 pa-2", **kwargs)
        p = prefix
        with self:
            with html.Div(classes="d-flex align-center"):
                with tip("show this channel's isosurface"):
                    v3.VCheckbox(v_model=(f"{p}visible",), density="compact", hide_details=True,
                                 classes="flex-grow-0 mr-1", raw_attrs=[f'data-testid="{p}visible"'])
                html.Div(f"{{{{ {name_expr} }}}}", classes="text-subtitle-2 flex-grow-1")
                html.Input(type="color", v_model=(f"{p}color",), title="colour",
                           style="width: 28px; height: 22px; border: none; background: none;")
            with html.Div(classes="d-flex align-center", v_if=(f"{p}visible",)):
                with tip("level"):
                    v3.VSlider(v_model=(f"{p}level",), min=(f"{p}level_min",), max=(f"{p}level_max",),
                               step=(f"{p}level_step",), density="compact", hide_details=True,
                               thumb_label=True, classes="flex-grow-1", raw_attrs=[f'data-testid="{p}level"'])
                # the level typed as a number: sent when committed (Enter or leaving the field), as the slider's
                v3.VTextField(model_value=(f"{p}level",), type="number", density="compact", hide_details=True,
                              variant="plain", style="flex: none; width: 58px;", classes="ml-1",
                              step=(f"{p}level_step",), title="type a level, then Enter",
                              keyup_enter=f"{p}level = Number($event.target.value)",
                              blur=f"{p}level = Number($event.target.value)",
                              __events=[("keyup_enter", "keyup.enter"), "blur"],
                              raw_attrs=[f'data-testid="{p}level-typed"'])
                with tip("how the level reads: absolute value, "
                           "fraction of the maximum, % of voxels enclosed, or standard deviations above the mean"):
                    v3.VSelect(v_model=(f"{p}mode",), items=("level_modes", LEVEL_MODES), density="compact",
                               hide_details=True, variant="plain", style="flex: none; width: 104px;", classes="ml-1",
                               raw_attrs=[f'data-testid="{p}mode"'])
            with html.Div(classes="d-flex align-center", v_if=(f"{p}visible",)):
                with tip("opacity of the surface"):
                    v3.VSlider(v_model=(f"{p}opacity",), min=0.05, max=1.0, step=0.05, density="compact",
                               hide_details=True, label="opacity", classes="flex-grow-1",
                               raw_attrs=[f'data-testid="{p}opacity"'])
                with tip("a closed surface or its wireframe"):
                    v3.VSelect(v_model=(f"{p}repr",), items=("['surface', 'wireframe']",), density="compact",
                               hide_details=True, variant="plain", style="max-width: 130px;", classes="ml-2")


class ChannelsPanel(html.Div):
    """A card per channel; card ``i`` exists while ``n_channels > i``."""

    def __init__(self, max_channels: int, *, count_key: str = "n_channels", names_key: str = "channel_names",
                 prefix: str = "ch{i}_", **kwargs) -> None:
        super().__init__(**kwargs)
        with self:
            html.Div("Channels: isosurface of each; empty channels of this item start hidden.",
                     classes="text-caption mb-1")
            for i in range(max_channels):
                ChannelCard(prefix.format(i=i), f"{names_key}[{i}]", v_if=(f"{count_key} > {i}",))


class DisplayPanel(html.Div):
    """Atoms, outline, clip plane, ground truth vs reconstruction, rendering mode, mesh and map downloads."""

    def __init__(self, *, atoms: str, outline: str, clip_axis: str, clip_position: str, compare: str,
                 view_mode: str, atoms_source: str = "atoms_source", atoms_text: str = "atoms_text",
                 **kwargs) -> None:
        super().__init__(**kwargs)
        with self:
            with tip("the network's reconstruction, the ground truth (Eq. 1), or both in two linked views "
                             "(an interpolation frame beside the nearest stored item)"):
                v3.VSelect(label="show", v_model=(compare,), density="compact", hide_details=True, classes="mb-2",
                           items=("compare_options", [
                               {"title": "reconstruction (network)", "value": "reconstruction"},
                               {"title": "ground truth (Eq. 1)", "value": "truth"},
                               {"title": "side by side", "value": "side_by_side"}]), raw_attrs=['data-testid="compare"'])
            with html.Div(classes="d-flex"):
                with tip("balls and sticks"):
                    v3.VSwitch(label="atoms", v_model=(atoms,), density="compact", hide_details=True, color="primary",
                               raw_attrs=['data-testid="display-atoms"'])
                with tip("the decoded box's edges"):
                    v3.VSwitch(label="outline", v_model=(outline,), density="compact", hide_details=True,
                               color="primary", raw_attrs=['data-testid="display-outline"'])
            with tip("auto: the true atoms, and on an interpolation frame the atoms its own decoded field "
                             "implies (seconds after the frame settles; A fading into B until then); true: the "
                             "stored or typed atoms (an interpolation fades A into B); found: atoms deconvolved "
                             "from the decoded field; both: found ones magenta where no true atom is"):
                v3.VSelect(label="atoms", v_model=(atoms_source,), density="compact", hide_details=True, classes="mb-1",
                           items=("atoms_source_options", [
                               {"title": "auto (frames: found)", "value": "auto"},
                               {"title": "true (stored or typed)", "value": "true"},
                               {"title": "found in the decoded field", "value": "field"},
                               {"title": "both", "value": "both"}]),
                           raw_attrs=['data-testid="display-atoms-source"'])
            html.Div(f"{{{{ {atoms_text} }}}}", v_show=(atoms_text,), classes="text-caption mb-1",
                     raw_attrs=['data-testid="atoms-text"'])
            with html.Div(classes="d-flex align-center"):
                with tip("cut the scene at a plane across this axis (the lower side stays)"):
                    v3.VSelect(label="clip plane", v_model=(clip_axis,), items=("['none', 'x', 'y', 'z']",),
                               density="compact", hide_details=True, style="flex: none; width: 130px;")
                with tip("where the clip plane lies along its axis"):
                    v3.VSlider(v_model=(clip_position,), min=0.0, max=1.0, step=0.02, density="compact",
                               hide_details=True, classes="ml-3", disabled=(f"{clip_axis} === 'none'",))
            with tip("draw the meshes in the browser (WebGL) instead of sending pictures: quick with a graphics "
                     "card in the browser's machine; without one (software WebGL) slower than the server's pictures"):
                v3.VSwitch(label="render in the browser (local, small meshes)", v_model=(view_mode,),
                           true_value="local", false_value="remote", density="compact", hide_details=True,
                           color="primary", raw_attrs=['data-testid="view-mode"'])
            with html.Div(classes="d-flex mt-1"):
                v3.VBtn("surfaces .glb", prepend_icon="mdi-cube-outline", size="small", variant="tonal",
                        title="the meshes on screen as one glTF binary (Blender, three.js, slides)",
                        click="utils.download('molviz-surfaces.glb', trigger('surfaces_glb'), 'model/gltf-binary')",
                        raw_attrs=['data-testid="download-glb"'])
                v3.VBtn("maps .ccp4", prepend_icon="mdi-grid", size="small", variant="tonal", classes="ml-2",
                        title="the visible channels as CCP4 maps in a zip (ChimeraX, PyMOL, Coot)",
                        click="utils.download('molviz-maps.zip', trigger('maps_zip'), 'application/zip')",
                        raw_attrs=['data-testid="download-maps"'])


class InterpolationPanel(html.Div):
    """Endpoints A and B, linear/slerp, the t slider, play controls and movie export."""

    def __init__(self, *, a: str, b: str, options: str, mode: str, t: str, playing: str, loop: str,
                 round_trip: str, fps: str, export_format: str, export_size: str, export_frames: str,
                 export_fps: str, export_orbit: str, exporting: str, export_progress: str, export_title: str,
                 ctrl_export: str, **kwargs) -> None:
        super().__init__(**kwargs)
        with self:
            v3.VAutocomplete(label="A", v_model=(a,), items=(options,), density="compact", hide_details=True,
                             classes="mb-1", raw_attrs=['data-testid="endpoint-a"'],
                             title="the start of the interpolation (t = 0)")
            v3.VAutocomplete(label="B", v_model=(b,), items=(options,), density="compact", hide_details=True,
                             classes="mb-1", raw_attrs=['data-testid="endpoint-b"'],
                             title="the end of the interpolation (t = 1)")
            with v3.VBtnToggle(v_model=(mode,), mandatory=True, density="compact", variant="outlined",
                               divided=True, classes="mb-1"):
                v3.VBtn("linear", value="linear", size="small", title="a straight line between the latents")
                v3.VBtn("slerp", value="slerp", size="small", title="along the great circle (spherical)")
            with tip("where between A (0) and B (1) the view is"):
                v3.VSlider(v_model=(t,), min=0.0, max=1.0, step=0.01, label="t", thumb_label=True,
                           density="compact", hide_details=True, raw_attrs=['data-testid="interp-t"'])
            with html.Div(classes="d-flex align-center flex-wrap"):
                v3.VBtn(icon=(f"{playing} ? 'mdi-pause' : 'mdi-play'",), size="small", variant="tonal",
                        click=f"{playing} = !{playing}", raw_attrs=['data-testid="play"'], title="play or pause t")
                with tip("start again at t = 0"):
                    v3.VCheckbox(label="loop", v_model=(loop,), density="compact", hide_details=True, classes="ml-1")
                with tip("play A to B, then back"):
                    v3.VCheckbox(label="round trip", v_model=(round_trip,), density="compact", hide_details=True)
                v3.VTextField(label="fps", v_model_number=(fps,), type="number", density="compact",
                              hide_details=True, style="max-width: 70px;", title="frames per second while playing")
            html.Div("Export movie", classes="text-subtitle-2 mt-2")
            v3.VTextField(label="title (optional)", v_model=(export_title,), density="compact", hide_details=True,
                          classes="mb-1", raw_attrs=['data-testid="export-title"'],
                          title="drawn on every frame, above the endpoints' names")
            with html.Div(classes="d-flex flex-wrap"):
                with tip("an MP4 (H.264) or an animated GIF"):
                    v3.VSelect(v_model=(export_format,), items=("['gif', 'mp4']",), density="compact",
                               hide_details=True, style="max-width: 104px;", label="format",
                               raw_attrs=['data-testid="export-format"'])
                with tip("frame size in pixels"):
                    v3.VSelect(v_model=(export_size,), items=("export_sizes", ["480p", "720p", "1080p"]),
                               density="compact", hide_details=True, style="max-width: 100px;", label="size",
                               classes="ml-1", raw_attrs=['data-testid="export-size"'])
                v3.VTextField(label="frames", v_model_number=(export_frames,), type="number", density="compact",
                              hide_details=True, style="max-width: 80px;", classes="ml-1",
                              raw_attrs=['data-testid="export-frames"'], title="frames in the movie")
                v3.VTextField(label="fps", v_model_number=(export_fps,), type="number", density="compact",
                              hide_details=True, style="max-width: 64px;", classes="ml-1",
                              title="frames per second; a GIF alternates its 1/100 s delays to play at this rate")
            with tip("turn the camera 60 degrees over the movie"):
                v3.VCheckbox(label="orbit the camera", v_model=(export_orbit,), density="compact", hide_details=True)
            v3.VBtn("export and download", prepend_icon="mdi-movie-open", size="small", color="primary",
                    block=True, disabled=(exporting,), click=ctrl_export, raw_attrs=['data-testid="export"'],
                    title="render the A to B movie on the server and download it")
            v3.VProgressLinear(v_show=(exporting,), model_value=(export_progress,), height=6, color="primary",
                               classes="mt-1")


class EncodePanel(html.Div):
    """Type a SMILES, encode it on the fly, see where it lands and its nearest neighbours."""

    def __init__(self, *, smiles: str, neighbours: str, placement: str, ctrl_encode: str,
                 ctrl_use_a: str, ctrl_use_b: str, ctrl_view: str, has_encoded: str, ctrl_item_neighbours=None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        with self:
            v3.VTextField(label="SMILES (e.g. c1ccccc1O)", v_model=(smiles,), density="compact",
                          hide_details=True, append_inner_icon="mdi-arrow-right-bold",
                          click_append_inner=ctrl_encode, keyup_enter=ctrl_encode, raw_attrs=['data-testid="smiles"'],
                          title="a SMILES to encode, then Enter: it is placed on the map with its nearest items",
                          __events=[("keyup_enter", "keyup.enter"), ("click_append_inner", "click:appendInner")])
            # a structure file: read in the browser, checked there against the upload limit (a larger file
            # is never sent) and again on the server, parsed by the same loaders as a path
            with tip("a structure file from your computer (PDB, mmCIF, SDF, MOL2, XYZ; gzipped too); "
                     "an auto-encoder encodes it, an auto-decoder fits a latent (progress and cancel in "
                     "the toolbar)"):
                v3.VFileInput(label="or a structure file", density="compact", hide_details=True,
                              accept=",".join((*UPLOAD_SUFFIXES, *(f"{x}.gz" for x in UPLOAD_SUFFIXES))),
                              classes="mt-2", prepend_icon="mdi-file-upload-outline", model_value=None,
                              update_modelValue=(
                                  "(f => { f = Array.isArray(f) ? f[0] : f; if (!f) return; "
                                  "if (f.size > upload_max_mb * 1e6) { upload_refused = f.name + ' (' "
                                  "+ (f.size / 1e6).toFixed(1) + ' MB)'; } else { upload_file = f; } })($event)"),
                              raw_attrs=['data-testid="upload"'])
            html.Div("{{ 'up to ' + upload_max_mb + ' MB; the first model, record or frame is encoded' }}",
                     classes="text-caption text-medium-emphasis")
            html.Div(f"{{{{ {placement} }}}}", classes="text-caption mt-1", v_show=(has_encoded,),
                     raw_attrs=['data-testid="placement"'])
            v3.VBtn("neighbours of the item on screen", size="small", variant="tonal", classes="mt-1",
                    prepend_icon="mdi-vector-circle", click=ctrl_item_neighbours,
                    raw_attrs=['data-testid="item-neighbours"'],
                    title="the five stored items nearest in latent space to the one on screen")
            with v3.VList(density="compact", v_show=(f"{neighbours}.length",), classes="py-0",
                          raw_attrs=['data-testid="neighbours"']):
                v3.VListSubheader("{{ neighbours_title || 'nearest items in latent space' }}")
                v3.VListItem(v_for=f"nb in {neighbours}", key="nb.index", title=("nb.title",),
                             subtitle=("nb.subtitle",), click="item_index = nb.index; view_source = 'item'",
                             density="compact")
            with html.Div(classes="d-flex", v_if=(has_encoded,)):
                v3.VBtn("show", size="small", variant="tonal", click=ctrl_view, title="show the encoded molecule")
                v3.VBtn("use as A", size="small", variant="tonal", click=ctrl_use_a, classes="ml-1",
                        title="the encoded molecule as the interpolation's start")
                v3.VBtn("use as B", size="small", variant="tonal", click=ctrl_use_b, classes="ml-1",
                        title="the encoded molecule as the interpolation's end")


class LatentMapPanel(html.Div):
    """The plotly latent map, its colour-by choice, click mode, and the hovered molecule's depiction."""

    def __init__(self, figure_factory, *, color_by: str, color_options: str, pick_mode: str, source: str,
                 hover_svg: str, hover_text: str, search: str, load: str, ctrl_clear_selection=None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        with self:
            with html.Div(classes="d-flex align-center flex-wrap px-2 pt-1"):       # narrow: the toggle wraps
                with tip("the property that colours the points"):
                    v3.VSelect(label="colour by", v_model=(color_by,), items=(color_options,), density="compact",
                               hide_details=True, style="max-width: 260px; min-width: 160px;",
                               raw_attrs=['data-testid="color-by"'])
                with v3.VBtnToggle(v_model=(pick_mode,), mandatory=True, density="compact", variant="outlined",
                                   divided=True, classes="ml-2"):
                    v3.VBtn("click: show", value="view", size="small", title="a click on a point shows that molecule")
                    v3.VBtn("click: A, B", value="endpoints", size="small",
                            title="clicks on points set the interpolation's A, then B")
            with html.Div(classes="d-flex align-center px-2"):
                v3.VTextField(v_model=(search,), label="find on the map (name or SMILES)", density="compact",
                              hide_details=True, clearable=True, prepend_inner_icon="mdi-magnify",
                              raw_attrs=['data-testid="map-search"'],
                              title="a name, an id, a SMILES (the same molecule) or a SMILES/SMARTS substructure")
                html.Div("{{ map_found_text }}", v_show=("map_found_text",), classes="text-caption ml-2",
                         style="white-space: nowrap;", raw_attrs=['data-testid="map-found"'])
            html.Div(f"{{{{ {source} }}}}", classes="text-caption px-2")
            # a box or lasso selection (plotly's toolbar): how many, a short list, a CSV of all of them
            with html.Div(v_if=("map_selection_text",), classes="d-flex align-center px-2",
                          raw_attrs=['data-testid="map-selection"']):
                html.Div("{{ map_selection_text }}", classes="text-caption mr-2")
                with v3.VMenu(location="bottom", v_if=("map_selection.length",)):
                    with v3.Template(v_slot_activator="{ props }"):
                        v3.VBtn("list", v_bind="props", size="x-small", variant="tonal", classes="mr-1",
                                title="the selected items (click one to show it)",
                                raw_attrs=['data-testid="selection-list"'])
                    with v3.VList(density="compact", style="max-height: 320px; overflow-y: auto;"):
                        v3.VListItem(v_for="it in map_selection", key="it.index", title=("it.title",),
                                     click="item_index = it.index; view_source = 'item'")
                v3.VBtn("CSV", prepend_icon="mdi-download", size="x-small", variant="tonal", classes="mr-1",
                        title="download the selected items as CSV (index, name, SMILES, map position, properties)",
                        click="utils.download('molviz-selection.csv', trigger('selection_csv'), 'text/csv')",
                        raw_attrs=['data-testid="selection-csv"'])
                v3.VBtn(icon="mdi-close", size="x-small", variant="text", click=ctrl_clear_selection,
                        title="clear the selection")
            with html.Div(style="position: relative; height: calc(100% - 150px);"):
                # plotly.js loads once `load` turns true (after the first 3D picture): see molviz.app.ui.lazy
                from trame_plotly import module as plotly_module
                self.figure = make_lazy(figure_factory(), plotly_module, ready=load, delay_ms=1000)
                with v3.VCard(v_show=(hover_svg,), elevation=3,
                              style="position: absolute; left: 8px; top: 8px; width: 270px; "
                                    "pointer-events: none; background: rgba(255,255,255,0.92);"):
                    html.Div(v_html=(hover_svg,), style="width: 260px; height: 190px;")
                    html.Div(v_html=(hover_text,), classes="text-caption px-2 pb-1")


__all__ = ["ChannelCard", "ChannelsPanel", "DisplayPanel", "EncodePanel", "InterpolationPanel", "LatentMapPanel",
           "LEVEL_MODES"]
