"""The trained network's forward pass in NumPy, built from the Keras model's weights.

Generation and evaluation run here rather than through TensorFlow: one LSTM
step is a few small matrix products, so a char costs microseconds instead of
a `model.predict` call, and the training model is never touched from
another thread. The maths follows Keras exactly: gates in the order
input, forget, cell, output; tanh and sigmoid; Dense on the last LSTM.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tui_charlm.core.errors import CharlmError

# NumPy's OpenBLAS multiplies a few rows (the app's streams) by a matrix quickly while rows x inputs x outputs
# stays within about 2^19 multiply-adds, and 2-5 times more slowly per multiply-add beyond that, where it packs
# the whole matrix on every call: LSTM(256) with 4 streams is 2^20. A larger product is done in column blocks
# within that size, each block a contiguous copy made once per matrix (4 rows by 256 x 1024: 104 us as one
# product, 58 row by row, 26 in two blocks; by 512 x 2048: 403, 216, 95; a generator step of 4 streams of
# LSTM(256) 113 us against 191 with one product; benchmarks/few_rows_product.py, issue 26).
BLOCK_MULTIPLY_ADDS = 1 << 19
# Block widths are a multiple of this many columns (and at least this many).
BLOCK_COLUMNS = 64
# More rows than this (a batch, not streams) make one product, whose packing pays for itself.
BLOCK_MAX_ROWS = 16


class FewRowsProduct:
    """x @ matrix for a 2-D `x` of a few rows, into `out` if given: one product, or column blocks (above)."""

    def __init__(self, matrix: np.ndarray):
        self.matrix = matrix
        # The blocks for each width (one block: the matrix itself); read-only, so threads may share them.
        self._blocks: dict[int, list[np.ndarray]] = {}

    def width(self, rows: int) -> int:
        """The widest block for `rows` rows (the matrix's width: no blocks)."""
        inputs, outputs = self.matrix.shape
        if not 2 <= rows <= BLOCK_MAX_ROWS or rows * inputs * outputs <= BLOCK_MULTIPLY_ADDS:
            return outputs
        return min(outputs, max(BLOCK_COLUMNS, BLOCK_MULTIPLY_ADDS // (rows * inputs) // BLOCK_COLUMNS * BLOCK_COLUMNS))

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        width = self.width(len(x))
        blocks = self._blocks.get(width)
        if blocks is None:
            columns = range(0, self.matrix.shape[1], width)
            blocks = self._blocks[width] = [np.ascontiguousarray(self.matrix[:, i : i + width]) for i in columns]
        if len(blocks) == 1:
            return np.matmul(x, blocks[0], out=out)
        parts = [np.matmul(x, block) for block in blocks]
        if out is None:
            out = np.empty((len(x), self.matrix.shape[1]), parts[0].dtype)
        return np.concatenate(parts, axis=1, out=out)


@dataclass(frozen=True)
class LSTMWeights:
    """One LSTM layer's arrays, as Keras stores them."""

    kernel: np.ndarray  # (inputs, 4 * units)
    recurrent_kernel: np.ndarray  # (units, 4 * units)
    bias: np.ndarray  # (4 * units,)

    @property
    def units(self) -> int:
        return self.recurrent_kernel.shape[0]


@dataclass(frozen=True)
class NetworkWeights:
    """A snapshot of everything the forward pass needs: plain NumPy arrays, safe to hand between threads."""

    embedding: np.ndarray  # (vocab, width); the identity matrix for one-hot models
    lstm: tuple[LSTMWeights, ...]
    dense_kernel: np.ndarray  # (units, vocab)
    dense_bias: np.ndarray  # (vocab,)
    every_position: bool  # trained to predict at every position (stateful use is faithful)
    seq_len: int  # training window length (window mode re-reads this many chars)
    version: int = 0  # increases with each snapshot the trainer publishes

    @property
    def vocab_size(self) -> int:
        return self.dense_kernel.shape[1]

    @property
    def default_mode(self) -> str:
        """'stateful' for models trained at every position; 'window' for the recipe's last-char models."""
        return "stateful" if self.every_position else "window"


def weights_from_model(model, *, seq_len: int, version: int = 0) -> NetworkWeights:
    """Copy a Keras model's weights into a NetworkWeights snapshot.

    Accepts the models built by model.py: Embedding, LSTM layers (tanh /
    sigmoid, with bias), optional Dropout, and a final Dense.
    """
    embedding = None
    lstm: list[LSTMWeights] = []
    dense = None
    every_position = True
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("InputLayer", "Dropout"):
            continue
        if kind == "Embedding":
            embedding = np.array(layer.get_weights()[0], dtype=np.float32)
        elif kind == "LSTM":
            activation = getattr(layer.activation, "__name__", "")
            recurrent = getattr(layer.recurrent_activation, "__name__", "")
            if activation != "tanh" or recurrent != "sigmoid" or not layer.use_bias:
                raise CharlmError(
                    f"Layer {layer.name} uses {activation}/{recurrent} activations or no bias; "
                    "the generator supports tanh/sigmoid LSTMs with bias."
                )
            kernel, recurrent_kernel, bias = (np.array(w, dtype=np.float32) for w in layer.get_weights())
            lstm.append(LSTMWeights(kernel, recurrent_kernel, bias))
            every_position = bool(layer.return_sequences)
        elif kind == "Dense":
            kernel, bias = (np.array(w, dtype=np.float32) for w in layer.get_weights())
            dense = (kernel, bias)
        else:
            raise CharlmError(f"The model has a {kind} layer, which the generator does not support.")
    if embedding is None or not lstm or dense is None:
        raise CharlmError("The model is not a character LSTM built by tui_charlm (expected Embedding, LSTM, Dense).")
    return NetworkWeights(embedding, tuple(lstm), dense[0], dense[1], every_position, seq_len, version)


class Network:
    """The forward pass over a NetworkWeights snapshot; holds no state of its own."""

    def __init__(self, weights: NetworkWeights):
        self.weights = weights
        # sigmoid(z) = 0.5 + 0.5 * tanh(z / 2). Halving the input, forget and output gate columns (exact:
        # a power of two) lets one tanh over all four gates serve the three sigmoids and the cell gate.
        self.layers = []
        for index, layer in enumerate(weights.lstm):
            scale = np.full(4 * layer.units, 0.5, np.float32)
            scale[2 * layer.units : 3 * layer.units] = 1.0
            kernel = layer.kernel * scale
            bias = layer.bias * scale
            if index == 0:
                # Embedding then the first layer's input projection is one table lookup.
                kernel = (weights.embedding @ layer.kernel + layer.bias) * scale
                bias = None
            self.layers.append(
                (
                    kernel.astype(np.float32),
                    None if bias is None else bias.astype(np.float32),
                    (layer.recurrent_kernel * scale).astype(np.float32),
                    layer.units,
                )
            )
        # Each layer's (input, recurrent) products: the first layer's input is a table lookup instead.
        self.products = [
            (None if bias is None else FewRowsProduct(kernel), FewRowsProduct(recurrent))
            for kernel, bias, recurrent, _ in self.layers
        ]
        self._scratch: dict[int, _Scratch] = {}

    def advance(self, ids: np.ndarray, state: list[tuple[np.ndarray, np.ndarray]], logits: np.ndarray) -> None:
        """step(), in place: `state`'s arrays and `logits` are overwritten, and nothing is allocated but the
        partial results of a product done in column blocks (FewRowsProduct).

        The same arithmetic as step(), in the same order. Generation calls this
        once per char, where allocating a dozen small arrays per step costs
        more than the products themselves; scratch buffers are kept per batch
        size.
        """
        scratch = self._scratch.get(len(ids))
        if scratch is None:
            scratch = self._scratch[len(ids)] = _Scratch(len(ids), self.layers)
        x = None
        layers = zip(self.layers, self.products, state, scratch.layers)
        for (kernel, bias, _, _), (input_product, recurrent_product), (h, c), buffers in layers:
            z, gates, product, input_gate, forget_gate, cell_gate, output_gate, projection = buffers
            recurrent_product(h, out=z)
            if bias is None:
                if len(ids) == 1:
                    z += kernel[ids[0]]  # a view: one stream reads its row of the table without a copy
                else:
                    np.take(kernel, ids, axis=0, out=projection)
                    z += projection
            else:
                input_product(x, out=projection)
                projection += bias
                z += projection
            np.tanh(z, out=z)
            np.multiply(z, 0.5, out=gates)
            gates += 0.5
            c *= forget_gate
            np.multiply(input_gate, cell_gate, out=product)
            c += product
            np.tanh(c, out=product)
            np.multiply(output_gate, product, out=h)
            x = h
        np.matmul(x, self.weights.dense_kernel, out=logits)
        logits += self.weights.dense_bias

    def zero_state(self, batch: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(h, c) of zeros for every layer."""
        return [
            (np.zeros((batch, layer.units), np.float32), np.zeros((batch, layer.units), np.float32))
            for layer in self.weights.lstm
        ]

    def step(self, ids: np.ndarray, state: list[tuple[np.ndarray, np.ndarray]]):
        """Advance every row of the batch by one char: (logits, new state)."""
        x = None
        new_state = []
        for (kernel, bias, _, units), (input_product, recurrent_product), (h, c) in zip(
            self.layers, self.products, state
        ):
            z = kernel[ids] if bias is None else input_product(x) + bias
            z += recurrent_product(h)
            t = np.tanh(z)
            gates = 0.5 * t + 0.5  # input, forget, (unused), output
            c = gates[:, units : 2 * units] * c + gates[:, :units] * t[:, 2 * units : 3 * units]
            h = gates[:, 3 * units :] * np.tanh(c)
            new_state.append((h, c))
            x = h
        return x @ self.weights.dense_kernel + self.weights.dense_bias, new_state

    def run(self, ids: np.ndarray, state=None):
        """Feed (batch, time) ids in order: (logits after the last char, final state)."""
        ids = np.asarray(ids)
        if ids.ndim != 2 or ids.shape[1] == 0:
            raise ValueError("run() needs a (batch, time) array with at least one step")
        state = state or self.zero_state(ids.shape[0])
        logits = None
        for t in range(ids.shape[1]):
            logits, state = self.step(ids[:, t], state)
        return logits, state

    def run_all(self, ids: np.ndarray, state=None):
        """Like run(), but return the logits after every char: (batch, time, vocab)."""
        ids = np.asarray(ids)
        state = state or self.zero_state(ids.shape[0])
        out = np.empty((ids.shape[0], ids.shape[1], self.weights.vocab_size), np.float32)
        for t in range(ids.shape[1]):
            out[:, t], state = self.step(ids[:, t], state)
        return out, state


class _Scratch:
    """advance()'s buffers for one batch size: per layer the gate pre-activations, the gates, a product, views."""

    def __init__(self, batch: int, layers):
        self.layers = []
        for _, _, _, units in layers:
            z = np.empty((batch, 4 * units), np.float32)
            gates = np.empty((batch, 4 * units), np.float32)
            self.layers.append(
                (
                    z,
                    gates,
                    np.empty((batch, units), np.float32),
                    gates[:, :units],
                    gates[:, units : 2 * units],
                    z[:, 2 * units : 3 * units],  # the cell gate is tanh itself, not a sigmoid
                    gates[:, 3 * units :],
                    np.empty((batch, 4 * units), np.float32),
                )
            )


class OneStream:
    """Network.advance() for a batch of one stream, bound to that stream's state and logits (updated in place).

    For one stream the cost of a step is the number of NumPy calls, not the
    arithmetic. For the usual one-layer model, step() is a closure over 1-D
    views of the state and buffers made once, with every array a local
    name: the same operations in the same order as Network.step(), in about
    half the time of the batched form. Stacked models step with advance().
    """

    def __init__(self, network: Network, state: list[tuple[np.ndarray, np.ndarray]], logits: np.ndarray):
        self.state, self.logits = state, logits
        self.out = logits[0]  # the next char's logits
        self.step = self._one_layer(network) if len(network.layers) == 1 else self._any_layers(network)

    def _any_layers(self, network: Network):
        ids = np.zeros(1, np.int64)

        def step(char_id: int) -> None:
            ids[0] = char_id
            network.advance(ids, self.state, self.logits)

        return step

    def _one_layer(self, network: Network):
        (table, _, recurrent, units), ((h, c),) = network.layers[0], self.state
        h, c = h[0], c[0]
        z = np.empty(4 * units, np.float32)
        gates = np.empty(4 * units, np.float32)
        product = np.empty(units, np.float32)  # a product, then tanh(c)
        i, f, g, o = gates[:units], gates[units : 2 * units], z[2 * units : 3 * units], gates[3 * units :]
        dense_kernel, dense_bias, out = network.weights.dense_kernel, network.weights.dense_bias, self.out
        dot, add, multiply, tanh = np.dot, np.add, np.multiply, np.tanh

        def step(char_id: int) -> None:
            dot(h, recurrent, out=z)
            add(z, table[char_id], out=z)
            tanh(z, out=z)
            multiply(z, 0.5, out=gates)
            add(gates, 0.5, out=gates)
            multiply(c, f, out=c)
            multiply(i, g, out=product)
            add(c, product, out=c)
            tanh(c, out=product)
            multiply(o, product, out=h)
            dot(h, dense_kernel, out=out)
            add(out, dense_bias, out=out)

        return step
