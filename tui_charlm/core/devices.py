"""Where training runs: the distribution strategy, mixed precision, and a one-line description of both.

The engines are TensorFlow's: `tf.distribute.MirroredStrategy` copies the
model onto every visible GPU and averages their gradients; Keras'
`mixed_float16` dtype policy computes in float16 while the variables, the
logits and the loss stay float32. On a GPU, Keras runs an LSTM on the cuDNN
kernel when the layer keeps cuDNN's conditions; `describe_training` says
whether it does.
"""

from __future__ import annotations

import contextlib

from tui_charlm.core.backend import jax_gpu_name, jax_single_threaded, on_jax
from tui_charlm.core.errors import CharlmError
from tui_charlm.core.tf_startup import import_tensorflow

# Keras cannot run several batches per call under MirroredStrategy (keras-team/keras#19246: "You must
# feed a value for placeholder tensor"), so mirrored training runs one batch per call.
MIRRORED_STEPS_PER_EXECUTION = 1


def make_strategy(name: str, log=lambda message: None):
    """A tf.distribute strategy for `name` (one of config.STRATEGIES), or None for TensorFlow's default."""
    if name == "default":
        return None
    if on_jax():
        raise CharlmError(
            "--strategy mirrored is TensorFlow's (tf.distribute); Keras runs on JAX here (KERAS_BACKEND=jax), "
            "where one process trains on one device: drop --strategy, or run on TensorFlow."
        )
    tf = import_tensorflow()
    gpus = tf.config.list_logical_devices("GPU")
    devices = [device.name for device in gpus] or [device.name for device in tf.config.list_logical_devices("CPU")]
    if len(devices) == 1:
        log(
            "Note: --strategy mirrored sees only one device, so it trains on one replica "
            f"({'one GPU' if gpus else 'the CPU'})."
        )
    return tf.distribute.MirroredStrategy(devices=devices)


def strategy_scope(strategy):
    """The scope models must be built and loaded in to train under `strategy` (nothing for the default)."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def replicas(model) -> int:
    """How many copies of the model train side by side (1 without a strategy)."""
    strategy = getattr(model, "distribute_strategy", None)
    return int(getattr(strategy, "num_replicas_in_sync", 1) or 1)


def layer_dtype(precision: str) -> str | None:
    """The dtype policy for every layer but the logits (None: Keras' float32 default); `precision` is not 'auto'."""
    return None if precision == "float32" else precision


def cpu_has_bfloat16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU multiplies bfloat16 in hardware (x86 AVX512-BF16 or AMX-BF16), as Linux reports it."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as file:
            for line in file:
                if line.startswith("flags"):
                    flags = set(line.partition(":")[2].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass  # not Linux, or no /proc: assume not
    return False


def resolve_precision(precision: str) -> str:
    """'auto' made concrete for this machine: mixed_bfloat16 on a CPU with bfloat16 hardware and no GPU, else float32.

    On such CPUs oneDNN runs the LSTM's matrix products in bfloat16 at about
    1.3x the float32 speed (benchmarks/precision_speed.py);
    on a GPU, mixed_float16 stays the user's choice (--precision).
    """
    if precision != "auto":
        return precision
    if on_jax():
        # XLA's CPU bfloat16 ran at about 0.6x its float32 where TensorFlow's oneDNN gains 1.3x (issue 27's probe).
        return "float32"
    tf = import_tensorflow()
    if not tf.config.list_physical_devices("GPU") and cpu_has_bfloat16():
        return "mixed_bfloat16"
    return "float32"


def gpu_visible() -> bool:
    """True when Keras' backend sees a GPU to train on."""
    if on_jax():
        return jax_gpu_name() is not None
    return bool(import_tensorflow().config.list_logical_devices("GPU"))


def precision_tag(precision: str) -> str | None:
    """How the device line names a precision ('mixed bf16'), or None for float32."""
    return {"mixed_float16": "mixed fp16", "mixed_bfloat16": "mixed bf16"}.get(precision)


def cudnn_conditions(layer) -> list[str]:
    """Why a Keras LSTM layer cannot use the cuDNN kernel; an empty list when it can."""
    reasons = []
    if getattr(layer.activation, "__name__", "") != "tanh":
        reasons.append("activation is not tanh")
    if getattr(layer.recurrent_activation, "__name__", "") != "sigmoid":
        reasons.append("recurrent activation is not sigmoid")
    if getattr(layer, "unroll", False):
        reasons.append("unrolled")
    if not getattr(layer, "use_bias", True):
        reasons.append("no bias")
    if getattr(layer.cell, "recurrent_dropout", 0):
        reasons.append("recurrent dropout")
    if getattr(layer, "use_cudnn", "auto") is False:
        reasons.append("cuDNN turned off")
    return reasons


def describe_training(model, *, precision: str = "float32") -> str:
    """What trains `model`, for the status line and the CLI: device(s), strategy, cuDNN and precision.

    e.g. 'CPU', 'GPU: NVIDIA H100 80GB HBM3 (cuDNN)', '2 GPUs mirrored: NVIDIA H100 80GB HBM3
    (cuDNN, mixed fp16)', '2 logical CPUs mirrored', 'CPU (mixed bf16)', 'CPU (1 thread)' (--threads, as
    TensorFlow reports it in effect); on JAX the same with the backend named: 'CPU (JAX)', 'GPU: NVIDIA H200
    (JAX, cuDNN)'.
    """
    if on_jax():
        return _describe_jax(model, precision)
    tf = import_tensorflow()
    mirrored, devices, on_gpu = _placement(model, tf)
    tags = []
    if on_gpu:
        reasons = sorted(
            {reason for layer in model.layers if type(layer).__name__ == "LSTM" for reason in cudnn_conditions(layer)}
        )
        if not tf.test.is_built_with_cuda():
            reasons.append("TensorFlow built without CUDA")
        tags.append("cuDNN" if not reasons else f"no cuDNN: {', '.join(reasons)}")
    if precision_tag(precision):
        tags.append(precision_tag(precision))
    threads = tf.config.threading.get_intra_op_parallelism_threads()
    if threads:
        tags.append(f"{threads} thread{'s' if threads > 1 else ''}")
    if on_gpu:
        where = gpu_name(tf)
        where = f"{len(devices)} GPUs mirrored: {where}" if mirrored and len(devices) > 1 else f"GPU: {where}"
    elif mirrored and len(devices) > 1:
        where = f"{len(devices)} logical CPUs mirrored"
    else:
        where = "CPU"
    return where + (f" ({', '.join(tags)})" if tags else "")


def _describe_jax(model, precision: str) -> str:
    gpu = jax_gpu_name()
    tags = ["JAX"]
    if gpu is not None:
        reasons = sorted(
            {reason for layer in model.layers if type(layer).__name__ == "LSTM" for reason in cudnn_conditions(layer)}
        )
        tags.append("cuDNN" if not reasons else f"no cuDNN: {', '.join(reasons)}")
    if precision_tag(precision):
        tags.append(precision_tag(precision))
    if gpu is None and jax_single_threaded():
        tags.append("1 thread")
    return f"{'GPU: ' + gpu if gpu else 'CPU'} ({', '.join(tags)})"


def trains_on_gpu(model) -> bool:
    """True when `model` trains on GPUs (its strategy's devices, or the visible GPU without a strategy)."""
    if on_jax():
        return jax_gpu_name() is not None
    return _placement(model, import_tensorflow())[2]


def _placement(model, tf) -> tuple[bool, list[str], bool]:
    """(mirrored?, the strategy's devices, on a GPU?) for `model`."""
    strategy = getattr(model, "distribute_strategy", None)
    mirrored = isinstance(strategy, tf.distribute.MirroredStrategy)
    devices = list(strategy.extended.worker_devices) if mirrored else []
    on_gpu = (
        any("GPU" in device.upper() for device in devices) if mirrored else bool(tf.config.list_logical_devices("GPU"))
    )
    return mirrored, devices, on_gpu


def gpu_name(tf) -> str:
    """The first GPU's product name, or its TensorFlow device name when the driver gives none."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "none"
    try:
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name") or gpus[0].name
    except Exception:  # details are best effort; some drivers give none
        return gpus[0].name
