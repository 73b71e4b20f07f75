"""TensorFlow start-up, in one place: quiet logs, thread counts, logical CPU devices.

Importing TensorFlow takes seconds, so it happens here, on first use, and
never at import time of the core package. Everything that needs TensorFlow
gets it from `import_tensorflow()`, which configures it once.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from contextlib import contextmanager

from tui_charlm.core.errors import CharlmError

# Split the one physical CPU into this many logical devices before TensorFlow starts. For trying
# `--strategy mirrored` (and testing it) on a machine without GPUs; it does not make training faster.
CPU_DEVICES_ENV = "CHARLM_CPU_DEVICES"

_lock = threading.Lock()
_configured_threads: int | None = None


def logical_cpu_count() -> int:
    """How many logical CPU devices CHARLM_CPU_DEVICES asks for (1 when unset)."""
    value = os.environ.get(CPU_DEVICES_ENV, "").strip()
    if not value:
        return 1
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise CharlmError(f"{CPU_DEVICES_ENV}={value!r} is not a whole number of devices; unset it or give 1, 2, ...")
    return count


def split_cpu(tf) -> None:
    """Configure CHARLM_CPU_DEVICES logical CPUs; must run before TensorFlow's runtime starts."""
    count = logical_cpu_count()
    if count < 2:
        return
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        pass  # the runtime already started in this process; keep its devices


@contextmanager
def _quiet_stderr():
    """Hide what C++ libraries write to fd 2 while TensorFlow loads; replay it if loading fails.

    TensorFlow's absl logging prints CUDA-probing and oneDNN notices before
    TF_CPP_MIN_LOG_LEVEL takes effect, which would spoil the terminal.
    """
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3") != "3":
        yield  # the user asked to see TensorFlow's logs
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            capture.seek(0)
            sys.stderr.write(capture.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


@contextmanager
def _nothing():
    yield


def import_tensorflow(threads: int | None = None, *, quiet: bool = True):
    """Import TensorFlow once, with C++ logging quietened; with `threads`, set its thread counts.

    The run's set-up (core/session.py) passes the run's --threads before
    anything runs on TensorFlow; every other caller passes nothing and only
    imports. Thread counts take effect only before TensorFlow's runtime
    starts (the device line shows the count in effect). `quiet` hides the
    start-up chatter by pointing fd 2 elsewhere while the libraries load;
    pass False where another thread owns the terminal through fd 2 (a
    full-screen UI).
    """
    global _configured_threads
    # TensorFlow prints start-up chatter (CUDA probing, oneDNN notices) on
    # stderr; keep the terminal clean unless the user asked for it.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _lock:
        if "tensorflow" in sys.modules:
            import tensorflow as tf
        else:
            with _quiet_stderr() if quiet else _nothing():
                import keras  # noqa: F401  (loads the rest of the C++ runtime while stderr is quiet)
                import tensorflow as tf
        if _configured_threads is None:
            split_cpu(tf)
            _configured_threads = 0
        if threads is not None and threads != _configured_threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
                _configured_threads = threads
            except RuntimeError:
                pass  # the runtime already started in this process (a second run in one process): keep its count
    return tf
