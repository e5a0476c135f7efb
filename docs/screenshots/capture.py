"""Screenshots of every console page at 1440×900, and the batch list and a batch at 390×844
(a phone), from a running app.

    python docs/screenshots/capture.py http://localhost:3000 demo@example.com demo-password

The README shows these files; run this again after changing a page.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

HERE = Path(__file__).parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


def _signed_in(browser: Browser, base: str, email: str, password: str, viewport: dict) -> Page:
    page = browser.new_page(viewport=viewport)
    page.goto(f"{base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/batches**")
    time.sleep(2)
    return page


def _desktop(browser: Browser, base: str, email: str, password: str) -> None:
    page = browser.new_page(viewport=DESKTOP)
    page.goto(f"{base}/login")
    time.sleep(1.5)
    page.screenshot(path=HERE / "login.png")
    page.close()
    page = _signed_in(browser, base, email, password, DESKTOP)
    page.screenshot(path=HERE / "batches.png")
    first = page.locator("a[href^='/batches/batch_']").first.get_attribute("href")
    page.goto(f"{base}{first}")
    time.sleep(2.5)
    page.screenshot(path=HERE / "batch-detail.png")
    page.locator("button[aria-label^='Open recipient']").first.click()
    time.sleep(1.5)
    page.screenshot(path=HERE / "batch-recipient.png")
    page.goto(f"{base}/batches/new")
    time.sleep(1.5)
    page.get_by_label("Name").fill("January renewals")
    sample = HERE / "_sample.csv"
    sample.write_text(
        "phone,first_name,appointment_time\n+14155552671,Ada,3pm\n4155552672,Bob,4pm\n"
        "+14155552673,Cy,5pm\n+14155552671,Dee,6pm\n"
    )
    page.set_input_files("input[type=file]", str(sample))
    page.get_by_text("invalid").first.wait_for()
    time.sleep(1)
    sample.unlink()
    page.screenshot(path=HERE / "batch-new.png")
    for name in ("agents", "phone-numbers", "settings"):
        page.goto(f"{base}/{name}")
        time.sleep(2)
        page.screenshot(path=HERE / f"{name}.png")
    page.close()


def _phone(browser: Browser, base: str, email: str, password: str) -> None:
    """The pair the README shows for phones: the batch list and a batch, at 390×844."""
    page = _signed_in(browser, base, email, password, PHONE)
    page.screenshot(path=HERE / "phone-batches.png")
    first = page.locator("a[href^='/batches/batch_']").first.get_attribute("href")
    page.goto(f"{base}{first}")
    time.sleep(2.5)
    page.screenshot(path=HERE / "phone-batch-detail.png")
    page.close()


def main(base: str, email: str, password: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        _desktop(browser, base, email, password)
        _phone(browser, base, email, password)
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
