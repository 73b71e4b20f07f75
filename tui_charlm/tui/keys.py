"""Every key of the main screen, written once: the bindings, the help screen and the command palette come from here.

As Textual builds its own keys panel from the bindings, the app builds its
BINDINGS, the help screen's table and the palette's commands from KEYS.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

from tui_charlm.core.generation import MODES
from tui_charlm.core.sampling import RECIPE_TEMPERATURES


@dataclass(frozen=True)
class Key:
    """One thing the user can do: its keys (if any), the action it runs, and how it is described."""

    keys: str | None  # Textual key names, comma-separated; None: only in the palette (or Textual's own key)
    action: str | None  # the action, as Textual writes it ("temperature(0.1)"); None: Textual handles the key
    label: str  # the footer's short label
    text: str  # what it does: a line in the help screen, a command in the palette
    shown: str = ""  # how the help screen and the palette write the keys ("Up / +")
    footer: bool = True
    priority: bool = False
    id: str | None = None
    scope: str = "screen"  # "screen": the main screen's keys; "app": keys that work on every screen


KEYS: tuple[Key, ...] = (
    Key(
        "up,plus",
        "temperature(0.1)",
        "T+",
        "Raise the focused stream's temperature by 0.1",
        "Up / +",
        id="temperature-up",
    ),
    Key(
        "down,minus",
        "temperature(-0.1)",
        "T-",
        "Lower the focused stream's temperature by 0.1 (0 = greedy)",
        "Down / -",
        id="temperature-down",
    ),
    Key(None, None, "", "Focus the next / previous stream", "Tab / Shift+Tab"),
    Key(
        "space",
        "toggle_pause",
        "Pause",
        "Pause or resume training (generation goes on with the last weights)",
        "Space",
        id="pause",
    ),
    Key("s", "save", "Save", "Save a checkpoint now", "s", id="save"),
    Key(
        "d",
        "detach",
        "Detach",
        "Detach: hand training to a headless process (it outlives this terminal) and watch it from here",
        "d",
        id="detach",
    ),
    Key(
        "k",
        "stop_trainer",
        "Stop",
        "Attached (--attach): stop the trainer, which saves first; press twice. q leaves it training",
        "k k",
        id="stop-trainer",
    ),
    Key(
        "R",
        "resume_here",
        "Resume",
        "Attached, with nothing training the run (its trainer was killed, or ended): resume it in a headless "
        "trainer of its own, and watch that one",
        "R",
        id="resume-here",
    ),
    Key("r", "random_seed", "Seed", "New random seed from the corpus", "r", id="random-seed"),
    Key("e", "edit_seed", "Type seed", "Type a seed", "e", id="edit-seed"),
    Key("a", "add_stream", "Add", "Add a stream (a copy of the focused one's settings)", "a", id="add-stream"),
    Key("x", "remove_stream", "Remove", "Remove the focused stream", "x", id="remove-stream"),
    Key("t", "cycle_sampling", "Sampling", "Cycle sampling: temperature, top-k (10), top-p (0.9)", "t", id="sampling"),
    Key("c", "clear", "Clear", "Clear generated text", "c", id="clear"),
    Key("b", "toggle_unit", "Nats/bits", "Show loss in nats or bits per char", "b", id="unit"),
    Key(
        "u", "toggle_surprise", "Surprise", "Colour chars by how surprising they were to the model", "u", id="surprise"
    ),
    Key("i", "inspect", "Odds", "Show or hide the next-char odds of the focused stream", "i", id="inspect"),
    Key("p", "hold", "Hold", "Hold the focused stream (the others go on), or let it run again", "p", id="hold"),
    Key("n", "draw", "Next", "On a held stream: draw one more char", "n", footer=False, id="draw"),
    Key(None, None, "", "On a held stream: write the 1st-9th likeliest char instead of drawing", "1 … 9"),
    *(Key(str(rank), f"write({rank})", f"Write {rank}", "", footer=False, id=f"write-{rank}") for rank in range(1, 10)),
    Key(
        "v",
        "cells",
        "Cells",
        "Cell view: a text coloured by one LSTM cell, the best cell for each feature",
        "v",
        id="cells",
    ),
    Key("o", "overlay", "Compare", "Draw other runs' held-out curves beside this one (pick them)", "o", id="overlay"),
    Key("g", "toggle_axis", "Steps/time", "Loss plot against optimizer steps or training time", "g", id="axis"),
    Key(
        "w",
        "keep_streams",
        "Keep",
        "Write the streams (text, settings, step, seed) to a file in the run folder",
        "w",
        id="keep",
    ),
    Key("h", "samples", "Samples", "Show the run's samples.txt: text generated after each epoch", "h", id="samples"),
    Key(
        None,
        "recipe_temperatures",
        "",
        f"Reset temperatures to the recipe's ({', '.join(map(str, RECIPE_TEMPERATURES))})",
    ),
    *(Key(None, f"generation_mode('{mode}')", "", f"Generation mode: {mode}") for mode in MODES),
    Key("question_mark,f1", "help", "Help", "Help: every key", "? / F1", id="help", scope="app"),
    Key(None, None, "", "Command palette: every action, also those without a key", "Ctrl+P"),
    Key(
        "q",
        "quit",
        "Quit",
        "Quit: stop training after the current batch, save a checkpoint, exit",
        "q / Ctrl+C",
        id="quit",
        scope="app",
    ),
    Key("ctrl+c", "quit", "Quit", "", footer=False, priority=True, id="interrupt", scope="app"),
)


def bindings(scope: str) -> list[Binding]:
    """The BINDINGS of the main screen ("screen") or of the app ("app": on every screen)."""
    return [
        Binding(key.keys, key.action, key.label, show=key.footer, priority=key.priority, id=key.id)
        for key in KEYS
        if key.keys and key.action and key.scope == scope
    ]


def help_table() -> str:
    """The help screen's table of keys, as Markdown."""
    rows = [
        f"| {' / '.join(f'`{part.strip()}`' for part in key.shown.split(' / '))} | {key.text} |"
        for key in KEYS
        if key.shown and key.text
    ]
    return "| key | what it does |\n|---|---|\n" + "\n".join(rows)


def palette_commands() -> list[tuple[str, str, str, str]]:
    """(title, help, action, scope) for each command the palette offers: every action, with its keys if any."""
    return [
        (key.text, f"key: {key.shown}" if key.shown else "no key", key.action, key.scope)
        for key in KEYS
        if key.action and key.text
    ]
