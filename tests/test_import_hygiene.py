"""The core is headless: importing it (and the CLI) loads neither textual nor rich, nor TensorFlow."""

from __future__ import annotations

import subprocess
import sys

CORE_MODULES = [
    "backend",
    "distributed",
    "atomic",
    "tf_startup",
    "builtin_corpus",
    "cells",
    "cells_page",
    "checkpoints",
    "config",
    "control",
    "corpus",
    "dataset",
    "devices",
    "encoded",
    "errors",
    "hangup",
    "headless",
    "evaluation",
    "events",
    "eventlog",
    "generation",
    "inference",
    "live_weights",
    "model",
    "options",
    "runs",
    "sampling",
    "session",
    "sizing",
    "stopping",
    "training",
    "units",
    "vocab",
]


def loaded_after(statement: str) -> set[str]:
    code = f"{statement}\nimport sys\nprint(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(output.split())


def test_core_loads_no_ui_and_no_tensorflow():
    loaded = loaded_after("; ".join(f"import tui_charlm.core.{name}" for name in CORE_MODULES))
    assert "textual" not in loaded and "rich" not in loaded
    assert "tensorflow" not in loaded and "keras" not in loaded  # heavy imports wait until they are needed


def test_cli_loads_no_textual():
    loaded = loaded_after("import tui_charlm.cli")
    assert "textual" not in loaded and "tensorflow" not in loaded


def test_every_core_module_is_covered_by_this_test():
    from pathlib import Path

    import tui_charlm.core

    on_disk = {p.stem for p in Path(tui_charlm.core.__file__).parent.glob("*.py") if p.stem != "__init__"}
    assert on_disk == set(CORE_MODULES)
