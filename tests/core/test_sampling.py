"""Sampling parameters: validation, extremes without warnings, top-k and top-p."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from tui_charlm.core.errors import CharlmError
from tui_charlm.core.sampling import SamplingSettings, distribution, distributions, pick, pick_rows

LOGITS = np.array([2.0, 1.0, 0.5, -1.0, -3.0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(temperature=-0.1), "Temperature must be"),
        (dict(temperature=math.nan), "Temperature must be"),
        (dict(temperature=math.inf), "Temperature must be"),
        (dict(temperature="hot"), "not a number"),
        (dict(top_k=0), "top-k must be"),
        (dict(top_k=2.5), "top-k must be"),
        (dict(top_p=0.0), "top-p must be in"),
        (dict(top_p=1.5), "top-p must be in"),
        (dict(top_p=math.nan), "top-p must be in"),
    ],
)
def test_invalid_settings_are_refused(kwargs, message):
    with pytest.raises(CharlmError, match=message):
        SamplingSettings(**kwargs)


def test_temperature_one_is_the_models_distribution():
    probs = distribution(LOGITS, SamplingSettings(1.0))
    expected = np.exp(LOGITS) / np.exp(LOGITS).sum()
    assert np.allclose(probs, expected)


def test_recipe_reweighting_softmax_log_p_over_t():
    p = np.exp(LOGITS) / np.exp(LOGITS).sum()
    t = 0.5
    recipe = np.exp(np.log(p) / t) / np.exp(np.log(p) / t).sum()
    assert np.allclose(distribution(LOGITS, SamplingSettings(t)), recipe)


def test_extreme_temperatures_behave_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny = distribution(LOGITS * 1000, SamplingSettings(1e-9))
        huge = distribution(LOGITS * 1000, SamplingSettings(1e9))
    assert tiny.argmax() == 0 and tiny.max() == pytest.approx(1.0)
    assert np.allclose(huge, 1 / len(LOGITS), atol=1e-3)


def test_greedy_is_shown_as_such_and_is_one_hot():
    settings = SamplingSettings(0.0)
    assert settings.greedy and settings.describe() == "greedy"
    assert list(distribution(LOGITS, settings)) == [1, 0, 0, 0, 0]


def test_top_k_and_top_p_keep_only_the_likeliest():
    assert np.count_nonzero(distribution(LOGITS, SamplingSettings(1.0, top_k=2))) == 2
    probs = distribution(LOGITS, SamplingSettings(1.0))
    nucleus = distribution(LOGITS, SamplingSettings(1.0, top_p=0.8))
    kept = np.count_nonzero(nucleus)
    assert probs[:kept].sum() >= 0.8 > probs[: kept - 1].sum()
    assert nucleus.sum() == pytest.approx(1.0)


def test_batched_distributions_and_picks_equal_row_by_row():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 30))
    settings = [
        SamplingSettings(0.7),
        SamplingSettings(0.0),
        SamplingSettings(1.3, top_k=4),
        SamplingSettings(1.0, top_p=0.5),
        SamplingSettings(2.0),
    ]
    batched = distributions(logits, settings)
    uniforms = rng.random(5)
    picks = pick_rows(batched, uniforms)
    for row, setting in enumerate(settings):
        assert np.array_equal(batched[row], distribution(logits[row], setting))
        assert picks[row] == pick(batched[row], uniforms[row])


def test_pick_never_chooses_an_excluded_char():
    probs = np.array([0.5, 0.5, 0.0])
    assert pick(probs, 0.999999999999) == 1
    assert pick_rows(probs[None], np.array([0.999999999999]))[0] == 1
