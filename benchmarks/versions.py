"""One line naming the versions a benchmark ran with, for the results files."""

from __future__ import annotations

import platform
from importlib import metadata


def versions_line() -> str:
    """e.g. 'python 3.11.7, tensorflow 2.21.0, keras 3.15.1, numpy 2.4.6' (read without importing them)."""
    found = [f"python {platform.python_version()}"]
    for name in ("tensorflow", "keras", "numpy", "textual"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join(found)
