"""Configuration: recipe presets, validation, persistence."""

from __future__ import annotations

import json

import pytest

from tui_charlm.core.config import TrainConfig, make_config
from tui_charlm.core.errors import CharlmError


def test_seed_recipe_is_the_books():
    config = make_config("seed")
    assert (
        config.lowercase,
        config.seq_len,
        config.stride,
        config.embedding_dim,
        config.units,
        config.layers,
        config.batch_size,
        config.optimizer,
        config.learning_rate,
    ) == (True, 60, 3, 0, 128, 1, 128, "rmsprop", 0.01)
    assert (config.dropout, config.weight_decay, config.clipnorm) == (0.0, 0.0, 0.0)  # the default's regularisers off
    assert not config.predicts_every_position


def test_explicit_options_override_the_preset():
    assert make_config("seed", units=64).units == 64
    assert make_config("default", units=None).units == TrainConfig().units


@pytest.mark.parametrize(
    "field, value",
    [
        ("seq_len", 0),
        ("dropout", 1.0),
        ("learning_rate", -1.0),
        ("val_fraction", 0.0),
        ("time_budget", float("nan")),
        ("optimizer", "adamw2"),
        ("units", -3),
    ],
)
def test_invalid_values_are_refused_with_the_flag_name(field, value):
    with pytest.raises(CharlmError, match="Invalid training options"):
        make_config(**{field: value})


def test_unknown_recipe():
    with pytest.raises(CharlmError, match="Unknown recipe"):
        make_config("gpt")


def test_json_round_trip_ignores_unknown_keys():
    config = make_config("seed", epochs=3)
    data = json.loads(config.to_json())
    data["from_the_future"] = 1
    assert TrainConfig.from_dict(data) == config


def test_a_run_saved_before_weight_decay_existed_resumes_without_it():
    data = json.loads(make_config(units=64).to_json())
    assert make_config().weight_decay > 0  # the default now decays
    del data["weight_decay"]
    assert TrainConfig.from_dict(data).weight_decay == 0.0


def test_dropout_start_takes_epochs_or_auto_and_runs_saved_before_it_keep_dropout_from_the_start():
    import argparse

    from tui_charlm.core.options import epochs_or_auto

    assert (epochs_or_auto("auto"), epochs_or_auto("0"), epochs_or_auto("7")) == (-1, 0, 7)
    for typed in ("-1", "-5", "soon"):  # -1 is how auto is stored: typed, it is refused, not taken as auto
        with pytest.raises(argparse.ArgumentTypeError, match="whole number of epochs"):
            epochs_or_auto(typed)
    with pytest.raises(CharlmError, match="dropout-start must be"):
        make_config(dropout_start=-2)
    data = json.loads(make_config(units=64).to_json())
    del data["dropout_start"]
    assert TrainConfig.from_dict(data).dropout_start == 0
