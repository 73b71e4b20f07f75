"""Run summaries read from the files alone: the parameter count without Keras, ages, damaged runs."""

from __future__ import annotations

import pytest

from tests.conftest import tiny_config
from tui_charlm.core.errors import CharlmError
from tui_charlm.core.model import build_model
from tui_charlm.core.runs import age, list_runs, parameter_count, summarise


@pytest.mark.parametrize(
    "recipe, extra",
    [("default", {}), ("default", dict(layers=3, units=5)), ("default", dict(embedding_dim=0)), ("seed", {})],
)
def test_the_parameter_count_is_what_keras_counts(recipe, extra):
    config = tiny_config(recipe=recipe, **extra)
    assert parameter_count(config, 13) == build_model(config, 13).count_params()


def test_ages_read_naturally():
    assert [age(1000 - s, now=1000) for s in (5, 300, 10_000, 400_000)] == ["5 s", "5 min", "3 h", "5 days"]
    assert age(None) == "—"


def test_a_folder_that_is_not_a_run_is_damaged_with_a_reason_and_a_file_is_refused(tmp_path):
    folder = tmp_path / "runs" / "half"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    summary = summarise(folder)
    assert summary.status == "damaged" and "run.json" in summary.reason
    assert [s.name for s in list_runs(tmp_path / "runs")] == ["half"]
    assert list_runs(tmp_path / "missing") == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(CharlmError, match="is a file"):
        list_runs(tmp_path / "file")
