"""The web console in a real browser (Debian's chromium and chromium-driver, `make
browser-tools`, driven by Selenium): sign in with a key, submit a video, watch it to
succeeded, download the output; at a desktop width and at a phone's 390 pixels. A screenshot
of each run is kept in FACEFLEET_TEST_ARTIFACTS (default: test-artifacts/ in the clone)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import av
import pytest

from tests.harness.cli import REPO
from tests.harness.skips import CI
from tests.harness.tasks import clip

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
ARTIFACTS = Path(os.environ.get("FACEFLEET_TEST_ARTIFACTS", REPO / "test-artifacts"))


@pytest.fixture
def browser(request, tmp_path):
    if not (CHROMIUM and DRIVER):
        message = "chromium and chromium-driver are not installed (make browser-tools)"
        pytest.fail(message) if CI else pytest.skip(message)
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    width = request.param
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    if width < 500:  # below a window's least width: a phone's screen, emulated
        options.add_experimental_option(
            "mobileEmulation", {"deviceMetrics": {"width": width, "height": 844, "pixelRatio": 1}}
        )
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.downloads = downloads  # type: ignore[attr-defined]
    driver.width = width  # type: ignore[attr-defined]
    try:
        yield driver
    finally:
        driver.quit()


def _wait(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.mark.parametrize("browser", [1280, 390], indirect=True, ids=["desktop", "phone"])
def test_sign_in_submit_watch_and_download_in_a_browser(browser, keyed_api, fleet, operator, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    fleet.ensure_workers()
    key = operator.key(operator.tenant())
    video = clip(tmp_path / "talk.mp4")
    frames = _frames(video)

    browser.get(keyed_api + "/")
    assert browser.find_element(By.ID, "sign-in-section").is_displayed()
    unlabeled = browser.execute_script(
        "return [...document.querySelectorAll('input, select')].filter(e => e.labels.length === 0).map(e => e.id)"
    )
    assert unlabeled == []  # every field has a label (screen readers, and a bigger click target)

    field = browser.find_element(By.ID, "api-key")
    field.send_keys(key)
    field.submit()
    _wait(lambda: browser.find_element(By.ID, "work").is_displayed(), 15, "the signed-in view")
    assert key not in browser.current_url
    assert browser.execute_script("return sessionStorage.getItem('facefleet.key')") == key
    assert browser.execute_script("return localStorage.length") == 0

    browser.find_element(By.ID, "target").send_keys(str(video))
    Select(browser.find_element(By.ID, "processors")).select_by_value("none")
    browser.find_element(By.CSS_SELECTOR, "#submit button[type=submit]").click()
    item = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#tasks li"), 30, "the submitted task")[0]
    task_id = item.get_attribute("data-id")
    assert not browser.find_element(By.ID, "submit-error").text

    def succeeded():  # type: ignore[no-untyped-def]
        done = browser.find_elements(
            By.CSS_SELECTOR, f'#tasks li[data-id="{task_id}"][data-state="succeeded"] a'
        )
        return done[0] if done else None

    link = _wait(succeeded, 240, "the task to succeed in the console")
    assert (
        f"{frames}/{frames} frames" in browser.find_element(By.CSS_SELECTOR, f'li[data-id="{task_id}"]').text
    )
    browser.execute_script("arguments[0].scrollIntoView()", link)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"console-{browser.width}px.png"))
    if browser.width < 500:  # a phone: the page is as wide as its screen, nothing wider
        assert browser.execute_script("return window.innerWidth") == browser.width
        assert browser.execute_script("return document.documentElement.scrollWidth") <= browser.width

    link.click()
    downloaded = _wait(
        lambda: [p for p in browser.downloads.iterdir() if p.suffix == ".mp4"], 60, "the download"
    )[0]
    _wait(lambda: not list(browser.downloads.glob("*.crdownload")), 30, "the download to finish")
    assert _frames(downloaded) == frames

    problems = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
