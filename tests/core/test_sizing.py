"""`--units auto`: the width a new run gets from this machine's speed and its horizon."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import make_text, tiny_config
from tui_charlm.core.config import make_config
from tui_charlm.core.session import new_training, resume_training
from tui_charlm.core.sizing import (
    DEFAULT_HORIZON_SECONDS,
    PROBE_OVER_SESSION,
    RELATIVE_SPEED,
    TARGETS_PER_PARAMETER,
    WIDTHS,
    choose_units,
    parameter_count,
)

VOCAB = 60


def test_the_rule_takes_the_widest_width_that_sees_enough_chars_per_parameter():
    config = make_config(time_budget=600)
    for rate in (2_000, 20_000, 80_000, 400_000):
        units, estimated, per_parameter = choose_units(config, VOCAB, rate)
        assert estimated == pytest.approx(rate / PROBE_OVER_SESSION * RELATIVE_SPEED[units])
        assert per_parameter >= TARGETS_PER_PARAMETER or units == WIDTHS[0]
        for wider in (w for w in WIDTHS if w > units):  # every wider width would see too little
            seen = rate / PROBE_OVER_SESSION * RELATIVE_SPEED[wider] * 600
            assert seen < TARGETS_PER_PARAMETER * parameter_count(config, VOCAB, wider)


def test_more_speed_or_more_time_never_chooses_a_narrower_model():
    previous = 0
    for rate in np.geomspace(1_000, 1_000_000, 40):
        units = choose_units(make_config(time_budget=60), VOCAB, float(rate))[0]
        assert units >= previous
        previous = units
    previous = 0
    for budget in np.geomspace(5, 36_000, 40):
        units = choose_units(make_config(time_budget=float(budget)), VOCAB, 40_000.0)[0]
        assert units >= previous
        previous = units
    assert previous == WIDTHS[-1] and choose_units(make_config(time_budget=5), VOCAB, 1_000.0)[0] == WIDTHS[0]


def test_without_a_budget_the_width_is_chosen_for_the_default_horizon():
    unbudgeted = choose_units(make_config(), VOCAB, 30_000.0)
    assert unbudgeted == choose_units(make_config(time_budget=DEFAULT_HORIZON_SECONDS), VOCAB, 30_000.0)


def test_parameter_count_matches_the_built_model():
    from tui_charlm.core.model import build_model

    config = tiny_config(units=12, layers=2, embedding_dim=5)
    assert parameter_count(config, 9, 12) == build_model(config, 9).count_params()


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(make_text(3000))
    return path


def auto_config(corpus, **overrides):
    # The probe trains the run's own options: a small batch keeps it cheap here.
    return tiny_config(corpus=str(corpus), units=0, **overrides)


def test_a_new_auto_run_measures_once_says_why_and_saves_the_choice(corpus, tmp_path):
    said = []
    trainer = new_training(auto_config(corpus), run_dir=tmp_path / "run", log=said.append)
    units = trainer.config.units
    assert units in WIDTHS
    assert any(line.startswith("measuring this machine's training speed") for line in said)
    horizon = f"for the first {DEFAULT_HORIZON_SECONDS:g} s (no --time-budget)"
    assert any(line.startswith(f"size: LSTM({units}) {horizon}") for line in said)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["units"] == units
    sizing = saved["sizing"]
    assert sizing["units"] == units and sizing["horizon"] == "default horizon"
    assert sizing["probe_chars_per_second"] > 0 and sizing["reason"].startswith(f"LSTM({units})")
    # The saved speed gives the saved choice under the rule.
    assert choose_units(trainer.config, len(trainer.run.vocab), sizing["probe_chars_per_second"])[0] == units

    trainer.fit(lambda event: None)
    said.clear()
    resumed = resume_training(tmp_path / "run", {"units": 0, "epochs": 2}, log=said.append)
    assert resumed.config.units == units and resumed.run.sizing == sizing
    assert not any("measuring" in line for line in said)


def test_an_explicit_width_or_the_recipe_measures_nothing(corpus, tmp_path):
    for name, config in (
        ("explicit", tiny_config(corpus=str(corpus), units=16)),
        ("recipe", tiny_config(recipe="seed", corpus=str(corpus))),
    ):
        said = []
        trainer = new_training(config, run_dir=tmp_path / name, log=said.append)
        assert not any("measuring" in line for line in said), name
        assert "sizing" not in json.loads((tmp_path / name / "config.json").read_text())
        assert trainer.run.sizing is None


def test_the_measurement_leaves_no_trace_in_the_run(corpus, tmp_path):
    auto = new_training(auto_config(corpus), run_dir=tmp_path / "auto", log=lambda _: None)
    auto.fit(lambda event: None)
    chosen = auto.config.units
    explicit = new_training(
        tiny_config(corpus=str(corpus), units=chosen), run_dir=tmp_path / "explicit", log=lambda _: None
    )
    explicit.fit(lambda event: None)
    assert explicit.state.step == auto.state.step > 0
    for a, b in zip(auto.model.get_weights(), explicit.model.get_weights()):
        assert np.array_equal(a, b)


def test_the_books_recipe_keeps_its_width_and_refuses_auto():
    from tui_charlm.core.errors import CharlmError

    assert make_config("seed").units == 128
    with pytest.raises(CharlmError, match="units auto sizes the default model"):
        make_config("seed", units=0)
