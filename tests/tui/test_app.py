"""Pilot tests: every key, what the screen shows, and errors that must not break the app."""

from __future__ import annotations

from textual.command import CommandPalette
from textual.widgets import Input, Markdown, Static

from tests.tui.conftest import make_app, palette_shows, wait_for
from tests.tui.fakes import FakeBackend
from tui_charlm.tui.keys import KEYS
from tui_charlm.tui.screens.help import HelpScreen
from tui_charlm.tui.screens.seed_input import SeedInputScreen
from tui_charlm.tui.widgets.generation_pane import GenerationPane
from tui_charlm.tui.widgets.loss_plot import LossPlot
from tui_charlm.tui.widgets.seed_pane import SeedPane


def titles(app) -> list[str]:
    return [str(p.border_title) for p in app.query(GenerationPane)]


def status_text(app) -> str:
    return " ".join(str(w.render()) for w in app.query("#status Static").results(Static))


async def started(pilot):
    await wait_for(pilot, lambda: pilot.app.main.state == "training" and pilot.app.main.generation is not None)


async def test_first_screen_shows_the_four_recipe_streams_and_starts_training():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        assert titles(app) == ["T=0.2", "T=0.5", "T=1.0", "T=1.2"]
        assert app.focused is app.query(GenerationPane).first()
        await started(pilot)
        await wait_for(pilot, lambda: all(len(p.chars) > 5 for p in app.query(GenerationPane)))
        await wait_for(pilot, lambda: len(app.query_one(LossPlot).steps) > 3)
        assert (
            "TRAINING" in status_text(app) and "fake corpus" in status_text(app) and "4,321 params" in status_text(app)
        )
        assert "seed number one" in app.query_one(SeedPane).seed_text


async def test_the_epoch_eta_comes_from_training_time_per_step():
    app = make_app(FakeBackend(frozen=True, batches_per_epoch=20))  # one batch: 5 of 20 done, step 205 at 65 s
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: "ETA" in status_text(app) and "--:--" not in status_text(app))
        assert "epoch 1/3" in status_text(app) and "ETA 0:04" in status_text(app)  # 15 batches x 65 s / 205 steps


async def test_with_a_time_budget_the_progress_is_the_budgets_and_ends_at_the_budget_or_the_last_epoch():
    # One batch reported: 5 of 20 done in epoch 1 of 3, step 205 at 65 s, so 0.32 s a step.
    # The budget ends in 2 s, long before the run's 3 epochs would.
    app = make_app(FakeBackend(frozen=True, batches_per_epoch=20, time_budget=67.0))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.main.status_bar.eta_text == " 0:02 left")
        status = app.main.status_bar
        assert status.epoch_text == "epoch 1 "  # not "1/3": the budget, not the ceiling of epochs, ends the run
        assert status.progress.total == 67.0 and status.progress.progress == 65.0
    # A larger one: the 3 epochs end first, 15 + 2 x 20 batches x 0.32 s = 17 s from now.
    app = make_app(FakeBackend(frozen=True, batches_per_epoch=20, time_budget=600.0))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.main.status_bar.eta_text == " 0:17 left")


async def test_up_down_plus_minus_change_the_focused_temperature_with_clamping():
    app = make_app()
    async with app.run_test() as pilot:
        await started(pilot)
        await pilot.press("up", "plus")
        assert titles(app)[0] == "T=0.4"
        await pilot.press("down", "minus", "minus", "minus", "down")
        assert titles(app)[0] == "greedy"
        await pilot.press("tab")
        await pilot.press(*["up"] * 30)
        assert titles(app)[1] == "T=3.0"
        assert app.main.generation.generator.settings[1].temperature == 3.0


async def test_tab_and_shift_tab_move_focus_between_streams():
    app = make_app()
    async with app.run_test() as pilot:
        panes = list(app.query(GenerationPane))
        await pilot.press("tab")
        assert app.focused is panes[1]
        await pilot.press("shift+tab", "shift+tab")
        assert app.focused is panes[3]


async def test_add_and_remove_streams():
    app = make_app()
    async with app.run_test() as pilot:
        await started(pilot)
        await pilot.press("tab", "a")
        assert titles(app) == ["T=0.2", "T=0.5", "T=1.0", "T=1.2", "T=0.5"]
        assert app.focused is list(app.query(GenerationPane))[-1]
        await wait_for(pilot, lambda: len(app.main.generation.generator.settings) == 5)
        await wait_for(pilot, lambda: len(list(app.query(GenerationPane))[-1].chars) > 3)
        for _ in range(10):
            await pilot.press("x")
        assert len(titles(app)) == 1
        await wait_for(pilot, lambda: len(app.main.generation.generator.settings) == 1)
        for _ in range(10):
            await pilot.press("a")
        assert len(titles(app)) == 8


async def test_t_cycles_sampling_modes():
    app = make_app()
    async with app.run_test() as pilot:
        await started(pilot)
        await pilot.press("t")
        assert titles(app)[0] == "T=0.2 top-k 10"
        await pilot.press("t")
        assert titles(app)[0] == "T=0.2 top-p 0.9"
        await pilot.press("t")
        assert titles(app)[0] == "T=0.2"


async def test_space_pauses_training_but_not_generation():
    backend = FakeBackend(batches_per_epoch=1000, delay=0.005)
    app = make_app(backend)
    async with app.run_test() as pilot:
        await started(pilot)
        await pilot.press("space")
        assert app.main.state == "paused" and app.main.has_class("-paused")
        await wait_for(pilot, lambda: "paused at step" in app.main.note)  # training has seen the pause
        step = backend.max_step
        pane = app.query(GenerationPane).first()
        chars = pane.added
        await wait_for(pilot, lambda: pane.added > chars + 20)  # generation goes on for several posts...
        assert backend.max_step == step  # ...while training stays where it paused
        assert "PAUSED" in status_text(app)
        await pilot.press("space")
        assert app.main.state == "training"
        await wait_for(pilot, lambda: backend.max_step > step)


async def test_s_saves_a_checkpoint_now():
    backend = FakeBackend(batches_per_epoch=1000)
    app = make_app(backend)
    async with app.run_test() as pilot:
        await started(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: "requested" in backend.saves)
        await wait_for(pilot, lambda: any("Checkpoint saved" in n.message for n in app._notifications))


async def test_r_reseeds_from_the_corpus_and_clears_the_streams():
    app = make_app()
    async with app.run_test() as pilot:
        await started(pilot)
        pane = app.query(GenerationPane).first()
        await wait_for(pilot, lambda: len(pane.chars) > 20)
        before = pane.text
        await pilot.press("r")
        assert not pane.text.startswith(before[:20])  # cleared, then new text from the new seed
        await wait_for(pilot, lambda: "seed number two" in app.query_one(SeedPane).seed_text)
        assert "char 200" in app.query_one(SeedPane).source


async def test_e_types_a_seed_and_reports_unknown_chars():
    app = make_app()
    async with app.run_test() as pilot:
        await started(pilot)
        await pilot.press("e")
        assert isinstance(app.screen, SeedInputScreen)
        await pilot.press(*"hello WORLD", "enter")
        assert not isinstance(app.screen, SeedInputScreen)
        await wait_for(pilot, lambda: app.query_one(SeedPane).seed_text == "hello ")
        await wait_for(pilot, lambda: any("never saw" in n.message and "'W'" in n.message for n in app._notifications))
        await pilot.press("e")
        app.screen.query_one(Input).value = "ZZZ"
        await pilot.press("enter")
        assert any("seed is unchanged" in n.message for n in app._notifications)
        await pilot.press("e", "escape")
        assert not isinstance(app.screen, SeedInputScreen)
        assert app.query_one(SeedPane).seed_text == "hello "


async def test_c_clears_generated_text():
    app = make_app(chars_per_second=50)
    async with app.run_test() as pilot:
        await started(pilot)
        await wait_for(pilot, lambda: all(len(p.chars) > 10 for p in app.query(GenerationPane)))
        before = [p.text for p in app.query(GenerationPane)]
        await pilot.press("c")
        # Cleared: whatever is there now was generated after the key, so it does not begin as before.
        assert all(not p.text.startswith(old) for p, old in zip(app.query(GenerationPane), before))


async def test_b_switches_nats_and_bits():
    app = make_app()
    async with app.run_test() as pilot:
        await started(pilot)
        await wait_for(pilot, lambda: app.main.last_loss is not None)
        assert "nats" in status_text(app)
        await pilot.press("b")
        assert app.query_one(LossPlot).unit == "bits" and "bits" in status_text(app)
        await pilot.press("b")
        assert app.query_one(LossPlot).unit == "nats"


async def test_u_colours_by_surprise_and_shows_a_legend():
    app = make_app()
    async with app.run_test() as pilot:
        await started(pilot)
        legend = app.query_one("#legend")
        assert not legend.display
        await pilot.press("u")
        assert legend.display and all(p.surprise for p in app.query(GenerationPane))
        await wait_for(pilot, lambda: len(app.query(GenerationPane).last().chars) > 20)
        colours = {segment.style.color.name for line in app.query(GenerationPane).last().shown() for segment in line}
        assert colours & {"red", "dark_orange", "yellow"}  # chars styled by their probability


async def test_help_opens_with_question_mark_and_f1_and_lists_every_key():
    app = make_app()
    async with app.run_test() as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        shown = str(app.screen.query_one(Markdown).source)
        for binding in app.BINDINGS:  # every key the screen binds is in the help, with what it does
            key = next(k for k in KEYS if k.id == binding.id)
            assert (key.action == binding.action and key.text in shown) or not binding.show, binding
            for name in binding.key.split(","):
                written = {
                    "up": "Up",
                    "down": "Down",
                    "plus": "+",
                    "minus": "-",
                    "space": "Space",
                    "question_mark": "?",
                    "f1": "F1",
                    "ctrl+c": "Ctrl+C",
                }.get(name, name)
                assert f"`{written}`" in shown, name
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("f1")
        assert not isinstance(app.screen, HelpScreen)


async def test_command_palette_offers_every_action_this_app_can_take_now():
    app = make_app()
    async with app.run_test() as pilot:
        await started(pilot)
        offered = {c.title: c.help for c in app.get_system_commands(app.screen)}
        left_out = {"stop-trainer", "resume-here"}  # a viewer's: this app trains its own run
        for key in KEYS:  # every action, with its keys, also those without one
            if key.action and key.text and key.id not in left_out:
                assert offered[key.text] == (f"key: {key.shown}" if key.shown else "no key")
        assert not {key.text for key in KEYS if key.id in left_out} & set(offered)
        assert {"k", "R"}.isdisjoint(binding.binding.key for binding in app.main.active_bindings.values())
        assert "Generation mode: window" in offered
        assert "Reset temperatures to the recipe's (0.2, 0.5, 1.0, 1.2)" in offered
        await pilot.press("ctrl+p")
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"generation mode: window")
        await wait_for(pilot, palette_shows(pilot, "generation mode: window"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.main.generation.generator.mode == "window")


async def test_q_stops_training_saves_and_exits():
    backend = FakeBackend(batches_per_epoch=10_000)
    app = make_app(backend)
    async with app.run_test() as pilot:
        await started(pilot)
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running)
    assert backend.saves[-1] == "stopped"


async def test_ctrl_c_behaves_like_q():
    backend = FakeBackend(batches_per_epoch=10_000)
    app = make_app(backend)
    async with app.run_test() as pilot:
        await started(pilot)
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: not app.is_running)
    assert backend.saves[-1] == "stopped"


async def test_a_failed_start_is_shown_and_the_app_stays_usable():
    app = make_app(FakeBackend(prepare_error="Corpus file 'x.txt' does not exist; check the path."))
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.main.state == "failed")
        assert "does not exist" in status_text(app)
        await pilot.press("space", "s", "r", "e", "a", "x", "up", "b", "u", "c", "t")
        assert app.is_running and app.main.state == "failed"
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running)


async def test_nan_during_training_is_reported_and_generation_goes_on():
    app = make_app(FakeBackend(fail_at_step=15))
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.main.state == "failed")
        # The notification is a message of its own (App.notify posts it): it arrives just after the state.
        await wait_for(pilot, lambda: any("nan" in n.message for n in app._notifications))
        chars = len(app.query(GenerationPane).first().chars)
        await wait_for(pilot, lambda: len(app.query(GenerationPane).first().chars) > chars)


async def test_generation_only_mode_does_not_train():
    app = make_app(FakeBackend(can_train=False))
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.main.state == "generating")
        await wait_for(pilot, lambda: len(app.query(GenerationPane).first().chars) > 5)
        bindings = app.main.active_bindings
        assert not any(bindings[key].enabled for key in ("space", "s", "d"))  # shown greyed: nothing trains
        palette = {c.title for c in app.get_system_commands(app.screen)}
        assert not {key.text for key in KEYS if key.id in ("pause", "save", "detach")} & palette
        await pilot.press("space", "s", "d")
        await pilot.pause(0.2)
        assert app.main.state == "generating" and app.backend.saves == []
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running)


async def test_small_terminals_degrade_without_crashing():
    for size in ((80, 24), (60, 16), (40, 10), (20, 6)):
        app = make_app()
        async with app.run_test(size=size) as pilot:
            await started(pilot)
            await pilot.press("a", "tab", "up", "question_mark")
            await pilot.pause(0.1)
            await pilot.press("escape")
            await pilot.resize_terminal(size[0] + 30, size[1] + 10)
            await pilot.pause(0.1)
            assert app.is_running
    narrow = make_app()
    async with narrow.run_test(size=(50, 14)) as pilot:
        assert narrow.screen.has_class("-narrow") and narrow.screen.has_class("-tiny")
        assert not narrow.query_one("#top").display


async def test_training_and_generation_keep_reporting_while_dialogs_are_open():
    app = make_app(FakeBackend(batches_per_epoch=10_000))
    async with app.run_test() as pilot:
        await started(pilot)
        plot, pane = app.query_one(LossPlot), app.query(GenerationPane).first()
        for dialog in ("question_mark", "e"):  # help, then the seed editor
            steps, chars = len(plot.steps), pane.added
            await pilot.press(dialog)
            assert len(app.screen_stack) == 2
            await wait_for(pilot, lambda steps=steps, chars=chars: len(plot.steps) > steps and pane.added > chars)
            await pilot.press("escape")
        assert app.is_running


async def test_the_generation_mode_is_shown_and_can_be_switched_from_the_palette():
    app = make_app()
    async with app.run_test() as pilot:
        await started(pilot)
        await wait_for(pilot, lambda: str(app.main.seed_pane.border_subtitle) == "stateful generation")
        await pilot.press("ctrl+p")  # Textual's command palette, then the words of the command, then Enter
        await pilot.press(*["space" if c == " " else c for c in "generation mode window"])
        await wait_for(pilot, palette_shows(pilot, "generation mode: window"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: str(app.main.seed_pane.border_subtitle) == "window generation")
