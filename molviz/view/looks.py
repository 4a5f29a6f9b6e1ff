"""Default looks of a bundle's channels, and the layers a view shows: one definition for the app,
``molviz render`` and ``molviz animate``.

Examples
--------
>>> [s.visible for s in default_styles(["C", "O", "density"], [True, False, True])]
[True, False, False]
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from molviz.errors import InputError
from molviz.fields import channel_color
from molviz.view.scene import ChannelStyle, Layer

# The default isosurface level of each level mode. Trained fields lie in [0, 1] and every atom
# peaks near 1, so 0.2 absolute draws each atom's blob; fraction and percent are per channel.
LEVEL_DEFAULTS = {"absolute": 0.2, "fraction": 0.5, "percent": 2.0, "sigma": 3.0}
PROPERTY_LEVEL = 0.3                # absolute default of density-like channels (wider, translucent)
PROPERTY_TOKENS = ("density", "electronegativity")


def is_property_channel(name: str) -> bool:
    """A channel of an atom property (density, electronegativity), not of one element."""
    return str(name).split(":")[-1] in PROPERTY_TOKENS


def default_style(name: str, *, visible: bool, level: float | None = None, mode: str = "absolute") -> ChannelStyle:
    """The look a channel starts with: element channels opaque at 0.2, property channels wide and
    translucent at 0.3 (absolute); ``level`` overrides."""
    prop = is_property_channel(name)
    if level is None:
        level = PROPERTY_LEVEL if prop and mode == "absolute" else LEVEL_DEFAULTS[mode]
    return ChannelStyle(visible=visible, level=float(level), mode=mode, color=channel_color(name),
                        opacity=0.35 if prop else 0.9)


def default_styles(names: Sequence[str], present: Sequence[bool], *, level: float | None = None,
                   mode: str = "absolute") -> list[ChannelStyle]:
    """Every channel's default look: the element channels present in the item are shown, a property
    channel only when no element channel is (it would hide them)."""
    top = 100.0 if mode == "percent" else 1.0
    if level is not None and not 0.0 < level <= top:
        raise InputError(f"level {level}: give a value in (0, {top:g}] for level mode {mode}")
    any_element = any(p and not is_property_channel(n) for n, p in zip(names, present))
    return [default_style(n, visible=bool(p) and (not is_property_channel(n) or not any_element), level=level,
                          mode=mode) for n, p in zip(names, present)]


def endpoint_styles(styles: Sequence[ChannelStyle], names: Sequence[str], present_a: Sequence[bool],
                    present_b: Sequence[bool]) -> list[ChannelStyle]:
    """``styles`` with every channel shown that an interpolation between A and B needs: the element
    channels with atoms in either endpoint (CCl4 -> methanol shows Cl as well as O). Never hides one."""
    want = default_styles(names, [bool(x) or bool(y) for x, y in zip(present_a, present_b)])
    return [replace(s, visible=s.visible or w.visible) for s, w in zip(styles, want)]


def view_layers(view, names: list[str], compare: str) -> list[Layer]:
    """The layers a :class:`molviz.view.explore.View` shows for ``compare``: "reconstruction", "truth"
    (without a truth, the reconstruction) or "side_by_side" (:func:`molviz.view.compare.compare_layers`:
    decoded and truth in two linked viewports; a view without a truth of its own is compared with
    ``view.extra["nearest"]``, the nearest stored item's)."""
    if compare == "truth" and view.truth is not None:
        return [Layer(view.truth, view.grid, names, view.atoms)]
    if compare == "side_by_side":          # two linked viewports; the truth, the nearest item's, or none
        from molviz.view.compare import compare_layers
        return compare_layers(view, names)
    # an interpolation frame carries its t in the picture, so picture and t never disagree
    label = f"t = {view.extra['t']:.2f}" if "t" in view.extra else ""
    return [Layer(view.volume, view.grid, names, view.atoms, surfaces=view.surfaces, label=label,
                  more_atoms=view.extra.get("more_atoms", ()))]
