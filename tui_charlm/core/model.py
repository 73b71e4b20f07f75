"""The two model families: the tuned sequence model and the book's recipe."""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager

import numpy as np

from tui_charlm.core.config import TrainConfig
from tui_charlm.core.devices import layer_dtype, resolve_precision


def build_model(config: TrainConfig, vocab_size: int):
    """A compiled Keras model for `config` over a vocabulary of `vocab_size` chars.

    * default: Embedding -> LSTM stack (every layer returns sequences) ->
      Dense logits at every position; sparse cross-entropy from logits.
    * seed (the recipe): one-hot input -> LSTM(128) -> Dense softmax on the
      last position; RMSprop 0.01, batch 128.

    One-hot input is an identity Embedding that is not trained: it is
    exactly `onehot(x) @ W` without ever materialising one-hot arrays, and it
    saves and loads without custom layers or code.

    With a mixed `precision`, every layer but the output computes in
    bfloat16 or float16 (per-layer policies, so nothing global changes for
    other models in the process); the variables, the output layer, and so
    the logits and the loss, stay float32. For float16 the optimizer also
    scales the loss so small gradients do not underflow (bfloat16 has
    float32's range and needs no scaling). 'auto' is settled for this
    machine first (devices.resolve_precision). Build (and load) inside a
    strategy's scope to train under it.
    """
    from tui_charlm.core.backend import start_backend

    start_backend()
    import keras

    keras.utils.set_random_seed(config.seed)
    config = dataclasses.replace(config, precision=resolve_precision(config.precision))
    dtype = layer_dtype(config.precision)
    inputs = keras.Input(shape=(None,), dtype="int32", name="char_ids")
    if config.embedding_dim == 0:
        x = keras.layers.Embedding(
            vocab_size,
            vocab_size,
            embeddings_initializer="identity",
            trainable=False,
            name="one_hot",
            dtype=dtype,
        )(inputs)
    else:
        x = keras.layers.Embedding(vocab_size, config.embedding_dim, name="embedding", dtype=dtype)(inputs)
    for layer in range(config.layers):
        last = layer == config.layers - 1
        # Defaults for activation, recurrent_activation, recurrent_dropout and
        # unroll keep the layer eligible for the cuDNN kernel on a GPU.
        x = keras.layers.LSTM(
            config.units,
            return_sequences=config.predicts_every_position or not last,
            name=f"lstm_{layer}",
            dtype=dtype,
        )(x)
        if config.dropout and not last:
            x = keras.layers.Dropout(config.dropout, name=f"dropout_{layer}", dtype=dtype)(x)
    if config.dropout and config.predicts_every_position:
        x = keras.layers.Dropout(config.dropout, name="dropout_out", dtype=dtype)(x)
    if config.predicts_every_position:
        outputs = keras.layers.Dense(vocab_size, name="logits", dtype="float32")(x)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    else:
        outputs = keras.layers.Dense(vocab_size, activation="softmax", name="softmax", dtype="float32")(x)
        loss = keras.losses.SparseCategoricalCrossentropy()
    model = keras.Model(inputs, outputs, name=f"charlm_{config.recipe}")
    model.compile(optimizer=make_optimizer(config), loss=loss)
    return model


def make_optimizer(config: TrainConfig):
    """The optimizer named in the config, with gradient clipping when asked, loss-scaled for float16."""
    import keras

    extra = {"clipnorm": config.clipnorm} if config.clipnorm else {}
    if config.weight_decay:
        extra["weight_decay"] = config.weight_decay
    if config.optimizer == "adam":
        optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate, **extra)
    elif config.optimizer == "rmsprop":
        optimizer = keras.optimizers.RMSprop(learning_rate=config.learning_rate, **extra)
    else:
        optimizer = keras.optimizers.SGD(learning_rate=config.learning_rate, momentum=0.9, **extra)
    # Dynamic loss scaling keeps small float16 gradients from flushing to zero.
    return keras.optimizers.LossScaleOptimizer(optimizer) if config.precision == "mixed_float16" else optimizer


def prepare_to_train(model, config: TrainConfig, batch_size: int) -> None:
    """Build what Keras builds on a first `fit` (optimizer, loss and metric state) and its training function.

    The trainer drives `model.train_function` itself rather than `fit`
    (see training.py); this is the set-up `fit` does first.
    """
    inputs = np.zeros((batch_size, config.seq_len), np.int32)
    targets = inputs if config.predicts_every_position else inputs[:, 0]
    build = getattr(model, "_maybe_symbolic_build", None) or model._symbolic_build  # Keras-private; fit calls it
    build(data_batch=(inputs, targets, None))
    model.make_train_function()


def set_dropout(model, rate: float) -> bool:
    """Give every dropout layer this rate; True if one changed (the training function must then be rebuilt).

    Keras reads a Dropout layer's rate when it traces the training function,
    and a rate of 0 draws no random numbers at all, so a run with late
    dropout trains exactly like one without until the switch.
    """
    changed = [layer for layer in _dropout_layers(model) if layer.rate != rate]
    for layer in changed:
        layer.rate = rate
    return bool(changed)


@contextmanager
def dropout_as_configured(model, rate: float):
    """While a model is saved, its dropout layers say the run's configured rate, even before late dropout starts.

    A Dropout layer built with rate 0 has no random stream, so a checkpoint
    saved with 0 could never turn dropout on when resumed; the trainer sets
    the rate wherever it changes anyway (Trainer.dropout_rate).
    """
    layers = _dropout_layers(model)
    active = [layer.rate for layer in layers]
    for layer in layers:
        layer.rate = rate
    try:
        yield
    finally:
        for layer, was in zip(layers, active, strict=True):
            layer.rate = was


def _dropout_layers(model) -> list:
    import keras

    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]


def random_states(model) -> dict[str, list[int]]:
    """Each dropout layer's random-stream state, by layer name (Keras does not save these with a model)."""
    return {
        layer.name: [int(v) for v in layer.seed_generator.state.numpy()]
        for layer in model.layers
        if getattr(layer, "seed_generator", None) is not None
    }


def restore_random_states(model, states: dict[str, list[int]]) -> None:
    """Put back the dropout streams `random_states` recorded, so a resumed run draws the same masks."""
    for layer in model.layers:
        generator = getattr(layer, "seed_generator", None)
        if generator is not None and layer.name in states:
            generator.state.assign(np.asarray(states[layer.name], dtype=generator.state.dtype))
