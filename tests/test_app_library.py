"""Your own molecules in the app (issue 18), in a real browser: one ``molviz serve``, one chromium page.

A structure file uploaded through the Encode panel lands on the map with its neighbours and as
an interpolation endpoint; a broken, foreign or too large file says what is wrong and the server
stays up; an auto-decoder's latent fit shows its steps and can be cancelled; a bundle written
after start-up appears after "refresh"; a box selection on the map lists its items and
downloads them as CSV. Every action is a click, a drag or a file chosen in the file input.
"""
from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest
from app_bundles import SHIPPED, app_page, serving
from app_bundles import open_panel as _open_panel
from app_bundles import page_state as _state
from app_bundles import shot as _shot
from app_bundles import view_pixels as _view
from app_bundles import wait_until as _wait

from molviz.app._bench import CHROMIUM, free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NMR = SHIPPED.parent / "nmr-2juy"
BAD = Path(__file__).parent / "data" / "bad"
UPLOAD_MB = 1.0

if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (/usr/bin/chromium); `apt-get install chromium`",
                allow_module_level=True)
if not (SHIPPED / "bundle.json").is_file() or not (NMR / "bundle.json").is_file():
    pytest.skip("the shipped bundles (assets/models/freesolv, nmr-2juy) are not here", allow_module_level=True)
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    root = tmp_path_factory.mktemp("library-app")
    models = root / "models"
    models.mkdir()
    with serving([str(SHIPPED), "--port", str(port), "--models-dir", str(models),
                  "--max-upload-mb", str(UPLOAD_MB)], root / "serve.log") as proc:
        yield {"url": f"http://127.0.0.1:{port}/", "proc": proc, "models": models, "root": root}


@pytest.fixture(scope="module")
def page(server):
    with sync_playwright() as p, app_page(p, server["url"]) as pg:
        yield pg


def _idle(page, timeout: float = 120.0) -> None:
    page.wait_for_timeout(500)
    _wait(page, lambda: not _state(page, "busy") and not _state(page, "encoding"), timeout=timeout,
          what="the app to finish")


def _upload(page, path: Path) -> None:
    _open_panel(page, "Encode a molecule")
    page.locator("[data-testid=upload] input[type=file]").set_input_files(str(path))


def _expect_error(page, *words: str) -> str:
    _wait(page, lambda: _state(page, "error_show"), timeout=60, what="an error message")
    text = str(_state(page, "error_text"))
    assert all(w in text for w in words), text
    assert page.locator("[data-testid=error]").is_visible()
    page.evaluate("window.trame.state.set('error_show', false)")      # the snackbar's own close
    return text


def _phenol_sdf(folder: Path) -> Path:
    """4-chlorophenol with 3D coordinates (RDKit ETKDG), as a user's SDF."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("Oc1ccc(Cl)cc1"))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    mol.SetProp("_Name", "chlorophenol-upload")
    path = folder / "chlorophenol.sdf"
    with Chem.SDWriter(str(path)) as w:
        w.write(mol)
    return path


def test_an_uploaded_structure_lands_on_the_map_with_its_neighbours(page, server):
    _idle(page)
    before = _view(page)
    _upload(page, _phenol_sdf(server["root"]))
    _wait(page, lambda: _state(page, "has_encoded"), timeout=120, what="the uploaded file encoded")
    _idle(page)
    assert not _state(page, "error_show"), _state(page, "error_text")
    assert "chlorophenol: placed on the map" in _state(page, "placement_text")
    assert len(_state(page, "neighbours")) == 5
    assert any(o["title"] == "file: chlorophenol" for o in _state(page, "endpoint_options"))
    overlays = page.evaluate("window.trame.state.get('map_figure').data")
    stars = [t for t in overlays if (t.get("marker") or {}).get("symbol") == "star"]
    assert stars and "chlorophenol" in stars[0]["text"][0]
    assert _state(page, "view_source") == "encoded"
    after = _view(page)
    assert float((abs(after - before) > 12).any(-1).mean()) > 0.01          # the view shows the upload
    assert "chlorophenol" in _state(page, "view_caption")
    _shot(page, "library-01-upload.png")


def test_bad_files_say_what_is_wrong_and_the_server_stays_up(page, server, tmp_path):
    _idle(page)
    _upload(page, BAD / "truncated.pdb")
    _expect_error(page, "truncated")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a molecule\n")
    _upload(page, notes)
    _expect_error(page, "not a structure file", ".pdb")
    big = tmp_path / "big.pdb"
    line = "HETATM    1  C1  LIG A   1       0.000   0.000   0.000  1.00  0.00           C\n"
    big.write_text(line * int(UPLOAD_MB * 1e6 / len(line) + 1000))
    _upload(page, big)
    _expect_error(page, "above the upload limit", f"{UPLOAD_MB:g} MB")
    assert server["proc"].poll() is None
    assert not _state(page, "encoding")
    # the app still answers: the next item is shown
    item = _state(page, "item_index")
    _open_panel(page, "Encode a molecule")
    page.locator("[data-testid=item-neighbours]").click()
    _wait(page, lambda: len(_state(page, "neighbours") or []) == 5, what="the neighbours of the item")
    page.locator("[data-testid=neighbours] .v-list-item").first.click()
    _wait(page, lambda: _state(page, "item_index") != item, what="a neighbour shown")
    _idle(page)


def test_an_auto_decoder_fits_an_upload_with_progress_and_a_cancel(page, server, tmp_path):
    """nmr-2juy has no encoder: the uploaded model is fitted step by step; cancel drops it."""
    _idle(page)
    page.locator("[data-testid=model]").click()
    page.locator(".v-overlay--active .v-list-item", has_text="nmr-2juy").first.click()
    _wait(page, lambda: "nmr" in page.locator("[data-testid=model]").inner_text(), what="the NMR model")
    _idle(page, 240)
    text = Path(__file__).parent.parent / "assets" / "data" / "nmr-2juy" / "2juy.pdb"
    one = tmp_path / "2juy-first.pdb"
    lines = Path(text).read_text().splitlines()
    end = next(i for i, x in enumerate(lines) if x.startswith("ENDMDL"))
    one.write_text("\n".join(lines[:end + 1]) + "\nEND\n")
    _upload(page, one)
    _wait(page, lambda: "step" in str(_state(page, "encode_stage")), timeout=120, what="the fit's steps")
    first = _state(page, "encode_progress")
    _wait(page, lambda: _state(page, "encode_progress") > first, timeout=60, what="the fit to advance")
    _shot(page, "library-02-fit-progress.png")
    page.locator("[data-testid=cancel-encode]").click()
    page.locator("[data-testid=encode-progress]").wait_for(state="hidden", timeout=30_000)
    page.wait_for_timeout(1500)
    assert not _state(page, "has_encoded") and not _state(page, "error_show")
    page.locator("[data-testid=model]").click()
    page.locator(".v-overlay--active .v-list-item", has_text="freesolv").first.click()
    _wait(page, lambda: "freesolv" in page.locator("[data-testid=model]").inner_text(), what="FreeSolv again")
    _idle(page, 240)


def test_a_bundle_written_after_start_up_appears_after_refresh(page, server):
    _idle(page)
    shutil.copytree(SHIPPED, server["models"] / "my-library")
    page.locator("[data-testid=model]").click()
    assert page.locator(".v-overlay--active .v-list-item", has_text="my-library").count() == 0
    page.keyboard.press("Escape")
    page.locator("[data-testid=refresh-models]").click()
    _wait(page, lambda: any(o["title"] == "my-library" for o in _state(page, "model_options")),
          what="the new bundle listed")
    page.locator("[data-testid=model]").click()
    page.locator(".v-overlay--active .v-list-item", has_text="my-library").first.click()
    _wait(page, lambda: "my-library" in page.locator("[data-testid=model]").inner_text(), what="my-library open")
    _idle(page, 240)
    assert not _state(page, "error_show"), _state(page, "error_text")


def test_a_box_selection_lists_its_items_and_downloads_them_as_csv(page, tmp_path):
    _idle(page)
    plot = page.locator("[data-testid=latent-map] .js-plotly-plot")
    page.locator("[data-testid=latent-map] .modebar-btn[data-title='Box Select']").click()
    box = plot.locator(".nsewdrag").first.bounding_box()
    x0, y0 = box["x"] + 0.3 * box["width"], box["y"] + 0.3 * box["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + 0.4 * box["width"], y0 + 0.4 * box["height"], steps=8)
    page.mouse.up()
    _wait(page, lambda: _state(page, "map_selection_text"), what="the selection counted")
    n = int(str(_state(page, "map_selection_text")).split()[0])
    # what plotly itself selected in the page, and what the server kept for the redraw
    in_page = page.evaluate("document.querySelector('[data-testid=latent-map] .js-plotly-plot')"
                            ".data[0].selectedpoints.length")
    assert n >= 1 and in_page == n
    _shot(page, "library-03-box-selection.png")
    page.locator("[data-testid=selection-list]").click()
    listed = page.locator(".v-overlay--active .v-list-item")
    assert listed.count() == min(n, 200)
    page.keyboard.press("Escape")
    with page.expect_download(timeout=60_000) as info:
        page.locator("[data-testid=selection-csv]").click()
    path = tmp_path / "selection.csv"
    info.value.save_as(path)
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert len(rows) == n
    assert {"index", "name", "smiles", "map_x", "map_y", "expt"} <= set(rows[0])
    assert all(r["smiles"] for r in rows)
    page.locator("[data-testid=map-selection] .v-btn .mdi-close").click()
    _wait(page, lambda: not _state(page, "map_selection_text"), what="the selection cleared")
