"""One app factory for the pilot tests and the snapshot tests."""

from __future__ import annotations

from tests.conftest import PATIENCE
from tests.tui.fakes import FakeBackend
from tui_charlm.tui.app import CharLMApp


def make_app(backend=None, **kwargs) -> CharLMApp:
    kwargs.setdefault("rng_seed", 0)
    kwargs.setdefault("chars_per_second", 60.0)
    return CharLMApp(backend or FakeBackend(), **kwargs)


async def wait_for(pilot, condition, timeout: float = PATIENCE) -> None:
    """Let the app run until `condition()` holds; fails the test after `timeout` seconds (a hang, not slowness)."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await pilot.pause(0.02)


def palette_shows(pilot, text: str):
    """A condition: the command palette's search has found a command whose title has `text`, and lists it first."""
    from textual.command import CommandList
    from textual.css.query import NoMatches

    def shown() -> bool:
        try:
            results = pilot.app.screen.query_one(CommandList)
        except NoMatches:
            return False
        return results.option_count > 0 and text.lower() in str(results.get_option_at_index(0).prompt).lower()

    return shown


TINY_OVERRIDES = dict(units=8, embedding_dim=4, seq_len=16, batch_size=8, epochs=1000, threads=1, checkpoint_every=0)


def tiny_core_app(tmp_path, *, rng_seed: int = 0, chars_per_second: float = 100, **options):
    """The real app on the real core: a tiny model on a small made-up corpus, training into tmp_path/run.

    `options` go to TuiOptions (resume=, load=, train=); `overrides` in them replace the tiny model's options.
    """
    from tests.conftest import make_text
    from tui_charlm.tui.app import CharLMApp
    from tui_charlm.tui.core_bridge import CoreBackend, TuiOptions

    corpus = tmp_path / "tiny.txt"
    if not corpus.exists():
        corpus.write_text(make_text(5000))
    given = options.pop("overrides", {})
    if options.get("resume") or options.get("load"):
        overrides = given  # an existing run: its own options, and only what the test changes
    else:
        overrides = dict(TINY_OVERRIDES, corpus=str(corpus), **given)
        options.setdefault("run_dir", tmp_path / "run")
    return CharLMApp(
        CoreBackend(TuiOptions(overrides=overrides, **options)), rng_seed=rng_seed, chars_per_second=chars_per_second
    )
