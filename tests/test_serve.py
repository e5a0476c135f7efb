"""`make run`'s server: the address it prints, and Reflex's noise kept out of its log."""

from __future__ import annotations

import logging

import pytest

from batch_dashboard.logs import quiet_reflex
from batch_dashboard.serve import shown_host


@pytest.mark.parametrize(
    ("host", "shown"),
    [
        ("127.0.0.1", "localhost"),
        ("0.0.0.0", "localhost"),
        ("::", "localhost"),
        ("10.1.2.3", "10.1.2.3"),
        ("fd00::1", "[fd00::1]"),
        ("box.lan", "box.lan"),
    ],
)
def test_the_printed_address_opens_in_a_browser(host: str, shown: str) -> None:
    assert shown_host(host) == shown


def test_reflex_noise_is_dropped_and_the_rest_kept(caplog: pytest.LogCaptureFixture) -> None:
    quiet_reflex()
    quiet_reflex()  # idempotent: one filter per logger
    assert len(logging.getLogger("reflex.app").filters) == 1
    with caplog.at_level(logging.INFO):
        logging.getLogger("reflex.app").warning(
            "Attempting to send delta to disconnected client 'abc'"
        )
        logging.getLogger("reflex.utils.registry").info("Failed to connect to https://x.test.")
        logging.getLogger("reflex.utils.js_runtimes").warning("Your version (20.1) of Node.js")
        logging.getLogger("reflex.app").warning("something that matters")
    assert [record.getMessage() for record in caplog.records] == ["something that matters"]
