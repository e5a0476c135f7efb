"""After signing in, a visitor goes back to the console page they asked for, never elsewhere."""

from __future__ import annotations

import pytest

from batch_dashboard.ui.states.base import return_path


@pytest.mark.parametrize(
    ("asked", "goes_to"),
    [
        ("/batches/batch_01?page=2", "/batches/batch_01?page=2"),
        ("/do-not-call/", "/do-not-call/"),
        ("", "/batches"),
        ("//evil.example/x", "/batches"),
        ("/\\evil.example", "/batches"),
        ("/\t/evil.example", "/batches"),
        ("https://evil.example/", "/batches"),
        ("/login?next=/login", "/batches"),
    ],
)
def test_return_path(asked: str, goes_to: str) -> None:
    assert return_path(asked) == goes_to
