"""Property-based tests: any input ends in a result or a clear CharlmError, never another exception."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reference import decode_real
from tui_charlm.core.errors import CharlmError
from tui_charlm.core.sampling import SamplingSettings, distribution, distributions
from tui_charlm.core.vocab import Vocabulary

ENCODINGS = st.sampled_from(["utf-8", "latin-1", "utf-16", "cp1252", "ascii", "no-such-codec"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2000), encoding=ENCODINGS)
def test_any_bytes_decode_to_text_or_a_clear_error(data, encoding):
    try:
        text = decode_real(data, encoding=encoding)
    except CharlmError as error:
        assert str(error).endswith(".") and "\n" not in str(error)
        return
    assert text and "\r" not in text and not text.startswith("\ufeff")


@settings(max_examples=200)
@given(text=st.text(min_size=1, max_size=500), newline=st.sampled_from(["\n", "\r\n", "\r"]))
def test_any_unicode_text_with_any_newlines_round_trips_through_the_vocabulary(text, newline):
    data = text.replace("\n", newline).encode("utf-8", "surrogatepass")
    try:
        decoded = decode_real(data)
    except CharlmError:
        return
    vocab = Vocabulary.from_text(decoded)
    assert vocab.decode(vocab.encode(decoded)) == decoded


# One line of up to 300K chars, any characters but line ends, NUL (binary) and a leading byte-order mark.
@given(
    text=st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x00\ufeff"),
        min_size=1,
        max_size=100_000,
    ).map(lambda t: t * 3)
)
@settings(max_examples=20, deadline=None)
def test_huge_lines_are_fine(text):
    try:
        decoded = decode_real(text.encode("utf-8"))
    except CharlmError as error:  # only a vocabulary too large for text may be refused
        assert len(set(text)) > 4096 and "distinct characters" in str(error)
        return
    assert decoded == text
    vocab = Vocabulary.from_text(decoded)
    assert set(vocab.chars) == set(text) and vocab.decode(vocab.encode(decoded)) == text


@settings(max_examples=300)
@given(
    corpus=st.text(min_size=1, max_size=50), seed=st.text(max_size=200), replace=st.sampled_from([None, " ", "\u263a"])
)
def test_any_seed_text_is_cleaned_to_vocabulary_chars(corpus, seed, replace):
    vocab = Vocabulary.from_text(corpus)
    report = vocab.clean_seed(seed, replacement=replace)
    assert set(report.text) <= set(vocab.chars)
    assert set(report.unknown) == set(seed) - set(vocab.chars)
    assert (report.describe() == "") == (not report.unknown)
    if report.text:
        assert vocab.decode(vocab.encode(report.text)) == report.text


@pytest.mark.filterwarnings("error")
@settings(max_examples=400)
@given(
    temperature=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5), st.text(max_size=5)),
    top_k=st.one_of(st.none(), st.integers(-3, 100), st.floats(allow_nan=True)),
    top_p=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
)
def test_any_sampling_parameters_give_a_distribution_or_a_clear_error(temperature, top_k, top_p):
    try:
        sampling = SamplingSettings(temperature, top_k, top_p)
    except CharlmError as error:
        assert "\n" not in str(error)
        return
    logits = np.random.default_rng(0).normal(0, 5, size=30)
    probs = distribution(logits, sampling)
    assert np.all(probs >= 0) and abs(probs.sum() - 1.0) < 1e-9
    batched = distributions(np.stack([logits, logits]), [sampling, SamplingSettings(1.0)])
    assert np.array_equal(batched[0], probs)
