"""Keras' backend, in one place: which one runs, how it starts, and the few calls that differ between them.

Keras 3 runs the same model on TensorFlow (the default here) or on JAX
(`KERAS_BACKEND=jax`); a `model.keras` file loads on either. What differs,
and so lives here, is how batches are fed to the compiled training call
and how that call is made:

* TensorFlow: one long-lived tf.data iterator over every epoch left (its
  teardown can stall for seconds, so it is built once per run), fed to
  Keras' compiled multi-batch training function (`steps_per_execution`).
* JAX: NumPy batches (the same windows, in the same order) handed to
  Keras' jitted training step with the model's state, which is written
  back to the model's variables after each call; Keras' `fit` does this
  once per epoch, a trainer that pauses, saves and snapshots between calls
  does it after each call.

Everything else (the schedule, pause, save and stop between calls, the
time budget, snapshots, checkpoints) is one code path in training.py.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tui_charlm.core.errors import CharlmError

BACKENDS = ("tensorflow", "jax")
# The backend Keras was imported with: it cannot change in a process after that.
_settled: str | None = None


def backend_name() -> str:
    """The Keras backend this process runs (or will run): KERAS_BACKEND, else Keras' config file, else TensorFlow.

    Read the way Keras reads it, without importing Keras (which would start
    the backend); once Keras is imported, its own answer.
    """
    global _settled
    if _settled is not None:
        return _settled
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "config"):
        _settled = keras.config.backend()  # fixed for the process from here on (asked on every training call)
        return _settled
    name = os.environ.get("KERAS_BACKEND", "").strip()
    if not name:
        home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
        try:
            name = str(json.loads((Path(home) / "keras.json").read_text()).get("backend", ""))
        except (OSError, ValueError, AttributeError):
            name = ""
    name = name or "tensorflow"
    if name not in BACKENDS:
        raise CharlmError(
            f"Keras backend {name!r} (KERAS_BACKEND or keras.json) is not one this project runs on; "
            f"use {' or '.join(BACKENDS)}."
        )
    return name


def on_jax() -> bool:
    """True when Keras runs on JAX."""
    return backend_name() == "jax"


def start_backend(threads: int | None = None, *, quiet: bool = True):
    """Import Keras' backend once, quietly, with the run's thread count where it can be set.

    TensorFlow takes any count (tf_startup). XLA on the CPU (JAX) has no
    count to set, only one thread or all of them: `threads` 1 asks for one
    (XLA_FLAGS, before JAX starts), anything else leaves XLA's default.
    """
    if not on_jax():
        from tui_charlm.core.tf_startup import import_tensorflow

        import_tensorflow(threads, quiet=quiet)
        return
    if threads == 1 and "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = (
                f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1".strip()
            )
    import jax  # noqa: F401
    import keras  # noqa: F401

    if "tensorflow" not in sys.modules:
        # Keras imports TensorFlow, where it is installed, to seed it and to recognise tf.data inputs; on JAX
        # this project uses neither, and importing it costs seconds and fills the terminal with its logs.
        try:
            from keras.src.utils import module_utils  # Keras-private: its lazy handle on TensorFlow

            module_utils.tensorflow._available = False
        except (ImportError, AttributeError):
            pass


def jax_single_threaded() -> bool:
    """True when this process asked XLA for one thread (start_backend with threads 1)."""
    return "xla_cpu_multi_thread_eigen=false" in os.environ.get("XLA_FLAGS", "")


def jax_gpu_name() -> str | None:
    """The first GPU JAX sees, by its device kind (e.g. 'NVIDIA H200'), or None without one."""
    import jax

    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        return None
    return (getattr(gpus[0], "device_kind", None) or str(gpus[0])) if gpus else None


# -- feeding batches and the training call ---------------------------------------------


def training_feed(model, windows, epoch: int, skip: int, until_epoch: int, cluster=None):
    """An iterator over every batch left in the run, in the form this backend's training call takes.

    Over several processes (a distributed.Cluster, JAX only), each global
    batch becomes this process's rows of it, made a global array.
    """
    if on_jax():
        batches = _numpy_batches(windows, epoch, skip, until_epoch)
        if cluster is None:
            return batches
        from tui_charlm.core.distributed import global_batch

        return (global_batch(cluster, batch) for batch in batches)
    dataset = windows.tf_dataset(epoch, skip, until_epoch=until_epoch)
    return iter(model.distribute_strategy.experimental_distribute_dataset(dataset))


def repeated_feed(model, inputs, targets):
    """An endless iterator over one batch (the sizing probe's), in the form this backend's training call takes."""
    if on_jax():
        import itertools

        return itertools.repeat((inputs, targets))
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensors((inputs, targets)).repeat()
    return iter(model.distribute_strategy.experimental_distribute_dataset(dataset))


def _numpy_batches(windows, epoch: int, skip: int, until_epoch: int):
    for number in range(epoch, until_epoch):
        yield from windows.iterate(number, skip if number == epoch else 0)


def train_call(model, feed, ran: int, steps: int, cluster=None) -> float:
    """Train the next `ran` batches of `feed` (at most `steps`, the model's steps_per_execution); their mean loss.

    A shorter call than `steps` (the last batches of an epoch) trains only
    those, so a call never reaches into the next epoch. Over several
    processes (JAX), distributed.train_step trains each batch.
    """
    if cluster is not None:
        return _jax_sharded_call(model, [next(feed) for _ in range(ran)])
    if on_jax():
        return _jax_train_call(model, [next(feed) for _ in range(ran)])
    if ran == steps:
        model.reset_metrics()  # so the loss is the mean over this call's batches alone
        return float(model.train_function(feed)["loss"])
    losses = [float(model.train_on_batch(*next(feed))) for _ in range(ran)]
    return sum(losses) / len(losses)


_STATE_PARTS = ("trainable_variables", "non_trainable_variables", "optimizer_variables", "metrics_variables")


def _jax_train_call(model, batches: list) -> float:
    """One call of Keras' JAX training function over `batches`; the state goes back into the model's variables.

    Keras' jitted step is stateless: it takes the variables' values and
    returns new ones (donating the old buffers). As `train_on_batch` does,
    the new values are assigned back after the call, so checkpoints,
    snapshots and held-out scoring between calls see the trained weights.
    The loss tracker is reset first, so the loss is the mean over `batches`.
    """
    model.reset_metrics()
    logs, state = model.train_function(_jax_state(model), iter(batches))
    _put_jax_state(model, state)
    return float(logs["loss"])


def _jax_state(model) -> tuple:
    """The variables' values as Keras' stateless JAX step takes them (Keras-private, as in its train_on_batch)."""
    return model._get_jax_state(
        trainable_variables=True, non_trainable_variables=True, optimizer_variables=True, metrics_variables=True
    )


def _put_jax_state(model, state) -> None:
    """Write a training step's new state back into the model's variables."""
    model._jax_state = dict(zip(_STATE_PARTS, state, strict=True))
    model._jax_state_synced = False
    model.jax_state_sync()


def _jax_sharded_call(model, batches: list) -> float:
    """Train `batches` with distributed.train_step, one batch a call; the state goes back into the variables."""
    from tui_charlm.core.distributed import train_step

    step, state, losses = train_step(model), _jax_state(model), []
    for inputs, targets in batches:
        loss, state = step(state, inputs, targets)
        losses.append(loss)
    _put_jax_state(model, state)
    return sum(float(loss) for loss in losses) / len(losses)
