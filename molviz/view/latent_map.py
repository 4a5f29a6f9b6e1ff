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
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
    def compute(cls, bundle, *, n_neighbors: int = 5, seed: int = 0) -> LatentMap:
        """UMAP of the bundle's latents computed now (slow: imports numba; tens of seconds)."""
        import umap  # noqa: PLC0415 - 20 s import, only when a bundle lacks its map

        latents = bundle.latents.detach().float().cpu().numpy()
        n = len(latents)
        if n < 4:
            coords = np.zeros((n, 2)) if n == 0 else np.c_[np.arange(n, dtype=float), np.zeros(n)]
            reducer = None
        else:
            reducer = umap.UMAP(n_neighbors=min(n_neighbors, n - 1), random_state=seed)
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

    # ------------------------------------------------------------------ drawing
    @staticmethod
    def along(path: np.ndarray, t: float) -> np.ndarray:
        """The point at ``t`` in [0, 1] of a path sampled at evenly spaced t (linear between samples)."""
        ts = np.linspace(0.0, 1.0, len(path))
        return np.array([np.interp(float(t), ts, path[:, 0]), np.interp(float(t), ts, path[:, 1])])

    def figure(self, color_by: str = "expt", *, selected: int | None = None,
               endpoints: tuple[int | None, int | None] = (None, None),
               path: np.ndarray | None = None, extra: tuple[np.ndarray, str] | None = None,
               highlight: list[int] | None = None, at: tuple[np.ndarray, str] | None = None):
        """The plotly figure: one scatter coloured by ``color_by`` with a colour bar, plus overlays."""
        import plotly.graph_objects as go

        n = len(self.coords)
        idx = np.arange(n)
        vals = self.values.get(color_by)
        marker: dict[str, Any] = dict(size=7, line=dict(width=0.5, color="#444"))
        if vals is not None:
            marker.update(color=np.where(np.isfinite(vals), vals, np.nanmean(vals)).tolist(), colorscale="Viridis",
                          showscale=True, colorbar=dict(title=dict(text=self.label(color_by),
                                                                   side="right"), thickness=12))
        else:
            marker.update(color="#5B8FD9")
        fig = go.Figure()
        # plain lists: the figure travels as JSON state (plotly would otherwise send base64 arrays)
        fig.add_trace(go.Scatter(x=self.coords[:, 0].tolist(), y=self.coords[:, 1].tolist(), mode="markers",
                                 marker=marker, customdata=idx.tolist(), name="items", showlegend=False,
                                 # the page's card shows name, SMILES, values and the depiction; plotly's
                                 # own label shows the name only ("none" would also silence hover events)
                                 text=[f"{_esc(self.names[i])} (#{i})" for i in range(n)],
                                 hovertemplate="%{text}<extra></extra>"))
        if path is not None and len(path) > 1:
            fig.add_trace(go.Scatter(x=path[:, 0].tolist(), y=path[:, 1].tolist(), mode="lines+markers", name="path",
                                     line=dict(color="#E4572E", width=2), marker=dict(size=4),
                                     hoverinfo="skip", showlegend=False))
        if at is not None:                      # where the view is on the path: (xy, label such as "t = 0.40")
            xy, label = at
            fig.add_trace(go.Scatter(x=[float(xy[0])], y=[float(xy[1])], mode="markers+text", text=[_esc(label)],
                                     textposition="middle right", hoverinfo="skip", showlegend=False,
                                     marker=dict(size=11, color="white", line=dict(width=2.5, color="#E4572E"))))
        for i, sym in zip(endpoints, ("A", "B")):
            if i is not None and 0 <= i < n:
                fig.add_trace(go.Scatter(x=[float(self.coords[i, 0])], y=[float(self.coords[i, 1])],
                                         mode="markers+text",
                                         text=[sym], textposition="top center", hoverinfo="skip",
                                         marker=dict(size=14, symbol="diamond", color="#E4572E",
                                                     line=dict(width=1, color="black")), showlegend=False))
        if highlight:
            h = [i for i in highlight if 0 <= i < n]
            fig.add_trace(go.Scatter(x=self.coords[h, 0].tolist(), y=self.coords[h, 1].tolist(), mode="markers",
                                     hoverinfo="skip", showlegend=False,
                                     marker=dict(size=12, symbol="circle-open", color="#F2A541", line=dict(width=2))))
        if selected is not None and 0 <= selected < n:
            fig.add_trace(go.Scatter(x=[float(self.coords[selected, 0])], y=[float(self.coords[selected, 1])],
                                     mode="markers",
                                     hoverinfo="skip", showlegend=False,
                                     marker=dict(size=16, symbol="circle-open", color="black", line=dict(width=2))))
        if extra is not None:
            xy, label = extra
            fig.add_trace(go.Scatter(x=[float(xy[0])], y=[float(xy[1])], mode="markers+text", text=[_esc(label)[:24]],
                                     textposition="bottom center", hoverinfo="skip", showlegend=False,
                                     marker=dict(size=15, symbol="star", color="#D7263D",
                                                 line=dict(width=1, color="black"))))
        fig.update_layout(margin=dict(l=10, r=10, t=10, b=10), plot_bgcolor="white", paper_bgcolor="white",
                          xaxis=dict(showticklabels=False, title="UMAP 1", zeroline=False, showgrid=False),
                          # equal aspect: distances on the map read the same across and up
                          yaxis=dict(showticklabels=False, title="UMAP 2", zeroline=False, showgrid=False,
                                     scaleanchor="x", scaleratio=1),
                          hovermode="closest", dragmode="pan", uirevision="latent-map")
        return fig


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


__all__ = ["COLOR_BY", "LatentMap", "depiction_svg"]
