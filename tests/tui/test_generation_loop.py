"""The generation worker's loop on its own: its pace, its posts, and how fast it answers a command."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from tests.conftest import PATIENCE
from tests.tui.fakes import VOCAB, random_weights
from tui_charlm.core.generation import WeightBox
from tui_charlm.core.sampling import SamplingSettings
from tui_charlm.tui import generation_loop
from tui_charlm.tui.generation_loop import Draw, GenerationLoop, Hold
from tui_charlm.tui.messages import SeedApplied, TextGenerated

STREAMS = [SamplingSettings(temperature=t) for t in (0.5, 1.0)]


class Running:
    """A GenerationLoop in a thread, its posts in a queue."""

    def __init__(self, *, chars_per_second: float, post_interval: float):
        self.posts: queue.Queue = queue.Queue()
        self.loop = GenerationLoop(
            WeightBox(random_weights()),
            VOCAB,
            STREAMS,
            seed_text="the seed text ",
            seed_source="given",
            mode=None,
            chars_per_second=chars_per_second,
            post=self.posts.put,
            post_interval=post_interval,
        )
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop.run, args=(self.stop.is_set,), daemon=True)

    def __enter__(self):
        self.thread.start()
        first = self.posts.get(timeout=PATIENCE)
        assert isinstance(first, SeedApplied)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.loop.submit(Hold(0, 0, False))  # wakes it from a long wait
        self.thread.join(PATIENCE)
        assert not self.thread.is_alive(), "the loop did not end when cancelled"

    def next_text(self) -> TextGenerated:
        while True:
            message = self.posts.get(timeout=PATIENCE)
            if isinstance(message, TextGenerated):
                return message


class ClockSinceBoot:
    """time as the loop sees it on a machine booted a second ago: time.monotonic() counts from boot (CI's are new)."""

    def __init__(self):
        self.start = time.monotonic()

    def monotonic(self) -> float:
        return 1.0 + time.monotonic() - self.start

    sleep = staticmethod(time.sleep)


@pytest.mark.parametrize("booted", [False, True], ids=["any clock", "a machine booted a second ago"])
def test_a_drawn_char_reaches_the_screen_at_once_not_at_the_next_post(monkeypatch, booted):
    if booted:
        monkeypatch.setattr(generation_loop, "time", ClockSinceBoot())
    # Posts an hour apart: the drawn char can only arrive at once or never.
    with Running(chars_per_second=20, post_interval=3600) as running:
        running.loop.submit(Hold(0, 1, True))
        deadline = time.monotonic() + PATIENCE  # the hold taken on its own, then the draw (as from two keys)
        while not running.loop.generator.held[1]:
            assert time.monotonic() < deadline, "the hold was never taken"
            time.sleep(0.01)
        running.loop.submit(Draw(0, 1))
        message = running.next_text()
    assert len(message.chunks[1]) == 1, "the held stream shows exactly the char drawn on it"
    assert message.chunks[1][0][0] in VOCAB.chars


def test_the_streams_keep_the_pace_asked_for_and_the_screen_changes_a_few_times_a_second():
    pace, interval = 50.0, 0.2
    texts = []
    with Running(chars_per_second=pace, post_interval=interval) as running:
        started = time.monotonic()
        while time.monotonic() - started < 1.5:
            try:
                message = running.posts.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(message, TextGenerated):
                texts.append(message)
        elapsed = time.monotonic() - started
    # Upper bounds only (a slower machine may fall behind the pace, never ahead of it): the chars due in the
    # time watched, plus the one post that may have been made before the watch began.
    for stream in range(len(STREAMS)):
        shown = sum(len(t.chunks[stream]) for t in texts)
        assert 0 < shown <= pace * (elapsed + interval) + 1, (stream, shown, elapsed)
    assert len(texts) <= elapsed / interval + 2, "one post per interval, not one per char"
    assert max(len(t.chunks[0]) for t in texts) > 1, "a post carries the chars made since the last one"
