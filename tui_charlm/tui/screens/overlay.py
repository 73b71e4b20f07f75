"""Pick other runs whose held-out curves are drawn beside this run's on the loss plot (o)."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, SelectionList
from textual.widgets.selection_list import Selection

from tui_charlm.core.runs import RunSummary, summary_cells

# Curves drawn at most beside this run's (one colour each).
MAX_OTHERS = 6


class OverlayScreen(ModalScreen[list[Path] | None]):
    """Space ticks runs, Enter draws the ticked ones, Escape leaves the plot as it was."""

    BINDINGS = [
        # Priority: the list would take Enter as another tick.
        Binding("enter", "apply", "Draw these", id="overlay-apply", priority=True),
        Binding("escape", "cancel", "Cancel", id="overlay-cancel"),
    ]

    def __init__(self, runs: list[RunSummary], chosen: set[Path]):
        super().__init__()
        self.runs = runs
        self.chosen = chosen

    def compose(self) -> ComposeResult:
        with Vertical(id="overlay-dialog"):
            yield Label(
                f"Other runs to draw beside this one (at most {MAX_OTHERS}): Space ticks, Enter draws, Escape cancels."
            )
            yield SelectionList[str](
                *(
                    Selection(
                        "  ".join(cell for index, cell in enumerate(summary_cells(run)) if index in (0, 1, 3, 7)),
                        run.path,
                        Path(run.path) in self.chosen,
                    )
                    for run in self.runs
                ),
                id="overlay-runs",
            )

    def on_mount(self) -> None:
        self.query_one(SelectionList).focus()

    def action_apply(self) -> None:
        picked = [Path(path) for path in self.query_one(SelectionList).selected]
        if len(picked) > MAX_OTHERS:
            self.notify(f"At most {MAX_OTHERS} runs at once.", severity="warning")
            return
        self.dismiss(picked)

    def action_cancel(self) -> None:
        self.dismiss(None)
