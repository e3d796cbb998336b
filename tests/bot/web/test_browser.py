"""The web gallery in a real browser: Debian's headless chromium, driven through chromedriver by Selenium.

The app serves on a free loopback port from the test's event loop while the browser, a blocking
client, runs in a worker thread. `make test` installs chromium and chromedriver when they are
missing (scripts/ensure-chromium.sh).
"""

from __future__ import annotations

import asyncio
import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.service import Metrics
from bot.web import make_app, serving
from tests.bot.web.conftest import GENEROUS, PRIVATE, PUBLIC

pytestmark = pytest.mark.timeout(300)


def _program(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        pytest.fail(f"{name} is missing; `make test` installs it (sh scripts/ensure-chromium.sh)")
    return path


@dataclass
class Seen:
    """What the browser found; checked on the test's side, after the browser has closed."""

    gallery_title: str
    followed_to: str
    image_width: int
    image_height: int
    animation_width: int
    command: str
    body_max_width: str  # from the stylesheet: proof that it loaded under the CSP
    private_heading: str
    console_errors: list[str]
    screenshots: tuple[Path, Path]


def _chromium(folder: Path):
    """A headless Chromium through chromedriver, its console log kept; the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _program("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1200,1000", f"--user-data-dir={folder / 'profile'}", "--no-first-run"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=_program("chromedriver"), log_output=str(folder / "chromedriver.log"))
    return webdriver.Chrome(options=options, service=service)  # explicit paths: Selenium Manager stays idle


def browse(base: str, dream_id: int, zoom_id: int, folder: Path) -> Seen:
    """Open the public gallery, follow the dream's card, look at its page; then the zoom and a private gallery."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _chromium(folder)
    try:
        driver.set_page_load_timeout(60)
        wait = WebDriverWait(driver, 30)
        loaded = "return arguments[0].complete && arguments[0].naturalWidth > 0"

        driver.get(f"{base}/servers/{PUBLIC}")
        gallery_title = driver.title
        card = driver.find_element(By.CSS_SELECTOR, f'.card a[href="/results/{dream_id}"]')
        first_image = driver.find_elements(By.CSS_SELECTOR, ".card img")[0]
        wait.until(lambda d: d.execute_script(loaded, first_image))
        gallery_shot = folder / "gallery.png"
        driver.save_screenshot(str(gallery_shot))
        card.click()
        wait.until(lambda d: d.current_url.endswith(f"/results/{dream_id}"))
        followed_to = driver.current_url
        image = driver.find_element(By.ID, "result")
        wait.until(lambda d: d.execute_script(loaded, image))
        width, height = driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", image)
        command = driver.find_element(By.ID, "command").text
        body_max_width = driver.execute_script("return getComputedStyle(document.body).maxWidth")
        result_shot = folder / "result.png"
        driver.save_screenshot(str(result_shot))

        driver.get(f"{base}/results/{zoom_id}")
        animation = driver.find_element(By.ID, "result")
        wait.until(lambda d: d.execute_script(loaded, animation))
        animation_width = driver.execute_script("return arguments[0].naturalWidth", animation)

        driver.get(f"{base}/servers/{PRIVATE}")
        private_heading = driver.find_element(By.TAG_NAME, "h1").text
        # The 404 is an expected console message; anything else (a CSP refusal above all) is not.
        console = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        errors = [message for message in console if f"/servers/{PRIVATE}" not in message]
        return Seen(gallery_title, followed_to, width, height, animation_width, command, body_max_width,
                    private_heading, errors, (gallery_shot, result_shot))
    finally:
        driver.quit()


async def test_a_visitor_opens_a_public_gallery_follows_a_result_and_sees_it(published, tmp_path):
    app = make_app(published.gallery, Metrics(published.store), limit=GENEROUS)
    async with serving(app, "127.0.0.1", 0) as base:
        seen = await asyncio.to_thread(browse, base, published.jobs["dream"], published.jobs["zoom"], tmp_path)
    for shot in seen.screenshots:
        print(f"screenshot: {shot}")

    assert seen.gallery_title == f"Server {PUBLIC}: recent dreams"
    assert seen.followed_to == f"{base}/results/{published.jobs['dream']}"
    assert (seen.image_width, seen.image_height) == (144, 96), "the result image really loaded, at its size"
    assert seen.animation_width == 96, "the zoom GIF loaded too"
    assert seen.command == "?dream layer:block13 strength:2.0 octaves:7 seed:7"  # the deep preset brings octaves:7
    assert seen.body_max_width == "1152px", "the stylesheet loaded and applied under the CSP"
    assert seen.private_heading == "404: Not Found"
    assert seen.console_errors == [], "no resource refused (CSP) or missing"
    for shot in seen.screenshots:
        with Image.open(shot) as screenshot:
            assert screenshot.size[0] >= 1000, "the window's width"
            colours = screenshot.convert("RGB").getcolors(maxcolors=1 << 16)
            assert colours is None or len(colours) > 100, "the screenshot shows the photo, not a blank page"


def image_bytes_of_a_gallery_page(url: str, folder: Path) -> tuple[int, int, list[str]]:
    """Open `url`, scroll to its end so every lazy card loads, wait for all of them; returns how many
    images loaded, the bytes they took on the wire (Resource Timing), and the console's errors."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _chromium(folder)
    try:
        driver.set_page_load_timeout(60)
        driver.get(url)
        driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")
        all_loaded = "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"
        WebDriverWait(driver, 60).until(lambda d: d.execute_script(all_loaded))
        loaded, transferred = driver.execute_script(
            "const images = performance.getEntriesByType('resource').filter(e => e.initiatorType === 'img');"
            "return [images.length, images.reduce((sum, e) => sum + e.transferSize, 0)];")
        errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        return loaded, transferred, errors
    finally:
        driver.quit()


async def test_a_gallery_page_of_24_large_results_loads_under_a_megabyte_of_images(published, photo_path, tmp_path):
    rng = np.random.default_rng(0)
    full_bytes = 0
    for number in range(24):
        photo = Image.open(photo_path(("chelsea.png", "coffee.png", "astronaut.png")[number % 3])).convert("RGB")
        # A dream-sized result (1024x768) with grain, as dreams have: about a megabyte as PNG.
        pixels = np.asarray(photo.resize((1024, 768)), dtype=np.int16) + rng.integers(-12, 13, (768, 1024, 3))
        out = io.BytesIO()
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, "PNG")
        full_bytes += len(out.getvalue())
        await published.publish(f"large {number}", "visualize", {"target": "banana"}, out.getvalue(), "png", seed=number)
    assert published.gallery.page_size == 24
    app = make_app(published.gallery, Metrics(published.store), limit=GENEROUS)
    async with serving(app, "127.0.0.1", 0) as base:
        loaded, transferred, errors = await asyncio.to_thread(
            image_bytes_of_a_gallery_page, f"{base}/servers/{PUBLIC}", tmp_path)
    print(f"\n24 cards: {transferred} bytes of images on the wire; the full files are {full_bytes} bytes")
    assert loaded == 24 and errors == []
    assert transferred < 1_000_000, f"{transferred} bytes of images for one page"
    assert full_bytes > 15 * transferred, "the cards did not load the full files"
