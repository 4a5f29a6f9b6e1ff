"""The latent map: a 2D UMAP of a bundle's latents, coloured by descriptors (no trame).

The map ships with the bundle (``bundle.extras["latent_map"]``: UMAP coordinates
and, optionally, descriptors) so it appears at once. A bundle without one gets a
UMAP computed here (umap-learn, ``n_neighbors=5`` as in the paper); that takes
tens of seconds on a small CPU, so the app does it in the background.

New molecules are placed with the reducer's ``transform`` when the map was
computed in this process, else at the distance-weighted mean of their nearest
neighbours' map positions (a shipped map has no reducer: reducers are pickles).

Examples
--------
>>> import numpy as np
>>> m = LatentMap(coords=np.random.rand(20, 2), latents=np.random.rand(20, 8).astype(np.float32),
...               values={"MolMR": np.arange(20.0)}, names=[str(i) for i in range(20)])
>>> xy, how = m.place(m.latents[3])
>>> how
'nearest-neighbour placement'
"""
from __future__ import annotations

import functools
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

GL_FROM = 5000          # from this many items the map's scatter is WebGL (scattergl)

# Colour-by options: key in the item dicts / map descriptors -> label on the colour bar.
COLOR_BY = {
    "expt": "hydration free energy, expt. (kcal/mol)",
    "MolMR": "molar refractivity (MolMR)",
    "ExactMolWt": "exact mol. weight (Da)",
    "TPSA": "topological polar surface area (A^2)",
    "MolLogP": "logP (Crippen)",
    "NumRotatableBonds": "rotatable bonds",
}


@dataclass
class LatentMap:
    """Map coordinates of every item, values to colour by, and how new latents are placed."""

    coords: np.ndarray                          # (N, 2)
    latents: np.ndarray                         # (N, L) float32, for nearest-neighbour placement
    values: dict[str, np.ndarray] = field(default_factory=dict)   # descriptor -> (N,) (NaN: unknown)
    names: list[str] = field(default_factory=list)
    smiles: list[str | None] = field(default_factory=list)
    source: str = "bundle"                      # where the coordinates came from (shown in the UI)
    reducer: Any = None                         # umap.UMAP fitted here, when there is one

    @property
    def color_options(self) -> list[str]:
        """Keys to colour by: the descriptors first, then every numeric property the items carry
        (the columns of a library's input table), each with a finite value somewhere."""
        extra = [k for k in self.values if k not in COLOR_BY]
        return [k for k in (*COLOR_BY, *extra) if k in self.values and np.isfinite(self.values[k]).any()]

    def label(self, key: str) -> str:
        """The colour bar's title for ``key``."""
        return COLOR_BY.get(key, key)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_bundle(cls, bundle) -> LatentMap | None:
        """The map a bundle ships in ``extras["latent_map"]``, or None when it has none."""
        raw = (bundle.extras or {}).get("latent_map")
        latents = bundle.latents.detach().float().cpu().numpy()
        if not isinstance(raw, dict):
            return None
        coords = None
        for key in ("coords", "umap", "xy", "embedding"):
            if key in raw:
                coords = np.asarray(raw[key], np.float64)
                break
        if coords is None and "x" in raw and "y" in raw:
            coords = np.stack([np.asarray(raw["x"], np.float64), np.asarray(raw["y"], np.float64)], axis=1)
        if coords is None or coords.shape != (len(latents), 2) or not np.isfinite(coords).all():
            return None
        desc = raw.get("descriptors") or raw.get("values") or {}
        m = cls(coords=coords, latents=latents, source=str(raw.get("method", "bundle (precomputed UMAP)")))
        m._fill(bundle.items, desc if isinstance(desc, dict) else {})
        return m

    @classmethod
    def compute(cls, bundle, *, n_neighbors: int = 5, seed: int = 0, progress: bool = False) -> LatentMap:
        """UMAP of the bundle's latents computed now (slow: imports numba; tens of seconds, minutes at 93k).

        ``progress``: umap-learn's own account on stderr/stdout: a timestamped line per stage (k-NN
        graph, fuzzy set, embedding) and a bar with the fraction of layout epochs done.
        """
        import umap  # noqa: PLC0415 - 20 s import, only when a bundle lacks its map

        latents = bundle.latents.detach().float().cpu().numpy()
        n = len(latents)
        if n < 4:
            coords = np.zeros((n, 2)) if n == 0 else np.c_[np.arange(n, dtype=float), np.zeros(n)]
            reducer = None
        else:
            shown = {"verbose": True, "tqdm_kwds": {"desc": "UMAP layout (epochs)", "file": sys.stderr,
                                                    "dynamic_ncols": True}} if progress else {}
            with warnings.catch_warnings():    # "n_jobs overridden by setting random_state": the seed is asked
                warnings.filterwarnings("ignore", message="n_jobs value")
                reducer = umap.UMAP(n_neighbors=min(n_neighbors, n - 1), random_state=seed, **shown)
                coords = reducer.fit_transform(latents).astype(np.float64)
        m = cls(coords=coords, latents=latents, reducer=reducer,
                source=f"UMAP computed at load (umap-learn, n_neighbors={n_neighbors}); the bundle has no map")
        m._fill(bundle.items, {})
        return m

    def _fill(self, items: list[dict], desc: dict) -> None:
        n = len(self.coords)
        items = list(items) + [{}] * (n - len(items))
        self.names = [str(it.get("name") or it.get("id") or f"item {i}") for i, it in enumerate(items[:n])]
        self.smiles = [it.get("smiles") for it in items[:n]]
        for key in COLOR_BY:
            if key in desc and len(desc[key]) == n:
                vals = np.asarray([np.nan if v is None else v for v in desc[key]], np.float64)
            else:
                vals = np.asarray([_num(it.get(key, it.get("descriptors", {}).get(key) if isinstance(
                    it.get("descriptors"), dict) else None)) for it in items[:n]], np.float64)
            if np.isfinite(vals).any():
                self.values[key] = vals
        # the item's own numeric properties (``train library`` keeps the input table's columns and
        # lists their names under "properties"), and any shipped with the map
        extra = {k for it in items[:n] for k in (it.get("properties") or []) if isinstance(k, str)}
        extra |= {k for k in desc if k not in COLOR_BY}
        for key in sorted(extra - set(COLOR_BY)):
            if key in desc and len(desc[key]) == n:
                vals = np.asarray([_num(v) for v in desc[key]], np.float64)
            else:
                vals = np.asarray([_num(it.get(key)) for it in items[:n]], np.float64)
            if np.isfinite(vals).any():
                self.values[key] = vals

    # ------------------------------------------------------------------ placing
    def place(self, latent: np.ndarray, *, k: int = 5) -> tuple[np.ndarray, str]:
        """Map position of a new latent and the method used ("umap transform" / nearest neighbours)."""
        z = np.asarray(latent, np.float32).reshape(1, -1)
        if self.reducer is not None:
            try:
                return np.asarray(self.reducer.transform(z), np.float64)[0], "umap transform"
            except Exception:  # noqa: BLE001 - fall back to the neighbour placement below
                pass
        d = np.linalg.norm(self.latents - z, axis=1)
        idx = np.argsort(d)[: max(1, min(k, len(d)))]
        w = 1.0 / (d[idx] + 1e-6)
        return (self.coords[idx] * w[:, None]).sum(0) / w.sum(), "nearest-neighbour placement"

    def selection_csv(self, indices: list[int]) -> str:
        """The items ``indices`` as CSV: index, name, SMILES, map x and y, then every colour-by property
        (empty where unknown).

        Examples
        --------
        >>> m = LatentMap(coords=np.array([[0.0, 1.0], [2.0, 3.0]]), latents=np.zeros((2, 4), np.float32),
        ...               values={"MolMR": np.array([1.5, np.nan])}, names=["a", "b, c"], smiles=["C", None])
        >>> print(m.selection_csv([1, 0]).strip())
        index,name,smiles,map_x,map_y,MolMR
        0,a,C,0,1,1.5
        1,"b, c",,2,3,
        """
        import csv
        import io

        keys = self.color_options
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["index", "name", "smiles", "map_x", "map_y", *keys])
        for i in sorted({int(i) for i in indices if 0 <= int(i) < len(self.coords)}):
            vals = [self.values[k][i] for k in keys]
            w.writerow([i, self.names[i] if i < len(self.names) else "",
                        (self.smiles[i] if i < len(self.smiles) else None) or "",
                        f"{self.coords[i, 0]:.6g}", f"{self.coords[i, 1]:.6g}",
                        *("" if not np.isfinite(v) else f"{v:.6g}" for v in vals)])
        return out.getvalue()

    # ------------------------------------------------------------------ drawing
    @staticmethod
    def along(path: np.ndarray, t: float) -> np.ndarray:
        """The point at ``t`` in [0, 1] of a path sampled at evenly spaced t (linear between samples)."""
        ts = np.linspace(0.0, 1.0, len(path))
        return np.array([np.interp(float(t), ts, path[:, 0]), np.interp(float(t), ts, path[:, 1])])

    def figure(self, color_by: str = "expt", *, selected: int | None = None,
               endpoints: tuple[int | None, int | None] = (None, None),
               path: np.ndarray | None = None, extra: tuple[np.ndarray, str] | None = None,
               highlight: list[int] | None = None, at: tuple[np.ndarray, str] | None = None,
               chosen: list[int] | None = None) -> MapFigure:
        """The plotly figure: one scatter coloured by ``color_by`` with a colour bar, plus overlays.

        From :data:`GL_FROM` items the scatter is WebGL (``scattergl``: 100k points pan, zoom and
        hover smoothly) and carries no per-point labels (the page's hover card names the item);
        ``chosen`` are the items of a box or lasso selection, kept selected across redraws. Built as
        plotly.js JSON directly: plotly's Python validators take 1.5 s over 93k points, this 0.1 s.
        """
        n = len(self.coords)
        big = n >= GL_FROM
        vals = self.values.get(color_by)
        marker: dict[str, Any] = (dict(size=4 if n > 20_000 else 5) if big else
                                  dict(size=7, line=dict(width=0.5, color="#444")))
        if vals is not None:
            shown = np.where(np.isfinite(vals), vals, np.nanmean(vals))
            marker.update(color=_plain(shown), colorscale="Viridis",
                          showscale=True, colorbar=dict(title=dict(text=self.label(color_by),
                                                                   side="right"), thickness=12))
        else:
            marker.update(color="#5B8FD9")
        # plain lists, rounded to 5 significant digits (a 93k-point map is ~1.5 MB of JSON state)
        items: dict[str, Any] = dict(type="scattergl" if big else "scatter", x=_plain(self.coords[:, 0]),
                                     y=_plain(self.coords[:, 1]), mode="markers", marker=marker, name="items",
                                     showlegend=False)
        if chosen:
            items["selectedpoints"] = [int(i) for i in chosen if 0 <= int(i) < n]
            items["unselected"] = dict(marker=dict(opacity=0.25))
        if big:
            # the point's index is plotly's pointIndex; hover shows it, the page's card names the item
            items["hovertemplate"] = "#%{pointNumber}<extra></extra>"
        else:
            items.update(customdata=list(range(n)),
                         # the page's card shows name, SMILES, values and the depiction; plotly's own
                         # label shows the name only ("none" would also silence hover events)
                         text=[f"{_esc(self.names[i])} (#{i})" for i in range(n)],
                         hovertemplate="%{text}<extra></extra>")
        data = [items]

        def overlay(xs, ys, **kw) -> None:
            data.append(dict(type="scatter", x=[float(v) for v in xs], y=[float(v) for v in ys],
                             hoverinfo="skip", showlegend=False, **kw))

        if path is not None and len(path) > 1:
            overlay(path[:, 0], path[:, 1], mode="lines+markers", name="path",
                    line=dict(color="#E4572E", width=2), marker=dict(size=4))
        if at is not None:                      # where the view is on the path: (xy, label such as "t = 0.40")
            xy, label = at
            overlay([xy[0]], [xy[1]], mode="markers+text", text=[_esc(label)], textposition="middle right",
                    marker=dict(size=11, color="white", line=dict(width=2.5, color="#E4572E")))
        for i, sym in zip(endpoints, ("A", "B")):
            if i is not None and 0 <= i < n:
                overlay([self.coords[i, 0]], [self.coords[i, 1]], mode="markers+text", text=[sym],
                        textposition="top center",
                        marker=dict(size=14, symbol="diamond", color="#E4572E", line=dict(width=1, color="black")))
        if highlight:
            h = [i for i in highlight if 0 <= i < n]
            overlay(self.coords[h, 0], self.coords[h, 1], mode="markers",
                    marker=dict(size=12, symbol="circle-open", color="#F2A541", line=dict(width=2)))
        if selected is not None and 0 <= selected < n:
            overlay([self.coords[selected, 0]], [self.coords[selected, 1]], mode="markers",
                    marker=dict(size=16, symbol="circle-open", color="black", line=dict(width=2)))
        if extra is not None:
            xy, label = extra
            overlay([xy[0]], [xy[1]], mode="markers+text", text=[_esc(label)[:24]], textposition="bottom center",
                    marker=dict(size=15, symbol="star", color="#D7263D", line=dict(width=1, color="black")))
        layout = dict(margin=dict(l=10, r=10, t=10, b=10), plot_bgcolor="white", paper_bgcolor="white",
                      xaxis=dict(showticklabels=False, title=dict(text="UMAP 1"), zeroline=False, showgrid=False),
                      # equal aspect: distances on the map read the same across and up
                      yaxis=dict(showticklabels=False, title=dict(text="UMAP 2"), zeroline=False, showgrid=False,
                                 scaleanchor="x", scaleratio=1),
                      hovermode="closest", dragmode="pan", uirevision="latent-map")
        return MapFigure({"data": data, "layout": layout})


class MapFigure(dict):
    """A plotly.js figure as JSON (``{"data": [...], "layout": {...}}``); ``to_plotly_json`` is what
    trame's plotly widget sends, ``to_plotly`` a validated ``plotly.graph_objects.Figure`` (slow).

    Examples
    --------
    >>> f = MapFigure({"data": [{"type": "scatter", "x": [0], "y": [1]}], "layout": {}})
    >>> f.to_plotly_json()["data"][0]["type"]
    'scatter'
    """

    def to_plotly_json(self) -> dict:
        return dict(self)

    def to_plotly(self):
        import plotly.graph_objects as go
        return go.Figure(self)

    @property
    def data(self) -> list[dict]:
        return self["data"]

    @property
    def layout(self) -> dict:
        return self["layout"]


def _plain(values: np.ndarray) -> list[float]:
    """Floats for JSON, 5 significant digits (a map's positions and colours need no more)."""
    v = np.asarray(values, np.float64)
    return [float(f"{x:.5g}") for x in v.tolist()]


def _num(v) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return float("nan")
    return x


def _esc(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@functools.lru_cache(maxsize=256)
def depiction_svg(smiles: str, width: int = 260, height: int = 190) -> str:
    """A 2D depiction (RDKit) of ``smiles`` as an SVG string; empty for an unparsable SMILES."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem.Draw import rdMolDraw2D

    RDLogger.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(smiles or "")
    finally:
        RDLogger.EnableLog("rdApp.*")
    if mol is None:
        return ""
    drawer = rdMolDraw2D.MolDraw2DSVG(width, height)
    drawer.drawOptions().clearBackground = False
    rdMolDraw2D.PrepareAndDrawMolecule(drawer, mol)
    drawer.FinishDrawing()
    svg = drawer.GetDrawingText()
    return svg[svg.find("<svg"):] if "<svg" in svg else svg


__all__ = ["COLOR_BY", "GL_FROM", "LatentMap", "MapFigure", "depiction_svg"]
