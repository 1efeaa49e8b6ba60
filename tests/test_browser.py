"""The upload page in a real browser: headless Debian Chromium, driven by Playwright (the Python package only; its
own browser download is never used), against ``app.py serve`` on a free localhost port.

A person's path: open the page, pick the demo clip in the file input, wait for the verdict, the heatmaps and the
timeline to appear; then a bad file shows the server's error; then a reload of the scan's URL shows it again.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ServerProcess

from detector.demo import make_demo

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium")
#: What this machine's closed network needs: no background fetches, no QUIC, no first-run or sync traffic.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCAN_TIMEOUT_MS = 180_000

if CHROMIUM is None:
    pytest.skip("Chromium is not installed (apt-get install chromium chromium-driver)", allow_module_level=True)
if shutil.which("ffmpeg") is None:
    pytest.skip("ffmpeg is not installed (apt-get install ffmpeg)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed "
                                                            "(pip install -r requirements.txt)")


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh server with an empty data folder; yields its URL and stops it afterwards."""
    base = tmp_path_factory.mktemp("browser-server")
    server = ServerProcess(base / "data", base / "server.log", "--frames", "4")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield context
        context.close()


def image_loaded(page: object, selector: str) -> bool:
    """True once the first image matching ``selector`` has really been fetched and decoded."""
    return page.eval_on_selector(selector, "img => img.complete && img.naturalWidth > 0")


def test_upload_through_the_page_shows_the_verdict_and_heatmaps(base_url: str, browser: object,
                                                                  tmp_path: Path) -> None:
    expect = sync_api.expect
    clip, _ = make_demo(tmp_path)
    page = browser.new_page()
    js_errors: list[str] = []
    page.on("pageerror", lambda exc: js_errors.append(str(exc)))
    page.goto(base_url + "/")
    expect(page.locator("#limit-note")).to_contain_text("MB")
    expect(page.locator("#recent-empty")).to_be_visible()

    page.set_input_files("#file-input", str(clip))

    verdict = page.locator("#verdict")
    expect(verdict).to_have_text(re.compile(r"^(real|fake)$", re.I), timeout=SCAN_TIMEOUT_MS)
    expect(page.locator("#probability")).to_contain_text("Fake probability")
    # the shipped card's reference reals: how rare the score is among them
    expect(page.locator("#probability")).to_contain_text(re.compile(r"\d+% of the \d+ real videos the threshold"))
    expect(page.locator("#credentials-summary")).to_contain_text("No content credentials")
    heatmap = page.locator("img.heatmap").first
    expect(heatmap).to_be_visible()
    page.wait_for_function("() => [...document.querySelectorAll('img.heatmap, #timeline')]"
                           ".every(img => img.complete && img.naturalWidth > 0)")
    assert page.locator("img.heatmap").count() >= 1
    assert image_loaded(page, "#timeline")
    expect(page.locator("#tracks tbody tr")).to_have_count(1)
    expect(page.locator("#facts")).to_contain_text("480")
    facts = page.locator("#facts td").all_inner_texts()
    assert "no" in facts and "false" not in facts and "true" not in facts, facts  # is_image, has_audio
    expect(page.locator("#scan-name")).to_have_text("astronaut_pan.mp4")
    expect(page.locator("#recent tbody tr").first).to_contain_text("astronaut_pan.mp4")
    expect(page.locator("#recent tbody tr").first).to_contain_text("done")
    shown = verdict.inner_text().lower()
    report_href = page.get_attribute("#report-link", "href")
    assert report_href and report_href.endswith("/report")

    bad = tmp_path / "notes.mp4"
    bad.write_text("minutes of the meeting, renamed by mistake\n")
    page.set_input_files("#file-input", str(bad))
    expect(page.locator("#upload-error")).to_contain_text("not a supported video or image")

    scan_url = page.url
    assert re.search(r"#scan=[0-9a-f]{32}$", scan_url)
    page.reload()
    expect(page.locator("#verdict")).to_have_text(re.compile(shown, re.I))
    expect(page.locator("img.heatmap").first).to_be_visible()
    assert js_errors == []
