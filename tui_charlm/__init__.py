"""tui_charlm: a character-level LSTM language model you can watch learn."""

__version__ = "0.1.0"
