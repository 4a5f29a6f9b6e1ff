"""The app as a daily tool (issue 20), in a real browser: one ``molviz serve``, one chromium page, tests in order.

Each test clicks and types as a user does (no state pokes to drive the app; state is
only read to check what happened): a custom resolution typed digit by digit, the way
back to the item after scrubbing an interpolation, a slow encode with its progress and
cancel button, the latent map's click modes on a bundle without descriptors, and
display toggles and camera moves answering while a large decode runs.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from app_bundles import SHIPPED, SHOTS, serving
from app_bundles import inked as _inked
from app_bundles import open_panel as _open_panel
from app_bundles import page_state as _state
from app_bundles import settle as _idle
from app_bundles import shot as _shot
from app_bundles import view_pixels as _view
from app_bundles import wait_until as _wait

from molviz.app._bench import ARGS, CHROMIUM, free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NMR = SHIPPED.parent / "nmr-2juy"

if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (/usr/bin/chromium); `apt-get install chromium`",
                allow_module_level=True)
if not (SHIPPED / "bundle.json").is_file() or not (NMR / "bundle.json").is_file():
    pytest.skip("the shipped bundles (assets/models/freesolv, nmr-2juy) are not here", allow_module_level=True)
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("log") / "serve.log"
    with serving([str(SHIPPED), "--port", str(port)], log) as proc:
        yield {"url": f"http://127.0.0.1:{port}/", "proc": proc, "log": log}


@pytest.fixture(scope="module")
def page(server):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(viewport={"width": 1500, "height": 900}, accept_downloads=True)
        pg = context.new_page()
        pg.goto(server["url"])
        deadline = time.time() + 120
        while time.time() < deadline and (_inked(_view(pg)) < 0.02 or _state(pg, "busy")):
            pg.wait_for_timeout(250)
        yield pg
        browser.close()


def _differs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.any(np.abs(a - b) > 12, axis=-1))) if a.shape == b.shape else 1.0


def _pick(page, testid: str, option: str) -> None:
    """Open the select ``testid`` and click the option whose text starts with ``option``."""
    page.locator(f"[data-testid={testid}]").click()
    item = page.locator(".v-overlay--active .v-list-item").filter(
        has=page.locator(".v-list-item-title", has_text=option)).first
    item.click()
    page.wait_for_timeout(300)


def _widths(page) -> dict[str, float]:
    return {k: page.locator(f"[data-testid={k}]").bounding_box()["width"] for k in ("model", "item", "resolution")}


def test_a_typed_resolution_is_validated_when_committed(page):
    """Typing 200 digit by digit decodes nothing until Enter, then 200^3 (issue: "2" refused, 9^3 decoded)."""
    _idle(page)
    widths = _widths(page)
    _pick(page, "resolution", "custom")
    _idle(page)
    before = _state(page, "resolution")
    field = page.locator("[data-testid=resolution-custom] input")
    field.click()
    field.press("Control+a")
    for ch in "200":
        field.press(ch)
        page.wait_for_timeout(500)                  # the server would answer a per-keystroke check meanwhile
        assert not _state(page, "error_show"), _state(page, "error_text")
        assert _state(page, "resolution") == before, "a keystroke changed the resolution"
    assert field.input_value() == "200"
    field.press("Enter")
    _wait(page, lambda: _state(page, "resolution_shown") == 200, timeout=240, what="the 200^3 picture")
    assert "200\u00b3" in _state(page, "view_caption")
    assert not _state(page, "error_show")
    # the caption is long now; the selectors keep their width and the caption shows in full as a tooltip
    assert _widths(page) == pytest.approx(widths, abs=1)
    assert page.locator("[data-testid=caption]").get_attribute("title") == _state(page, "view_caption")
    _shot(page, "daily-01-typed-200.png")
    # a value above the server's limit is refused on Enter, and the field shows the last good value again
    field.click()
    field.press("Control+a")
    field.type("999")
    field.press("Enter")
    _wait(page, lambda: _state(page, "error_show"), what="the refusal")
    assert "limit" in _state(page, "error_text")
    _wait(page, lambda: field.input_value() == "200", what="the field to show 200 again")
    _pick(page, "resolution", "64")
    _idle(page)


def test_choosing_the_item_again_after_scrubbing_goes_back_to_it(page):
    _idle(page)
    item = _state(page, "item_index")
    _open_panel(page, "Interpolation")
    track = page.locator("[data-testid=interp-t] .v-slider-track")
    track.scroll_into_view_if_needed()
    box = track.bounding_box()
    page.mouse.click(box["x"] + 0.5 * box["width"], box["y"] + box["height"] / 2)
    _wait(page, lambda: _state(page, "view_source") == "interpolation", what="the interpolation")
    _idle(page)
    page.wait_for_timeout(1000)                       # the refined picture arrives after the spinner goes
    scrubbed = _view(page)
    # the same item, picked again in the molecule list
    page.locator("[data-testid=item]").click()
    page.locator(".v-overlay--active .v-list-item").filter(
        has=page.locator(".v-list-item-title", has_text=f"{item}: ")).first.click()
    _wait(page, lambda: _state(page, "view_source") == "item", what="the item view")
    _idle(page)
    assert _state(page, "item_index") == item
    _wait(page, lambda: _differs(_view(page), scrubbed) > 0.003, timeout=30, what="the item's picture")
    assert "t =" not in _state(page, "view_caption")
    # and the toolbar's "item" button does the same
    page.mouse.click(box["x"] + 0.8 * box["width"], box["y"] + box["height"] / 2)
    _wait(page, lambda: _state(page, "view_source") == "interpolation", what="the interpolation")
    page.locator("[data-testid=back-to-item]").click()
    _wait(page, lambda: _state(page, "view_source") == "item", what="the item view")
    _idle(page)


def _children(pid: int) -> list[str]:
    """Command lines of the processes whose parent is ``pid``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                out.append((d / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, ValueError):
            continue
    return out


def test_a_slow_encode_shows_progress_and_can_be_cancelled(page, server):
    _idle(page)
    widths = _widths(page)
    view_before = (_state(page, "view_source"), _state(page, "item_index"))
    error_before = _state(page, "error_text")
    _open_panel(page, "Encode a molecule")
    smiles = page.locator("[data-testid=smiles] input")
    smiles.scroll_into_view_if_needed()
    smiles.click()
    smiles.fill("C" * 200)                            # minutes of RDKit embedding
    smiles.press("Enter")
    progress = page.locator("[data-testid=encode-progress]")
    progress.wait_for(state="visible", timeout=20_000)
    _wait(page, lambda: "conformer" in (_state(page, "encode_stage") or ""), what="the conformer stage")
    _wait(page, lambda: any("molviz.view._conformer" in c for c in _children(server["proc"].pid)),
          what="the conformer's child process")
    assert _widths(page) == pytest.approx(widths, abs=1)
    _shot(page, "daily-02-encode-progress.png")
    page.locator("[data-testid=cancel-encode]").click()
    progress.wait_for(state="hidden", timeout=10_000)
    _wait(page, lambda: not any("molviz.view._conformer" in c for c in _children(server["proc"].pid)),
          timeout=10, what="the child process to be killed")
    page.wait_for_timeout(1000)
    assert _state(page, "error_text") == error_before          # no new message: a cancel is no error
    assert not _state(page, "has_encoded")
    assert (_state(page, "view_source"), _state(page, "item_index")) == view_before


def test_a_typed_molecule_is_refined_with_progress_and_lands_on_the_map(page):
    """A typed SMILES: the encoder, then its latent refined against its atoms step by step (a
    percentage, and a cancel that stops the refinement), then the molecule on the map with its
    neighbours and surfaces from the refined latent."""
    _idle(page)
    _open_panel(page, "Encode a molecule")
    smiles = page.locator("[data-testid=smiles] input")
    progress = page.locator("[data-testid=encode-progress]")
    stages: list[str] = []

    def refining() -> bool:
        stage = _state(page, "encode_stage") or ""
        stages.append(stage)
        return "refined against" in stage and "step" in stage

    # first: cancelled while its latent is being refined
    smiles.scroll_into_view_if_needed()
    smiles.click()
    smiles.fill("ClC(Cl)(Cl)SN1C(=O)C2CC=CCC2C1=O")       # captan's spelling differs from FreeSolv's
    smiles.press("Enter")
    _wait(page, refining, timeout=60, what="the refinement's steps")
    page.locator("[data-testid=cancel-encode]").click()
    progress.wait_for(state="hidden", timeout=20_000)
    page.wait_for_timeout(800)
    assert not _state(page, "has_encoded")
    # then: run to the end
    stages.clear()
    smiles.click()
    smiles.fill("CCOc1ccc(Cl)cc1O")
    smiles.press("Enter")
    _wait(page, refining, timeout=60, what="the refinement's steps")
    _wait(page, lambda: refining() and False or _state(page, "has_encoded"), timeout=120,
          what="the encoded molecule")
    _idle(page)
    steps = [int(s.rsplit("step ", 1)[1]) for s in stages if "refined against" in s and "step " in s]
    assert steps == sorted(steps) and steps[-1] > steps[0]            # the percentage moved along
    placement = _state(page, "placement_text")
    assert "placed on the map" in placement and "refined 200 steps against its atoms" in placement
    assert len(_state(page, "neighbours")) == 5 and _state(page, "view_source") == "encoded"
    assert _inked(_view(page)) > 0.02
    _shot(page, "daily-encoded-refined.png")


def _map_points(page):
    return page.locator("[data-testid=latent-map] .scatterlayer .trace").first.locator(".point")


def _click_point(page, k: int) -> None:
    box = _map_points(page).nth(k).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.wait_for_timeout(300)
    page.mouse.click(x, y)
    page.wait_for_timeout(800)


def _isolated_points(page, n: int, avoid=()) -> list[int]:
    xy = np.array(page.evaluate("(() => { const d = window.trame.state.get('map_items')[0]; "
                                "return [Array.from(d.x), Array.from(d.y)]; })()"), dtype=float).T
    xy = (xy - xy.min(0)) / np.maximum(np.ptp(xy, axis=0), 1e-9)
    dist = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(len(xy)) * 9
    return [int(k) for k in np.argsort(-dist.min(1)) if k not in avoid][:n]


def test_map_click_modes_on_a_bundle_without_descriptors(page):
    """nmr-2juy has no descriptors: the colour-by list still offers "nothing", and the click mode toggles."""
    _idle(page)
    _pick(page, "model", "nmr-2juy")
    _wait(page, lambda: _state(page, "model_index") is not None and
          "nmr" in page.locator("[data-testid=model]").inner_text(), what="the NMR model")
    _wait(page, lambda: _map_points(page).count() >= 4, timeout=240, what="the NMR latent map (UMAP)")
    _idle(page)
    opts = _state(page, "map_color_options")
    assert opts and _state(page, "map_color_by") == "none"
    page.locator("[data-testid=latent-map] .v-btn", has_text="click: A, B").click()
    page.wait_for_timeout(500)
    assert not _state(page, "error_show"), _state(page, "error_text")
    item = _state(page, "item_index")
    a, b = _isolated_points(page, 2, avoid=(item, _state(page, "endpoint_a"), _state(page, "endpoint_b")))
    _click_point(page, a)
    _wait(page, lambda: _state(page, "endpoint_a") == a, what="endpoint A set by a click")
    _click_point(page, b)
    _wait(page, lambda: _state(page, "endpoint_b") == b, what="endpoint B set by a click")
    assert _state(page, "item_index") == item
    page.locator("[data-testid=latent-map] .v-btn", has_text="click: show").click()
    page.wait_for_timeout(500)
    target = _isolated_points(page, 1, avoid=(item, a, b))[0]
    _click_point(page, target)
    _wait(page, lambda: _state(page, "item_index") == target, what="the clicked item shown")
    assert (_state(page, "endpoint_a"), _state(page, "endpoint_b")) == (a, b)
    assert not _state(page, "error_show"), _state(page, "error_text")
    _shot(page, "daily-03-nmr-map-clicks.png")
    _pick(page, "model", "freesolv")
    _wait(page, lambda: "freesolv" in page.locator("[data-testid=model]").inner_text(), what="FreeSolv again")
    _idle(page)



def test_camera_moves_and_display_toggles_answer_while_a_128_decode_runs(page):
    """Choosing 128^3 starts a decode of seconds; drags and toggles meanwhile are timed from the input to
    the next picture in the browser (molviz.app._bench.interaction_latencies, also `molviz bench app`)."""
    from molviz.app._bench import TARGET_MS, interaction_latencies

    _idle(page)
    rows = interaction_latencies(page, resolution="128")
    print(rows)
    steps = {k: v for k, v in rows.items() if "ms" in v}
    assert steps["camera drag 1"]["decoding"], "the decode ended before the first drag: nothing was measured"
    drags = [v["ms"] for k, v in steps.items() if k.startswith("camera")]
    # No drag or toggle waits for the decode (seconds; before, a rotation took 3 s and an outline toggle
    # 18.7 s). The 200-ms target itself (TARGET_MS) is a benchmark figure (`molviz bench app`), not a
    # timed assertion: other processes' load (CI, neighbours) slows every render, so the bound here grows
    # with the runnable threads per core.
    busy = max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    assert TARGET_MS < 1500 and len(drags) == 3
    assert max(v["ms"] for v in steps.values()) < 1500 * busy, (busy, rows)
    assert "128\u00b3" in rows["decode done"]["caption"]
    # the PSNR chip shows at 128^3 too (adaptive decode: from a voxel sample, and it says so)
    _idle(page)
    chip = page.locator("[data-testid=psnr]")
    _wait(page, lambda: chip.is_visible() and "128\u00b3 (sampled" in chip.inner_text(), what="the PSNR chip")
    _shot(page, "daily-04-psnr-128.png")
    _pick(page, "resolution", "64")
    _idle(page)


def _export_gif(page, folder: Path, title: str) -> Path:
    _open_panel(page, "Interpolation")
    field = page.locator("[data-testid=export-title] input")
    field.scroll_into_view_if_needed()
    field.fill(title)
    page.wait_for_timeout(300)
    button = page.locator("[data-testid=export]")
    with page.expect_download(timeout=240_000) as info:
        button.click()
    path = folder / f"{title or 'untitled'}.gif"
    info.value.save_as(path)
    return path


def test_a_movie_carries_its_title_fills_the_frame_and_plays_at_the_rate_asked(page, tmp_path):
    from PIL import Image

    _idle(page)
    _open_panel(page, "Interpolation")
    _pick(page, "export-format", "gif")
    _pick(page, "export-size", "480p")
    frames = page.locator("[data-testid=export-frames] input")
    frames.fill("4")
    frames.press("Tab")
    untitled = _export_gif(page, tmp_path, "")
    titled = _export_gif(page, tmp_path, "Ester to alcohol")
    first = []
    for path in (untitled, titled):
        im = Image.open(path)
        assert im.n_frames == 4 and im.size == (854, 480)
        durations = []
        for k in range(im.n_frames):
            im.seek(k)
            durations.append(im.info["duration"])
        assert sum(durations) == pytest.approx(4 * 1000 / 24, abs=10)     # 24 fps asked: 40, 40, 50, 40 ms
        im.seek(0)
        first.append(np.asarray(im.convert("RGB")).astype(np.int16))
    top_left = (slice(0, 60), slice(0, 400))
    assert _differs(first[0][top_left], first[1][top_left]) > 0.02, "the title is not in the first frame"
    # the molecule fills the frame: inked pixels span most of its width or height
    ink = np.any(np.abs(first[0] - 255) > 10, axis=-1)
    for _ in range(3):                   # erode: the box outline's thin lines go, surfaces and atoms stay
        ink[1:-1, 1:-1] &= ink[:-2, 1:-1] & ink[2:, 1:-1] & ink[1:-1, :-2] & ink[1:-1, 2:]
    ink[-40:, :] = False                                               # the t caption
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    assert max((rows[-1] - rows[0]) / 480, (cols[-1] - cols[0]) / 854) > 0.75
    Image.fromarray(first[1].astype(np.uint8)).save(SHOTS / "daily-05-movie-title.png")


def _choose(page, testid: str, typed: str, option: str) -> None:
    """Type into the autocomplete ``testid`` and click the option whose title starts with ``option``."""
    box = page.locator(f"[data-testid={testid}] input")
    box.scroll_into_view_if_needed()
    box.click()
    box.fill(typed)
    page.wait_for_timeout(500)
    page.locator(".v-overlay--active .v-list-item").filter(
        has=page.locator(".v-list-item-title", has_text=option)).first.click()
    page.wait_for_timeout(300)


def test_an_interpolation_shows_the_channels_of_both_ends_and_its_t_on_the_map(page):
    """CCl4 -> methanol: Cl (only in A) and O (only in B) both show; the map marks t on the path."""
    _idle(page)
    names = _state(page, "channel_names")
    cl, o = names.index("Cl"), names.index("O")
    _open_panel(page, "Interpolation")
    _choose(page, "endpoint-a", "carbon tetra", "413: carbon tetrachloride")
    _choose(page, "endpoint-b", "methanol", "37: methanol")
    assert (_state(page, "endpoint_a"), _state(page, "endpoint_b")) == (413, 37)
    track = page.locator("[data-testid=interp-t] .v-slider-track")
    box = track.bounding_box()
    before = _view(page)
    page.mouse.click(box["x"] + 0.3 * box["width"], box["y"] + box["height"] / 2)
    _wait(page, lambda: _state(page, "view_source") == "interpolation", what="the interpolation")
    _idle(page)
    _wait(page, lambda: _differs(_view(page), before) > 0.01, what="the interpolation's picture")
    page.wait_for_timeout(1000)
    green = _view(page)
    green = (green[..., 1] > 150) & (green[..., 0] < 120) & (green[..., 2] < 120)     # Cl is drawn green
    assert green.mean() > 0.002, "no Cl surface in the picture"
    assert _state(page, f"ch{cl}_visible") and _state(page, f"ch{o}_visible")
    t = _state(page, "interp_t")
    texts = page.evaluate("window.trame.state.get('map_figure').data.map(d => (d.text || []).join(' '))")
    assert any(f"t = {t:.2f}" in x for x in texts), texts
    _shot(page, "daily-06-interpolation-ccl4-methanol.png")
    page.locator("[data-testid=back-to-item]").click()
    _idle(page)


def test_atoms_found_in_the_decoded_field_are_drawn_beside_the_true_ones(page):
    """Display "atoms: both" on carbon tetrachloride: the atoms deconvolved from its decoded field are
    matched to the true ones and drawn (extra ones magenta); the caption counts them."""
    _idle(page)
    _choose(page, "item", "carbon tetra", "413: carbon tetrachloride")
    _wait(page, lambda: _state(page, "item_index") == 413, what="CCl4")
    _idle(page)
    before = _view(page)
    _open_panel(page, "Display")
    _pick(page, "display-atoms-source", "both")
    _wait(page, lambda: "matched" in (_state(page, "atoms_text") or ""), timeout=120, what="the field's atoms")
    text = _state(page, "atoms_text")
    assert "5 matched" in text and "0 missed" in text, text
    _wait(page, lambda: _differs(_view(page), before) > 0.002, what="the found atoms in the picture")
    _shot(page, "daily-07-field-atoms.png")
    _pick(page, "display-atoms-source", "true")
    _wait(page, lambda: not _state(page, "atoms_text"), what="the caption to clear")


def test_camera_presets_and_a_decode_can_be_stopped(page):
    _idle(page)
    shown = _state(page, "resolution_shown")
    before = _view(page)
    page.locator("[data-testid=camera-presets]").click()
    page.locator("[data-testid=camera-top]").click()
    _wait(page, lambda: _differs(_view(page), before) > 0.01, what="the top view")
    _shot(page, "daily-08-camera-top.png")
    # a 256^3 decode, stopped from the toolbar: the spinner goes at once and the picture stays
    _pick(page, "resolution", "256")
    _wait(page, lambda: _state(page, "busy"), what="the decode to start")
    page.locator("[data-testid=cancel-view]").click()
    _wait(page, lambda: not _state(page, "busy"), timeout=2, what="the spinner to go")
    page.wait_for_timeout(3000)
    assert _state(page, "resolution_shown") in (shown, 32)      # the old picture (or the coarse pass), not 256
    _pick(page, "resolution", "64")
    _idle(page)


def test_map_search_by_name_molecule_or_substructure_says_how_many(page):
    box = page.locator("[data-testid=map-search] input")
    found = page.locator("[data-testid=map-found]")
    for typed, want in (("ClC(Cl)(Cl)Cl", "1 match (same molecule)"), ("[Br]", "matches (substructure)"),
                        ("xyzzy", "no match")):
        box.fill("")
        box.type(typed, delay=20)
        _wait(page, lambda: want in found.inner_text(), what=f"{want!r} for {typed!r}")
    assert _state(page, "map_found") == 0
    _shot(page, "daily-09-map-search.png")
    box.fill("")


def test_png_at_a_chosen_size_with_a_transparent_background(page, tmp_path):
    from PIL import Image

    _idle(page)
    page.locator("[data-testid=png-options]").click()
    _pick(page, "png-size", "1200x900")
    page.locator("[data-testid=png-transparent] input").check()
    page.keyboard.press("Escape")
    page.wait_for_timeout(300)
    with page.expect_download(timeout=60_000) as info:
        page.locator("[data-testid=screenshot]").click()
    path = tmp_path / "picture.png"
    info.value.save_as(path)
    img = Image.open(path)
    assert img.size == (1200, 900) and img.mode == "RGBA"
    alpha = np.asarray(img)[..., 3]
    assert alpha[0, 0] == 0 and alpha[-1, -1] == 0                   # the background is transparent
    assert (alpha == 255).mean() > 0.01                               # the molecule is not
    img.save(SHOTS / "daily-10-transparent.png")


def test_levels_are_typed_as_numbers_and_in_sigma(page):
    _idle(page)
    c = _state(page, "channel_names").index("C")
    _open_panel(page, "Channels")
    typed = page.locator(f"[data-testid=ch{c}_level-typed] input")
    typed.scroll_into_view_if_needed()
    before = _view(page)
    typed.fill("0.35")
    assert _state(page, f"ch{c}_level") != 0.35                     # nothing sent while typing
    typed.press("Enter")
    _wait(page, lambda: _state(page, f"ch{c}_level") == 0.35, what="the typed level")
    _idle(page)
    _wait(page, lambda: _differs(_view(page), before) > 0.003, what="the new surface")
    _pick(page, f"ch{c}_mode", "\u03c3 above the mean")
    _wait(page, lambda: _state(page, f"ch{c}_mode") == "sigma", what="sigma mode")
    typed.fill("2")
    typed.press("Enter")
    _wait(page, lambda: _state(page, f"ch{c}_level") == 2, what="2 sigma")
    _idle(page)
    assert not _state(page, "error_show"), _state(page, "error_text")
    _shot(page, "daily-11-level-sigma.png")
    _pick(page, f"ch{c}_mode", "absolute")
    _idle(page)


def test_neighbours_of_any_item_and_the_help(page):
    _idle(page)
    item = _state(page, "item_index")
    _open_panel(page, "Encode a molecule")
    button = page.locator("[data-testid=item-neighbours]")
    button.scroll_into_view_if_needed()
    button.click()
    rows = page.locator("[data-testid=neighbours] .v-list-item")
    _wait(page, lambda: rows.count() == 5, what="five neighbours")
    assert all(n["index"] != item for n in _state(page, "neighbours"))
    first = _state(page, "neighbours")[0]["index"]
    rows.first.click()
    _wait(page, lambda: _state(page, "item_index") == first, what="the neighbour shown")
    page.locator("[data-testid=help]").click()
    dialog = page.locator("[data-testid=help-dialog]")
    dialog.wait_for(state="visible", timeout=5000)
    assert "Resolution" in dialog.inner_text()
    _shot(page, "daily-12-help.png")
    dialog.locator(".v-btn", has_text="close").click()
    dialog.wait_for(state="hidden", timeout=5000)
