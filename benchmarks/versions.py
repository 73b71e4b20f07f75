"""What a benchmark writes to its results file: the line naming the versions and CPU it ran with, and its lines."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path


def cpu_line() -> str:
    """e.g. 'AMD EPYC (family 26 model 2), 2 CPUs'.

    The host this project is measured on changes between sessions (both "AMD EPYC, 2 cores"): until
    2026-11-26 the default trained at about 25K chars/s, on 2026-11-30 at about 38K. Every results line
    says which CPU it came from.
    """
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    name = fields.get("model name", platform.machine())
    family = f" (family {fields['cpu family']} model {fields.get('model', '?')})" if "cpu family" in fields else ""
    return f"{name}{family}, {usable_cpus()}"


def usable_cpus() -> str:
    """'2 CPUs', or '1 of 2 CPUs' under `taskset -c 0` (what this process may run on)."""
    total = os.cpu_count() or 1
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = total
    return f"{total} CPUs" if usable == total else f"{usable} of {total} CPUs"


def versions_line() -> str:
    """e.g. 'python 3.11.7, tensorflow 2.21.0, keras 3.15.1, numpy 2.4.6, textual 8.2.8; AMD EPYC (...)'
    (read without importing them)."""
    found = [f"python {platform.python_version()}"]
    for name in ("tensorflow", "keras", "numpy", "textual"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join(found) + "; " + cpu_line()


def append_results(out: Path, lines: Iterable[str], *, echo: bool = True) -> None:
    """Append `lines` and a blank line to the results file `out` (made if missing); print them too if `echo`."""
    text = "\n".join(lines)
    if echo:
        print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as handle:
        handle.write(text + "\n\n")
