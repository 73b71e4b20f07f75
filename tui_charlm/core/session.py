"""From options to a ready Trainer, or to a saved run's weights: the set-up both the CLI and the TUI run.

Order matters for the user: every check that can fail on bad input (corpus,
vocabulary, corpus length) runs before a run directory is created, so a
mistake leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tui_charlm.core.backend import backend_name, start_backend
from tui_charlm.core.checkpoints import (
    Checkpoint,
    RunDirectory,
    TrainingState,
    default_run_dir,
)
from tui_charlm.core.config import TrainConfig
from tui_charlm.core.corpus import Corpus, load_corpus
from tui_charlm.core.dataset import split_ids
from tui_charlm.core.devices import (
    cpu_has_bfloat16,
    describe_training,
    gpu_visible,
    make_strategy,
    resolve_precision,
    strategy_scope,
    trains_on_gpu,
)
from tui_charlm.core.errors import CharlmError
from tui_charlm.core.events import Log
from tui_charlm.core.inference import NetworkWeights, weights_from_model
from tui_charlm.core.model import build_model, restore_random_states
from tui_charlm.core.sizing import choose_size
from tui_charlm.core.training import Trainer

# Options that may differ when resuming: they change how long or where training
# runs, not what the model is.
RESUMABLE = {
    "epochs",
    "time_budget",
    "checkpoint_every",
    "threads",
    "steps_per_execution",
    "lr_schedule",
    "corpus",
    "encoding",
    "val_max_chars",
    "strategy",
}


@dataclass(frozen=True)
class SavedRun:
    """A run opened for generation or scoring: its newest loadable checkpoint as NumPy weights."""

    run: RunDirectory
    checkpoint: Checkpoint
    weights: NetworkWeights
    parameters: int


def open_saved_run(run_path: Path) -> SavedRun:
    """Open a run directory and load its newest loadable checkpoint for generation (nothing trains)."""
    run = RunDirectory.open(run_path)
    model, checkpoint = run.load_model(compile=False)
    if model is None:
        raise CharlmError(f"{run.path} has no checkpoint yet; train it (or resume it) first.")
    weights = weights_from_model(model, seq_len=run.config.seq_len, version=checkpoint.state.step)
    return SavedRun(run, checkpoint, weights, int(model.count_params()))


def saved_corpus_ids(run: RunDirectory) -> tuple[np.ndarray, str] | None:
    """(the run's corpus in its ids, the corpus's name) for seeds, or None when the corpus is not here.

    Never touches the network; characters the run never saw are dropped.
    """
    try:
        corpus = load_config_corpus(run.config, offline=True, max_vocab=10**6, log=lambda _: None)
    except CharlmError:
        return None
    return corpus.ids_in(run.vocab, drop_unknown=True), corpus.name


def load_config_corpus(
    config: TrainConfig, *, offline: bool | None = None, max_vocab: int | None = None, log: Log = print
) -> Corpus:
    """Load the corpus `config` names as ids, decoded and cased as the config says (encoded once, cached)."""
    return load_corpus(
        config.corpus,
        encoding=config.encoding,
        lowercase=config.lowercase,
        offline=offline,
        max_vocab=config.max_vocab if max_vocab is None else max_vocab,
        log=log,
    )


def corpus_spec(corpus: Corpus) -> str:
    """What to store so a resume finds the same corpus: a name, or an absolute path."""
    return str(corpus.path.resolve()) if corpus.source == "file" else corpus.name


def corpus_meta(corpus: Corpus) -> dict[str, Any]:
    """Corpus identity recorded in run.json."""
    return {
        "name": corpus.name,
        "source": corpus.source,
        "path": str(corpus.path.resolve()),
        "sha256": corpus.sha256,
        "chars": len(corpus),
    }


def new_training(
    config: TrainConfig, *, run_dir: Path | None = None, offline: bool | None = None, log: Log = print
) -> Trainer:
    """Load the corpus, check it, create a run directory and build a fresh model."""
    corpus = load_config_corpus(config, offline=offline, log=log)
    # TensorFlow starts here, once, with the run's thread counts (they cannot change once it runs).
    start_backend(config.threads)
    vocab = corpus.vocab
    if len(vocab) < 2:
        raise CharlmError(
            f"Corpus {corpus.name!r} holds only one distinct character ({vocab.chars[0]!r}): there "
            f"is nothing to predict; give a text with words in it."
        )
    split = split_ids(corpus.ids, config)
    # 'auto' precision is settled here, so config.json says what the run computes in, wherever it resumes.
    config = dataclasses.replace(config, corpus=corpus_spec(corpus), precision=resolve_precision(config.precision))
    strategy = make_strategy(config.strategy, log)
    sizing = None
    if config.auto_units:  # measured once, here; the choice is saved, so a resume never measures again
        windows = len(range(0, len(split.train) - config.seq_len, config.stride))
        choice = choose_size(config, len(vocab), strategy, windows=windows, on_gpu=gpu_visible(), log=log)
        config = dataclasses.replace(config, units=choice.units, batch_size=choice.batch_size)  # the given one if set
        sizing = choice.to_dict()
        log(f"size: {choice.reason}")
    config = config.with_batch_settled()  # an 'auto' batch that nothing measured: the default
    run = RunDirectory.create(
        run_dir or default_run_dir(corpus.name), config, vocab, corpus_meta(corpus), sizing=sizing
    )
    return _trainer(run, fresh_model(config, len(vocab), strategy), split, TrainingState(), log=log)


def fresh_model(config: TrainConfig, vocab_size: int, strategy):
    """A new compiled model for `config`, built under `strategy`."""
    with strategy_scope(strategy):
        return build_model(config, vocab_size)


def _trainer(run: RunDirectory, model, split, state: TrainingState, *, log: Log, resumed: bool = False) -> Trainer:
    on_cpu = run.config.precision != "float32" and not trains_on_gpu(model)
    if on_cpu and run.config.precision == "mixed_float16":
        log("Note: --precision mixed_float16 on a CPU is slower than float32; it pays off on GPUs with tensor cores.")
    elif on_cpu and run.config.precision == "mixed_bfloat16" and not cpu_has_bfloat16():
        log(
            "Note: this CPU has no bfloat16 hardware (AVX512-BF16 or AMX), so --precision mixed_bfloat16 is "
            "slower than float32 on it."
        )
    return Trainer(
        run,
        model,
        split,
        state,
        device=describe_training(model, precision=run.config.precision),
        resumed=resumed,
        log=log,
    )


def resume_training(
    run_path: Path, overrides: dict[str, Any] | None = None, *, offline: bool | None = None, log: Log = print
) -> Trainer:
    """Open a run directory and continue from its newest loadable checkpoint.

    Only options in RESUMABLE may change; the corpus must fit the run's
    vocabulary. A run killed before its first checkpoint starts again from
    its saved configuration.
    """
    run = RunDirectory.open(run_path)
    run.lock_for_training()
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    for name in ("units", "batch_size"):  # 'auto': the size the run was given when it started
        if overrides.get(name) == 0:
            del overrides[name]
    if overrides.get("precision") == "auto":  # (this probes for a GPU: import only, threads are set below)
        overrides["precision"] = resolve_precision("auto")
    changed = sorted(k for k, v in overrides.items() if k not in RESUMABLE and getattr(run.config, k) != v)
    if changed:
        flags = ", ".join("--" + k.replace("_", "-") for k in changed)
        raise CharlmError(
            f"{flags} cannot change when resuming {run.path}: the model was built with other values; "
            f"start a new run instead."
        )
    config = dataclasses.replace(run.config, **{k: v for k, v in overrides.items() if k in RESUMABLE})
    # TensorFlow starts here, once, with the run's thread counts (its own, or --threads given now).
    start_backend(config.threads)
    corpus = load_config_corpus(config, offline=offline, max_vocab=max(config.max_vocab, len(run.vocab)), log=log)
    missing = corpus.missing_from(run.vocab)
    if missing:
        shown = ", ".join(repr(c) for c in missing[:10])
        raise CharlmError(
            f"Corpus {corpus.name!r} does not match the vocabulary of {run.path}: it has "
            f"{len(missing)} characters the run never saw ({shown}); resume with the run's own corpus."
        )
    recorded = run.meta.get("corpus", {}).get("sha256")
    if recorded and recorded != corpus.sha256:
        log(f"Note: corpus {corpus.name!r} differs from the one this run started on, but fits its vocabulary.")
    split = split_ids(corpus.ids_in(run.vocab), config)
    run.config = config
    strategy = make_strategy(config.strategy, log)
    with strategy_scope(strategy):
        model, checkpoint = run.load_model()
    if model is None:
        log(f"{run.path} has no checkpoint yet; starting it again from its saved configuration.")
        return _trainer(run, fresh_model(config, len(run.vocab), strategy), split, TrainingState(), log=log)
    trained_on, running_on = checkpoint.state.backend or "tensorflow", backend_name()
    if trained_on == running_on:
        restore_random_states(model, checkpoint.state.random_states)
    else:
        log(
            f"Note: {run.path} was trained on {trained_on} up to here and resumes on {running_on}: the weights, "
            f"optimizer state and data order carry over, but the dropout masks come from {running_on}'s own "
            f"random streams, so the run is not bit-for-bit the one it would have been."
        )
    spent = nothing_to_train(config, checkpoint.state)
    if spent:
        log(f"Note: {run.path} {spent}.")
    return _trainer(run, model, split, checkpoint.state, log=log, resumed=True)


def nothing_to_train(config: TrainConfig, state: TrainingState) -> str | None:
    """Why a run at `state` would train nothing more under `config` (its budget spent, its epochs done), or None.

    Worded to follow the run's name: "<run> has trained …".
    """
    if config.time_budget and state.elapsed >= config.time_budget:
        return (
            f"has trained {state.elapsed:.0f} s, all of its --time-budget of {config.time_budget:g} s (the budget "
            f"counts every session of a run); resume it with a larger --time-budget to train on"
        )
    if state.epoch >= config.epochs:
        return f"has trained all of its {config.epochs} epochs; resume it with a larger --epochs to train on"
    return None


def nothing_to_resume(run_path: Path) -> str | None:
    """nothing_to_train for a run folder as its newest checkpoint left it; None when it cannot tell."""
    try:
        run = RunDirectory.open(run_path)
        latest = run.latest()
    except CharlmError:
        return None
    return None if latest is None else nothing_to_train(run.config, latest.state)


def cluster_training(
    cluster,
    prepare: Callable[[], Trainer],
    asked: dict[str, Any],
    *,
    corpus: str | None = None,
    threads: int | None = None,
    offline: bool | None = None,
    log: Log = print,
    on_lost: Callable[[str], None],
) -> Trainer:
    """One process's part of a run trained by several (distributed.py): a Trainer for its replicated model.

    `prepare` is what one process would run (new_training or
    resume_training); only process 0 runs it: the corpus, the `--units auto`
    measurement, the run folder and its lock, the checkpoint to resume. The
    others take process 0's configuration, vocabulary and training state,
    read their own copy of the corpus (their `corpus`, else the one the
    configuration names), and check it is the same text. Then every process
    builds the model under Keras' DataParallel and takes process 0's weights,
    in lockstep. `asked` (the options given, and whether this is a resume)
    must be the same in every process, and so must the versions. From the
    moment the processes have met, a lost one is reported to `on_lost`
    (distributed.Heartbeats, kept on the trainer as `heartbeats`).
    """
    from tui_charlm.core import distributed
    from tui_charlm.core.vocab import Vocabulary

    distributed.join(cluster, threads)
    heartbeats = distributed.Heartbeats(cluster, on_lost).start()
    distributed.check_alike(cluster, "asked", {**asked, **distributed.versions()})
    values = None
    if cluster.writer:
        local = prepare()
        run, split, state = local.run, local.split, local.state
        values = distributed.model_values(local.model)
        del local
        resumed = run.latest() is not None
        distributed.publish(
            "setup",
            {
                "config": run.config.to_json(run.sizing),
                "vocab": run.vocab.to_json(),
                "state": state.to_json(),
                "corpus_sha256": run.meta.get("corpus", {}).get("sha256") or _corpus_sha(run, offline),
                "run": str(run.path),
                "resumed": resumed,
            },
        )
        for other in range(1, cluster.processes):
            answer = distributed.receive(f"ready/{other}", distributed.SETUP_SECONDS)
            if answer.get("error"):
                raise CharlmError(f"Process {other}: {answer['error']}")
    else:
        setup = distributed.receive("setup", distributed.SETUP_SECONDS)
        try:
            config = TrainConfig.from_dict(json.loads(setup["config"]))
            vocab = Vocabulary.from_json(setup["vocab"])
            state = TrainingState.from_json(setup["state"])
            config_here = dataclasses.replace(config, corpus=corpus) if corpus else config
            text = load_config_corpus(
                config_here, offline=offline, max_vocab=max(config.max_vocab, len(vocab)), log=lambda _: None
            )
            if setup["corpus_sha256"] and text.sha256 != setup["corpus_sha256"]:
                raise CharlmError(
                    f"its corpus ({text.path}) is not the text process 0 trains on (sha256 {text.sha256[:12]}... "
                    f"against {setup['corpus_sha256'][:12]}...); every process must read the same corpus."
                )
            split = split_ids(text.ids_in(vocab), config)
        except CharlmError as error:
            distributed.publish(f"ready/{cluster.process_id}", {"error": str(error)})
            raise
        distributed.publish(f"ready/{cluster.process_id}", {})
        run = RunDirectory(Path(setup["run"]), config, vocab, {})  # process 0's folder, by name only: never written
        resumed = bool(setup["resumed"])
    devices = distributed.distribute()
    distributed.check_batch_splits(cluster, run.config.batch_size, devices)
    model = build_model(run.config, len(run.vocab))
    distributed.share_values(cluster, values, model)
    trainer = Trainer(
        run,
        model,
        split,
        state,
        device=describe_training(model, precision=run.config.precision) + f", {cluster.processes} processes",
        resumed=resumed,
        log=log,
        cluster=cluster,
    )
    trainer.heartbeats = heartbeats
    return trainer


def _corpus_sha(run: RunDirectory, offline: bool | None) -> str:
    return load_config_corpus(run.config, offline=offline, max_vocab=10**6, log=lambda _: None).sha256
