"""The status pane draws when the app gives it something new, not on timers of its own."""

from __future__ import annotations

import asyncio

from textual.app import App

from tui_charlm.tui.widgets.status_bar import StatusBar


class StatusApp(App):
    def compose(self):
        yield StatusBar()


async def test_the_epoch_bar_is_drawn_when_training_moves_it_and_not_between():
    app = StatusApp()
    async with app.run_test(size=(100, 4)) as pilot:
        status = app.query_one(StatusBar)
        for batch in (10, 20, 30, 40):  # training moving along for over a second: enough for Textual's bar's ETA
            status.show_progress(1, 5, batch, 100, eta=30.0)
            await asyncio.sleep(0.4)
        await pilot.pause()
        redraws = []
        status.progress.refresh = lambda *args, **kwargs: redraws.append(args)
        # Textual's bar ticks once a second (to count its own ETA down): over two of its ticks, no redraw.
        await asyncio.sleep(2.2)
        await pilot.pause()
        assert redraws == []
        status.show_progress(1, 5, 60, 100, eta=20.0)
        await pilot.pause()
        assert redraws  # a new batch moves it
