"""The generation worker's loop: a core Generator paced for watching.

Runs in its own thread. The UI sends commands through a queue (thread-safe,
never blocks the UI); the loop applies them as they come, picks up the
newest weight snapshot, and posts what it generated a few times per second:
the chars of each post are made just before it, at the pace asked for, so
the thread wakes a few times a second rather than once per char. It never
touches a widget.
"""

from __future__ import annotations

import math
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass

from tui_charlm.core.generation import GeneratedChar, Generator, WeightBox, make_room_for_training
from tui_charlm.core.sampling import SamplingSettings
from tui_charlm.tui.messages import OddsReported, SeedApplied, TextGenerated

# Seconds between posts to the UI: a few updates per second per pane types smoothly enough, and
# keeps the UI's rendering (Python, holding the interpreter lock) from slowing training.
POST_INTERVAL = 0.2
# In a viewer (charlm-tui --attach), which shares its machine with the trainer it watches: each redraw of the
# screen costs the trainer CPU time, so a viewer posts once a second (0.5 s: 4.3% of a core per viewer; 1.0 s:
# 3.4%; the same chars at the same pace, in bigger bursts; benchmarks/README.md, issue 26).
VIEWER_POST_INTERVAL = 1.0


@dataclass(frozen=True)
class SetSettings:
    """Change one stream's sampling."""

    layout: int
    index: int
    settings: SamplingSettings


@dataclass(frozen=True)
class AddStream:
    """Add a stream that starts from the current seed."""

    layout: int
    settings: SamplingSettings


@dataclass(frozen=True)
class RemoveStream:
    """Remove one stream."""

    layout: int
    index: int


@dataclass(frozen=True)
class Reseed:
    """Restart every stream from new seed text."""

    layout: int
    text: str
    source: str


@dataclass(frozen=True)
class SetMode:
    """Switch between stateful and window generation."""

    mode: str


@dataclass(frozen=True)
class Hold:
    """Hold one stream (it waits for Draw or Write), or let it run again."""

    layout: int
    index: int
    held: bool


@dataclass(frozen=True)
class Draw:
    """Draw one char on one stream (held or not)."""

    layout: int
    index: int


@dataclass(frozen=True)
class Write:
    """Write on one stream instead of drawing: `char` (as the inspector showed it), else the rank-th likeliest."""

    layout: int
    index: int
    rank: int  # 1 = the likeliest
    char: str | None = None


@dataclass(frozen=True)
class Inspect:
    """Report the odds of this stream's next char a few times a second (None: stop reporting)."""

    layout: int
    index: int | None


# Chars the inspector lists.
ODDS_SHOWN = 10


class GenerationLoop:
    """Owns the Generator; call `run` in a worker thread and `submit` from the UI."""

    def __init__(
        self,
        box: WeightBox,
        vocab,
        settings: list[SamplingSettings],
        *,
        seed_text: str,
        seed_source: str,
        mode: str | None,
        chars_per_second: float,
        post: Callable[[object], None],
        post_interval: float = POST_INTERVAL,
    ):
        self.box = box
        self.post_interval = post_interval
        self.vocab = vocab
        self.initial = (list(settings), seed_text, seed_source, mode)
        self.chars_per_second = chars_per_second
        self.post = post
        self.commands: queue.Queue = queue.Queue()
        self.layout = 0
        self.generator: Generator | None = None
        self.seed_source = seed_source
        self.inspected: int | None = None  # the stream whose odds are reported
        self.last_drawn: dict[int, GeneratedChar] = {}  # each stream's newest char
        self.odds_due = False  # report odds now (a command changed them), not at the next post

    def submit(self, command: object) -> None:
        """Queue a command; it takes effect before the next char."""
        self.commands.put(command)

    def _apply(self, command: object) -> list[GeneratedChar]:
        """Carry out one command; returns the chars it wrote (Draw and Write), to be shown like any others."""
        generator = self.generator
        if isinstance(command, (Hold, Draw, Write, Inspect)) and command.layout != self.layout:
            return []  # meant for streams that have since been added, removed or re-seeded
        self.odds_due = True
        if isinstance(command, Inspect):
            self.inspected = command.index
        elif isinstance(command, Hold):
            if 0 <= command.index < len(generator.settings):
                generator.hold(command.index, command.held)
        elif isinstance(command, Draw):
            if 0 <= command.index < len(generator.settings):
                return [generator.draw(command.index)]
        elif isinstance(command, Write):
            if 0 <= command.index < len(generator.settings):
                if command.char is not None:
                    char_id = generator.vocab.char_to_id[command.char]
                else:
                    char_id = int(generator.odds(command.index).order[command.rank - 1])
                return [generator.write(command.index, char_id)]
        elif isinstance(command, SetSettings):
            if 0 <= command.index < len(generator.settings):
                generator.set_settings(command.index, command.settings)
        elif isinstance(command, AddStream):
            generator.add_stream(command.settings)
            self.layout = command.layout
        elif isinstance(command, RemoveStream):
            if len(generator.settings) > 1 and 0 <= command.index < len(generator.settings):
                generator.remove_stream(command.index)
            self.layout = command.layout
        elif isinstance(command, Reseed):
            generator.reseed(command.text)
            self.seed_source = command.source
            self.layout = command.layout
            self.post(
                SeedApplied(
                    self.layout,
                    generator.seed_report.text,
                    command.source,
                    generator.seed_report.describe(),
                    generator.mode,
                )
            )
        elif isinstance(command, SetMode):
            generator.set_mode(command.mode)
            self.post(SeedApplied(self.layout, generator.seed_report.text, self.seed_source, "", generator.mode))
        if isinstance(command, (AddStream, RemoveStream, Reseed)):
            self.last_drawn.clear()
            if isinstance(command, RemoveStream) and self.inspected is not None:
                self.inspected = None  # the screen says which stream to inspect next
        return []

    def report_odds(self) -> None:
        """Post the inspected stream's next-char odds, and the char it drew last."""
        generator, index = self.generator, self.inspected
        self.odds_due = False
        if index is None or not 0 <= index < len(generator.settings):
            return
        odds = generator.odds(index)
        chars = generator.vocab.chars
        drawn = self.last_drawn.get(index)
        self.post(
            OddsReported(
                self.layout,
                index,
                [(chars[char_id], probability) for char_id, probability in odds.top(ODDS_SHOWN)],
                odds.entropy,
                None if drawn is None else drawn.char,
                None if drawn is None else drawn.probability,
                generator.held[index],
                generator.settings[index].describe(),
            )
        )

    def run(self, cancelled: Callable[[], bool]) -> None:
        """Generate until `cancelled()` is true."""
        make_room_for_training()
        while self.box.latest() is None:
            if cancelled():
                return
            time.sleep(0.05)
        settings, seed_text, seed_source, mode = self.initial
        self.generator = Generator(self.box.latest(), self.vocab, settings, seed_text=seed_text, mode=mode)
        self.seed_source = seed_source
        self.post(
            SeedApplied(
                self.layout,
                self.generator.seed_report.text,
                seed_source,
                self.generator.seed_report.describe(),
                self.generator.mode,
            )
        )
        interval = 1.0 / self.chars_per_second if self.chars_per_second > 0 else 0.0
        pending: list[list[tuple[str, float]]] = [[] for _ in settings]
        next_char = last_post = time.monotonic()
        while not cancelled():
            # Sleep until the next post, or until a command comes (a key is answered at once). The chars of a
            # post are made just before it, in one burst: they reach the screen only then anyway, and one
            # wake-up per post instead of one per char costs a trainer on the same cores less (issue 26).
            wait = last_post + self.post_interval - time.monotonic() if interval > 0 else 0.0
            for command in self._commands(wait):
                layout = self.layout
                written = self._apply(command)
                if self.layout != layout:
                    pending = [[] for _ in self.generator.settings]
                for char in written:
                    self.last_drawn[char.stream] = char
                    pending[char.stream].append((char.char, char.probability))
                if written:
                    # Show a stepped or written char at once (not 0.0: time.monotonic() counts from boot).
                    last_post = -math.inf
            latest = self.box.latest()
            if latest is not self.generator.weights:
                self.generator.set_weights(latest)
                self.odds_due = True
            now = time.monotonic()
            if interval == 0:  # as fast as it can
                self._step(pending)
            if now - last_post < self.post_interval:
                continue
            if interval > 0:
                # The chars due by now; after a stall (a busy machine) at most a post's worth, then the normal pace.
                next_char = max(next_char, now - self.post_interval - interval)
                while next_char <= now and not cancelled():
                    self._step(pending)
                    next_char += interval
            if any(pending):
                self.post(TextGenerated(self.layout, pending))
                pending = [[] for _ in self.generator.settings]
                self.odds_due = True
            if self.odds_due:
                self.report_odds()
            last_post = now

    def _step(self, pending: list[list[tuple[str, float]]]) -> None:
        """One char on every stream that is not held, added to `pending`."""
        for char in self.generator.step():
            pending[char.stream].append((char.char, char.probability))
            self.last_drawn[char.stream] = char

    def _commands(self, wait: float) -> list[object]:
        """The commands queued now; if none, the first to come within `wait` seconds (at most one post interval)."""
        commands = []
        try:
            if wait > 0:
                commands.append(self.commands.get(timeout=min(wait, self.post_interval)))
            while True:
                commands.append(self.commands.get_nowait())
        except queue.Empty:
            pass
        return commands
