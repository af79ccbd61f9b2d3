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


def _sign_in(browser, url: str, key: str) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    browser.get(url + "/")
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


def _no_policy_refusals(browser) -> list[str]:  # type: ignore[no-untyped-def]
    problems = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    return [p for p in problems if "Content Security Policy" in p or "Refused" in p]


@pytest.mark.parametrize("browser", [1280, 390], indirect=True, ids=["desktop", "phone"])
def test_sign_in_submit_watch_and_download_in_a_browser(browser, keyed_api, fleet, operator, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    fleet.ensure_workers()
    key = operator.key(operator.tenant())
    video = clip(tmp_path / "talk.mp4")
    frames = _frames(video)

    _sign_in(browser, keyed_api, key)
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
    done = browser.find_element(By.CSS_SELECTOR, f'li[data-id="{task_id}"]')
    # its progress came live from the task's event stream (fetch with the key in a header)
    assert done.get_attribute("data-live") == "stream"
    streamed = [int(n) for n in done.get_attribute("data-stream-frames").split(",") if n]
    assert streamed and streamed[-1] == frames and streamed == sorted(streamed), streamed
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

    assert not _no_policy_refusals(browser)


@pytest.mark.parametrize("browser", [1280], indirect=True, ids=["desktop"])
def test_a_batch_of_two_videos_live_with_quality_and_usage(browser, keyed_api, fleet, operator, tmp_path):
    """Two videos chosen at once are one batch; both tasks are followed live by their event
    streams to succeeded; each shows its quality (the anonymiser's face coverage), the batch
    its counts, and the usage panel the frames done this month."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from tests.harness.provenance import tiny_clip, yunet_folder

    yunet_folder()  # the workers find YuNet in the mirrors they inherit (skips where missing)
    fleet.ensure_workers()
    key = operator.key(operator.tenant())
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    videos = [tiny_clip(tmp_path / "one"), tiny_clip(tmp_path / "two")]
    frames = _frames(videos[0])
    _sign_in(browser, keyed_api, key)
    assert browser.find_element(By.ID, "target").get_attribute("multiple") is not None

    browser.find_element(By.ID, "target").send_keys("\n".join(str(v) for v in videos))
    Select(browser.find_element(By.ID, "processors")).select_by_value("face_anonymizer")
    Select(browser.find_element(By.ID, "face-detector")).select_by_value("yunet")
    browser.find_element(By.CSS_SELECTOR, "#submit button[type=submit]").click()
    batch = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#batches li"), 30, "the batch")[0]
    batch_id = batch.get_attribute("data-id")
    assert not browser.find_element(By.ID, "submit-error").text
    assert f"Batch {batch_id} submitted: 2 tasks" in browser.find_element(By.ID, "submit-status").text

    def completed():  # type: ignore[no-untyped-def]
        found = browser.find_elements(
            By.CSS_SELECTOR, f'#batches li[data-id="{batch_id}"][data-state="completed"]'
        )
        return found[0] if found else None

    done = _wait(completed, 240, "the batch to complete in the console")
    assert "2 succeeded" in done.find_element(By.CSS_SELECTOR, ".counts").text
    assert f"{2 * frames}/{2 * frames} frames" in done.text

    items = _wait(
        lambda: [
            i
            for i in browser.find_elements(By.CSS_SELECTOR, '#tasks li[data-state="succeeded"]')
            if batch_id in i.text and i.find_elements(By.CSS_SELECTOR, ".quality")
        ],
        30,
        "both items succeeded, with their quality",
    )
    assert len(items) == 2
    for item in items:
        assert item.get_attribute("data-live") == "stream"  # followed by its event stream
        streamed = [int(n) for n in item.get_attribute("data-stream-frames").split(",") if n]
        assert streamed and streamed[-1] == frames, streamed
        quality = item.find_element(By.CSS_SELECTOR, ".quality")
        assert quality.get_attribute("data-passed") in ("true", "false")
        assert "Sampled frames with a face detected" in quality.text and "Quality:" in quality.text
        assert item.find_elements(By.CSS_SELECTOR, ".actions a")  # the download link

    usage = _wait(
        lambda: (text := browser.find_element(By.ID, "usage").text) and f"{2 * frames}" in text and text,
        30,
        "the usage panel to count both tasks' frames",
    )
    assert "Frames" in usage and "Tasks" in usage
    browser.execute_script("arguments[0].scrollIntoView()", done)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "console-batch-1280px.png"))
    assert not _no_policy_refusals(browser)
