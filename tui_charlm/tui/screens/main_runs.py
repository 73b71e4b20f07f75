"""The main screen's keys for runs: compare curves with other runs, switch the plot's axis, keep what you see.

A mixin of MainScreen (tui/screens/main.py).
"""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from tui_charlm.core.runs import RUNS_DIR, heldout_curve, list_runs
from tui_charlm.tui.keep import streams_text, write_streams
from tui_charlm.tui.screens.overlay import OverlayScreen
from tui_charlm.tui.screens.samples import SamplesScreen, read_samples
from tui_charlm.tui.widgets.loss_plot import OVERLAY_COLORS, LossPlot


class RunKeys:
    """o, g, w and h."""

    def action_toggle_axis(self) -> None:
        self.loss_plot.axis = "time" if self.loss_plot.axis == "step" else "step"

    def action_overlay(self) -> None:
        if not self.ready(self.info):
            return
        root = self.info.run_dir.parent if self.info.run_dir is not None else RUNS_DIR
        mine = self.info.run_dir.resolve() if self.info.run_dir is not None else None
        others = [r for r in list_runs(root) if r.status != "damaged" and Path(r.path).resolve() != mine]
        if not others:
            self.notify(f"No other runs in {root} to compare with.", severity="warning")
            return

        def picked(paths: list[Path] | None) -> None:
            if paths is None:
                return
            curves = [curve for curve in map(heldout_curve, paths) if curve is not None]
            self.overlay_paths = set(paths)
            self.loss_plot.set_others(curves)
            self.show_legend()
            missing = len(paths) - len(curves)
            if missing:
                self.notify(f"{missing} of those runs have no held-out loss yet.", severity="warning")

        self.app.push_screen(OverlayScreen(others, self.overlay_paths), picked)

    def show_legend(self) -> None:
        """The loss pane's title: what each curve is, with the other runs' names in their colours."""
        legend = LossPlot.LEGEND
        for color, curve in zip(OVERLAY_COLORS, self.loss_plot.others):
            legend += f" · [{color}]●[/] {escape(curve.name)}"
        self.query_one("#loss-box").border_title = legend

    def action_keep_streams(self) -> None:
        if not self.ready(self.info):
            return
        weights = self.app.weight_box.latest()
        step = weights.version if weights is not None else self.info.step
        seed = self.seed_pane
        text = streams_text(
            run=self.info.run_dir,
            step=step,
            seed=seed.seed_text,
            seed_source=seed.source,
            mode=self.info.default_mode if self.generation is None else self.generation.generator.mode,
            streams=[(pane.settings.describe(), pane.text) for pane in self.panes()],
        )
        folder = self.info.run_dir if self.info.run_dir is not None else Path.cwd()
        try:
            path = write_streams(folder, step, text)
        except OSError as error:
            self.notify(f"Could not write the streams in {folder}: {error.strerror or error}.", severity="error")
            return
        self.notify(f"Streams written to {path}", title="Kept")

    def action_samples(self) -> None:
        if not self.ready(self.info):
            return
        if self.info.run_dir is None:
            self.notify("This run has no folder, so no samples.txt.", severity="warning")
            return
        path = self.info.run_dir / "samples.txt"
        try:
            text = read_samples(path)
        except FileNotFoundError:
            self.notify(f"No samples yet: {path} is written after the first epoch.", severity="warning")
            return
        except OSError as error:
            self.notify(f"Could not read {path}: {error.strerror or error}.", severity="error")
            return
        self.app.push_screen(SamplesScreen(path, text))
