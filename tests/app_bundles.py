"""Model bundles and a live server for the app's tests.

``bundle_for_tests`` returns the shipped FreeSolv bundle when it is present
(``assets/models/freesolv``), else writes a small real bundle: six FreeSolv
molecules prepared by :func:`molviz.training.prepare` (RDKit conformers, atom
tables, boxes, divisors), a freshly initialised XS network (untrained, so its
surfaces are noise-like but real decodes), and a latent map from a PCA of the
latents (the app reads any shipped map the same way). Written with
:func:`molviz.models.save_bundle`, loaded with :func:`molviz.models.load_model`.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "assets" / "models" / "freesolv"


def shipped_bundle() -> Path | None:
    return SHIPPED if (SHIPPED / "bundle.json").is_file() else None


def make_small_bundle(path: Path, *, n_items: int = 6, seed: int = 0) -> Path:
    """A real, untrained 6-molecule FreeSolv bundle with its atom tables and a latent map."""
    import torch

    from molviz.models import Bundle, Encoder3D, EncoderConfig, ModulatedSiren, config_for_size, save_bundle
    from molviz.training import get_preset, prepare

    cfg = get_preset("freesolv", quick=True)
    cfg.data.max_items = n_items
    cfg.data.heldout = 0.0
    data = prepare(cfg.data, progress=False)
    torch.manual_seed(seed)
    model = ModulatedSiren(config_for_size("XS", out_dim=data.n_channels))
    latents = torch.randn(data.n_items, model.cfg.latent_dim) * 0.5
    with torch.no_grad():   # untrained outputs are nearly flat: rescale each channel to spread over [-0.4, 0.8]
        grid = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, 12)] * 3, indexing="ij"), -1).reshape(1, -1, 3)
        out = torch.cat([model(grid, latents[i:i + 1]) for i in range(len(latents))], 1)[0]     # (P, C)
        k = 0.3 / out.std(0).clamp_min(1e-6)
        model.last.weight.mul_(k[:, None])
        model.last.bias.copy_(0.2 - k * (out.mean(0) - model.last.bias))
    encoder = Encoder3D(EncoderConfig(in_channels=data.n_channels, latent_dim=model.cfg.latent_dim, width=4,
                                      blocks=2)).eval()
    z = latents.numpy() - latents.numpy().mean(0)
    coords = z @ np.linalg.svd(z, full_matrices=False)[2][:2].T                    # PCA to 2D
    config = {
        "name": "freesolv-small-test", "mode": "autoencoder", "channels": data.meta["data"]["channels"],
        "channel_defs": data.meta["channels"], "channel_names": data.meta["channel_names"],
        "resolution": cfg.data.resolution, "beta": cfg.data.beta, "normalize": "max",
        "training": cfg.to_dict(), "data": {"dataset": "freesolv", "n_items": data.n_items},
        "provenance": {"note": "untrained test bundle made by tests/app_bundles.py"},
    }
    arrays = {"atoms_xyz": data.xyz, "atoms_channel": data.channel, "atoms_width": data.width,
              "atoms_offsets": data.offsets, "divisors": data.divisors, "split": data.split}
    extras = {"latent_map": {"coords": coords.tolist(), "method": "PCA of the latents (test bundle)"}}
    bundle = Bundle(config=config, model=model, latents=latents, boxes=data.boxes, items=data.items,
                    encoder=encoder, arrays=arrays, extras=extras)
    return save_bundle(bundle, path)


def bundle_for_tests(tmp_dir: Path, *, prefer_shipped: bool = True) -> Path:
    if prefer_shipped and shipped_bundle() is not None:
        return SHIPPED
    return make_small_bundle(tmp_dir / "freesolv-small")


@contextlib.contextmanager
def serving(args: list[str], log: Path, *, env: dict | None = None, timeout: float = 180.0,
            ready: str = "serving"):
    """Run ``molviz serve ARGS`` with its output in ``log`` until it says ``ready``; stop it after
    (:func:`molviz.app._bench.serving`; a server that does not start fails the test)."""
    import pytest

    from molviz.app._bench import serving as serve

    stack = contextlib.ExitStack()
    try:
        proc = stack.enter_context(serve(args, log, ready=ready, timeout=timeout, env=env))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    with stack:
        yield proc


# ----------------------------------------------------------------------------- a page in chromium
SHOTS = ROOT / "runs" / "screenshots"          # where browser tests leave screenshots to look at


def view_pixels(page) -> np.ndarray:
    """The 3D view's pixels as shown in the page: (H, W, 3) int16."""
    import io

    from PIL import Image
    png = page.locator("[data-testid=view3d]").screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def inked(img: np.ndarray) -> float:
    """Share of pixels that are not the white background."""
    return float(np.mean(np.any(np.abs(img - 255) > 10, axis=-1)))


def page_state(page, key):
    """A trame state value as the page has it (read only; tests drive the app by clicks)."""
    return page.evaluate(f"window.trame.state.get({key!r})")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))


def open_panel(page, title: str) -> None:
    """Open the drawer's expansion panel ``title`` unless it is open."""
    header = page.locator(".v-expansion-panel-title", has_text=title)
    panel = header.locator("xpath=..")
    if "v-expansion-panel--active" not in (panel.get_attribute("class") or ""):
        header.click()
        page.wait_for_timeout(400)



def wait_until(page, predicate, *, timeout: float = 60.0, what: str = "") -> None:
    """Poll ``predicate()`` until it holds; fail the test after ``timeout`` seconds."""
    import pytest

    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        page.wait_for_timeout(150)
    pytest.fail(f"timed out waiting for {what}")


def settle(page, timeout: float = 120.0) -> None:
    """Wait until the view has finished decoding."""
    page.wait_for_timeout(500)
    wait_until(page, lambda: not page_state(page, "busy"), timeout=timeout, what="the view to finish")


@contextlib.contextmanager
def app_page(playwright, url: str, *, downloads: bool = True, timeout: float = 120.0):
    """A 1500 x 900 chromium page on the app at ``url``, once its first picture is drawn (a first visit:
    empty storage)."""
    from molviz.app._bench import ARGS, CHROMIUM

    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
    context = browser.new_context(viewport={"width": 1500, "height": 900}, accept_downloads=downloads)
    page = context.new_page()
    page.goto(url)
    deadline = time.time() + timeout
    while time.time() < deadline and (inked(view_pixels(page)) < 0.02 or page_state(page, "busy")):
        page.wait_for_timeout(250)
    try:
        yield page
    finally:
        browser.close()
