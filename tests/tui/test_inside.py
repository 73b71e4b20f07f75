"""Looking inside the model from the keyboard.

The odds inspector (i), holding and steering (p, n, 1-9), the cell view (v),
and streams whose whitespace and repetition can be seen.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.tui.conftest import make_app, wait_for
from tests.tui.fakes import VOCAB, FakeBackend, random_weights
from tui_charlm.core.generation import Generator
from tui_charlm.core.sampling import SamplingSettings, distribution
from tui_charlm.tui.screens.cells import CellScreen, CellText, block, coloured_lines
from tui_charlm.tui.widgets.generation_pane import repeating_period, show_whitespace
from tui_charlm.tui.widgets.odds_pane import OddsPane


async def started(pilot):
    app = pilot.app
    await wait_for(pilot, lambda: app.main.generation is not None and app.main.generation.generator is not None)
    await wait_for(pilot, lambda: len(app.main.panes()[0].chars) > 3)
    return app


async def test_i_shows_the_focused_streams_odds_as_the_sampler_has_them():
    app = make_app(FakeBackend())
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        assert not app.main.query_one(OddsPane).display
        await pilot.press("tab")  # stream 2: T=0.5
        await pilot.press("i")
        pane = app.main.query_one(OddsPane)
        await wait_for(pilot, lambda: pane.odds is not None)
        assert pane.display and pane.odds.stream == 1 and pane.odds.settings == "T=0.5"
        probabilities = [p for _, p in pane.odds.top]
        assert len(probabilities) == 10 and probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1.0 + 1e-9 and pane.odds.entropy >= 0
        shown = pane.render().plain
        assert "entropy" in shown and f"{probabilities[0]:5.3f}" in shown
        # It follows focus: stream 3 is T=1.0.
        await pilot.press("tab")
        await wait_for(pilot, lambda: pane.odds is not None and pane.odds.stream == 2)
        assert pane.odds.settings == "T=1.0"
        await pilot.press("i")
        await pilot.pause()
        assert not pane.display


async def test_p_holds_one_stream_while_the_others_go_on_and_n_draws_one_char():
    app = make_app(FakeBackend())
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        held, other = app.main.panes()[0], app.main.panes()[1]
        await pilot.press("p")
        assert held.held and "held" in str(held.border_title)
        # Chars already on their way land: the text posted before the generator took the hold, and the post
        # that carries the held stream's last chars with the others'. Each post adds to the other stream.
        for _ in range(2):
            seen = other.added
            await wait_for(pilot, lambda seen=seen: other.added > seen)
        count, others = held.added, other.added
        await wait_for(pilot, lambda: other.added > others + 20)  # several posts later, the others go on...
        assert held.added == count  # ...and the held stream has not moved
        await pilot.press("n")
        await wait_for(pilot, lambda: len(held.chars) == count + 1)
        await pilot.press("n", "n")
        await wait_for(pilot, lambda: len(held.chars) == count + 3)
        await pilot.press("p")
        assert not held.held and "held" not in str(held.border_title)
        await wait_for(pilot, lambda: len(held.chars) > count + 5)


async def test_digits_write_the_kth_likeliest_char_on_a_held_stream():
    app = make_app(FakeBackend())
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        pane = app.main.panes()[0]
        await pilot.press("3")
        assert any("Hold this stream with p first" in n.message for n in app._notifications)
        await pilot.press("p", "i")
        odds = app.main.query_one(OddsPane)
        await wait_for(pilot, lambda: odds.odds is not None and odds.odds.held)
        await pilot.pause(0.4)
        for rank in (3, 1, 9):
            before, expected = len(pane.chars), odds.odds.top[rank - 1][0]
            shown = odds.odds
            await pilot.press(str(rank))
            await wait_for(pilot, lambda before=before: len(pane.chars) == before + 1)
            assert pane.chars[-1][0] == expected
            # The odds move on to the next char, with the written char as the last one.
            await wait_for(pilot, lambda shown=shown: odds.odds is not shown and odds.odds.drawn is not None)
            assert odds.odds.drawn == expected


async def test_v_opens_the_cell_view_which_follows_keys_and_closes():
    app = make_app(FakeBackend(delay=0.05))
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, CellScreen) and app.screen.recorded is not None)
        screen = app.screen
        text = screen.recorded.text
        assert text.startswith('he said "one (two) three"')
        # It opens on the best cell for the first feature, inside quotes.
        best = screen.recorded.best["inside quotes"][0]
        assert (screen.layer_index, screen.cell_index) == (best.cell.layer, best.cell.index)
        header = screen.query_one("#cell-header").render()
        assert f"cell #{best.cell.index} of 8" in str(header) and "inside quotes" in str(header)
        await pilot.press("right")
        assert screen.cell_index == (best.cell.index + 1) % 8
        await pilot.press("left", "left")
        assert screen.cell_index == (best.cell.index - 1) % 8
        await pilot.press("f")  # back to the best cell for quotes, then on to the next feature
        assert screen.feature == "inside quotes" and screen.cell_index == best.cell.index
        await pilot.press("f")
        assert screen.feature == "bracket depth"
        best = screen.recorded.best["bracket depth"][0]
        assert screen.cell_index == best.cell.index
        # t: the focused stream's text instead of the held-out slice.
        await pilot.press("t")
        await wait_for(pilot, lambda: screen.recorded.text != text)
        assert app.main.panes()[0].text.startswith(screen.recorded.text)  # the stream's text when v was pressed
        # It follows the newest weights (the fake publishes a new snapshot as it trains).
        version = screen.recorded.version
        await wait_for(pilot, lambda: screen.recorded.version != version)
        await pilot.press("escape")
        assert app.screen is app.main


def test_whitespace_is_visible_in_the_streams():
    assert show_whitespace("a  b\nc\td").plain == "a··b⏎\nc␉d"
    assert show_whitespace("one two").plain == "one two"  # single spaces between words stay spaces
    dots = show_whitespace("x" + " " * 200)
    assert dots.plain == "x" + "·" * 200 and any("dim" in str(span.style) for span in dots.spans)


async def test_a_stream_that_repeats_itself_says_so_and_a_blank_run_is_not_blank():
    assert repeating_period("intro " + "the cat sat. " * 5) == 13
    assert repeating_period(" " * 60) == 1
    assert repeating_period("every word here is different from the one before it, no loops at all") is None
    app = make_app(FakeBackend())
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        app.workers.cancel_group(app.main, "generation")
        await pilot.pause(0.3)
        app.main.layout_version += 1  # text in flight is stale
        pane = app.main.panes()[0]
        pane.clear()
        pane.add([(c, 0.5) for c in "def read_file(path):\n" + " " * 200])
        await pilot.pause()
        assert "repeats one char" in str(pane.border_title)
        assert "·" * 40 in pane.shown_text()  # the 200 spaces are drawn
        pane.add([(c, 0.5) for c in "and so on, " * 6])
        await pilot.pause()
        assert "repeats a 11-char span" in str(pane.border_title)
        pane.add([(c, 0.5) for c in "then something else entirely, with no loop in it at all!"])
        assert "repeats" not in str(pane.border_title)


def test_cell_colours_and_blocks_carry_the_value():
    text = 'a "b"\nc'
    values = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 0.2, -0.2])
    rows = coloured_lines(text, values, 40, blocks=True)
    lines = ["".join(segment.text for segment in row) for row in rows]
    assert lines == ['a "b"⏎', "".join(block(v) for v in values[:6]), "c", block(-0.2)]
    assert block(-1) == "▁" and block(1) == "▇"
    (low, high), *_ = coloured_lines("ab", np.array([-1.0, 1.0]), 40, blocks=False)
    assert low.style.bgcolor.triplet.blue > low.style.bgcolor.triplet.red
    assert high.style.bgcolor.triplet.red > high.style.bgcolor.triplet.blue
    # Lines break at the width as well as at newlines.
    assert ["".join(s.text for s in row) for row in coloured_lines("abcdefg", np.zeros(7), 3, blocks=False)] == [
        "abc",
        "def",
        "g",
    ]


def test_the_inspector_reports_the_generators_own_distribution():
    generator = Generator(random_weights(), VOCAB, [SamplingSettings(0.7, top_k=5)], seed_text="the ")
    odds = generator.odds(0)
    expected = distribution(generator.next_logits()[0], SamplingSettings(0.7, top_k=5))
    assert [p for _, p in odds.top(10)] == sorted(expected, reverse=True)[:10]
    assert sum(p for _, p in odds.top(10)) == pytest.approx(1.0)
    assert len([p for _, p in odds.top(10) if p > 0]) == 5


async def test_under_no_color_the_cell_view_draws_the_values_as_blocks(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(FakeBackend(delay=0.05))
    async with app.run_test(size=(100, 30)) as pilot:
        assert app.no_color
        await started(pilot)
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, CellScreen) and app.screen.recorded is not None)
        await pilot.pause()
        shown = app.screen.query_one(CellText).plain_lines()
        assert shown[0].startswith('he said "one (two) three"⏎')
        values = app.screen.recorded.activations[0][:, app.screen.cell_index]
        assert shown[1] == "".join(block(v) for v in values[: len(shown[1])]) and len(shown[1]) == len(shown[0])
