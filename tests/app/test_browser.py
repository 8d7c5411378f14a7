"""One real-browser test: `streamlit run app.py`, opened in Debian's headless Chromium."""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
#: The first picture (the image in the header) is loaded: until then it has no height.
LOADED = "() => { const img = document.querySelector('[data-testid=\"stImage\"] img'); return img && img.complete && img.naturalHeight > 0 }"
IDLE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]') && !document.querySelector('[data-testid=\"stSpinner\"]')"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "ACTVIZ_MODEL"}
    log = open(tmp_path / "streamlit.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    (tmp_path / "server.pid").write_text(str(process.pid))
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as answer:
                    if answer.read() == b"ok":
                        break
            except OSError:
                pass
            assert process.poll() is None, (tmp_path / "streamlit.log").read_text()
            assert time.monotonic() < deadline, "streamlit did not become healthy"
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_first_screen_in_a_real_browser(server, tmp_path):
    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists(), "Debian's chromium is needed: apt-get install chromium"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server)
            page.wait_for_selector('[data-testid="stImage"] img', timeout=120_000)
            page.wait_for_function(IDLE, timeout=120_000)
            page.get_by_text("block1_conv1 · Conv2D").wait_for(timeout=60_000)
            images = page.locator('[data-testid="stImage"] img')
            assert images.count() >= 3
            grid = images.nth(1)
            box = grid.bounding_box()
            assert box and box["width"] > 400  # the first layer's grid, displayed at a readable size
            assert page.evaluate("(img) => img.complete && img.naturalWidth > 0", grid.element_handle())
            assert page.locator('[data-testid="stException"]').count() == 0
            assert page.locator('[data-testid="stAlertContentError"]').count() == 0
            assert page.get_by_text("The model says").count() == 1
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_eight_concurrent_sessions_each_get_their_own_answer(server, tmp_path):
    """Load test on loopback: eight browser sessions at once, each with its own image and layer
    (chosen through the URL), none sees an error, and the server's memory settles afterwards."""
    from playwright.sync_api import sync_playwright

    from actviz.inputs.images import open_image
    from actviz.demo import samples as demo_samples
    from actviz.safety.models import open_model
    from actviz.core.predictions import class_probabilities
    from actviz.inputs.batch import to_batch

    opened = open_model()
    samples = demo_samples()[:8]
    expected = []
    for path in samples:  # the answer each session must show, computed independently of the app
        batch = to_batch(open_image(path), opened.probe, preprocess_as="rescale").inputs
        expected.append(class_probabilities(opened.probe.run(batch, []).predictions[0][0], opened.class_names)[0][0])
    layers = ["block1_conv1", "block1_conv2", "block1_pool", "block2_conv1", "block2_conv2", "block2_pool", "block3_conv1", "block3_conv2"]
    url, pid = server, int(open(tmp_path / "server.pid").read())
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            warm = browser.new_page()
            warm.goto(url)
            warm.wait_for_selector('[data-testid="stImage"] img', timeout=120_000)
            warm.close()
            before = _rss_mb(pid)
            pages = []
            for path, layer in zip(samples, layers):
                page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
                page.goto(f"{url}/?sample={path.stem.replace('_', '+')}&view=One+channel&channel_layer={layer}", wait_until="commit")
                pages.append(page)
            for page, answer, layer in zip(pages, expected, layers):
                page.get_by_text(f"The model says: {answer}").wait_for(timeout=120_000)
                page.wait_for_function(IDLE, timeout=120_000)
                assert page.locator('[data-testid="stException"]').count() == 0
                assert page.locator('[data-testid="stAlertContentError"]').count() == 0
                assert page.get_by_label("Layer", exact=True).input_value() == layer
            for page in pages:
                page.context.close()
        finally:
            browser.close()
    time.sleep(2)
    after = _rss_mb(pid)
    assert after < before + 400, (before, after)


def _digits_zip(path: Path, count: int = 40) -> Path:
    """A ZIP of demo digits as PNG files in one folder per class, plus one file that is not an image."""
    import io
    import zipfile

    from PIL import Image

    from actviz.dataset.sources import demo_arrays

    images, labels = demo_arrays()
    with zipfile.ZipFile(path, "w") as archive:
        for n in range(count):
            buffer = io.BytesIO()
            Image.fromarray(images[n].reshape(28, 28).astype("uint8")).save(buffer, format="PNG")
            archive.writestr(f"digits/{int(labels[n])}/{n:04d}.png", buffer.getvalue())
        archive.writestr("digits/3/notes.png", b"not a picture")
    return path


def test_dataset_view_in_a_real_browser(server, tmp_path):
    """The data set view: the demo digits run with a progress bar, then a ZIP upload with a broken
    file (skipped and listed), then a saved summary reopened with its top images."""
    from playwright.sync_api import sync_playwright

    from actviz.dataset import summarize

    saved = tmp_path / "summary.npz"
    summarize(None, None, indices=range(100)).save(saved)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{server}/?view=Across+a+data+set")
            page.get_by_role("button", name="Run the model over these images").click(timeout=120_000)
            page.get_by_text("Answered right").wait_for(timeout=300_000)
            page.wait_for_function(IDLE, timeout=120_000)
            assert page.locator('[data-testid="stException"]').count() == 0
            assert page.locator('[data-testid="stAlertContentError"]').count() == 0
            page.get_by_text("The images that excite channel").wait_for(timeout=60_000)
            page.screenshot(path=str(tmp_path / "dataset.png"), full_page=True)

            page.get_by_text("Upload a ZIP of images").click()
            page.get_by_text("A ZIP of images (up to").wait_for(timeout=60_000)
            page.wait_for_function(IDLE, timeout=120_000)
            # Streamlit keeps a replaced element in the page for a moment while it fades: pick the uploader by what it accepts
            page.locator('[data-testid="stFileUploaderDropzoneInput"][accept*=".zip"]').set_input_files(str(_digits_zip(tmp_path / "digits.zip")))
            page.get_by_text("digits.zip").first.wait_for(timeout=60_000)
            page.wait_for_function(IDLE, timeout=120_000)
            page.get_by_role("button", name="Run the model over these images").click(timeout=120_000)
            page.get_by_text("The 1 file that was skipped, and why").wait_for(timeout=300_000)
            page.wait_for_function(IDLE, timeout=120_000)
            assert page.locator('[data-testid="stMetricValue"]').first.inner_text() == "40"

            page.get_by_text("Open a saved summary").click()
            page.get_by_text("A summary saved by this page").wait_for(timeout=60_000)
            page.wait_for_function(IDLE, timeout=120_000)
            page.locator('[data-testid="stFileUploaderDropzoneInput"][accept*=".npz"]').set_input_files(str(saved))
            page.locator('[data-testid="stMetricValue"]').filter(has_text=re.compile("^100$")).wait_for(timeout=120_000)
            page.wait_for_function(IDLE, timeout=120_000)
            assert page.get_by_text("The images that excite channel").count() == 1  # the demo digits are here: pictures too
            assert page.locator('[data-testid="stAlertContentError"]').count() == 0
        finally:
            browser.close()
    assert (tmp_path / "dataset.png").stat().st_size > 10_000


def test_concepts_view_in_a_real_browser(server, tmp_path):
    """What the model sees: the concepts of the demo's 'digit 0' found through the button; the first
    concept shows its words, its map and its pieces of images, pictures that loaded at a readable size."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"{server}/concepts")
            button = page.get_by_role("button", name="Find what the model sees in 'digit 0'")
            button.wait_for(timeout=120_000)
            page.wait_for_function(IDLE, timeout=120_000)
            button.click()
            page.get_by_role("heading", name="Concept 1", exact=True).wait_for(timeout=300_000)
            page.wait_for_function(IDLE, timeout=120_000)
            assert page.locator('[data-testid="stException"]').count() == 0
            assert page.locator('[data-testid="stAlertContentError"]').count() == 0
            assert page.get_by_text("No finding").count() == 1
            assert page.get_by_text("Concept 1: removing it lowers the model's score for 'digit 0' by").count() >= 1
            for caption, least in (("Where it is, on average", 150), ("What it is: the", 400)):
                picture = page.locator('[data-testid="stImage"]').filter(has_text=caption).first.locator("img")
                picture.scroll_into_view_if_needed()
                box = picture.bounding_box()
                assert box and box["width"] >= least, (caption, box)
                assert page.evaluate("(img) => img.complete && img.naturalWidth > 0", picture.element_handle()), caption
            page.screenshot(path=str(tmp_path / "concepts.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "concepts.png").stat().st_size > 10_000


def _page_titles() -> list[str]:
    """The pages' titles, in order, as app.py lists them (read, not imported: importing it runs the app)."""
    import ast

    for node in ast.parse((ROOT / "app.py").read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "PAGES":
            return [title for _, title, _, _ in ast.literal_eval(node.value)]
    raise AssertionError("app.py lists no PAGES")


def _box(locator) -> dict:
    """An element's box in the page (x, y, width, height in CSS pixels), the page scrolled to the top."""
    box = locator.bounding_box()
    assert box and box["width"] > 0 and box["height"] > 0, locator
    return box


def _overlap(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


@pytest.mark.parametrize("width, height, sidebar", [(1024, 768, True), (1280, 800, True), (390, 844, False)],
                         ids=["projector-1024", "laptop-1280", "phone-390"])
def test_header_prediction_and_every_page_fit_the_screen(server, tmp_path, width, height, sidebar):
    """A projector's 1024 pixels with the sidebar open, a laptop's 1280, a phone's 390 with the sidebar
    folded: the title, every page of the navigation, the image and the model's answer are on the page,
    none under another or under the sidebar, nothing wider than the screen, and the answer is on the
    first screen."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(server)
            page.get_by_text("The model says").first.wait_for(timeout=120_000)
            page.wait_for_function(IDLE, timeout=120_000)
            page.wait_for_function(LOADED, timeout=60_000)
            side = page.locator('[data-testid="stSidebar"]').bounding_box()
            left = side["x"] + side["width"] if side else 0
            assert (left > 0) == sidebar, side  # open on the projector and the laptop, folded on the phone
            # Streamlit keeps a hidden twin of each link (for its tooltip): the visible ones are the links
            links = page.locator('.st-key-navigation [data-testid="stPageLink-NavLink"] >> visible=true')
            titles = _page_titles()
            links.nth(len(titles) - 1).wait_for(timeout=60_000)
            assert links.count() == len(titles)
            assert all(title in links.nth(n).inner_text() for n, title in enumerate(titles))
            boxes = {f"link {n}": _box(links.nth(n)) for n in range(links.count())}
            boxes["title"] = _box(page.locator("h1").first)
            boxes["image"] = _box(page.locator('[data-testid="stImage"] img').first)
            boxes["answer"] = _box(page.locator("h4").filter(has_text="The model says"))
            for name, box in boxes.items():
                assert box["x"] >= left and box["x"] + box["width"] <= width, (name, box, left)
            names = list(boxes)
            for n, first in enumerate(names):
                for second in names[n + 1:]:
                    assert not _overlap(boxes[first], boxes[second]), (first, boxes[first], second, boxes[second])
            assert boxes["answer"]["y"] + boxes["answer"]["height"] <= height, boxes["answer"]  # on the first screen
            assert page.evaluate("document.scrollingElement.scrollWidth") <= width
            assert page.locator('[data-testid="stException"]').count() == 0
            page.screenshot(path=str(tmp_path / f"first-screen-{width}.png"))
        finally:
            browser.close()
