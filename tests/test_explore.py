"""The web explorer (``astroloom explore``): its JSON API, its refusals of bad requests and
uploads, and its pages in a real browser — Debian's chromium, headless, driven by Selenium
(``make test`` installs the browser when it is missing)."""

from __future__ import annotations

import io
import json
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient
from PIL import Image

from astroloom.discover.anomaly import anomaly_scores
from astroloom.evaluate.embed import embed_dataset, read_embeddings
from astroloom.explore.app import create_app
from astroloom.explore.pictures import image_png
from astroloom.explore.survey import ExplorerSurvey, cached_layout
from astroloom.explore.uploads import MAX_BYTES
from astroloom.model.foundation import Foundation

MODEL = "astroloom/mock-tiny"


@pytest.fixture(scope="module")
def survey(survey_dir, tmp_path_factory) -> ExplorerSurvey:
    out = tmp_path_factory.mktemp("explore") / "embeddings.parquet"
    embed_dataset(MODEL, survey_dir, out, progress=False, modalities=["image"])
    return ExplorerSurvey(Foundation.from_pretrained(MODEL), survey_dir, out)


@pytest.fixture(scope="module")
def client(survey) -> TestClient:
    return TestClient(create_app(survey))


def cutout_png(survey: ExplorerSurvey, object_id: str) -> bytes:
    image = survey.observation(object_id)["image"]
    return image_png(image, survey.image_scale, size=64)


def unpack_map(blob: bytes) -> dict:
    """``/api/map.bin`` read as the map page reads it."""
    size = int(np.frombuffer(blob[:4], "<u4")[0])
    head = json.loads(blob[4 : 4 + size])
    n, at = head["n"], 4 + size
    x, y, values = np.frombuffer(blob[at : at + 12 * n], "<f4").reshape(3, n)
    return {
        **head,
        "x": x,
        "y": y,
        "values": values,
        "ids": blob[at + 12 * n :].decode().split("\n"),
    }


def test_map_objects_and_neighbours(client, survey):
    layout = client.get("/api/map").json()
    assert len(layout["ids"]) == len(layout["x"]) == len(survey.ids) == 320
    assert "redshift" in layout["labels"]
    z = client.get("/api/map", params={"color": "redshift"}).json()["values"]
    assert np.allclose(z, read_embeddings(survey.embeddings_path).labels["redshift"])
    # The page's packed map holds the same points, values and ids.
    for color, values in ((None, layout["values"]), ("redshift", z), ("morph_type", None)):
        params = {"color": color} if color else {}
        packed = unpack_map(client.get("/api/map.bin", params=params).content)
        plain = client.get("/api/map", params=params).json()
        assert packed["ids"] == plain["ids"] == layout["ids"]
        assert np.allclose(packed["x"], plain["x"], atol=1e-4)
        if packed["numeric"]:
            assert np.allclose(packed["values"], values, atol=1e-4)
        else:  # a class label: codes into the category list
            names = [packed["categories"][int(c)] for c in packed["values"]]
            assert names == plain["values"] and len(packed["categories"]) >= 2
    # The layout is cached beside the embeddings and reused.
    cache = survey.embeddings_path.with_name(survey.embeddings_path.name + ".explore.npz")
    assert cache.is_file()
    first = survey.ids[0]
    obj = client.get(f"/api/objects/{first}").json()
    assert obj["modalities"] == ["image", "spectrum"] and obj["bands"] == ["g", "r", "z"]
    assert obj["labels"]["redshift"] == pytest.approx(z[0])
    near = client.get(f"/api/objects/{first}/neighbours", params={"k": 5}).json()["neighbours"]
    assert len(near) == 5 and first not in [n["id"] for n in near]
    assert [n["distance"] for n in near] == sorted(n["distance"] for n in near)
    # Each distance is the cosine distance of the two embeddings.
    emb = read_embeddings(survey.embeddings_path)
    a, b = emb.vectors[0], emb.vectors[list(emb.ids).index(near[0]["id"])]
    cosine = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    assert near[0]["distance"] == pytest.approx(1 - cosine, abs=1e-5)
    for kind in ("image.png", "spectrum.png", "explain.png", "image.png?band=r&stretch=log"):
        reply = client.get(f"/api/objects/{first}/{kind}")
        assert reply.status_code == 200 and reply.content[:4] == b"\x89PNG", kind
    assert client.get(f"/object/{first}").status_code == 200


def test_anomalies_and_ranking_by_example(client, survey):
    reply = client.get("/api/anomalies", params={"limit": 10}).json()
    ranked = reply["anomalies"]
    scores = [r["score"] for r in ranked]
    assert len(ranked) == 10 and scores == sorted(scores, reverse=True)
    # The score is the bench's best for embeddings: the largest local outlier factor.
    assert reply["method"] == survey.layout.method == "lof-range"
    expected = anomaly_scores(survey.emb.vectors, "lof-range")
    top = [str(survey.ids[i]) for i in np.argsort(-expected)[:10]]
    assert [r["id"] for r in ranked] == top
    # A layout cached before the method was recorded (isolation-forest scores) gets new
    # scores and keeps its map.
    cache = survey.embeddings_path.with_name(survey.embeddings_path.name + ".explore.npz")
    original = cache.read_bytes()
    with np.load(cache) as saved:
        old = {k: saved[k] for k in ("coords", "signature")}
    marked = old["coords"] + 1000.0  # a map UMAP would not make: kept, not recomputed
    np.savez(cache, anomaly=np.zeros(len(survey.ids), np.float32), coords=marked,
             signature=old["signature"])
    again = cached_layout(survey.embeddings_path, survey.emb)
    assert again.method == "lof-range" and np.allclose(again.anomaly, survey.layout.anomaly)
    assert np.array_equal(again.coords, marked)
    with np.load(cache) as saved:
        assert str(saved["method"]) == "lof-range"
    cache.write_bytes(original)  # the module's other tests read the survey's own cache
    late = client.get(
        "/api/anomalies", params={"label": "morph_type", "value": "early", "limit": 500}
    ).json()["anomalies"]
    kinds = read_embeddings(survey.embeddings_path).labels["morph_type"]
    where = {i: k for i, k in enumerate(survey.ids)}
    assert late and all(kinds[list(where.values()).index(r["id"])] == "early" for r in late)
    # "More like these": early types given as positives rank early types first.
    early = [str(i) for i, k in zip(survey.ids, kinds, strict=True) if k == "early"]
    reply = client.post("/api/rank", json={"positive": early[:8], "k": 40}).json()["ranked"]
    share = np.mean([kinds[list(survey.ids).index(r["id"])] == "early" for r in reply])
    assert share > 2 * np.mean(kinds == "early")


def test_search_by_uploaded_cutouts(client, survey):
    """A cutout uploaded as FITS with the survey's zero point and pixel scale in its header
    is the object itself (distance 0). An 8-bit PNG rendition is searched too (its
    neighbours are not asserted: a clipped colour picture of a faint galaxy is another
    rendition, docs/benchmarks.md "Transfer")."""
    from astropy.io import fits

    target = str(survey.ids[3])
    fits_bytes = io.BytesIO()
    hdu = fits.PrimaryHDU(survey.observation(target)["image"])
    hdu.header["MAGZERO"] = survey.info.image.known_zero_point()
    hdu.header["PIXSCALE"] = survey.info.image.pixel_scale_arcsec
    hdu.writeto(fits_bytes)
    files = [
        ("files", ("one.png", cutout_png(survey, target), "image/png")),
        ("files", ("one.fits", fits_bytes.getvalue(), "application/fits")),
    ]
    results = client.post("/api/search", files=files).json()["results"]
    assert [r["name"] for r in results] == ["one.png", "one.fits"]
    assert results[1]["neighbours"][0]["id"] == target  # the same pixels: itself first
    assert results[1]["neighbours"][0]["distance"] < 1e-4
    png_hits = results[0]["neighbours"]
    assert len(png_hits) == 12
    assert [n["distance"] for n in png_hits] == sorted(n["distance"] for n in png_hits)


def test_bad_requests_are_refused_and_the_server_keeps_serving(client, survey):
    for bad in ("../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "/etc/passwd", "no-such-id"):
        assert client.get(f"/api/objects/{bad}").status_code == 404, bad
        assert client.get(f"/api/objects/{bad}/image.png").status_code == 404, bad
        assert client.get(f"/object/{bad}").status_code == 404, bad
    assert client.get("/api/map", params={"color": "nope"}).status_code == 400
    assert client.post("/api/rank", json={"positive": ["../x"]}).status_code == 404
    uploads = {
        "garbage.png": (b"\x89PNG not really", 415),
        "empty.fits": (b"", 422),
        "broken.fits": (b"SIMPLE  =                    T" + b" " * 50, 415),
        "huge.png": (b"0" * (MAX_BYTES + 1), 413),
        "script.png": (b"import os; os.system('rm -rf /')", 415),
    }
    for name, (raw, status) in uploads.items():
        reply = client.post("/api/search", files=[("files", (name, raw, "image/png"))])
        assert reply.status_code == status, (name, reply.status_code, reply.text)
        assert reply.json()["detail"]
    big = Image.new("RGB", (5000, 4000))
    buffer = io.BytesIO()
    big.save(buffer, format="PNG")
    reply = client.post("/api/search", files=[("files", ("big.png", buffer.getvalue(), "x"))])
    assert reply.status_code == 413 and "limit" in reply.json()["detail"]
    # Still serving.
    assert client.get(f"/api/objects/{survey.ids[0]}").status_code == 200


def test_explore_binds_to_loopback_by_default():
    from typer.main import get_command

    from astroloom.cli import app

    explore = get_command(app).commands["explore"]
    host = next(p for p in explore.params if p.name == "host")
    assert host.default == "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(survey):
    port = free_port()
    config = uvicorn.Config(create_app(survey), host="127.0.0.1", port=port, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    for _ in range(200):
        if running.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("chromium and chromedriver are missing: `make test` installs them (apt)")
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--window-size=1200,900"):
        options.add_argument(arg)
    options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console, for failures
    session = webdriver.Chrome(service=Service(driver), options=options)
    yield session
    session.quit()


def wait_ready(browser, seconds: float = 60) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(browser, seconds).until(
            lambda b: b.execute_script("return document.body.dataset.ready") == "1"
        )
    except TimeoutException:
        console = "\n".join(e["message"] for e in browser.get_log("browser"))
        pytest.fail(f"{browser.current_url} never became ready; the console said:\n{console}")


def test_in_a_real_browser(browser, server, survey, tmp_path):
    """Open the map, lasso a region (exactly its points are listed), hover a point (its
    thumbnail appears), click it (its page opens with twelve neighbours, their pictures
    loaded), upload a cutout on the search page (results appear), and check that a
    screenshot is not blank."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server + "/")
    wait_ready(browser)
    assert f"{len(survey.ids)} objects" in browser.find_element(By.ID, "status").text
    # Lasso: drag round a rectangle in the map; exactly the points inside it are listed.
    expected, corners = browser.execute_script(
        """const px = v => skymap.toClient(v, 0)[0], py = v => skymap.toClient(0, v)[1];
        const between = (v, f) => { const s = [...v].sort((a, b) => a - b);
          const k = Math.floor(f * (s.length - 1)); return (s[k] + s[k + 1]) / 2; };
        const x0 = Math.round(px(between(data.x, 0.1))), x1 = Math.round(px(between(data.x, 0.7)));
        const y0 = Math.round(py(between(data.y, 0.1))), y1 = Math.round(py(between(data.y, 0.7)));
        const inside = data.x.filter((x, i) => {
          const u = px(x), v = py(data.y[i]);
          return u > Math.min(x0, x1) && u < Math.max(x0, x1)
            && v > Math.min(y0, y1) && v < Math.max(y0, y1);
        }).length;
        return [inside, [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]];"""
    )
    assert 10 < expected < len(survey.ids)
    lasso = ActionChains(browser)
    pointer = lasso.w3c_actions.pointer_action
    pointer.move_to_location(*corners[0])
    pointer.pointer_down()
    for (u0, v0), (u1, v1) in zip(corners[:-1], corners[1:], strict=True):
        for k in range(1, 6):  # several small moves per side, as a hand draws
            pointer.move_to_location(round(u0 + (u1 - u0) * k / 5), round(v0 + (v1 - v0) * k / 5))
    pointer.pointer_up()
    lasso.perform()
    picked = WebDriverWait(browser, 10).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "#picked h3")
    )
    assert picked[0].text == f"{expected} selected"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#picked .cell")) == min(expected, 48)
    # The map is drawn: the screenshot of its box holds the dots' colours.
    shot = tmp_path / "map.png"
    browser.save_screenshot(str(shot))
    box = browser.execute_script(
        "const b = document.getElementById('map').getBoundingClientRect();"
        "return [b.left, b.top, b.right, b.bottom].map(Math.round);"
    )
    drawn = np.asarray(Image.open(shot).convert("RGB"), float)[box[1] : box[3], box[0] : box[2]]
    coloured = np.ptp(drawn, axis=2) > 40  # not white, grey or black: a dot
    assert 0.002 < coloured.mean() < 0.5, coloured.mean()
    # The wheel zooms about the cursor: every point's offset from the cursor doubles
    # (deltaY −ln 2 / 0.0015 halves the view's size: zoom = exp(0.0015 × deltaY)).
    before, after = browser.execute_script(
        """const [u, v] = skymap.toClient(data.x[0], data.y[0]).map(Math.round);
        const offsets = () => [0, 1].flatMap(i => {
          const [a, b] = skymap.toClient(data.x[i], data.y[i]); return [a - u, b - v]; });
        const before = offsets();
        skymap.overlay.dispatchEvent(new WheelEvent('wheel',
          {deltaY: -Math.LN2 / 0.0015, clientX: u, clientY: v, bubbles: true, cancelable: true}));
        return [before, offsets()];"""
    )
    assert after == pytest.approx([2 * b for b in before], abs=0.01), (before, after)
    browser.get(server + "/")
    wait_ready(browser)
    x, y, first = browser.execute_script(
        """return [...skymap.toClient(data.x[0], data.y[0]), data.ids[0]];"""
    )
    hover = ActionChains(browser)
    hover.w3c_actions.pointer_action.move_to_location(int(x), int(y))
    hover.perform()
    box = browser.find_element(By.ID, "hover")
    WebDriverWait(browser, 10).until(lambda b: box.is_displayed())
    shown = box.text.split("\n")[0]
    assert shown in set(survey.ids)
    click = ActionChains(browser)
    click.w3c_actions.pointer_action.move_to_location(int(x), int(y))
    click.w3c_actions.pointer_action.click()
    click.perform()
    WebDriverWait(browser, 30).until(lambda b: "/object/" in b.current_url)
    wait_ready(browser)
    assert browser.current_url.endswith("/object/" + shown)
    cells = browser.find_elements(By.CSS_SELECTOR, "#neighbours .cell img")
    assert len(cells) == 12
    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script(
            "return [...document.querySelectorAll('#neighbours img')].every("
            "i => i.complete && i.naturalWidth > 0)"
        )
    )
    # Clicking a neighbour moves there.
    target = cells[0].find_element(By.XPATH, "..").get_attribute("href")
    cells[0].click()
    WebDriverWait(browser, 30).until(lambda b: b.current_url == target)
    wait_ready(browser)
    shot = tmp_path / "object.png"
    browser.save_screenshot(str(shot))
    picture = np.asarray(Image.open(shot).convert("L"), float)
    assert picture.std() > 20  # not blank
    # Search by example: upload one of the survey's own cutouts as a PNG.
    upload = tmp_path / "cutout.png"
    upload.write_bytes(cutout_png(survey, shown))
    browser.get(server + "/search")
    browser.find_element(By.ID, "files").send_keys(str(Path(upload).resolve()))
    browser.find_element(By.CSS_SELECTOR, "#form button").click()
    wait_ready(browser)
    found = browser.find_elements(By.CSS_SELECTOR, "#results .cell")
    assert len(found) == 12
    # A bad upload is answered with its message, and the page still works.
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a picture")
    browser.find_element(By.ID, "files").send_keys(str(bad.resolve()))
    browser.find_element(By.CSS_SELECTOR, "#form button").click()
    WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.ID, "error"))
    assert "not a readable PNG or JPEG" in browser.find_element(By.ID, "error").text
    # The anomaly list says how it is scored, and shows the most unusual first.
    browser.get(server + "/anomalies")
    wait_ready(browser)
    assert "local outlier factor" in browser.find_element(By.ID, "how").text
    listed = browser.find_elements(By.CSS_SELECTOR, "#list .cell")
    assert len(listed) == 48 and "#1 score" in listed[0].text


def test_explore_command_serves_until_stopped(survey_dir, tmp_path):
    """`astroloom explore MODEL DATA` embeds the data once (beside where it stands, for a
    named model), serves the API on the port asked, and stops on a signal."""
    import json
    import subprocess
    import sys
    import urllib.request

    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "astroloom.cli",
            "explore",
            MODEL,
            str(survey_dir),
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        payload = None
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/map", timeout=2) as r:
                    payload = json.loads(r.read())
                break
            except OSError:
                if process.poll() is not None:
                    break
                time.sleep(0.5)
        assert payload is not None, process.stdout.read() if process.poll() is not None else ""
        assert len(payload["ids"]) == 320
        assert (tmp_path / "astroloom--mock-tiny" / "embeddings-image.parquet").is_file()
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert f"http://127.0.0.1:{port}/" in output


def test_generation_on_an_object_page(survey, survey_dir, denoiser_dir):
    """With a denoiser, an object's page draws galaxies like it (its image's embedding) and
    the galaxy with its spectrum and photometry, in the survey's flux unit; without one,
    the API says how to get it."""
    assert (
        TestClient(create_app(survey)).get(f"/api/objects/{survey.ids[0]}/generate.png").status_code
        == 404
    )
    with_den = ExplorerSurvey(
        survey.foundation, survey_dir, survey.embeddings_path, survey.layout, denoiser_dir
    )
    client = TestClient(create_app(with_den))
    assert client.get("/api/info").json()["generation"] is True
    first, second = (str(i) for i in survey.ids[:2])
    like = with_den.generate(first, "image", n=2)
    assert like.shape == (2, 3, 64, 64) and np.isfinite(like).all()
    # Each galaxy's own condition: another object gives other drawings (same seed).
    assert not np.allclose(like, with_den.generate(second, "image", n=2))
    others = with_den.generate(first, "others", n=1)
    assert others.shape == (1, 3, 64, 64)
    reply = client.get(f"/api/objects/{first}/generate.png", params={"mode": "others", "n": 2})
    assert reply.status_code == 200 and reply.content[:4] == b"\x89PNG"
    bad = client.get(f"/api/objects/{first}/generate.png", params={"mode": "inversion"})
    assert bad.status_code == 400 and "mode must be" in bad.json()["detail"]


def test_a_second_survey_gets_its_own_embeddings(survey, survey_dir, tmp_path):
    """Exploring another dataset with the same model never shows the first one's
    embeddings: the default file is per dataset, and embeddings of one dataset given for
    another are refused with both named."""
    from astroloom.data.schema import DataError
    from astroloom.explore.survey import embeddings_for

    home = tmp_path / "run"
    home.mkdir()
    assert embeddings_for(home, survey_dir) == home / "embeddings-image.parquet"
    embed_dataset(MODEL, survey_dir, home / "embeddings-image.parquet", progress=False,
                  modalities=["image"])  # fmt: skip
    assert embeddings_for(home, survey_dir) == home / "embeddings-image.parquet"  # its own
    other = tmp_path / "other survey"
    shutil.copytree(survey_dir, other)
    mine = embeddings_for(home, other)
    assert mine.parent == home and mine.name.startswith("embeddings-image-other_survey-")
    assert mine != embeddings_for(home, tmp_path / "elsewhere" / "other survey")
    with pytest.raises(DataError, match="describes the dataset .* not "):
        ExplorerSurvey(survey.foundation, other, survey.embeddings_path, survey.layout)
