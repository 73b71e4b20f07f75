"""The start screen: the runs under ./runs, to resume, load or start anew; and the new-run form.

Shown by `charlm-tui` when ./runs holds runs and no run option was given,
and always with `--pick`. It only chooses: the app builds the backend from
the choice (tui/main.py) and starts as it would from the command line.
"""

from __future__ import annotations

from argparse import ArgumentTypeError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Checkbox, DataTable, Footer, Header, Input, Label, Static

from tui_charlm.core.config import TrainConfig, make_config
from tui_charlm.core.errors import CharlmError
from tui_charlm.core.options import whole_or_auto
from tui_charlm.core.runs import COLUMNS, RunSummary, summary_cells


@dataclass(frozen=True)
class StartChoice:
    """What the user picked: resume or load a run, or a new run with these options."""

    action: str  # 'resume', 'attach' (a run another process trains), 'load' or 'new'
    path: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


class StartScreen(Screen[StartChoice | None]):
    """Pick a run: Enter resumes it, l loads it for generation only, n starts a new one; Escape quits."""

    BINDINGS = [
        Binding("l", "load", "Load (generate only)", id="start-load"),
        Binding("n", "new", "New run", id="start-new"),
        Binding("escape", "cancel", "Quit", id="start-quit"),
    ]

    def __init__(self, runs: list[RunSummary], root: Path, corpora: list[str]):
        super().__init__()
        self.runs = runs
        self.root = root
        self.corpora = corpora

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(
            f"Runs in {self.root}, newest first. Enter resumes the highlighted run (or, if another process is "
            "training it, watches it live), l opens it for generation only, n starts a new run.",
            id="start-help",
        )
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.app.sub_title = "pick a run"
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        for run in self.runs:
            table.add_row(*summary_cells(run), key=run.path)
        table.focus()

    def selected(self) -> RunSummary | None:
        table = self.query_one(DataTable)
        if not self.runs:
            return None
        return self.runs[table.cursor_row]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_resume()

    def action_resume(self) -> None:
        run = self.selected()
        if run is None:
            return
        if run.status == "damaged":
            self.notify(f"{run.name} cannot be opened: {run.reason}", severity="error")
        elif run.status == "training":
            self.dismiss(StartChoice("attach", Path(run.path)))  # watch it live; the trainer goes on as it was
        else:
            self.dismiss(StartChoice("resume", Path(run.path)))

    def action_load(self) -> None:
        run = self.selected()
        if run is None:
            return
        if run.status == "damaged":
            self.notify(f"{run.name} cannot be opened: {run.reason}", severity="error")
        else:
            self.dismiss(StartChoice("load", Path(run.path)))

    def action_new(self) -> None:
        def chosen(overrides: dict[str, Any] | None) -> None:
            if overrides is not None:
                self.dismiss(StartChoice("new", overrides=overrides))

        self.app.push_screen(NewRunScreen(self.corpora), chosen)

    def action_cancel(self) -> None:
        self.dismiss(None)


# The form's fields: (TrainConfig field, label, kind).
FORM_FIELDS = (
    ("units", "LSTM units per layer (auto: measured for this machine at start)", "integer or auto"),
    ("layers", "LSTM layers", "integer"),
    ("seq_len", "window length (chars)", "integer"),
    ("time_budget", "time budget (seconds, 0 = none)", "number"),
)


class NewRunScreen(ModalScreen[dict[str, Any] | None]):
    """The common options of a new run, prefilled with the defaults; refuses values `charlm train` would refuse."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="form-cancel")]

    def __init__(self, corpora: list[str]):
        super().__init__()
        self.corpora = corpora

    def compose(self) -> ComposeResult:
        defaults = TrainConfig()
        with Vertical(id="new-run-form"):
            yield Label("A new run (Enter starts it, Escape goes back)", id="form-title")
            yield Label("corpus: a path, or one of " + ", ".join(self.corpora))
            yield Input(
                placeholder="empty: nietzsche (builtin when offline)",
                suggester=SuggestFromList(self.corpora, case_sensitive=False),
                id="form-corpus",
            )
            for name, label, kind in FORM_FIELDS:
                yield Label(label)
                value = getattr(defaults, name)
                shown = "auto" if kind == "integer or auto" and value == 0 else f"{value:g}"
                yield Input(
                    shown, type="text" if kind == "integer or auto" else kind, id=f"form-{name.replace('_', '-')}"
                )
            yield Checkbox("lower-case the corpus", defaults.lowercase, id="form-lowercase")
            yield Label("", id="form-error")
            with Horizontal(id="form-buttons"):
                yield Button("Start", variant="primary", id="form-start")
                yield Button("Cancel", id="form-cancel-button")

    def on_mount(self) -> None:
        self.query_one("#form-corpus", Input).focus()

    def values(self) -> dict[str, Any]:
        """The form as TrainConfig overrides; CharlmError naming the field that is wrong."""
        overrides: dict[str, Any] = {}
        corpus = self.query_one("#form-corpus", Input).value.strip()
        if corpus:
            if corpus not in self.corpora and not Path(corpus).expanduser().is_file():
                raise CharlmError(f"corpus: {corpus!r} is neither a file nor one of the corpora listed.")
            overrides["corpus"] = corpus if corpus in self.corpora else str(Path(corpus).expanduser())
        for name, label, kind in FORM_FIELDS:
            text = self.query_one(f"#form-{name.replace('_', '-')}", Input).value.strip()
            try:
                if kind == "integer or auto":
                    overrides[name] = whole_or_auto(text)
                else:
                    overrides[name] = int(text) if kind == "integer" else float(text)
            except (ValueError, ArgumentTypeError):
                wanted = "a whole number of at least 1, or auto" if kind == "integer or auto" else "a number"
                raise CharlmError(f"{label}: {text!r} is not {wanted}.") from None
        overrides["lowercase"] = self.query_one("#form-lowercase", Checkbox).value
        make_config("default", **overrides)  # the checks `charlm train` makes
        return overrides

    def submit(self) -> None:
        try:
            overrides = self.values()
        except CharlmError as error:
            self.query_one("#form-error", Label).update(f"✗ {error}")
            return
        self.dismiss(overrides)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "form-start":
            self.submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
