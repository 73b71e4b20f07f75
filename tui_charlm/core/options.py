"""Command-line options shared by `charlm train` and `charlm-tui`: one flag per TrainConfig field."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from tui_charlm.core.config import RECIPES, TrainConfig


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (`seq_len` -> `--seq-len`); defaults are None so given flags are known."""
    group = parser.add_argument_group("model and training options")
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        help_text = field.metadata.get("help", "")
        default = getattr(defaults, field.name)
        if field.name == "recipe":
            group.add_argument(flag, choices=tuple(RECIPES), default="default", help=help_text)
        elif isinstance(default, bool):
            group.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{help_text} (default: {'on' if default else 'off'})",
            )
        elif field.metadata.get("start_or_auto"):
            group.add_argument(
                flag, type=epochs_or_auto, default=None, metavar="N|auto", help=f"{help_text} (default: auto)"
            )
        elif field.metadata.get("auto"):
            group.add_argument(
                flag, type=whole_or_auto, default=None, metavar="N|auto", help=f"{help_text} (default: auto)"
            )
        else:
            kind = {int: int, float: float}.get(type(default), str)
            if field.name == "corpus":
                kind = str
            group.add_argument(
                flag,
                type=kind,
                default=None,
                choices=field.metadata.get("choices"),
                metavar=None if field.metadata.get("choices") else field.name.upper(),
                help=f"{help_text} (default: {default})" if default is not None else help_text,
            )
    # The older spelling, kept as a shorthand.
    group.add_argument(
        "--mixed-precision",
        dest="precision",
        action="store_const",
        const="mixed_float16",
        help="same as --precision mixed_float16",
    )


def whole_or_auto(text: str) -> int:
    """A whole number of at least 1, or 'auto' (stored as 0: chosen when the run starts)."""
    if text.strip().lower() == "auto":
        return 0
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:  # 0 is how auto is stored, so a typed 0 must not slip through as auto
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, or 'auto', not {text!r}")
    return number


def epochs_or_auto(text: str) -> int:
    """A whole number of epochs, 0 or more, or 'auto' (stored as -1: decided as the run trains)."""
    if text.strip().lower() == "auto":
        return -1
    try:
        number = int(text)
    except ValueError:
        number = -1
    if number < 0:  # -1 is how auto is stored, so a typed -1 must not slip through as auto
        raise argparse.ArgumentTypeError(f"expected a whole number of epochs (0 or more) or 'auto', not {text!r}")
    return number


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields the user gave explicitly."""
    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if f.name != "recipe" and getattr(args, f.name, None) is not None
    }
