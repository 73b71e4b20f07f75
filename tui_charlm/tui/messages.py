"""Messages the worker threads post to the app (post_message is thread-safe and never blocks)."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.message import Message

from tui_charlm.tui.core_bridge import RunInfo


@dataclass
class StatusChanged(Message):
    """The training worker is doing something worth telling the user (loading, saving...)."""

    text: str


@dataclass
class NoticeReported(Message):
    """A one-line message from the core that the user should read (shown as a notification)."""

    text: str


@dataclass
class RunPrepared(Message):
    """Corpus and model are loaded; the run can be shown."""

    info: RunInfo


@dataclass
class BatchesReported(Message):
    """Batches finished since the last report (coalesced to a few reports per second)."""

    losses: list[tuple[int, float]]  # (step, loss in nats)
    epoch: int  # epoch in progress, from 0
    batch: int  # batches done in it
    batches: int
    step: int
    chars_per_second: float  # over the last few seconds of wall time, everything between batches included
    average_chars_per_second: float  # over the session (pauses excluded)
    elapsed: float


@dataclass
class TrainingEventReported(Message):
    """Any other core event (epoch finished, checkpoint saved, finished, failed), passed through as is."""

    event: object


@dataclass
class TrainerChanged(Message):
    """The app watches a new trainer (it handed its run over, or the run was resumed): where that trainer is."""

    info: RunInfo  # the run as the new trainer trains it: its device (with pid and host), budget and epochs
    note: str
    title: str = "Detached"  # the notice's title: how the new trainer came


@dataclass
class PreparationFailed(Message):
    """Loading the corpus or model failed; `message` is one sentence for the user."""

    message: str


@dataclass
class TextGenerated(Message):
    """Chars generated since the last report: one list of (char, probability) per stream."""

    layout: int  # which stream layout these belong to; stale layouts are ignored
    chunks: list[list[tuple[str, float]]] = field(default_factory=list)


@dataclass
class SeedApplied(Message):
    """The generator restarted from a new seed."""

    layout: int
    text: str
    source: str
    problem: str  # '' or a sentence about characters that were dropped
    mode: str = "stateful"  # how the streams generate: 'stateful' or 'window'


@dataclass
class OddsReported(Message):
    """The inspected stream's next-char odds: the distribution it samples from, likeliest first."""

    layout: int
    stream: int
    top: list[tuple[str, float]]  # (char, probability under the stream's sampling settings)
    entropy: float  # bits, of that distribution
    drawn: str | None  # the stream's newest char, if it has drawn one since the inspector opened
    drawn_probability: float | None  # the model's probability of that char
    held: bool
    settings: str  # the stream's sampling settings, e.g. 'T=0.5 top-k 10'
