"""The viewer's screen (--attach): the real following code, over a run folder the test writes as a trainer would."""

from __future__ import annotations

import json

from filelock import FileLock

from tests.tui.conftest import make_app, wait_for
from tests.tui.fakes import FollowingBackend, write_trainer_files
from tui_charlm.core.control import pending_commands


def offered(app) -> set[str]:
    """The keys the main screen offers now (its footer shows them; the others do nothing, or are greyed)."""
    return {binding.binding.key for binding in app.main.active_bindings.values() if binding.enabled}


def greyed(app) -> set[str]:
    """The keys the footer shows greyed: there, but nothing to do now."""
    return {binding.binding.key for binding in app.main.active_bindings.values() if not binding.enabled}


def append(run, line: dict) -> None:
    with open(run / "events.jsonl", "a") as handle:
        handle.write(json.dumps({"time": 1_764_667_000.0, **line}) + "\n")


async def test_the_viewer_shows_what_the_trainer_acknowledged_not_what_it_asked(tmp_path):
    run = tmp_path / "run"
    write_trainer_files(run, paused=False)
    lock = FileLock(run / ".lock")
    lock.acquire()  # the trainer holds its run
    try:
        app = make_app(FollowingBackend(run))
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.main.state == "training" and app.main.last_loss is not None)
            assert "pid 4242 on gpu-box" in app.main.info.device
            assert app.main.loss_plot.steps[-1] == 205  # the curve, from the log

            await pilot.press("space")
            await pilot.pause(0.5)
            assert [p.name.rsplit("-", 1)[-1] for p in pending_commands(run)] == ["pause"]
            assert app.main.state == "training"  # asked, not yet done
            append(run, {"type": "paused", "step": 205})
            await wait_for(pilot, lambda: app.main.state == "paused")

            await pilot.press("R")  # the trainer is alive: R takes nothing over
            await pilot.pause(0.2)
            assert app.backend.attached and app.main.state == "paused"

            await pilot.press("s")
            await pilot.pause(0.2)
            assert [p.name.rsplit("-", 1)[-1] for p in pending_commands(run)] == ["pause", "save"]
            append(run, {"type": "checkpoint", "step": 205, "epoch": 1, "name": "step-00000205", "reason": "requested"})
            await wait_for(pilot, lambda: "saved step 205" in app.main.note)

            await pilot.press("q")
            await wait_for(pilot, lambda: not app.is_running)
        assert app.main.state == "left"
        assert [p.name.rsplit("-", 1)[-1] for p in pending_commands(run)] == ["pause", "save"]  # q sent nothing
    finally:
        lock.release()


def trained_to_a_checkpoint(tmp_path):
    """A run folder a trainer is training (the returned lock held), with a checkpoint at step 200."""
    run = tmp_path / "run"
    write_trainer_files(run, paused=False)
    (run / "checkpoints" / "step-00000200").mkdir(parents=True)
    lock = FileLock(run / ".lock")
    lock.acquire()
    return run, lock


async def test_a_trainer_gone_without_a_word_is_reported_with_its_newest_checkpoint(tmp_path):
    run, lock = trained_to_a_checkpoint(tmp_path)
    app = make_app(FollowingBackend(run))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.main.state == "training")
        assert {"k"} <= offered(app) and not {"d", "R"} & offered(app)  # stop it, from here; nothing to detach
        lock.release()  # what the OS does when the trainer is killed
        await wait_for(pilot, lambda: app.main.state == "failed")
        assert "gone without a word" in app.main.note and "step-00000200" in app.main.note
        assert f"charlm-tui --resume {run}" in app.main.note
        await wait_for(pilot, lambda: "R" in offered(app))  # resume it here
        assert not {"k", "d"} & offered(app)


async def test_a_viewer_left_by_its_trainer_follows_whoever_takes_the_run_up_next(tmp_path):
    # Two viewers on a killed run: R in one starts a trainer; the other must not stay on "failed" for good.
    run, lock = trained_to_a_checkpoint(tmp_path)
    app = make_app(FollowingBackend(run))
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.main.state == "training")
            lock.release()  # killed
            await wait_for(pilot, lambda: app.main.state == "failed")
            await pilot.pause(1.5)
            assert app.main.state == "failed"  # nobody took it up: it stays said

            lock.acquire()  # another process resumes the run from its checkpoint
            (run / ".lock-owner").write_text(json.dumps({"pid": 5151, "host": "other-box", "since": "now"}))
            append(
                run,
                {
                    "type": "started",
                    "step": 200,
                    "epoch": 1,
                    "batches": 200,
                    "parameters": 4_321,
                    "resumed": True,
                    "time_budget": 900.0,  # resumed with a budget and epochs of its own
                    "epochs": 50,
                    "device": "CPU",
                    "pid": 5151,
                    "host": "other-box",
                    "version": 1,
                },
            )
            append(run, batch_line(230, 1.3))
            await wait_for(pilot, lambda: app.main.state == "training")
            assert "pid 5151 on other-box" in app.main.info.device
            assert "pid 5151 on other-box trains the run again" in app.main.note
            await wait_for(pilot, lambda: app.main.loss_plot.steps[-1] == 230)
            assert app.main.loss_plot.steps[-2:] == [200, 230]  # 205, trained again from step 200, is not drawn twice
            # Its progress is the new session's budget's: 900 s less the 69 s trained by step 230.
            await wait_for(pilot, lambda: app.main.status_bar.eta_text == " 13:51 left")

            lock.release()  # and that one is followed to its end as the first was
            await wait_for(pilot, lambda: app.main.state == "failed")
            assert "pid 5151 on other-box" in app.main.note
            await pilot.press("q")
            await wait_for(pilot, lambda: not app.is_running)
    finally:
        if lock.is_locked:
            lock.release()


def a_run_nobody_trains(tmp_path, *, budget: float, elapsed: float):
    """A run folder with a --time-budget of `budget` s, trained `elapsed` s to a checkpoint at step 200, then
    its log on to step 205 (elapsed 61.5 s); nobody trains it now."""
    from tests.conftest import tiny_config
    from tui_charlm.core.checkpoints import RunDirectory, TrainingState
    from tui_charlm.core.vocab import Vocabulary

    run = tmp_path / "run"
    folder = RunDirectory.create(run, tiny_config(time_budget=budget), Vocabulary.from_text("abc de"), {})
    folder.release_training_lock()  # it ended: nobody trains it
    checkpoint = run / "checkpoints" / "step-00000200"
    checkpoint.mkdir(parents=True)
    (checkpoint / "state.json").write_text(TrainingState(epoch=1, step=200, elapsed=elapsed).to_json())
    (checkpoint / "model.keras").write_bytes(b"")  # not loaded here: the viewer generates from weights.npz
    write_trainer_files(run, paused=False)
    return run


async def test_a_viewer_of_a_run_nobody_trains_shows_where_it_stopped_and_greys_pause_and_save(tmp_path):
    # It used to say "loss —", "0:00" and "epoch 2/3" (the ceiling a budgeted run never reaches), and offer
    # Space and s, which only said that nothing trains.
    run = a_run_nobody_trains(tmp_path, budget=90.0, elapsed=60.0)
    app = make_app(FollowingBackend(run))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.main.state == "generating" and "R" in offered(app))
        status = app.main.status_bar
        last = json.loads((run / "events.jsonl").read_text().splitlines()[-1])  # the log's newest batch line
        assert f"loss {last['loss']:.3f} nats" in status.figures_text
        assert status.figures_text.endswith("· 1:01")  # its training time: 61.5 s, from the log
        assert status.epoch_text == "epoch 2 " and status.eta_text == " 0:28 left"  # of its 90-s budget
        assert status.progress.percentage == 61.5 / 90
        assert {"space", "s"} <= greyed(app)
        said = [n.message for n in app._notifications]
        await pilot.press("space", "s")
        await pilot.pause(0.3)
        assert app.main.state == "generating" and not pending_commands(run)
        assert [n.message for n in app._notifications] == said  # greyed keys do nothing, and say nothing
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running)


async def test_r_on_a_run_that_has_spent_its_budget_says_so_and_starts_nothing(tmp_path):
    run = a_run_nobody_trains(tmp_path, budget=30.0, elapsed=30.4)
    app = make_app(FollowingBackend(run))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: "R" in offered(app))  # nothing trains it: R is offered
        await pilot.press("R")
        await wait_for(pilot, lambda: any("Not resumed" in n.message for n in app._notifications))
        said = next(n.message for n in app._notifications if "Not resumed" in n.message)
        assert "has trained 30 s, all of its --time-budget of 30 s" in said and "larger --time-budget" in said
        await pilot.pause(0.5)
        assert app.headless is None and app.main.state != "loading"  # no trainer that would end as it began
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running)


def batch_line(step: int, loss: float) -> dict:
    return {
        "type": "batch",
        "step": step,
        "epoch": 1,
        "batch": step - 200,
        "batches": 200,
        "loss": loss,
        "chars_per_second": 654_321.0,
        "elapsed": step * 0.3,
    }


async def test_a_viewer_shows_new_batches_with_its_streams_running_and_with_all_of_them_held(tmp_path):
    # A viewer draws the trainer's progress in the frame of its streams' next post; held streams post nothing,
    # and the progress must still come.
    run = tmp_path / "run"
    write_trainer_files(run, paused=False)
    lock = FileLock(run / ".lock")
    lock.acquire()
    try:
        app = make_app(FollowingBackend(run))
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.main.state == "training" and app.main.loss_plot.steps[-1:] == [205])
            await wait_for(pilot, lambda: all(pane.text for pane in app.main.panes()))  # the streams run

            append(run, batch_line(210, 1.25))
            await wait_for(pilot, lambda: app.main.loss_plot.steps[-1] == 210)
            assert app.main.last_loss == 1.25 and app.main.last_rate == 654_321.0
            assert "654,321 chars/s" in app.main.status_bar.figures_text

            for pane in app.main.panes():
                pane.focus()
                await pilot.press("p")
            await wait_for(pilot, lambda: all(pane.held for pane in app.main.panes()))
            await pilot.pause(1.0)
            texts = [pane.text for pane in app.main.panes()]
            append(run, batch_line(215, 1.2))
            append(run, batch_line(220, 1.15))
            await wait_for(pilot, lambda: app.main.loss_plot.steps[-1] == 220)
            assert app.main.loss_plot.steps[-3:] == [210, 215, 220]  # both lines, in order, none twice
            assert app.main.last_loss == 1.15 and "loss 1.150 nats" in app.main.status_bar.figures_text
            assert [pane.text for pane in app.main.panes()] == texts  # held: no post came to draw them with

            await pilot.press("q")
            await wait_for(pilot, lambda: not app.is_running)
        assert app.main.state == "left"
    finally:
        lock.release()
