"""Headless core: corpus, vocabulary, dataset, model, training, sampling, checkpoints.

Nothing under this package imports textual or rich, and nothing imports
TensorFlow at module import time: the heavy imports happen inside the
functions that need them, so a UI can paint before TensorFlow has loaded.
"""

from tui_charlm.core.errors import CharlmError

__all__ = ["CharlmError"]
