"""Small UI panels. Each takes the names of the state keys it binds and nothing else.

The panels only bind state and call triggers; every reaction lives in
:class:`molviz.app.MolvizApp` (``@change`` methods).
"""
from __future__ import annotations

from trame.widgets import html
from trame.widgets import vuetify3 as v3

from molviz.app.ui.lazy import make_lazy

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
                v3.VCheckbox(v_model=(f"{p}visible",), density="compact", hide_details=True,
                             classes="flex-grow-0 mr-1", raw_attrs=[f'data-testid="{p}visible"'])
                html.Div(f"{{{{ {name_expr} }}}}", classes="text-subtitle-2 flex-grow-1")
                html.Input(type="color", v_model=(f"{p}color",), title="colour",
                           style="width: 28px; height: 22px; border: none; background: none;")
            with html.Div(classes="d-flex align-center", v_if=(f"{p}visible",)):
                v3.VSlider(v_model=(f"{p}level",), min=(f"{p}level_min",), max=(f"{p}level_max",),
                           step=(f"{p}level_step",), density="compact", hide_details=True,
                           thumb_label=True, classes="flex-grow-1", raw_attrs=[f'data-testid="{p}level"'],
                           title="level")
                # the level typed as a number: sent when committed (Enter or leaving the field), as the slider's
                v3.VTextField(model_value=(f"{p}level",), type="number", density="compact", hide_details=True,
                              variant="plain", style="flex: none; width: 58px;", classes="ml-1",
                              step=(f"{p}level_step",), title="type a level, then Enter",
                              keyup_enter=f"{p}level = Number($event.target.value)",
                              blur=f"{p}level = Number($event.target.value)",
                              __events=[("keyup_enter", "keyup.enter"), "blur"],
                              raw_attrs=[f'data-testid="{p}level-typed"'])
                v3.VSelect(v_model=(f"{p}mode",), items=("level_modes", LEVEL_MODES), density="compact",
                           hide_details=True, variant="plain", style="flex: none; width: 104px;", classes="ml-1",
                           raw_attrs=[f'data-testid="{p}mode"'])
            with html.Div(classes="d-flex align-center", v_if=(f"{p}visible",)):
                v3.VSlider(v_model=(f"{p}opacity",), min=0.05, max=1.0, step=0.05, density="compact",
                           hide_details=True, label="opacity", classes="flex-grow-1",
                           raw_attrs=[f'data-testid="{p}opacity"'])
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
            v3.VSelect(label="show", v_model=(compare,), density="compact", hide_details=True, classes="mb-2",
                       items=("compare_options", [
                           {"title": "reconstruction (network)", "value": "reconstruction"},
                           {"title": "ground truth (Eq. 1)", "value": "truth"},
                           {"title": "side by side", "value": "side_by_side"}]), raw_attrs=['data-testid="compare"'])
            with html.Div(classes="d-flex"):
                v3.VSwitch(label="atoms", v_model=(atoms,), density="compact", hide_details=True, color="primary",
                           raw_attrs=['data-testid="display-atoms"'])
                v3.VSwitch(label="outline", v_model=(outline,), density="compact", hide_details=True,
                           color="primary", raw_attrs=['data-testid="display-outline"'])
            v3.VSelect(label="atoms", v_model=(atoms_source,), density="compact", hide_details=True, classes="mb-1",
                       items=("atoms_source_options", [
                           {"title": "true (stored or typed; an interpolation fades A into B)", "value": "true"},
                           {"title": "from the decoded field (found by deconvolution)", "value": "field"},
                           {"title": "both (found ones: magenta where no true atom is)", "value": "both"}]),
                       raw_attrs=['data-testid="display-atoms-source"'])
            html.Div(f"{{{{ {atoms_text} }}}}", v_show=(atoms_text,), classes="text-caption mb-1",
                     raw_attrs=['data-testid="atoms-text"'])
            with html.Div(classes="d-flex align-center"):
                v3.VSelect(label="clip plane", v_model=(clip_axis,), items=("['none', 'x', 'y', 'z']",),
                           density="compact", hide_details=True, style="max-width: 110px;")
                v3.VSlider(v_model=(clip_position,), min=0.0, max=1.0, step=0.02, density="compact",
                           hide_details=True, classes="ml-3", disabled=(f"{clip_axis} === 'none'",))
            v3.VSwitch(label="render in the browser (local, small meshes)", v_model=(view_mode,),
                       true_value="local", false_value="remote", density="compact", hide_details=True,
                       color="primary")
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
                             classes="mb-1", raw_attrs=['data-testid="endpoint-a"'])
            v3.VAutocomplete(label="B", v_model=(b,), items=(options,), density="compact", hide_details=True,
                             classes="mb-1", raw_attrs=['data-testid="endpoint-b"'])
            with v3.VBtnToggle(v_model=(mode,), mandatory=True, density="compact", variant="outlined",
                               divided=True, classes="mb-1"):
                v3.VBtn("linear", value="linear", size="small")
                v3.VBtn("slerp", value="slerp", size="small")
            v3.VSlider(v_model=(t,), min=0.0, max=1.0, step=0.01, label="t", thumb_label=True,
                       density="compact", hide_details=True, raw_attrs=['data-testid="interp-t"'])
            with html.Div(classes="d-flex align-center flex-wrap"):
                v3.VBtn(icon=(f"{playing} ? 'mdi-pause' : 'mdi-play'",), size="small", variant="tonal",
                        click=f"{playing} = !{playing}", raw_attrs=['data-testid="play"'])
                v3.VCheckbox(label="loop", v_model=(loop,), density="compact", hide_details=True, classes="ml-1")
                v3.VCheckbox(label="round trip", v_model=(round_trip,), density="compact", hide_details=True)
                v3.VTextField(label="fps", v_model_number=(fps,), type="number", density="compact",
                              hide_details=True, style="max-width: 70px;")
            html.Div("Export movie", classes="text-subtitle-2 mt-2")
            v3.VTextField(label="title (optional)", v_model=(export_title,), density="compact", hide_details=True,
                          classes="mb-1", raw_attrs=['data-testid="export-title"'])
            with html.Div(classes="d-flex flex-wrap"):
                v3.VSelect(v_model=(export_format,), items=("['gif', 'mp4']",), density="compact",
                           hide_details=True, style="max-width: 90px;", label="format",
                           raw_attrs=['data-testid="export-format"'])
                v3.VSelect(v_model=(export_size,), items=("export_sizes", ["480p", "720p", "1080p"]),
                           density="compact", hide_details=True, style="max-width: 100px;", label="size",
                           classes="ml-1", raw_attrs=['data-testid="export-size"'])
                v3.VTextField(label="frames", v_model_number=(export_frames,), type="number", density="compact",
                              hide_details=True, style="max-width: 80px;", classes="ml-1",
                              raw_attrs=['data-testid="export-frames"'])
                v3.VTextField(label="fps", v_model_number=(export_fps,), type="number", density="compact",
                              hide_details=True, style="max-width: 64px;", classes="ml-1",
                              title="frames per second; a GIF alternates its 1/100 s delays to play at this rate")
            v3.VCheckbox(label="orbit the camera", v_model=(export_orbit,), density="compact", hide_details=True)
            v3.VBtn("export and download", prepend_icon="mdi-movie-open", size="small", color="primary",
                    block=True, disabled=(exporting,), click=ctrl_export, raw_attrs=['data-testid="export"'])
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
                          __events=[("keyup_enter", "keyup.enter"), ("click_append_inner", "click:appendInner")])
            html.Div(f"{{{{ {placement} }}}}", classes="text-caption mt-1", v_show=(has_encoded,))
            v3.VBtn("neighbours of the item on screen", size="small", variant="tonal", classes="mt-1",
                    prepend_icon="mdi-vector-circle", click=ctrl_item_neighbours,
                    raw_attrs=['data-testid="item-neighbours"'])
            with v3.VList(density="compact", v_show=(f"{neighbours}.length",), classes="py-0",
                          raw_attrs=['data-testid="neighbours"']):
                v3.VListSubheader("{{ neighbours_title || 'nearest items in latent space' }}")
                v3.VListItem(v_for=f"nb in {neighbours}", key="nb.index", title=("nb.title",),
                             subtitle=("nb.subtitle",), click="item_index = nb.index; view_source = 'item'",
                             density="compact")
            with html.Div(classes="d-flex", v_if=(has_encoded,)):
                v3.VBtn("show", size="small", variant="tonal", click=ctrl_view)
                v3.VBtn("use as A", size="small", variant="tonal", click=ctrl_use_a, classes="ml-1")
                v3.VBtn("use as B", size="small", variant="tonal", click=ctrl_use_b, classes="ml-1")


class LatentMapPanel(html.Div):
    """The plotly latent map, its colour-by choice, click mode, and the hovered molecule's depiction."""

    def __init__(self, figure_factory, *, color_by: str, color_options: str, pick_mode: str, source: str,
                 hover_svg: str, hover_text: str, search: str, load: str, **kwargs) -> None:
        super().__init__(**kwargs)
        with self:
            with html.Div(classes="d-flex align-center px-2 pt-1"):
                v3.VSelect(label="colour by", v_model=(color_by,), items=(color_options,), density="compact",
                           hide_details=True, style="max-width: 260px;", raw_attrs=['data-testid="color-by"'])
                with v3.VBtnToggle(v_model=(pick_mode,), mandatory=True, density="compact", variant="outlined",
                                   divided=True, classes="ml-2"):
                    v3.VBtn("click: show", value="view", size="small")
                    v3.VBtn("click: A, B", value="endpoints", size="small")
            with html.Div(classes="d-flex align-center px-2"):
                v3.VTextField(v_model=(search,), label="find on the map (name or SMILES)", density="compact",
                              hide_details=True, clearable=True, prepend_inner_icon="mdi-magnify",
                              raw_attrs=['data-testid="map-search"'],
                              title="a name, an id, a SMILES (the same molecule) or a SMILES/SMARTS substructure")
                html.Div("{{ map_found_text }}", v_show=("map_found_text",), classes="text-caption ml-2",
                         style="white-space: nowrap;", raw_attrs=['data-testid="map-found"'])
            html.Div(f"{{{{ {source} }}}}", classes="text-caption px-2")
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
