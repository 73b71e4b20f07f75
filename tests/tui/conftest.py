"""One app factory for the pilot tests and the snapshot tests."""

from __future__ import annotations

import pytest

from tests.tui.fakes import FakeBackend
from tui_charlm.tui.app import CharLMApp


def make_app(backend=None, **kwargs) -> CharLMApp:
    kwargs.setdefault("rng_seed", 0)
    kwargs.setdefault("chars_per_second", 60.0)
    return CharLMApp(backend or FakeBackend(), **kwargs)


async def wait_for(pilot, condition, timeout: float = 10.0) -> None:
    """Let the app run until `condition()` holds (fails the test after `timeout` seconds)."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await pilot.pause(0.02)


@pytest.fixture
def fake():
    return FakeBackend()
