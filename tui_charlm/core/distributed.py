"""Data-parallel training over processes and hosts: JAX's distributed runtime under Keras' DataParallel.

Every process runs the same `charlm train` command with its own process id.
They meet at process 0's coordinator (`jax.distributed.initialize`);
Keras' `DataParallel` over every device of every process keeps one model
replicated, and the trainer's own step (train_step) averages its gradients
once a batch. Each process gathers the same global
batches (the window order depends only on the seed and the epoch) and feeds
its own rows of each; so N processes train the model one process would
train with the same global batch.

Multi-controller JAX has one rule this module is built around: every
process makes the same computations in the same order (an assignment to a
replicated variable is itself a collective that checks the value is the
same everywhere). So:

* process 0 alone prepares the run (corpus, the `--units auto` measurement,
  the run folder, its checkpoint) with a model of its own, then shares the
  configuration, vocabulary, training state and weights; every process then
  builds the replicated model and loads those weights, in lockstep;
* every decision that depends on a clock or a key (the learning rate, the
  time budget, pause, stop) is agreed between calls: process 0's clock and
  pause, and a stop asked by any process;
* process 0 alone writes into the run folder (checkpoints, samples, the
  event log, the weights for viewers); the others write nothing.

A lost process is noticed by a heartbeat each process keeps in the
coordinator's key-value store: within LOST_SECONDS the others say which
process was lost and end, without waiting on a collective that will never
complete. Losing process 0 (the coordinator) makes JAX abort the others at
once, so they train under a supervising parent that says so (supervise).
Checkpoints are written aside and renamed into place, so the newest one on
disk is always whole.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from tui_charlm.core.errors import CharlmError

# The variables `keras.distribution.initialize` reads: cluster launchers set these for every process.
ENV_ADDRESSES = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
ENV_PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
ENV_PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"
# How long a process waits for all the others to join, and for process 0 to prepare the run.
JOIN_SECONDS = 120
SETUP_SECONDS = 900
# A process whose heartbeat has not moved for this long is lost: the others say so and end.
LOST_SECONDS = 10.0
HEARTBEAT_SECONDS = 1.0
# JAX's own heartbeat timeout, well past ours, so that ours speaks first (JAX's ends the process with an abort).
JAX_HEARTBEAT_SECONDS = 60
_KEY = "charlm/"
# The DataParallel distribution of this process's run (distribute), once set.
_distribution = None


@dataclass(frozen=True)
class Cluster:
    """Where this process stands in a run trained by several: the coordinator, how many, which one."""

    coordinator: str  # host:port of process 0's coordinator
    processes: int
    process_id: int

    @property
    def writer(self) -> bool:
        """True for process 0: the one that writes into the run folder."""
        return self.process_id == 0

    def describe(self) -> str:
        return f"process {self.process_id} of {self.processes} (coordinator {self.coordinator})"


def cluster_from(
    coordinator: str | None, processes: int | None, process_id: int | None, environ=os.environ
) -> Cluster | None:
    """The cluster the flags (or, where a flag is not given, the KERAS_DISTRIBUTION_* variables) describe.

    None when neither names a coordinator or more than one process: a run on
    one process, as always.
    """
    addresses = environ.get(ENV_ADDRESSES, "").strip()
    coordinator = coordinator or (addresses.split(",")[0].strip() if addresses else None)
    processes = processes if processes is not None else _int_from(environ, ENV_PROCESSES)
    process_id = process_id if process_id is not None else _int_from(environ, ENV_PROCESS_ID)
    if coordinator is None and processes in (None, 1) and process_id in (None, 0):
        return None
    if coordinator is None or processes is None or process_id is None:
        raise CharlmError(
            "Training over several processes needs all three of --coordinator HOST:PORT, --processes N and "
            f"--process-id I (or {ENV_ADDRESSES}, {ENV_PROCESSES} and {ENV_PROCESS_ID})."
        )
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CharlmError(f"--coordinator {coordinator!r} is not HOST:PORT (for example 10.0.0.1:8476).")
    if processes < 1:
        raise CharlmError(f"--processes must be at least 1, not {processes}.")
    if not 0 <= process_id < processes:
        raise CharlmError(f"--process-id must be 0 to {processes - 1} for {processes} processes, not {process_id}.")
    return Cluster(coordinator, processes, process_id)


def _int_from(environ, name: str) -> int | None:
    text = environ.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise CharlmError(f"{name}={text!r} is not a whole number.") from None


# -- joining ----------------------------------------------------------------------------


def join(cluster: Cluster, threads: int | None = None) -> None:
    """Start JAX's distributed runtime in this process: it waits (up to JOIN_SECONDS) until all have joined."""
    from tui_charlm.core.backend import on_jax, start_backend

    if not on_jax():
        raise CharlmError(
            "Training over several processes runs on Keras' JAX backend (keras.distribution; TensorFlow's "
            "multi-worker strategy does not work under Keras 3): run every process with KERAS_BACKEND=jax "
            "(pip install 'tui-charlm[jax]')."
        )
    start_backend(threads)
    import jax

    # Collectives between CPU processes go over TCP with gloo (GPUs use NCCL whatever this says).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=cluster.coordinator,
            num_processes=cluster.processes,
            process_id=cluster.process_id,
            initialization_timeout=JOIN_SECONDS,
            heartbeat_timeout_seconds=JAX_HEARTBEAT_SECONDS,
        )
        # Every process starts its devices now, together: the first computation in any one of them waits for all.
        jax.devices()
    except Exception as error:  # JAX raises its runtime's own error types
        raise CharlmError(
            f"{cluster.describe()} could not join the others within {JOIN_SECONDS} s "
            f"({_first_line(error)}); start all {cluster.processes} with the same --coordinator and "
            f"--processes, each with its own --process-id."
        ) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def _client():
    from jax._src import distributed  # JAX's handle on the coordination service (its key-value store)

    return distributed.global_state.client


def publish(name: str, value: dict) -> None:
    """Put a JSON value in the coordinator's key-value store, for the other processes."""
    _client().key_value_set(_KEY + name, json.dumps(value))


def receive(name: str, seconds: float) -> dict:
    """A value another process published under `name`, waiting up to `seconds` for it."""
    return json.loads(_client().blocking_key_value_get(_KEY + name, int(seconds * 1000)))


# -- agreeing before a run starts --------------------------------------------------------


def versions() -> dict[str, str]:
    """The versions every process must share: this project's, Keras' and JAX's."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("tui-charlm", "keras", "jax", "jaxlib"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def check_alike(cluster: Cluster, name: str, mine: dict, *, seconds: float = JOIN_SECONDS) -> None:
    """Every process publishes `mine`; each compares the others' with its own and refuses the first difference.

    The refusal is the same sentence in every process, naming what differs
    between which processes (another corpus, an option, a version).
    """
    publish(f"{name}/{cluster.process_id}", mine)
    first = None
    for other in range(cluster.processes):
        theirs = mine if other == cluster.process_id else receive(f"{name}/{other}", seconds)
        if other == 0:
            first = theirs
            continue
        for key in sorted(set(first) | set(theirs)):
            if first.get(key) != theirs.get(key):
                raise CharlmError(
                    f"Process {other} differs from process 0 in {key} ({_shown(theirs.get(key))} against "
                    f"{_shown(first.get(key))}): every process must train on the same corpus, with the same "
                    f"options and versions."
                )


def _shown(value) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


# -- the replicated model -------------------------------------------------------------------


def distribute() -> int:
    """Set Keras' DataParallel over every device of every process; models built from here on are replicated.

    Returns the number of devices. Each process feeds its own rows of each
    global batch (auto_shard_dataset off: Keras' sharding wants tf.data).
    """
    import keras

    global _distribution
    devices = keras.distribution.list_devices()
    _distribution = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    keras.distribution.set_distribution(_distribution)
    return len(devices)


def scope():
    """Keras' distribution for the thread that trains: Keras keeps it per thread, and it was set in another."""
    return _distribution.scope()


@contextmanager
def unreplicated():
    """Keras distributing nothing in this thread for a while: what it makes here is this process's own.

    Saving a model makes a few variables of its own (a throwaway optimizer,
    to learn which attributes to skip); made replicated, each would be a
    collective the processes that do not save never join.
    """
    import keras

    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(previous)


def _training_variables(model) -> list:
    """Every variable a model trains with (its own, then the optimizer's, built if need be), in a fixed order."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return [*model.variables, *model.optimizer.variables]


def model_values(model) -> list[np.ndarray]:
    """Every variable a model trains with, as NumPy arrays, in the order share_values takes them."""
    return [np.asarray(variable.value) for variable in _training_variables(model)]


def share_values(cluster: Cluster, values: list[np.ndarray] | None, model) -> None:
    """Give `model` (built alike in every process) process 0's `values`, in lockstep; others pass None."""
    from jax.experimental import multihost_utils

    variables = _training_variables(model)
    shapes = [tuple(variable.shape) for variable in variables]
    if values is None:
        values = [np.zeros(shape, np.dtype(str(variable.dtype))) for shape, variable in zip(shapes, variables)]
    elif [value.shape for value in values] != shapes:
        raise CharlmError("The model built on this process does not match process 0's (its variables differ).")
    shared = multihost_utils.broadcast_one_to_all(values, is_source=cluster.writer)
    for variable, value in zip(variables, shared, strict=True):
        variable.assign(np.asarray(value).astype(np.dtype(str(variable.dtype))))


def local_rows(cluster: Cluster, global_rows: int) -> slice:
    """This process's rows of a global batch of `global_rows` (an even share)."""
    share = global_rows // cluster.processes
    return slice(cluster.process_id * share, (cluster.process_id + 1) * share)


def check_batch_splits(cluster: Cluster, batch_size: int, devices: int) -> None:
    """Refuse a global batch that does not split evenly across every device of every process."""
    if batch_size % devices or batch_size < devices:
        raise CharlmError(
            f"--batch-size {batch_size} is the global batch, split across all {devices} devices of the "
            f"{cluster.processes} processes; give a multiple of {devices}."
        )


def global_batch(cluster: Cluster, batch):
    """One global batch as the replicated training call takes it: this process's rows of it, made a global array."""
    from jax import make_array_from_process_local_data

    rows = local_rows(cluster, len(batch[0]))
    arrays = []
    for array in batch:
        layout = _distribution.get_data_layout(array.shape).backend_layout
        arrays.append(make_array_from_process_local_data(layout, array[rows], array.shape))
    return tuple(arrays)


def train_step(model):
    """The training step over every process's rows of a batch: gradients computed locally, averaged once.

    Keras' own step under DataParallel leaves the sharding to XLA, which
    all-reduces the LSTM's weight gradients inside the backward loop, once
    per time step (50 collectives a batch; over gloo 15 times slower than
    this step, benchmarks/README.md). Here each process runs the
    step on its own rows (shard_map), the gradients and the loss are
    averaged across processes in one collective each, and every process
    applies the same update: the step one process would take on the whole
    batch, since every share is the same size. Each process's dropout draws
    from its own stream (the shared seed offset by its place in the mesh).
    Rebuilt when a dropout rate changes (Keras reads it when tracing).
    """
    import jax
    from jax.sharding import PartitionSpec

    rates = tuple(getattr(layer, "rate", None) for layer in model.layers)
    cached = getattr(model, "_charlm_train_step", None)
    if cached is not None and cached[0] == rates:
        return cached[1]
    axis = _distribution.batch_dim_name
    seeds = [i for i, variable in enumerate(model.non_trainable_variables) if "seed_generator" in variable.path]

    def offset(non_trainable, sign):
        shift = jax.lax.axis_index(axis).astype("uint32") * 7919
        return [
            value.at[0].set(value[0] + shift if sign > 0 else value[0] - shift)
            if i in seeds and value.shape == (2,)
            else value
            for i, value in enumerate(non_trainable)
        ]

    def local(state, x, y):
        trainable, non_trainable, optimizer_variables, metrics_variables = state
        grad_fn = jax.value_and_grad(model.compute_loss_and_updates, has_aux=True)
        (_, aux), grads = grad_fn(
            trainable,
            offset(non_trainable, 1),
            metrics_variables,
            x,
            y,
            None,
            training=True,
            optimizer_variables=optimizer_variables,
        )
        loss, _, non_trainable, metrics_variables = aux
        grads = jax.lax.pmean(grads, axis)
        trainable, optimizer_variables = model.optimizer.stateless_apply(optimizer_variables, grads, trainable)
        state = (trainable, offset(non_trainable, -1), optimizer_variables, metrics_variables)
        return jax.lax.pmean(loss, axis), state

    mesh = _distribution.device_mesh.backend_mesh
    replicated, rows = PartitionSpec(), PartitionSpec(axis)
    step = jax.jit(
        jax.shard_map(
            local, mesh=mesh, in_specs=(replicated, rows, rows), out_specs=(replicated, replicated), check_vma=False
        ),
        donate_argnums=0,
    )
    model._charlm_train_step = (rates, step)
    return step


def agree(cluster: Cluster, *, elapsed: float, pause: bool, stop: bool) -> tuple[float, bool, bool]:
    """Between calls: process 0's training time and pause, and a stop if any process asked for one."""
    from jax.experimental import multihost_utils

    mine = np.array([elapsed, float(pause), float(stop)], np.float32)
    every = np.asarray(multihost_utils.process_allgather(mine))
    return float(every[0, 0]), bool(every[0, 1]), bool(every[:, 2].any())


# -- noticing a lost process -------------------------------------------------------------------


class Heartbeats:
    """Each process counts up a key of its own every HEARTBEAT_SECONDS and watches the others' keys.

    When one has not moved for LOST_SECONDS (a process killed, a host gone,
    a machine stopped), or the coordinator cannot be reached, `on_lost` is
    called once with a sentence naming the lost process.
    """

    def __init__(self, cluster: Cluster, on_lost: Callable[[str], None]):
        self.cluster = cluster
        self.on_lost = on_lost
        self.stopped = threading.Event()
        self.lost: str | None = None
        self.last_contact = time.monotonic()
        self._thread = threading.Thread(target=self._beat, name="charlm-heartbeat", daemon=True)
        self._watch = threading.Thread(target=self._watch_contact, name="charlm-contact", daemon=True)

    def start(self) -> Heartbeats:
        self._thread.start()
        self._watch.start()
        return self

    def stop(self) -> None:
        self.stopped.set()

    def verdict(self) -> str | None:
        """After a collective failed: wait until the heartbeats say which process was lost (None if none was)."""
        deadline = time.monotonic() + LOST_SECONDS + 3 * HEARTBEAT_SECONDS
        while self.lost is None and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.lost

    def _beat(self) -> None:
        client, me = _client(), self.cluster.process_id
        seen: dict[int, tuple[str | None, float]] = {}
        count = 0
        while not self.stopped.wait(HEARTBEAT_SECONDS):
            count += 1
            try:
                client.key_value_set(f"{_KEY}beat/{me}", str(count), allow_overwrite=True)
                now = time.monotonic()
                for other in range(self.cluster.processes):
                    if other == me:
                        continue
                    value = _try_get(client, f"{_KEY}beat/{other}")
                    last = seen.get(other)
                    if last is None or last[0] != value:
                        seen[other] = (value, now)
                    elif now - last[1] >= LOST_SECONDS:
                        return self._lost(
                            f"process {other} of {self.cluster.processes} has been silent for "
                            f"{LOST_SECONDS:.0f} s (killed, or its host is gone)"
                        )
                self.last_contact = now
            except Exception as error:  # the coordinator's RPCs fail once process 0 is gone
                if self.stopped.is_set():
                    return
                if time.monotonic() - self.last_contact >= LOST_SECONDS:
                    return self._lost(
                        f"process 0, the coordinator at {self.cluster.coordinator}, cannot be reached "
                        f"({_first_line(error)})"
                    )

    def _watch_contact(self) -> None:
        # A call to a stopped coordinator can hang rather than fail: contact is watched from outside it.
        while not self.stopped.wait(HEARTBEAT_SECONDS):
            if self.cluster.writer or self.lost:
                continue
            if time.monotonic() - self.last_contact >= LOST_SECONDS + HEARTBEAT_SECONDS:
                self._lost(
                    f"process 0, the coordinator at {self.cluster.coordinator}, has not answered for "
                    f"{LOST_SECONDS:.0f} s (killed, or its host is gone)"
                )
                return

    def _lost(self, sentence: str) -> None:
        if self.lost is None and not self.stopped.is_set():
            self.lost = sentence
            self.on_lost(sentence)


def _try_get(client, key: str) -> str | None:
    """A key's value, or None while it has not been set (a process not yet beating)."""
    try:
        return client.key_value_try_get(key)
    except Exception as error:
        if "not_found" in str(error).lower().replace(" ", "_"):
            return None
        raise


# -- standing by a process that JAX may abort ------------------------------------------------

# Set in the environment of a process a supervisor (supervise) started: the supervisor's pid.
ENV_SUPERVISOR = "CHARLM_SUPERVISOR"
# How often a supervised process looks for its supervisor, and the supervisor for signals.
SUPERVISE_SECONDS = 0.5


def can_supervise(cluster: Cluster | None, environ=os.environ) -> bool:
    """Whether this process should train under supervise: not process 0, not already supervised, and on an OS
    that can wait for signals (Linux; elsewhere a lost coordinator ends it with JAX's own message)."""
    import signal

    return (
        cluster is not None and not cluster.writer and ENV_SUPERVISOR not in environ and hasattr(signal, "sigtimedwait")
    )


def supervise(cluster: Cluster, argv: list[str]) -> int:
    """(Processes other than 0) Run this same `charlm` command in a child process and stand by it; its exit status.

    When process 0, the coordinator, is lost, JAX ends every other process
    at once with an abort of its own (its client polls the coordinator for
    errors, and a failed poll is fatal), before this project's heartbeats can
    say anything. So here a small parent, which never starts JAX, outlives
    that abort and says what happened, in one sentence. Signals sent to the
    parent by pid (kill, a launcher) are passed on; a terminal's Ctrl+C or
    hang-up already reaches both, as they share the terminal's process group.
    A child whose parent is gone (the parent killed) ends itself (watch_supervisor).
    """
    import signal
    import subprocess

    forwarded = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    signal.pthread_sigmask(signal.SIG_BLOCK, forwarded)
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "tui_charlm.cli", *argv],
            env=dict(os.environ, **{ENV_SUPERVISOR: str(os.getpid())}),
            preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_UNBLOCK, forwarded),
        )
        while child.poll() is None:
            info = signal.sigtimedwait(forwarded, SUPERVISE_SECONDS)
            if info is not None and info.si_code == _SI_USER and info.si_pid != child.pid:
                child.send_signal(info.si_signo)  # sent to this pid (kill, a launcher): the child must hear it
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, forwarded)
    status = child.returncode
    if status >= 0:
        return status
    if not _reachable(cluster.coordinator):
        print(
            f"charlm: process 0, the coordinator at {cluster.coordinator}, is gone (killed, or its host is gone): "
            f"training stopped; process 0 keeps the run's checkpoints; resume from there with any number of "
            f"processes.",
            file=sys.stderr,
            flush=True,
        )
        return 1
    return 128 - status


# siginfo's si_code for a signal sent by kill() (Linux and the BSDs alike); a terminal's signals come from the kernel.
_SI_USER = 0


def _reachable(coordinator: str, seconds: float = 3.0) -> bool:
    import socket

    host, _, port = coordinator.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=seconds):
            return True
    except OSError:
        return False


def watch_supervisor(environ=os.environ) -> None:
    """In a process supervise started: end it if its supervisor goes (killed), so no trainer is left orphaned."""
    supervisor = environ.get(ENV_SUPERVISOR)
    if not supervisor:
        return

    def watch() -> None:
        while os.getppid() == int(supervisor):
            time.sleep(SUPERVISE_SECONDS)
        end_process(1)

    threading.Thread(target=watch, name="charlm-supervisor-watch", daemon=True).start()


def end_process(status: int) -> None:
    """Leave at once, flushing output first: JAX's own shutdown would wait on the lost process, then abort."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)
