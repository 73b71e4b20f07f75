"""Training windows cut on the fly from the corpus held once as small integers.

Memory grows with the corpus (one byte per char when the vocabulary fits in
uint8), never with corpus x window x vocabulary: a batch of windows is
gathered from the id array only when it is needed, and one-hot vectors exist
only inside the model (see model.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from tui_charlm.core.config import TrainConfig
from tui_charlm.core.errors import CharlmError

# Corpora up to this many chars are copied into a tensor and gathered by TensorFlow ops; larger ones are
# read from their memory map batch by batch.
IN_GRAPH_CHARS = 64 << 20


@dataclass(frozen=True)
class Split:
    """The corpus ids split into a training part and a held-out part (its end)."""

    train: np.ndarray
    heldout: np.ndarray


def split_ids(ids: np.ndarray, config: TrainConfig) -> Split:
    """Hold out the last `val_fraction` of the corpus; refuse corpora too short for one window each side."""
    window = config.seq_len + 1
    n_heldout = round(len(ids) * config.val_fraction)
    n_train = len(ids) - n_heldout
    if n_train < window or n_heldout < window:
        needed = int(np.ceil(window / min(config.val_fraction, 1 - config.val_fraction)))
        raise CharlmError(
            f"The corpus has {len(ids)} characters, too few for one training window of {window} "
            f"characters on each side of the {config.val_fraction:.0%} held-out split (about {needed} needed); "
            f"use a longer text or a smaller --seq-len."
        )
    return Split(train=ids[:n_train], heldout=ids[n_train:])


class Windows:
    """Batches of (input, target) windows over one id array.

    For sequence models the target is the input shifted by one char (a loss
    at every position); for the recipe it is the single char that follows
    the window.
    """

    def __init__(self, ids: np.ndarray, config: TrainConfig, *, shuffle: bool, replicas: int = 1):
        self.ids = ids
        self.seq_len = config.seq_len
        self.stride = config.stride
        # --batch-size is per device: a strategy over several replicas splits each global batch between them.
        self.batch_size = config.batch_size * replicas
        self.replicas = replicas
        self.every_position = config.predicts_every_position
        self.shuffle = shuffle
        self.seed = config.seed
        # Windows need seq_len inputs plus the char after them.
        self.last_start = len(ids) - self.seq_len - 1
        if self.last_start < 0:
            raise CharlmError(f"Need at least {self.seq_len + 1} characters for one window, have {len(ids)}.")
        if len(range(0, self.last_start + 1, self.stride)) < replicas:
            raise CharlmError(
                f"{len(ids)} characters make fewer windows than the {replicas} devices training "
                f"side by side; use a longer text or fewer devices."
            )

    def starts(self, epoch: int) -> np.ndarray:
        """Window start positions for `epoch`, in the order they are trained on.

        Training order depends only on (seed, epoch), so a resumed run sees
        exactly the batches an uninterrupted one would have.
        """
        if not self.shuffle:
            return np.arange(0, self.last_start + 1, self.stride)
        rng, offset = self._offset(epoch)
        order = np.arange(offset, self.last_start + 1, self.stride)
        # In place: the order rng.permutation(order) gives (so runs saved before resume on the same batches),
        # without a second copy (160 MB each for the 20 million windows of a 1 GB corpus).
        rng.shuffle(order)
        return order

    def _offset(self, epoch: int) -> tuple[np.random.Generator, int]:
        """The epoch's random generator and where its first window starts."""
        rng = np.random.default_rng([self.seed, epoch])
        # Non-overlapping windows start at a random offset each epoch, so
        # window boundaries move and every position is a target once per epoch.
        offset = int(rng.integers(0, min(self.stride, self.last_start + 1))) if self.stride == self.seq_len else 0
        return rng, offset

    def batch_starts(self, epoch: int) -> list[np.ndarray]:
        """Start positions grouped into batches; a final partial batch is dropped unless it is the only one.

        Under a strategy every batch must split evenly between the replicas
        (Keras adds their results elementwise), so the fewer than `replicas`
        windows a short last batch would leave over are not used.
        """
        starts = self.starts(epoch)
        starts = starts[: len(starts) - len(starts) % self.replicas]
        full = len(starts) // self.batch_size
        if full == 0:
            return [starts]
        return [starts[i * self.batch_size : (i + 1) * self.batch_size] for i in range(full)] + (
            [starts[full * self.batch_size :]] if not self.shuffle and len(starts) % self.batch_size else []
        )

    def num_batches(self, epoch: int = 0) -> int:
        """Batches in one epoch (counted, not built: cheap even for a corpus of a billion chars)."""
        offset = self._offset(epoch)[1] if self.shuffle else 0
        windows = len(range(offset, self.last_start + 1, self.stride))
        windows -= windows % self.replicas
        full = windows // self.batch_size
        if full == 0:
            return 1
        return full + (1 if not self.shuffle and windows % self.batch_size else 0)

    def targets_per_batch(self) -> int:
        """Characters scored per full batch (for chars/s)."""
        return self.batch_size * (self.seq_len if self.every_position else 1)

    def gather(self, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The (inputs, targets) arrays for windows starting at `starts`."""
        offsets = np.arange(self.seq_len + 1)
        block = self.ids[starts[:, None] + offsets].astype(np.int32)
        if self.every_position:
            return block[:, :-1], block[:, 1:]
        return block[:, :-1], block[:, -1]

    def iterate(self, epoch: int, skip: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield the batches of `epoch`, skipping the first `skip` (resuming mid-epoch)."""
        for starts in self.batch_starts(epoch)[skip:]:
            yield self.gather(starts)

    def batch_matrix(self, epoch: int, skip: int = 0) -> np.ndarray:
        """The start positions of `epoch`'s training batches as one (batches, batch size) array, from batch `skip`.

        The same batches as `batch_starts`, without a list of one array per
        batch (a corpus of a billion chars has millions of batches). Only for
        shuffled (training) windows, whose batches are all the same size.
        """
        assert self.shuffle, "held-out windows end in a short batch: use batch_starts"
        starts = self.starts(epoch).astype(np.int64, copy=False)
        starts = starts[: len(starts) - len(starts) % self.replicas]
        full = len(starts) // self.batch_size
        if full == 0:  # fewer windows than one batch: they make the only batch
            return starts[None, :][skip:]
        return starts[: full * self.batch_size].reshape(full, self.batch_size)[skip:]

    def tf_dataset(self, epoch: int, skip: int = 0, *, until_epoch: int | None = None):
        """A prefetching tf.data pipeline over the same batches as `iterate(epoch, skip)`.

        With `until_epoch`, the pipeline runs on through every epoch before
        that one (training windows only), so training keeps one iterator for
        the whole run:
        tf.data's iterators can take many seconds, idle, to be torn down
        (Keras' `fit` makes and drops one or two per epoch), which left the
        CPU doing nothing at epoch ends. Each epoch's window order is
        computed in NumPy when the pipeline reaches it (one short Python
        call per epoch); the windows themselves are gathered by TensorFlow
        ops inside the pipeline, so no Python runs per batch. (A Python
        generator here would need the interpreter lock for every batch, and
        would stall training whenever another thread, a generator streaming
        text, say, holds it.)
        """
        import tensorflow as tf

        seq_len, every_position = self.seq_len, self.every_position
        if len(self.ids) <= IN_GRAPH_CHARS:
            if getattr(self, "_ids_tensor", None) is None:
                self._ids_tensor = tf.constant(self.ids)
            ids, offsets = self._ids_tensor, tf.range(seq_len + 1, dtype=tf.int64)

            def windows(batch_starts):
                return tf.cast(tf.gather(ids, batch_starts[:, None] + offsets), tf.int32)
        else:
            # A large corpus stays in its memory map: a copy in a tensor would double its memory.
            # NumPy gathers each batch (one short Python call per batch, under the interpreter lock).
            source, np_offsets = self.ids, np.arange(seq_len + 1)

            def windows(batch_starts):
                block = tf.numpy_function(
                    lambda s: source[s[:, None] + np_offsets].astype(np.int32), [batch_starts], tf.int32, stateful=False
                )
                block.set_shape([None, seq_len + 1])
                return block

        def gather(batch_starts):
            block = windows(batch_starts)
            return (block[:, :-1], block[:, 1:]) if every_position else (block[:, :-1], block[:, -1])

        def epoch_matrix(number):
            number = int(number)
            return self.batch_matrix(number, skip if number == epoch else 0)

        def epoch_batches(number):
            matrix = tf.numpy_function(epoch_matrix, [number], tf.int64, stateful=False)
            matrix.set_shape([None, None])
            return tf.data.Dataset.from_tensor_slices(matrix)

        last = epoch + 1 if until_epoch is None else until_epoch
        dataset = tf.data.Dataset.range(epoch, last).flat_map(epoch_batches)
        # Nothing here is left for tf.data to tune (the map runs in order, the prefetch is fixed), and its
        # autotuning thread sleeps in ever longer waits (up to a minute) that tearing the iterator down sits
        # out, idle: off, the pipeline trains at the same speed and is torn down at once.
        options = tf.data.Options()
        options.autotune.enabled = False
        return dataset.map(gather).prefetch(2).with_options(options)
