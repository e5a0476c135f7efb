"""Screenshots of every console page at 1440×900, and the batch list and a batch at 390×844
(a phone), from a running app.

    python docs/screenshots/capture.py http://localhost:3000 demo@example.com demo-password [bc_…]

With the API key `make run` printed as a fourth argument, it first starts three batches through
the API (one calling, one short that finishes, one scheduled for tomorrow), so the pages show
work in progress. The README shows these files; run this again after changing a page.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, sync_playwright

HERE = Path(__file__).parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


NAMES = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Radia", "Ken"]


def _seed(base: str, api_key: str) -> None:
    """Three batches of the demo agent: a long one calling, a short one that finishes soon, one
    scheduled for tomorrow."""
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {api_key}"}, timeout=30)
    agent = api.get("/v1/agents").json()["agents"][0]["id"]

    def batch(name: str, size: int, first: int, **extra: object) -> None:
        recipients = [
            {
                "phone": f"+1415555{first + i:04d}",
                "first_name": NAMES[i % len(NAMES)],
                "appointment_time": f"{9 + i % 8}:{'30' if i % 2 else '00'}",
            }
            for i in range(size)
        ]
        body = {"name": name, "agent_id": agent, "recipients": recipients, **extra}
        api.post("/v1/batch-calls", json=body).raise_for_status()

    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    batch("Flu shot reminders", 24, 3000)
    time.sleep(20)  # finished (or nearly) by the time the screenshots are taken
    batch("Survey follow-up", 80, 4000, scheduled_at=tomorrow.isoformat())
    batch("December appointment reminders", 2_000, 5000, max_concurrency=8)
    time.sleep(15)


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


def main(base: str, email: str, password: str, api_key: str = "") -> None:
    if api_key:
        _seed(base, api_key)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        _desktop(browser, base, email, password)
        _phone(browser, base, email, password)
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:5])
