"""`--units auto`: the width a new run gets from this machine's speed and its horizon."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from tests.conftest import make_text, tiny_config
from tui_charlm.core.config import DEFAULT_BATCH, make_config
from tui_charlm.core.session import new_training, resume_training
from tui_charlm.core.sizing import (
    DEFAULT_HORIZON_SECONDS,
    MIN_STEPS,
    PROBE_OVER_SESSION,
    RELATIVE_SPEED,
    SHORT_BATCH,
    SHORT_BATCH_MIN_UNITS,
    SHORT_BATCH_SPEED,
    SHORT_HORIZON_STEPS,
    TARGETS_PER_PARAMETER,
    TARGETS_PER_PARAMETER_SHORT,
    WIDTHS,
    choose_size,
    choose_units,
    parameter_count,
)

VOCAB = 60


def steps_of(config, rate: float, horizon: float) -> float:
    """Steps LSTM(PROBE_UNITS) makes in `horizon` seconds at the default batch, measured at `rate` by the probe."""
    return rate / PROBE_OVER_SESSION * horizon / (DEFAULT_BATCH * config.seq_len)


@pytest.mark.parametrize("batch", [0, 64, 128])
def test_the_rule_takes_the_widest_width_that_sees_enough_chars_per_parameter(batch):
    config = make_config(time_budget=600, batch_size=batch)
    for rate in (2_000, 20_000, 80_000, 400_000):
        fit = choose_units(config, VOCAB, rate)
        short = batch == 0 and steps_of(config, rate, 600) < SHORT_HORIZON_STEPS
        assert fit.short == short

        def batch_of(units, short=short):  # half the batch in a short horizon, for the widths it does not slow to half
            return SHORT_BATCH if short and units >= SHORT_BATCH_MIN_UNITS else batch or DEFAULT_BATCH

        def rate_of(units, rate=rate):
            halved = batch_of(units) == SHORT_BATCH
            return rate / PROBE_OVER_SESSION * RELATIVE_SPEED[units] * (SHORT_BATCH_SPEED if halved else 1.0)

        assert fit.batch_size == batch_of(fit.units)
        target = TARGETS_PER_PARAMETER_SHORT if short else TARGETS_PER_PARAMETER
        assert fit.chars_per_second == pytest.approx(rate_of(fit.units))
        step_chars = fit.batch_size * config.seq_len
        assert fit.steps == pytest.approx(fit.chars_per_second * 600 / step_chars)
        assert (fit.per_parameter >= target and fit.steps >= MIN_STEPS) or fit.units == WIDTHS[0]
        for wider in (w for w in WIDTHS if w > fit.units):  # every wider width would see too little, or step too few
            chars = rate_of(wider) * 600
            too_few = chars < MIN_STEPS * batch_of(wider) * config.seq_len
            assert chars < target * parameter_count(config, VOCAB, wider) or too_few


def test_a_horizon_of_few_steps_trains_a_wider_model_at_half_the_batch_unless_the_batch_is_given():
    # The first minute on this project's AMD EPYC family 25 model 17 (the probe measured 42,000 chars/s on 2 cores,
    # 30,000 on one): the sweeps' best were LSTM(384) and LSTM(256) at batch 32 (benchmarks/results/sweep.txt;
    # on one core LSTM(384) would make too few steps: about 420 of MIN_STEPS).
    for rate, units in ((42_000, 384), (30_000, 256)):
        fit = choose_units(make_config(time_budget=60), VOCAB, rate)
        assert (fit.units, fit.batch_size, fit.short) == (units, SHORT_BATCH, True)
        given = choose_units(make_config(time_budget=60, batch_size=64), VOCAB, rate)
        assert (given.units, given.batch_size, given.short) == (256, 64, False)
    # Ten minutes on the same machine make thousands of steps: the default batch, and the width of the long rule.
    long = choose_units(make_config(time_budget=600), VOCAB, 42_000)
    assert (long.units, long.batch_size, long.short) == (512, DEFAULT_BATCH, False)


def test_a_width_that_would_make_too_few_steps_is_not_chosen_and_the_reason_says_so(monkeypatch):
    # The first minute on AMD EPYC family 25 model 1 (float32 on AVX2; the probe measured about 17,400 chars/s on
    # 2 cores): LSTM(256) at batch 32 would see enough chars per parameter but make about 400 steps, and LSTM(128)
    # beat it by 0.05 in the sweep (benchmarks/results/sweep.txt, 2026-12-07).
    config = make_config(time_budget=60)
    fit = choose_units(config, VOCAB, 17_400)
    speed = 17_400 / PROBE_OVER_SESSION * SHORT_BATCH_SPEED
    assert speed * RELATIVE_SPEED[256] * 60 >= TARGETS_PER_PARAMETER_SHORT * parameter_count(config, VOCAB, 256)
    # LSTM(128) keeps the default batch: at batch 32 its speed halved there, and batch 64 scored 0.05 better.
    assert (fit.units, fit.batch_size) == (128, DEFAULT_BATCH) and fit.steps >= MIN_STEPS

    probes = []

    def probe(probe_config, *_args, **_kwargs):
        probes.append(probe_config)
        return 17_400.0, 2.5

    monkeypatch.setattr("tui_charlm.core.sizing.measure_speed", probe)
    choice = choose_size(config, VOCAB, log=lambda _text: None)
    assert choice.units == 128 and f"in at least {MIN_STEPS} steps" in choice.reason
    # The probe trains one batch a call, so that a slow CPU waits for two short calls, not two long ones.
    assert [(p.units, p.steps_per_execution) for p in probes] == [(256, 1)]


def test_more_speed_or_more_time_never_chooses_a_narrower_model_within_a_regime():
    # The width only grows with speed and with time, except once, where the horizon reaches SHORT_HORIZON_STEPS
    # steps and the rule changes from the short regime (batch 32, 0.8 chars per parameter) to the long one; half
    # the batch goes only to the widths it speeds up, so the slowest machines train LSTM(128) at the default batch.
    cases = [(make_config(time_budget=60), float(rate)) for rate in np.geomspace(1_000, 10**6, 60)]
    cases += [(make_config(time_budget=float(t)), 40_000.0) for t in np.geomspace(5, 36_000, 60)]
    for series in (cases[:60], cases[60:]):
        fits = [(config, rate, choose_units(config, VOCAB, rate)) for config, rate in series]
        assert [f.short for _, _, f in fits] == sorted((f.short for _, _, f in fits), reverse=True)
        for (_, _, before), (config, rate, after) in itertools.pairwise(fits):
            if after.short == before.short:
                assert after.units >= before.units
            else:
                assert steps_of(config, rate, config.time_budget) >= SHORT_HORIZON_STEPS
        for _, _, fit in fits:
            half = fit.short and fit.units >= SHORT_BATCH_MIN_UNITS
            assert fit.batch_size == (SHORT_BATCH if half else DEFAULT_BATCH)
        assert (fits[0][2].units, fits[0][2].batch_size) == (WIDTHS[0], DEFAULT_BATCH)
        assert (fits[-1][2].units, fits[-1][2].batch_size) == (WIDTHS[-1], DEFAULT_BATCH)
        assert any(fit.batch_size == SHORT_BATCH for _, _, fit in fits)


def test_without_a_budget_the_width_is_chosen_for_the_default_horizon():
    unbudgeted = choose_units(make_config(), VOCAB, 30_000.0)
    assert unbudgeted == choose_units(make_config(time_budget=DEFAULT_HORIZON_SECONDS), VOCAB, 30_000.0)


def test_on_a_gpu_auto_takes_the_width_and_batch_measured_there_and_times_nothing(monkeypatch):
    def no_probe(*_args, **_kwargs):
        raise AssertionError("the probe ran on a GPU")

    monkeypatch.setattr("tui_charlm.core.sizing.measure_speed", no_probe)
    said: list[str] = []
    choice = choose_size(make_config(time_budget=60.0), VOCAB, on_gpu=True, log=said.append)
    assert (choice.units, choice.batch_size, choice.probe_seconds) == (512, DEFAULT_BATCH, 0.0)
    assert "over-fit" in choice.reason and "--units N" in choice.reason and not said
    given = choose_size(make_config(batch_size=256), VOCAB, on_gpu=True, log=said.append)
    assert given.batch_size == 256 and "batch 256" in given.reason


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
    assert choose_units(trainer.config, len(trainer.run.vocab), sizing["probe_chars_per_second"]).units == units
    assert saved["batch_size"] == sizing["batch_size"] == auto_config(corpus).batch_size  # the batch given is kept

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


def test_an_auto_batch_with_a_given_width_is_the_default_batch_and_a_resume_keeps_the_chosen_one(corpus, tmp_path):
    given = new_training(
        tiny_config(corpus=str(corpus), units=8, batch_size=0), run_dir=tmp_path / "given", log=lambda _: None
    )
    assert given.config.batch_size == DEFAULT_BATCH
    assert json.loads((tmp_path / "given" / "config.json").read_text())["batch_size"] == DEFAULT_BATCH
    chosen = new_training(auto_config(corpus, batch_size=0, time_budget=2), run_dir=tmp_path / "auto", log=print)
    sizing = chosen.run.sizing
    assert chosen.config.batch_size == sizing["batch_size"] in (SHORT_BATCH, DEFAULT_BATCH)
    chosen.fit(lambda event: None)
    resumed = resume_training(tmp_path / "auto", {"batch_size": 0, "units": 0}, log=lambda _: None)
    assert (resumed.config.units, resumed.config.batch_size) == (chosen.config.units, chosen.config.batch_size)


def test_the_books_recipe_keeps_its_width_and_refuses_auto():
    from tui_charlm.core.errors import CharlmError

    assert make_config("seed").units == 128 and make_config("seed").batch_size == 128
    with pytest.raises(CharlmError, match="units auto sizes the default model"):
        make_config("seed", units=0)
    with pytest.raises(CharlmError, match="batch-size auto is the default model's"):
        make_config("seed", batch_size=0)
