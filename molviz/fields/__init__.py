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

from molviz.fields._channels import COMPONENTS, PRESETS, Channel, channel_names, parse_channels
from molviz.fields._elements import (ATOM_WIDTHS, FALLBACKS, RAW_PROPERTIES, WIDTH_SOURCES,
                                     element_symbol, parse_element)
from molviz.fields._grid import Grid, blob_margin, fit_grid, spacing_grid
from molviz.fields._sampler import (DEFAULT_TOL, MAX_ATOM_DENSITY, atom_table, channel_peaks,
                                    cutoff_factor, cutoff_radii, dense_field, field_from_table,
                                    peaks_from_table, resolve_device, sample_conformers,
                                    sample_field, sample_points, tail_bound)

__all__ = [
    "ATOM_WIDTHS", "COMPONENTS", "DEFAULT_TOL", "FALLBACKS", "MAX_ATOM_DENSITY", "PRESETS",
    "RAW_PROPERTIES", "WIDTH_SOURCES", "Channel", "Grid", "atom_table", "blob_margin",
    "channel_names", "channel_peaks", "cutoff_factor", "cutoff_radii", "dense_field",
    "element_symbol", "field_from_table", "fit_grid", "parse_channels", "parse_element",
    "peaks_from_table", "resolve_device", "sample_conformers", "sample_field", "sample_points",
    "spacing_grid", "tail_bound",
]
