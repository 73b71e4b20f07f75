"""The start screen: pick a run to resume or load, or fill in a new one; and charlm-tui showing it on its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CHARLM, PATIENCE, TINY_FLAGS, cli_env, make_text
from tests.ptys import close_terminal, on_pty, screen_text, shows, wait_for_exit
from tests.tui.conftest import wait_for
from tests.tui.fakes import FakeBackend
from tui_charlm.core.runs import RunSummary
from tui_charlm.tui.app import CharLMApp, Pick
from tui_charlm.tui.screens.start import NewRunScreen, StartScreen

RUNS = [
    RunSummary(
        "runs/wide",
        "wide",
        "training",
        "pid 4242 host box",
        "nietzsche.txt",
        1,
        512,
        1_234_567,
        900,
        3,
        50,
        120.0,
        1.41,
        None,
        4242,
    ),
    RunSummary("runs/done", "done", "finished", "", "tiny.txt", 2, 64, 56_789, 400, 10, 10, 65.0, 1.9, None),
    RunSummary("runs/half", "half", "stopped", "", "tiny.txt", 1, 8, 1_000, 40, 1, 5, 5.0, 2.5, None),
    RunSummary("runs/broken", "broken", "damaged", "runs/broken/vocab.json is damaged: not JSON"),
]


def picking_app(chosen: list) -> CharLMApp:
    def make_backend(choice):
        chosen.append(choice)
        return FakeBackend(can_train=choice.action != "load")

    pick = Pick(RUNS, Path("runs"), ["nietzsche", "shakespeare", "builtin"], make_backend)
    return CharLMApp(None, rng_seed=0, chars_per_second=60.0, pick=pick)


async def test_enter_resumes_the_highlighted_run_and_training_starts():
    chosen = []
    app = picking_app(chosen)
    async with app.run_test(size=(120, 30)) as pilot:
        assert isinstance(app.screen, StartScreen)
        await pilot.press("down", "enter")  # 'done'
        await wait_for(pilot, lambda: chosen)
        assert (chosen[0].action, chosen[0].path) == ("resume", Path("runs/done"))
        await wait_for(pilot, lambda: app.main.state == "training")
        assert app.screen is app.main


async def test_enter_on_a_run_another_process_trains_attaches_to_it_and_l_loads_it():
    chosen = []
    app = picking_app(chosen)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("enter")  # 'wide' is being trained elsewhere: Enter watches it live
        await wait_for(pilot, lambda: chosen)
        assert (chosen[0].action, chosen[0].path) == ("attach", Path("runs/wide"))

    chosen = []
    app = picking_app(chosen)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("l")
        await wait_for(pilot, lambda: chosen)
        assert (chosen[0].action, chosen[0].path) == ("load", Path("runs/wide"))
        await wait_for(pilot, lambda: app.main.state == "generating")


async def test_a_damaged_run_says_why_and_stays_on_the_list():
    chosen = []
    app = picking_app(chosen)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("down", "down", "down", "enter", "l")
        await pilot.pause()
        assert not chosen and isinstance(app.screen, StartScreen)
        assert sum("vocab.json is damaged" in n.message for n in app._notifications) == 2


async def test_the_new_run_form_refuses_bad_values_and_starts_with_good_ones(tmp_path):
    chosen = []
    app = picking_app(chosen)
    corpus = tmp_path / "mine.txt"
    corpus.write_text(make_text(3000))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen))
        form = app.screen
        assert form.query_one("#form-units").value == "auto" and form.query_one("#form-seq-len").value == "50"

        async def set_value(field: str, value: str) -> None:
            form.query_one(field).value = value
            await pilot.pause()

        await set_value("#form-units", "wide")
        await pilot.press("enter")
        assert "'wide' is not a whole number of at least 1, or auto" in str(form.query_one("#form-error").render())
        await set_value("#form-units", "-4")
        await pilot.press("enter")
        assert "'-4' is not a whole number of at least 1, or auto" in str(form.query_one("#form-error").render())
        await set_value("#form-units", "64")
        await set_value("#form-corpus", str(tmp_path / "missing.txt"))
        await pilot.press("enter")
        assert "neither a file nor one of the corpora" in str(form.query_one("#form-error").render())
        await set_value("#form-corpus", str(corpus))
        await set_value("#form-time-budget", "30")
        form.query_one("#form-lowercase").value = True
        await pilot.click("#form-start")
        await wait_for(pilot, lambda: chosen)
    assert chosen[0].action == "new"
    assert chosen[0].overrides == dict(
        corpus=str(corpus), units=64, layers=1, seq_len=50, time_budget=30.0, lowercase=True
    )


async def test_escape_on_the_start_screen_quits():
    app = picking_app([])
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.is_running)


def test_start_screen_snapshot(snap_compare):
    assert snap_compare(picking_app([]), terminal_size=(120, 30))


@pytest.mark.slow
def test_charlm_tui_opens_on_the_runs_in_runs_and_resumes_one(tmp_path):
    corpus = tmp_path / "tiny.txt"
    corpus.write_text(make_text(5000))
    work = Path.cwd()
    trained = subprocess.run(
        [*CHARLM, "train", "--corpus", str(corpus), "--run-dir", "runs/first", *TINY_FLAGS, "--epochs", "1"],
        capture_output=True,
        text=True,
        env=cli_env(tmp_path),
        cwd=work,
    )
    assert trained.returncode == 0, trained.stderr
    command = [sys.executable, "-m", "tui_charlm.tui.main"]
    with on_pty(command, cli_env(tmp_path), columns=120, rows=30) as (process, state, output):
        assert shows(state, "Runs in runs", output, timeout=PATIENCE), screen_text(state, output)
        for text in ("first", "finished"):  # drawn as the table fills, maybe a frame after its title
            assert shows(state, text, output, timeout=PATIENCE), screen_text(state, output)
        os.write(state["master"], b"\r")  # resume it (finished: it opens, and has nothing left to train)
        # The main screen's status bar names the corpus with its size (the start screen does not).
        assert shows(state, "tiny.txt (5,000 chars)", output, timeout=PATIENCE), screen_text(state, output)
        os.write(state["master"], b"q")
        assert wait_for_exit(process, state["master"], output, timeout=PATIENCE)
    text = output.decode(errors="replace")
    assert process.returncode == 0 and "Traceback" not in text
    assert "run directory: runs/first" in text


def test_a_dropped_terminal_on_the_start_screen_ends_charlm_tui(tmp_path):
    run = Path.cwd() / "runs" / "damaged"
    run.mkdir(parents=True)
    (run / "run.json").write_text("{")  # a run that cannot be read still brings up the start screen
    command = [sys.executable, "-m", "tui_charlm.tui.main"]
    with on_pty(command, cli_env(tmp_path), columns=120, rows=30, controlling=True) as (process, state, output):
        assert shows(state, "Runs in runs", output, timeout=PATIENCE), screen_text(state, output)
        assert shows(state, "damaged", output, timeout=PATIENCE), screen_text(state, output)
        close_terminal(state)
        assert wait_for_exit(process, None, output, timeout=PATIENCE)
    assert process.returncode == 129
