"""`weights.npz`: the newest weights of a run that is training, for viewers in other processes.

Not a checkpoint (no optimizer state, nothing to resume from): float32
NumPy arrays of the forward pass, replaced every few seconds by the trainer
with a rename, so a reader finds the previous file or the next one, never a
mixture. It is not flushed to disk on every write (a checkpoint is; this is
for watching), so it costs training next to nothing.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from tui_charlm.core.atomic import atomic_write_bytes
from tui_charlm.core.errors import CharlmError
from tui_charlm.core.inference import LSTMWeights, NetworkWeights

WEIGHTS_FILE = "weights.npz"
# The trainer replaces the file at most this often, in seconds.
WEIGHTS_SECONDS = 3.0


def encode_weights(weights: NetworkWeights) -> bytes:
    """The snapshot as the bytes of an .npz file."""
    arrays = {
        "embedding": weights.embedding,
        "dense_kernel": weights.dense_kernel,
        "dense_bias": weights.dense_bias,
        "meta": np.array([len(weights.lstm), int(weights.every_position), weights.seq_len, weights.version], np.int64),
    }
    for index, layer in enumerate(weights.lstm):
        arrays[f"lstm{index}_kernel"] = layer.kernel
        arrays[f"lstm{index}_recurrent_kernel"] = layer.recurrent_kernel
        arrays[f"lstm{index}_bias"] = layer.bias
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(value) for name, value in arrays.items()})
    return buffer.getvalue()


def publish_weights(run_path: Path, weights: NetworkWeights) -> None:
    """Replace the run's weights.npz with `weights` (atomically, by rename)."""
    # Not fsynced: it is for watching, replaced every few seconds; the checkpoints are the durable copy.
    atomic_write_bytes(Path(run_path) / WEIGHTS_FILE, encode_weights(weights), durable=False)


def read_weights(run_path: Path) -> NetworkWeights | None:
    """The newest published weights of a run; None when it has none; CharlmError when the file is damaged."""
    path = Path(run_path) / WEIGHTS_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise CharlmError(f"Cannot read {path}: {error.strerror or error}.") from None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            layers, every_position, seq_len, version = (int(v) for v in arrays["meta"])
            lstm = tuple(
                LSTMWeights(
                    arrays[f"lstm{i}_kernel"].astype(np.float32),
                    arrays[f"lstm{i}_recurrent_kernel"].astype(np.float32),
                    arrays[f"lstm{i}_bias"].astype(np.float32),
                )
                for i in range(layers)
            )
            weights = NetworkWeights(
                arrays["embedding"].astype(np.float32),
                lstm,
                arrays["dense_kernel"].astype(np.float32),
                arrays["dense_bias"].astype(np.float32),
                bool(every_position),
                seq_len,
                version,
            )
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise CharlmError(f"{path} is damaged ({error}); it is replaced as the run trains on.") from None
    _check_shapes(weights, path)
    return weights


def _check_shapes(weights: NetworkWeights, path: Path) -> None:
    """Refuse arrays that do not chain into a forward pass (a file from something else)."""
    width = weights.embedding.shape[1] if weights.embedding.ndim == 2 else -1
    ok = bool(weights.lstm) and weights.embedding.ndim == 2
    for layer in weights.lstm:
        units = layer.recurrent_kernel.shape[0] if layer.recurrent_kernel.ndim == 2 else -1
        ok = ok and layer.kernel.shape == (width, 4 * units) and layer.recurrent_kernel.shape == (units, 4 * units)
        ok = ok and layer.bias.shape == (4 * units,)
        width = units
    ok = ok and weights.dense_kernel.shape == (width, weights.embedding.shape[0])
    ok = ok and weights.dense_bias.shape == (weights.embedding.shape[0],)
    if not ok:
        raise CharlmError(f"{path} does not hold a character LSTM's weights.")
