"""Model bundles: a folder of safetensors weights plus JSON, nothing else.

Layout of ``NAME/``::

    bundle.json          format tag, config (architecture, channels, grid, beta,
                         normalisation, training protocol, data, metrics, provenance),
                         items (name, SMILES, source, conformer, descriptors), extras
    weights.safetensors  model.* (synthesis + modulator), encoder.* (auto-encoder),
                         latents (N, L) float32, boxes (N, 2, 3) float32 angstrom
    arrays.safetensors   optional named arrays (e.g. the items' atom tables)

Loading never unpickles: a torch checkpoint or any pickle is refused by its
first bytes before anything reads it.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file as load_np
from safetensors.numpy import save_file as save_np
from safetensors.torch import load_file as load_pt
from safetensors.torch import save_file as save_pt

from molviz._io import atomic_path, replace_folder, temp_folder_beside
from molviz.errors import BundleError
from molviz.models._encoder import Encoder3D, EncoderConfig
from molviz.models._siren import ModulatedSiren, SirenConfig
from molviz.models._spec import BundleSpec, read_spec
from molviz.models._validate import check_finite, validate_bundle

FORMAT = "molviz-bundle"
VERSION = 1
MANIFEST = "bundle.json"
WEIGHTS = "weights.safetensors"
ARRAYS = "arrays.safetensors"


@dataclass
class Bundle:
    """A trained model with everything needed to use it.

    ``config`` must hold ``model`` (a :class:`SirenConfig` dict) and, for an
    auto-encoder, ``encoder`` (an :class:`EncoderConfig` dict).
    """

    config: dict
    model: ModulatedSiren
    latents: torch.Tensor                      # (N, L)
    boxes: np.ndarray                          # (N, 2, 3) lo, hi in angstrom
    items: list[dict] = field(default_factory=list)
    encoder: Encoder3D | None = None
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    extras: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def kind(self) -> str:
        return "auto-encoder" if self.encoder is not None else "auto-decoder"

    @property
    def spec(self) -> BundleSpec:
        """How the bundle's fields were sampled, typed and checked (:func:`molviz.models.read_spec`)."""
        return read_spec(self.config)

    @property
    def channel_names(self) -> list[str]:
        names = self.config.get("channel_names")
        return [str(n) for n in names] if isinstance(names, list) else self.spec.channel_names

    @property
    def n_items(self) -> int:
        return int(self.latents.shape[0])

    @property
    def name(self) -> str:
        return str(self.config.get("name") or (self.path.name if self.path else "bundle"))


def save_bundle(bundle: Bundle, path: str | os.PathLike) -> Path:
    """Write ``bundle`` as a folder at ``path``, atomically (a partial write never replaces a good bundle).

    Examples
    --------
    >>> from molviz.models import config_for_size
    >>> cfg = config_for_size("XS", out_dim=2)
    >>> b = Bundle(config={"model": cfg.to_dict()}, model=ModulatedSiren(cfg),
    ...            latents=torch.zeros(1, cfg.latent_dim), boxes=np.zeros((1, 2, 3), np.float32))
    >>> import tempfile; d = tempfile.mkdtemp()
    >>> save_bundle(b, d + "/m").name
    'm'
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    config = dict(bundle.config)
    config["model"] = bundle.model.cfg.to_dict()
    config["kind"] = bundle.kind
    if bundle.encoder is not None:
        config["encoder"] = bundle.encoder.cfg.to_dict()
    manifest = {"format": FORMAT, "version": VERSION, "config": config,
                "items": bundle.items, "extras": bundle.extras}
    tensors = {f"model.{k}": v.detach().float().cpu().contiguous() for k, v in bundle.model.state_dict().items()}
    if bundle.encoder is not None:
        tensors.update({f"encoder.{k}": v.detach().cpu().contiguous()
                        for k, v in bundle.encoder.state_dict().items()})
    tensors["latents"] = bundle.latents.detach().float().cpu().contiguous()
    tensors["boxes"] = torch.as_tensor(np.asarray(bundle.boxes, dtype=np.float32))
    tmp = temp_folder_beside(final)
    try:
        save_pt(tensors, str(tmp / WEIGHTS), metadata={"format": FORMAT})
        if bundle.arrays:
            save_np({k: np.ascontiguousarray(v) for k, v in bundle.arrays.items()}, str(tmp / ARRAYS))
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, default=_json_default))
        replace_folder(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    bundle.path = final
    return final


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


_PICKLE_HINT = ("molviz loads only model bundles (a folder with bundle.json and weights.safetensors) and never "
                "unpickles files, because unpickling can run arbitrary code. Re-export the model with "
                "molviz.models.save_bundle, or point at the bundle folder.")


def _sniff(path: Path) -> str:
    """Classify a file by its first bytes, without parsing it: safetensors, pickle or other."""
    with open(path, "rb") as f:
        head = f.read(9)
        if len(head) == 9:
            n = int.from_bytes(head[:8], "little")
            if 2 <= n <= 100_000_000 and head[8:9] == b"{" and path.stat().st_size >= 8 + n:
                return "safetensors"
    if head[:1] == b"\x80" or head[:2] == b"PK" or head[:1] in (b"c", b"(", b"]", b"}"):
        return "pickle"
    return "other"


def _resolve(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise BundleError(f"model bundle {str(path)!r} does not exist; give a bundle folder (with {MANIFEST}).")
    if p.is_file():
        if p.name == MANIFEST:
            return p.parent
        kind = _sniff(p)
        what = "a pickle or torch checkpoint" if kind == "pickle" else "a single file"
        raise BundleError(f"{str(path)!r} is {what}, not a model bundle. {_PICKLE_HINT}")
    if not (p / MANIFEST).is_file() or not (p / WEIGHTS).is_file():
        raise BundleError(f"{str(path)!r} is not a model bundle: it needs {MANIFEST} and {WEIGHTS}. {_PICKLE_HINT}")
    return p


def load_model(path: str | os.PathLike, *, map_location: str = "cpu") -> Bundle:
    """Load a bundle folder written by :func:`save_bundle`.

    Examples
    --------
    >>> import molviz
    >>> b = molviz.load_model("assets/models/freesolv")  # doctest: +SKIP
    >>> b.latents.shape  # doctest: +SKIP
    torch.Size([642, 512])
    """
    root = _resolve(path)
    validate_bundle(root)  # types, sizes and tensor shapes, before anything is allocated
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{root / MANIFEST} is not valid JSON ({exc}); the bundle is damaged: re-save it.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{root / MANIFEST} is not a molviz bundle manifest (format tag {FORMAT!r} missing).")
    if int(manifest.get("version", 0)) > VERSION:
        raise BundleError(f"{root} was written by a newer molviz (bundle version {manifest['version']}); upgrade molviz.")
    if (kind := _sniff(root / WEIGHTS)) != "safetensors":
        what = "a pickle" if kind == "pickle" else "not a safetensors file"
        raise BundleError(f"{root / WEIGHTS} is {what}. {_PICKLE_HINT}")
    config = manifest.get("config") or {}
    try:
        tensors = load_pt(str(root / WEIGHTS), device=map_location)
        check_finite(tensors, root)
        model_cfg = SirenConfig.from_dict(config["model"])
        model = ModulatedSiren(model_cfg)
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        encoder = None
        if config.get("encoder"):
            encoder = Encoder3D(EncoderConfig.from_dict(config["encoder"]))
            encoder.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("encoder.")})
            encoder.eval()
        latents = tensors["latents"].float()
        boxes = tensors["boxes"].cpu().numpy().astype(np.float32)
        arrays = load_np(str(root / ARRAYS)) if (root / ARRAYS).is_file() else {}
    except BundleError:
        raise
    except Exception as exc:  # safetensors / shape errors: the bundle is inconsistent
        raise BundleError(f"cannot load the weights of {root}: {type(exc).__name__}: {exc}. "
                          "The bundle is damaged or was written for another architecture; re-save it.") from None
    model.eval()
    if latents.shape[1] != model_cfg.latent_dim or boxes.shape != (latents.shape[0], 2, 3):
        raise BundleError(f"{root}: latents {tuple(latents.shape)} / boxes {boxes.shape} do not match the "
                          f"model's latent size {model_cfg.latent_dim}; the bundle is inconsistent.")
    return Bundle(config=config, model=model, encoder=encoder, latents=latents, boxes=boxes,
                  items=list(manifest.get("items") or []), arrays=arrays,
                  extras=dict(manifest.get("extras") or {}), path=root)


def update_extras(path: str | os.PathLike, **extras) -> dict:
    """Merge ``extras`` into a saved bundle's manifest, atomically; weights are not touched.

    Used to attach what is computed after training (a latent map, descriptors)
    without rewriting the weights. Returns the new extras.
    """
    root = _resolve(path)
    manifest = json.loads((root / MANIFEST).read_text())
    manifest.setdefault("extras", {}).update(extras)
    with atomic_path(root / MANIFEST, mkdir=False) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1, default=_json_default))
    return manifest["extras"]
