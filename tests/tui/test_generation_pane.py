"""A stream pane draws the tail of its text as Rich would wrap the whole text at once.

The pane wraps each line of the text once it is settled, and on each draw
only the last lines of the open line (WrappedLines); these tests check that
whatever the chunks, widths and colouring, what is drawn equals Rich
wrapping the whole text afresh.
"""

from __future__ import annotations

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from tui_charlm.tui.widgets.generation_pane import WrappedLines, show_whitespace, show_whitespace_styled

CONSOLE = Console(width=200, color_system=None)

# Words, runs of spaces, newlines, a control char, a wide char and a word longer than a line.
PIECES = st.sampled_from(["the", "cat", " ", "  ", "    ", "\n", "\n\n", "\t", "語", "x" * 30, ".", "sat,"])


def drawn_afresh(chars: list[tuple[str, float]], width: int, height: int, surprise: bool) -> list[list]:
    """The last `height` lines of the whole text wrapped at once, as (text, style) segments."""
    text = show_whitespace_styled(chars) if surprise else show_whitespace("".join(c for c, _ in chars))
    lines = list(text.wrap(CONSOLE, width))[-height:]
    return drawn(list(line.render(CONSOLE)) for line in lines)


def drawn(lines) -> list[list]:
    """Lines as (text, style) segments, empty segments left out."""
    return [[(segment.text, segment.style) for segment in line if segment.text] for line in lines]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    chunks=st.lists(st.lists(PIECES, max_size=6), min_size=1, max_size=25),
    width=st.integers(4, 24),
    height=st.integers(1, 8),
    surprise=st.booleans(),
    probability=st.sampled_from([0.01, 0.1, 0.3, 0.9]),
)
def test_drawing_as_the_text_grows_equals_wrapping_it_all_at_once(chunks, width, height, surprise, probability):
    chars: deque[tuple[str, float]] = deque()
    wrapped = WrappedLines(width, surprise, first=0)
    for chunk in chunks:
        chars.extend((c, probability) for c in "".join(chunk))
        assert drawn(wrapped.lines(chars, 0, height, CONSOLE)) == drawn_afresh(list(chars), width, height, surprise)


def test_chars_dropped_from_the_front_do_not_change_what_is_drawn():
    text = "".join(f"line {n} of the stream\n" for n in range(40)) + "and the open line goes on"
    chars: deque[tuple[str, float]] = deque(maxlen=300)
    wrapped = WrappedLines(12, False, first=0)
    added = 0
    for begin in range(0, len(text), 37):
        piece = text[begin : begin + 37]
        chars.extend((c, 0.5) for c in piece)
        added += len(piece)
        shown = [line.text for line in wrapped.lines(chars, added - len(chars), 6, CONSOLE)]
    assert shown == [line.plain for line in show_whitespace(text).wrap(CONSOLE, 12)][-6:]
    assert shown[-1] == "line goes on"


async def test_a_pane_draws_in_the_colours_of_the_theme_and_focus_it_has_now():
    # The pane works its Rich style out once per style change, not per line: a theme or focus change must still
    # reach the text it draws.
    from textual.app import App

    from tui_charlm.core.sampling import SamplingSettings
    from tui_charlm.tui.widgets.generation_pane import GenerationPane

    class Panes(App):
        CSS = "GenerationPane { height: 5; } GenerationPane:focus { background: red; }"

        def compose(self):
            yield GenerationPane(SamplingSettings(temperature=0.5), id="a")
            yield GenerationPane(SamplingSettings(temperature=1.0), id="b")

    def text_style(pane):
        return next(iter(pane.render_line(0))).style

    app = Panes()
    async with app.run_test(size=(40, 12)) as pilot:
        a, b = app.query_one("#a"), app.query_one("#b")
        for pane in (a, b):
            pane.add([(c, 0.5) for c in "some text to draw"])
        app.set_focus(b)
        await pilot.pause()
        before = text_style(a)
        assert before.bgcolor == a.rich_style.bgcolor
        app.set_focus(a)  # focus paints a red background
        await pilot.pause()
        assert text_style(a).bgcolor != before.bgcolor and text_style(a).bgcolor == a.rich_style.bgcolor
        app.set_focus(b)
        app.theme = "textual-light" if app.theme != "textual-light" else "textual-dark"
        await pilot.pause()
        assert text_style(a).color == a.rich_style.color and text_style(a).color != before.color


async def test_what_a_pane_puts_on_screen_post_after_post_equals_drawing_it_afresh():
    # A post redraws only the lines it changed (usually the last one): the lines it leaves must still be right,
    # as the text grows within a line, finishes lines, scrolls, and is coloured by surprise.
    from textual.app import App
    from textual.geometry import Region

    from tui_charlm.core.sampling import SamplingSettings
    from tui_charlm.tui.widgets.generation_pane import GenerationPane

    class Pane(App):
        CSS = "GenerationPane { height: 7; border: round white; }"

        def compose(self):
            yield GenerationPane(SamplingSettings(temperature=0.5))

    def on_screen(pane) -> list[str]:
        return [strip.text for strip in pane.render_lines(Region(0, 0, *pane.outer_size))]

    text = "".join(f"line {n} of a stream that wraps\n" if n % 3 else f"word {n} " for n in range(60))
    app = Pane()
    async with app.run_test(size=(30, 12)) as pilot:
        pane = app.query_one(GenerationPane)
        for number, begin in enumerate(range(0, len(text), 7)):
            pane.add([(c, 0.01 if number % 4 == 0 else 0.9) for c in text[begin : begin + 7]])
            if number % 5 == 0:
                pane.surprise = not pane.surprise
            await pilot.pause()
            shown = on_screen(pane)
            pane.refresh()  # everything drawn again from the text
            await pilot.pause()
            assert shown == on_screen(pane), f"after {begin + 7} chars"
        assert "59 of a" in " ".join(on_screen(pane))  # and it was the end of the text


def wraps_while_drawing(monkeypatch) -> list[int]:
    """The number of chars each draw wraps, from now on."""
    wrapped: list[int] = []
    wrap = WrappedLines._wrap

    def counting(self, chars, begin, end, console):
        wrapped.append(end - begin)
        return wrap(self, chars, begin, end, console)

    monkeypatch.setattr(WrappedLines, "_wrap", counting)
    return wrapped


def test_a_long_open_line_is_wrapped_a_few_lines_a_draw_not_a_screen_and_a_half(monkeypatch):
    # A stream at a low temperature: thousands of chars without a newline, posted 40 at a time.
    text = " ".join(("the spirit of the world", "and the same", "self-conscience")[n % 3] for n in range(250))
    width, height, post = 56, 10, 40
    chars: deque[tuple[str, float]] = deque()
    wrapped = WrappedLines(width, False, first=0)
    sizes = wraps_while_drawing(monkeypatch)
    for begin in range(0, len(text), post):
        chars.extend((c, 0.5) for c in text[begin : begin + post])
        shown = [line.text for line in wrapped.lines(chars, 0, height, CONSOLE)]
    assert shown == [line.plain for line in show_whitespace(text).wrap(CONSOLE, width)][-height:]
    assert len(sizes) == len(range(0, len(text), post))
    assert max(sizes) <= 3 * width + post  # the two lines not settled, and the post (a screen and a half: 896)


def test_an_open_line_nothing_of_which_can_be_settled_is_wrapped_a_screen_and_a_half_back(monkeypatch):
    import tui_charlm.tui.widgets.generation_pane as pane

    monkeypatch.setattr(pane, "line_starts", lambda shown, lines: None)  # as if Rich wrapped in an unforeseen way
    text = "word " * 600
    width, height = 20, 4
    chars: deque[tuple[str, float]] = deque()
    wrapped = WrappedLines(width, False, first=0)
    sizes = wraps_while_drawing(monkeypatch)
    for begin in range(0, len(text), 40):
        chars.extend((c, 0.5) for c in text[begin : begin + 40])
        shown = [line.text for line in wrapped.lines(chars, 0, height, CONSOLE)]
    # Once, from the line's start (to learn that nothing settles); then a screen and a half each draw.
    assert sum(size > pane.wrap_window(width, height) for size in sizes) == 1
    assert shown == [line.plain for line in show_whitespace(text).wrap(CONSOLE, width)][-height:]
