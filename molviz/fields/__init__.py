"""Channels, grids and the Eq. 1 field sampler (numpy + torch only).

::

    structure --parse_channels--> channels --atom_table--> (xyz, channel, width)
      --fit_grid / spacing_grid--> Grid --sample_field--> (C, Nx, Ny, Nz)
                                        --sample_points / field_from_table--> (P, C)

See ``_sampler`` for the field, the normalisation and the cutoff's error bound,
``_elements`` for the width tables and their sources, ``_grid`` for the voxel
convention. gemmi is imported lazily, only to write .ccp4/.mrc maps.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from molviz._lazy import lazy_exports

_EXPORTS = {
    "_atoms": ("FoundAtoms", "element_atoms", "element_channels", "find_atoms", "local_maxima", "match_atoms",),
    "_channels": ("COMPONENTS", "PRESETS", "PROPERTY_COLORS", "Channel", "channel_color", "channel_element",
                  "channel_names", "channel_rgb", "parse_channels",),
    "_elements": ("ATOM_WIDTHS", "FALLBACKS", "RAW_PROPERTIES", "WIDTH_SOURCES", "element_symbol", "parse_element",),
    "_grid": ("MAX_RESOLUTION", "MIN_RESOLUTION", "Grid", "axis_centres", "blob_margin", "check_resolution", "fit_grid", "rule_grid", "spacing_grid",),
    "_tables": ("grid_field", "grid_points", "item_divisors", "normalized_coords", "table_field", "table_grids",),
    "_sampler": ("DEFAULT_TOL", "MAX_ATOM_DENSITY", "atom_table", "channel_peaks", "cutoff_factor", "cutoff_radii", "dense_field", "field_from_table", "peaks_from_table", "peaks_of_tables", "resolve_device", "sample_conformers", "sample_field", "sample_points", "tail_bound",),
}

if TYPE_CHECKING:  # pragma: no cover  (what the lazy exports resolve to, for type checkers and IDEs)
    from molviz.fields._atoms import FoundAtoms, element_atoms, element_channels, find_atoms, local_maxima, match_atoms  # noqa: F401
    from molviz.fields._channels import (  # noqa: F401
        COMPONENTS,
        PRESETS,
        PROPERTY_COLORS,
        Channel,
        channel_color,
        channel_element,
        channel_names,
        channel_rgb,
        parse_channels,
    )
    from molviz.fields._elements import (  # noqa: F401
        ATOM_WIDTHS,
        FALLBACKS,
        RAW_PROPERTIES,
        WIDTH_SOURCES,
        element_symbol,
        parse_element,
    )
    from molviz.fields._grid import (  # noqa: F401
        MAX_RESOLUTION,
        MIN_RESOLUTION,
        Grid,
        axis_centres,
        blob_margin,
        check_resolution,
        fit_grid,
        rule_grid,
        spacing_grid,
    )
    from molviz.fields._sampler import (  # noqa: F401
        DEFAULT_TOL,
        MAX_ATOM_DENSITY,
        atom_table,
        channel_peaks,
        cutoff_factor,
        cutoff_radii,
        dense_field,
        field_from_table,
        peaks_from_table,
        peaks_of_tables,
        resolve_device,
        sample_conformers,
        sample_field,
        sample_points,
        tail_bound,
    )
    from molviz.fields._tables import (  # noqa: F401
        grid_field,
        grid_points,
        item_divisors,
        normalized_coords,
        table_field,
        table_grids,
    )

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
