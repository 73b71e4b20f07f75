"""One stream of generated text: it types in char by char, optionally coloured by surprise."""

from __future__ import annotations

import re
from collections import deque

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.geometry import Region
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from tui_charlm.core.sampling import SamplingSettings
from tui_charlm.tui.glyphs import NEWLINE, PICTURES

# Chars kept per pane: more than any terminal shows at once.
KEEP_CHARS = 6000
# (probability below which, style): the rarer the char under the model, the louder.
SURPRISE_STYLES = ((0.05, "bold red reverse"), (0.2, "bold dark_orange"), (0.5, "yellow"))


def surprise_style(probability: float) -> str:
    """Style for a char the model gave `probability`."""
    for limit, style in SURPRISE_STYLES:
        if probability < limit:
            return style
    return ""


def surprise_legend() -> Text:
    """One line explaining the surprise colours."""
    legend = Text("surprise: ")
    legend.append("p≥0.5 plain  ")
    for (_, style), label in zip(reversed(SURPRISE_STYLES), ("p<0.5", "p<0.2", "p<0.05")):
        legend.append(f" {label} ", style=style)
        legend.append("  ")
    return legend


# A stream is called repeating when its newest chars are one span again and again: at least three times, over
# at least this many chars, for spans up to MAX_PERIOD chars.
MIN_REPEAT_CHARS = 48
MAX_PERIOD = 100
# Runs of this many spaces or more are drawn as dim dots, so a stream typing whitespace does not look blank.
SPACE_RUN = 2
_SHOWN = re.compile(" {" + str(SPACE_RUN) + r",}|[\x00-\x09\x0b-\x1f\x7f]|\n")


def repeating_period(text: str) -> int | None:
    """The shortest span the end of `text` repeats (3+ times, over MIN_REPEAT_CHARS+ chars), or None."""
    for period in range(1, MAX_PERIOD + 1):
        length = max(3 * period, MIN_REPEAT_CHARS)
        if len(text) < length:
            return None
        tail = text[-length:]
        if tail[period:] == tail[:-period]:
            return period
    return None


def visible(char: str) -> str:
    """How a whitespace or control char is drawn: ⏎ then a line break, · for a space in a run, ␉ for a tab..."""
    if char == "\n":
        return NEWLINE + "\n"
    return "·" if char == " " else char.translate(PICTURES)


def show_whitespace(chars: str) -> Text:
    """`chars` with newlines, runs of spaces and control chars made visible (dim), everything else as is."""
    text = Text(no_wrap=False, overflow="fold")
    begin = 0
    for match in _SHOWN.finditer(chars):
        text.append(chars[begin : match.start()])
        text.append("".join(visible(c) for c in match.group()), style="dim")
        begin = match.end()
    text.append(chars[begin:])
    return text


def show_whitespace_styled(chars: list[tuple[str, float]]) -> Text:
    """show_whitespace() with each char coloured by how surprising it was (surprise_style)."""
    plain = "".join(c for c, _ in chars)
    marked = set()
    for match in _SHOWN.finditer(plain):
        marked.update(range(match.start(), match.end()))
    text = Text(no_wrap=False, overflow="fold")
    for index, (char, probability) in enumerate(chars):
        style = surprise_style(probability)
        if index in marked:
            text.append(visible(char), style=f"dim {style}".strip())
        else:
            text.append(char, style=style)
    return text


def wrap_window(width: int, height: int) -> int:
    """Chars wrapped to fill a pane when the text's line breaks are out of sight: a screen and a half, plus a line
    (word wrapping leaves lines short)."""
    return width * height * 3 // 2 + width


def line_starts(shown: str, lines: list[str]) -> list[int] | None:
    """Where each of the wrapped `lines` of `shown` (one line of text) begins in it, or None if they do not add up.

    Rich drops only spaces at a break (those that would overflow the line).
    """
    starts, position = [], 0
    for line in lines:
        while not shown.startswith(line, position) and position < len(shown) and shown[position] == " ":
            position += 1
        if not shown.startswith(line, position):
            return None
        starts.append(position)
        position += len(line)
    return starts


def render(lines: list[Text], console) -> list[Strip]:
    """Wrapped lines as Textual draws them."""
    return [Strip(list(line.render(console)), line.cell_len) for line in lines]


class WrappedLines:
    """A stream's text wrapped for one width, as lines of segments; each wrapped line is made once it is settled.

    Rich wraps each line of text (up to a newline) on its own, so the lines
    a finished one wraps into never change: they are kept. Within the open
    line, after the last newline, wrapping is greedy (a line breaks before a
    word that does not fit), so as chars come only its last word can move:
    every wrapped line but the last two is settled, kept, and not wrapped
    again (_settled says which). Each draw wraps those two lines and the new
    chars, however long the open line has grown: a stream at a low
    temperature runs on for hundreds of chars without a newline, and
    wrapping a screen and a half of it on every post was a viewer's largest
    cost of its own (issue 26), five times a second in the app, on the
    interpreter lock the training loop shares.
    """

    # Wrapped lines kept: more than any pane is tall.
    KEEP_LINES = 400

    def __init__(self, width: int, surprise: bool, first: int):
        self.width = width
        self.surprise = surprise
        self.done: deque[Strip] = deque(maxlen=self.KEEP_LINES)  # the settled wrapped lines
        self.done_upto = first  # the stream position where the first line not settled begins
        self.scanned = first  # no newline before this position but those already wrapped
        self.stuck: int | None = None  # done_upto, when nothing of a screen and a half after it could be settled

    def lines(self, chars: deque[tuple[str, float]], start: int, height: int, console) -> list[Strip]:
        """The last `height` wrapped lines of the text; `chars` holds the stream's chars from position `start` on."""
        end = start + len(chars)
        newline = None
        for position in range(max(self.scanned, start), end):
            if chars[position - start][0] == "\n":
                newline = position
        self.scanned = end
        if newline is not None:  # lines finished since the last draw
            finished = self._wrap(chars, self.done_upto - start, newline + 1 - start, console)[1]
            self.done.extend(render(finished, console))
            self.done_upto = newline + 1
        # The open line, from its first line not settled. Should that be over a screen and a half back and nothing
        # of it could be settled the last time, it is wrapped from there, its top out of sight: a bound on what a
        # draw costs should Rich ever wrap in a way _settled does not foresee (no text tried has come here).
        first, window = self.done_upto, wrap_window(self.width, height)
        if end - first > window and self.stuck == first:
            first = end - window
        if first < end:
            shown, wrapped = self._wrap(chars, first - start, len(chars), console)
            settled = 0
            if first == self.done_upto:
                settled, begin = self._settled(chars, start, first, shown, wrapped)
                self.done_upto = first + begin
                self.stuck = first if settled == 0 and end - first > window and len(wrapped) > 4 else None
            self.done.extend(render(wrapped[:settled], console))
            tail = render(wrapped[settled:], console)
        else:
            tail = [Strip([])]
        if len(tail) >= height:
            return tail[-height:]
        kept = min(height - len(tail), len(self.done))
        return [self.done[i] for i in range(len(self.done) - kept, len(self.done))] + tail

    def _settled(
        self, chars: deque[tuple[str, float]], start: int, first: int, shown: str, wrapped: list[Text]
    ) -> tuple[int, int]:
        """How many of the first wrapped lines of `shown` (the open line from stream position `first`) are settled,
        and where in it the next one begins.

        All but the last two, up to a line that wrapping afresh from its
        first char would wrap as the whole open line does: one that begins a
        word (after a space), or one in a word longer than a line from there
        on, which folds the same way from any of its line breaks (but for the
        last space of a run, drawn as a dot in the run and as a space alone);
        not one in a shorter word's end: Rich folds a word with its trailing
        space.
        """
        starts = line_starts(shown, [line.plain for line in wrapped]) if len(wrapped) > 2 else None
        if starts is None:
            return 0, 0
        for count in range(len(wrapped) - 2, 0, -1):
            begin = starts[count]
            if begin == 0:
                continue
            if shown[begin - 1] == " ":
                return count, begin
            word_end = shown.find(" ", begin)
            long_word = cell_len(shown[begin : word_end if word_end >= 0 else None]) > self.width
            if long_word and not self._ends_a_run(chars, start, first + begin):
                return count, begin
        return 0, 0

    @staticmethod
    def _ends_a_run(chars: deque[tuple[str, float]], start: int, position: int) -> bool:
        """Whether the char at `position` is a space that the next char does not (yet) follow with another."""
        if chars[position - start][0] != " ":
            return False
        return position + 1 >= start + len(chars) or chars[position + 1 - start][0] != " "

    def _wrap(self, chars: deque[tuple[str, float]], begin: int, end: int, console) -> tuple[str, list[Text]]:
        """chars[begin:end] as shown, and wrapped into Rich lines; a newline among them ends a line (as Rich wraps
        one paragraph at a time)."""
        piece = [chars[i] for i in range(begin, end)]
        text = show_whitespace_styled(piece) if self.surprise else show_whitespace("".join(c for c, _ in piece))
        lines = list(text.wrap(console, self.width))
        if piece and piece[-1][0] == "\n":
            lines.pop()  # the empty line after the final newline: the open line takes its place
        return text.plain, lines


class GenerationPane(Widget, can_focus=True):
    """Generated text of one stream; the focused pane is the one the keys steer.

    Drawn with Textual's line API: the lines are segments made once per
    wrapped line (WrappedLines), not a Rich Text that Textual would convert
    and wrap again on every draw.
    """

    surprise: reactive[bool] = reactive(False)
    held: reactive[bool] = reactive(False)

    def __init__(self, settings: SamplingSettings, **kwargs):
        super().__init__(**kwargs)
        self.settings = settings
        self.chars: deque[tuple[str, float]] = deque(maxlen=KEEP_CHARS)
        self.added = 0  # chars added since the last clear (the stream position after the newest char)
        self.wrapped: WrappedLines | None = None  # for the width and colouring last drawn
        self.drawn: tuple[tuple, list[Strip]] | None = None  # (what they were drawn from, the lines shown)
        self.period: int | None = None  # the span the stream is repeating, if it is
        self._style: tuple[object, Style] | None = None  # (the visual style it is for, the pane's Rich style)

    def on_mount(self) -> None:
        self.show_settings(self.settings)

    def show_settings(self, settings: SamplingSettings) -> None:
        self.settings = settings
        self.show_title()

    def show_title(self) -> None:
        title = self.settings.describe()
        if self.held:
            title += " · held (n: next, 1-9: write)"
        if self.period is not None:
            title += " · repeats one char" if self.period == 1 else f" · repeats a {self.period}-char span"
        self.border_title = title
        self.set_class(self.held, "-held")
        self.refresh()

    def watch_held(self) -> None:
        self.show_title()

    def add(self, chars: list[tuple[str, float]]) -> None:
        self.chars.extend(chars)
        self.added += len(chars)
        tail = "".join(self.chars[i][0] for i in range(max(0, len(self.chars) - 3 * MAX_PERIOD), len(self.chars)))
        period = repeating_period(tail)
        if period != self.period:
            self.period = period
            self.show_title()  # the border changes: the whole pane is drawn again
            return
        self.refresh_changed_lines()

    def refresh_changed_lines(self) -> None:
        """Mark for drawing only the lines that new chars changed: usually the last, unless the text scrolled.

        A full refresh sends every line of the pane through Textual's styles
        again (borders, padding, colours) on each post, five times a second per
        pane (once in a viewer), where most posts change one line (issue 26).
        """
        before = self.drawn[1] if self.drawn is not None else None
        if before is None:
            self.refresh()
            return
        after = self.shown()
        if len(after) != len(before):
            self.refresh()
            return
        changed = [y for y, (old, new) in enumerate(zip(before, after)) if old is not new and old != new]
        if len(changed) == len(after):
            self.refresh()
        elif changed:
            width = self.content_region.width
            self.refresh(*(Region(0, y, width, 1) for y in changed))

    def clear(self) -> None:
        self.chars.clear()
        self.added = 0
        self.wrapped = None
        self.drawn = None
        self.period = None
        self.show_title()

    @property
    def text(self) -> str:
        return "".join(c for c, _ in self.chars)

    def pane_style(self) -> Style:
        """The pane's colours (its Rich style), worked out again only when its styles change.

        Textual's `rich_style` walks every ancestor's styles on each call, and
        each line of each pane asked for it on every draw: a viewer's largest
        single cost. Textual's own `visual_style` is made afresh whenever a
        style of this pane is applied or changed (a theme, a class, focus), so
        it says when to work it out again.
        """
        visual = self.visual_style
        if self._style is None or self._style[0] is not visual:
            self._style = (visual, self.rich_style)
        return self._style[1]

    def shown(self) -> list[Strip]:
        """The lines on screen, oldest first: the tail of the text as it wraps at the pane's width."""
        width, height = self.content_region.width, self.content_region.height
        if width <= 0 or height <= 0:
            return []
        style = self.pane_style()  # the pane's colours, under each char's own style
        key = (self.added, width, height, self.surprise, style)
        if self.drawn is not None and self.drawn[0] == key:
            return self.drawn[1]
        start = self.added - len(self.chars)  # the stream position of the oldest char kept
        wrapped = self.wrapped
        if wrapped is None or (wrapped.width, wrapped.surprise) != (width, self.surprise) or wrapped.done_upto < start:
            # A new width or colouring: wrap afresh from a screen and a half back.
            first = max(start, self.added - wrap_window(width, height))
            wrapped = self.wrapped = WrappedLines(width, self.surprise, first)
        lines = [line.apply_style(style) for line in wrapped.lines(self.chars, start, height, self.app.console)]
        self.drawn = (key, lines)
        return lines

    def shown_text(self) -> str:
        """What the pane shows, as plain text (a line break between lines)."""
        return "\n".join(line.text for line in self.shown())

    def render_line(self, y: int) -> Strip:
        lines = self.shown()
        if y >= len(lines):
            return Strip.blank(self.size.width, self.pane_style())
        return lines[y]
