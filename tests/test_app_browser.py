"""`stylenet app` end to end in headless Chromium: upload a photo, pick a shipped style, get the stylized photo.

Drives the system's Chromium (Debian's /usr/bin/chromium) through Playwright; nothing is downloaded. Saves a
screenshot of the page with its result to the test's tmp folder, and to $STYLENET_APP_SCREENSHOT when set:
`STYLENET_APP_SCREENSHOT=docs/app.png python -m pytest tests/test_app_browser.py` regenerates the README's.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from app_helpers import tiny_model
from PIL import Image
from skip_policy import NO_CHROMIUM, NO_PLAYWRIGHT, needs_extra
from test_app_server import free_port

import stylenet
from stylenet.imageio import to_array, to_tensor
from stylenet.inference.runner import resize

gr = pytest.importorskip("gradio", reason=needs_extra("app"))

from stylenet.app import server  # noqa: E402

STYLE = "wave"
SIZE = 320  # asked for on the page: the longest side of the result
SCREENSHOT_WIDTH = 1100  # px of the saved picture; the page is laid out at this width


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(NO_CHROMIUM)


@pytest.fixture(scope="module")
def browser():
    executable = chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(NO_PLAYWRIGHT)
    with sync_playwright() as playwright:
        # --no-sandbox: Chromium's sandbox refuses to start as root, which CI runs as.
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("models")
    tiny_model(folder / "tiny.pt")
    page = server.create(folder)
    yield server.launch(page, port=free_port(), block=False)
    page.close()


@pytest.fixture
def astronaut(tmp_path: Path) -> Path:
    from skimage import data

    path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)  # 512 x 512, CC0 (NASA)
    return path


def _choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def _upload(page, elem_id: str, path: Path) -> None:
    """As a person does it: click the upload area, pick the file in the dialog that opens."""
    with page.expect_file_chooser(timeout=60_000) as chooser:
        page.locator(f"#{elem_id} button.upload-container").click()
    chooser.value.set_files(str(path))


@pytest.mark.slow
def test_a_photo_stylized_in_the_browser(browser, served: str, astronaut: Path, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": SCREENSHOT_WIDTH, "height": 900})
    external: list[str] = []
    page.on("request", lambda request: None if request.url.startswith(served) else external.append(request.url))
    page.goto(served)
    page.locator("#photo input[type=file]").wait_for(state="attached", timeout=60_000)
    _choose(page, "model", STYLE)
    page.locator("#size input").fill(str(SIZE))
    page.locator("#size input").press("Tab")
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # installed: the browser fixture needs it

    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    traffic: list[str] = []  # the upload's requests and how each ended, for the message below
    page.on("request", lambda request: traffic.append(f"{request.method} {request.url} sent"))
    page.on("response", lambda answer: traffic.append(f"{answer.request.method} {answer.url} -> {answer.status}"))
    page.on("requestfailed", lambda request: traffic.append(f"{request.method} {request.url}: {request.failure}"))
    _upload(page, "photo", astronaut)
    try:
        # Gradio's file list writes a name's stem and extension in elements of their own, on one line
        # or on two as the layout falls ('astronaut\n.png' seen in a full CI run): compare the text
        # without its whitespace.
        page.wait_for_function(
            "name => document.querySelector('#photo').innerText.replace(/\\s+/g, '').includes(name)",
            arg=astronaut.name,
            timeout=60_000,
        )
    except PlaywrightTimeout as error:
        # Say what the page showed instead of only timing out.
        page.screenshot(path=str(tmp_path / "upload_not_shown.png"), full_page=True)
        shown = page.locator("#photo").inner_text(timeout=5_000)
        raise AssertionError(
            f"the chosen photo never showed: #photo reads {shown!r}; console: {console}; requests since: {traffic}"
        ) from error
    page.locator("#run-photo").click()
    link = page.locator("#download a").first
    link.wait_for(timeout=180_000)
    got = np.asarray(Image.open(io.BytesIO(page.request.get(link.get_attribute("href")).body())).convert("RGB"))

    assert got.shape == (SIZE, SIZE, 3)
    source = to_tensor(Image.open(astronaut).convert("RGB")).unsqueeze(0)
    content = to_array(resize(source, (SIZE, SIZE))[0])  # what the model saw
    expected = stylenet.load_model(STYLE)(resize(source, (SIZE, SIZE)))[0]
    expected = to_array(expected)
    assert np.abs(got.astype(int) - expected).mean() < 2  # the model's own output...
    assert np.abs(got.astype(int) - content).mean() > 20  # ...far from the photo

    page.locator("#result img").wait_for()
    shot = tmp_path / "app.png"
    page.screenshot(path=str(shot), full_page=True)
    wanted = os.environ.get("STYLENET_APP_SCREENSHOT")
    if wanted:
        Path(wanted).parent.mkdir(parents=True, exist_ok=True)
        Image.open(shot).convert("RGB").save(wanted, optimize=True)

    assert external == []  # the page runs offline: no fonts, scripts or analytics from elsewhere

    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    page.locator("#photo button[aria-label='Clear']").first.click()
    _upload(page, "photo", bad)
    page.locator("#run-photo").click()
    page.get_by_text("notes.png: not a readable image").first.wait_for(timeout=60_000)  # the page says why
