"""How long a stop waits for training's checkpoint: as long as this run's own work takes, never forever."""

from __future__ import annotations

import threading

from tests.conftest import PATIENCE, tiny_config
from tui_charlm.core.session import new_training
from tui_charlm.core.stopping import BETWEEN, CALLS, LOADING, SAVES, Activity, Patience


def test_each_kind_of_work_is_allowed_a_multiple_of_its_longest_so_far_and_untimed_work_a_fixed_time():
    activity = Activity(Patience(factor=3.0, slack=5.0, unmeasured=100.0))
    assert activity.current()[0] == LOADING and activity.allowance(LOADING) == 100.0
    assert activity.allowance(CALLS) == 100.0 and activity.allowance(SAVES) == 100.0  # not timed yet
    for hold in (0.0, 0.05, 0.0):  # the middle call lasts at least 0.05 s, the others as long as they take
        with activity.on(CALLS):
            threading.Event().wait(hold)
    longest = activity.longest(CALLS)
    assert longest >= 0.05  # the longest of the three, not the last
    assert activity.allowance(CALLS) == 3.0 * longest + 5.0
    assert activity.allowance(SAVES) == 100.0 and activity.allowance(BETWEEN) == 5.0
    assert activity.current()[0] == BETWEEN


def test_a_save_asked_for_while_paused_returns_to_paused():
    activity = Activity()
    with activity.on("paused"):
        with activity.on(SAVES):
            assert activity.current()[0] == SAVES
        assert activity.current()[0] == "paused"
    assert activity.current()[0] == BETWEEN and activity.longest(SAVES) is not None


def test_a_stop_waits_as_long_as_the_work_in_hand_is_within_its_allowance():
    activity = Activity(Patience(slack=PATIENCE))
    release, waited = threading.Event(), []

    def train():
        with activity.on(CALLS):
            release.wait()
        activity.finish()

    trainer = threading.Thread(target=train)
    trainer.start()
    waiter = threading.Thread(target=lambda: waited.append(activity.wait()))
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive()  # the call is still under way, and well within its allowance
    release.set()
    waiter.join(PATIENCE)
    trainer.join(PATIENCE)
    assert waited == [True]


def test_a_stop_gives_up_on_a_call_that_overruns_its_allowance_and_says_why():
    activity = Activity(Patience(factor=2.0, slack=0.3, unmeasured=PATIENCE))
    stuck, began = threading.Event(), threading.Event()

    def train():
        with activity.on(CALLS):
            pass  # a quick first call: the allowance is now about 0.3 s
        with activity.on(CALLS):
            began.set()
            stuck.wait()  # a call that never returns, until the test lets it
        activity.finish()

    trainer = threading.Thread(target=train)
    trainer.start()
    assert began.wait(PATIENCE)
    assert activity.wait() is False
    kind, spent = activity.current()
    assert kind == CALLS and spent >= activity.allowance(CALLS)
    reason = activity.describe()
    assert reason.startswith("training did not reach its checkpoint: training calls had run")
    assert "longest training calls" in reason
    stuck.set()
    trainer.join(PATIENCE)
    assert activity.wait() is True  # once training has returned, nothing is waited for


def test_the_trainer_marks_its_calls_and_saves_on_the_activity(tmp_path):
    from tests.conftest import make_text

    corpus = tmp_path / "tiny.txt"
    corpus.write_text(make_text(3000))
    trainer = new_training(tiny_config(corpus=str(corpus)), run_dir=tmp_path / "run", log=lambda _: None)
    activity = Activity()
    outcome = trainer.fit(activity=activity)
    assert outcome.reason == "completed"
    assert activity.longest(CALLS) is not None and activity.longest(SAVES) is not None
    assert activity.longest("held-out") is not None
    assert activity.current()[0] == BETWEEN and not activity.done.is_set()  # whoever ran it calls finish()
