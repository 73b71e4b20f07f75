"""charlm-tui as a user meets it, on a real pseudo-terminal: first frame, key latency, training speed.

* first frame: seconds from launching `charlm-tui` until its first screen
  (the LOADING status) has been written to the terminal; several launches.
* key latency: while training runs, Up and Down are pressed alternately on
  the focused stream and the time until the new title (T=0.3 / T=0.2)
  reaches the terminal is measured; median and 95th percentile.
* training throughput: the same settings trained for the same budget by
  `charlm train` (headless) and by `charlm-tui`, alternately, and compared as
  scored chars per second of training (steps x chars per step / training
  seconds, read from each run's last checkpoint).

    python benchmarks/tui_responsiveness.py [--budget 60] [--rounds 2] [--presses 60] [--inside]

With --inside, the app trains with the next-char inspector (i) and the cell
view (v) open, and the keys measured are Right/Left changing the cell shown.

Results are appended to benchmarks/results/tui_responsiveness.txt.
Targets: first frame <= 1.5 s; key latency p95 < 100 ms; in-app training >= 90% of headless.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import re
import select
import shlex
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from versions import append_results, versions_line  # noqa: E402

CORPUS = HERE.parent.parent / "shared" / "corpora" / "nietzsche.txt"
BIN = Path(sys.executable).parent


class Terminal:
    """A program on a pseudo-terminal of a given size, with its output collected as it arrives."""

    def __init__(self, command: list[str], columns: int = 120, rows: int = 40, env: dict | None = None):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        environment = dict(os.environ, TERM="xterm-256color", COLUMNS=str(columns), LINES=str(rows), **(env or {}))
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            command, stdin=slave, stdout=slave, stderr=slave, env=environment, start_new_session=True
        )
        os.close(slave)
        self.output = bytearray()

    def read(self, timeout: float) -> bool:
        """Collect output for up to `timeout` seconds; False once the program has closed the terminal."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.master, 1 << 16)
        except OSError:
            return False
        self.output.extend(data)
        return bool(data)

    def wait_for(
        self, needle: bytes, start: int = 0, timeout: float = 60.0, began: float | None = None
    ) -> float | None:
        """Seconds (since `began`, default now) until `needle` appears in the output after offset `start`, or None."""
        began = time.perf_counter() if began is None else began
        while time.perf_counter() - began < timeout:
            if self.output.find(needle, start) >= 0:
                return time.perf_counter() - began
            if not self.read(0.002):
                return None
        return None

    def send(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self, timeout: float = 60.0) -> int | None:
        self.send(b"q")
        deadline = time.perf_counter() + timeout
        while self.process.poll() is None and time.perf_counter() < deadline:
            self.read(0.05)
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        os.close(self.master)
        return self.process.returncode


def first_frame(runs: int, settings: list[str]) -> list[float]:
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            terminal = Terminal([str(BIN / "charlm-tui"), *settings, "--run-dir", f"{tmp}/run"])
            seconds = terminal.wait_for(b"LOADING", timeout=30, began=terminal.started)
            terminal.close()
            if seconds is not None:
                times.append(seconds)
    return times


CELL = re.compile(rb"cell #(\d+) of (\d+)")


def open_inside(terminal: Terminal) -> None:
    """Open the next-char inspector (i) and the cell view (v) over a training app, and wait until both show."""
    terminal.send(b"i")
    terminal.wait_for(b"entropy", timeout=30)
    terminal.send(b"v")
    terminal.wait_for(b" of ", timeout=30)
    terminal.wait_for(b"tanh of the cell state", timeout=30)


def key_latency(presses: int, settings: list[str], inside: bool = False) -> list[float]:
    """Seconds from a key to its effect on screen: Up/Down on a stream's temperature, or (inside) Right/Left
    changing the cell shown in the cell view, opened over the inspector."""
    with tempfile.TemporaryDirectory() as tmp:
        terminal = Terminal([str(BIN / "charlm-tui"), *settings, "--run-dir", f"{tmp}/run"])
        terminal.wait_for(b"TRAINING", timeout=120)
        terminal.wait_for(b"epoch 1/", timeout=60)
        if inside:
            open_inside(terminal)
            time.sleep(1)
            cell, units = map(int, CELL.findall(bytes(terminal.output))[-1])
        time.sleep(3)  # let training settle into its stride
        latencies = []
        for index in range(presses):
            if inside:
                step = 1 if index % 2 == 0 else -1
                cell = (cell + step) % units
                key, expected = (b"\x1b[C" if step == 1 else b"\x1b[D"), f"cell #{cell} of {units}".encode()
            else:
                key, expected = (b"\x1b[A", b"T=0.3") if index % 2 == 0 else (b"\x1b[B", b"T=0.2")
            while terminal.read(0.0) and select.select([terminal.master], [], [], 0)[0]:
                pass  # drain what is already there
            start = len(terminal.output)
            terminal.send(key)
            seconds = terminal.wait_for(expected, start=start, timeout=5)
            latencies.append(seconds if seconds is not None else 5.0)
            time.sleep(0.15)
        terminal.close()
    return latencies


def throughput_from_run(run_dir: Path) -> float:
    """Scored chars per training second, from the run's newest checkpoint."""
    latest = json.loads((run_dir / "latest.json").read_text())
    state = json.loads((run_dir / "checkpoints" / latest["checkpoint"] / "state.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    return state["step"] * config["batch_size"] * config["seq_len"] / state["elapsed"]


def training_pair(
    budget: float, settings: list[str], app_first: bool = False, inside: bool = False
) -> tuple[float, float]:
    """(headless, in-app) chars/s for the same settings and budget; `app_first` swaps the order they run in.

    With `inside`, the app trains with the next-char inspector and the cell view open.
    """
    with tempfile.TemporaryDirectory() as tmp:
        headless, in_app = Path(tmp) / "headless", Path(tmp) / "app"

        def run_headless():
            subprocess.run(
                [str(BIN / "charlm"), "train", *settings, "--time-budget", str(budget), "--run-dir", str(headless)],
                check=True,
                capture_output=True,
            )

        def finished(terminal: Terminal) -> bool:
            """The app says FINISHED; or, with the cell view over the status bar, the run saved its last checkpoint."""
            if b"FINISHED" in terminal.output[-4096:]:
                return True
            try:
                latest = json.loads((in_app / "latest.json").read_text())["checkpoint"]
                state = json.loads((in_app / "checkpoints" / latest / "state.json").read_text())
                return state["elapsed"] >= budget
            except (OSError, ValueError, KeyError):
                return False

        def run_app():
            terminal = Terminal(
                [str(BIN / "charlm-tui"), *settings, "--time-budget", str(budget), "--run-dir", str(in_app)]
            )
            # Wait the way a person does, not by polling: the app's training competes for the same two cores, and
            # re-reading a growing screen log every few milliseconds took a large share of one (the headless side
            # has no such watcher).
            deadline = time.perf_counter() + budget * 3 + 120
            if inside:
                terminal.wait_for(b"TRAINING", timeout=120)
                open_inside(terminal)
            while not finished(terminal) and time.perf_counter() < deadline:
                if not terminal.read(0.25):
                    break
                del terminal.output[:-8192]  # only the screen's tail matters here
            terminal.close()

        for run in (run_app, run_headless) if app_first else (run_headless, run_app):
            run()
        return throughput_from_run(headless), throughput_from_run(in_app)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--presses", type=int, default=60)
    parser.add_argument("--launches", type=int, default=5)
    parser.add_argument(
        "--train-options",
        default="",
        help="extra model and training options for both sides, e.g. '--steps-per-execution 1'",
    )
    parser.add_argument("--throughput-only", action="store_true", help="skip the first-frame and key measurements")
    parser.add_argument(
        "--inside", action="store_true", help="with the next-char inspector and the cell view open (keys: Right/Left)"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "tui_responsiveness.txt")
    args = parser.parse_args()
    if not CORPUS.is_file():
        print(f"{CORPUS} not found; skipping", file=sys.stderr)
        return 0
    settings = ["--corpus", str(CORPUS), "--lowercase", "--checkpoint-every", "0", *shlex.split(args.train_options)]
    command = (
        f"python benchmarks/tui_responsiveness.py --budget {args.budget:g} --rounds {args.rounds} "
        + (f"--train-options {shlex.quote(args.train_options)} " if args.train_options else "")
        + ("--throughput-only" if args.throughput_only else f"--presses {args.presses} --launches {args.launches}")
        + (" --inside" if args.inside else "")
    )
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')}  {versions_line()};  default model on lower-cased nietzsche"
        f"{' ' + args.train_options if args.train_options else ''}; 120x40 pseudo-terminal"
        f"{'; inspector and cell view open' if args.inside else ''}",
        f"# command: {command}",
    ]
    if not args.throughput_only:
        frames = first_frame(args.launches, settings)
        latencies = key_latency(args.presses, settings, inside=args.inside)
        p95 = sorted(latencies)[max(0, round(0.95 * len(latencies)) - 1)]
        lines += [
            f"first frame: median {statistics.median(frames):.2f} s, max {max(frames):.2f} s over {len(frames)} "
            f"launches (target <= 1.5 s: {'met' if max(frames) <= 1.5 else 'MISSED'})",
            f"key to screen while training: median {statistics.median(latencies) * 1000:.0f} ms, "
            f"p95 {p95 * 1000:.0f} ms "
            f"over {len(latencies)} presses (target p95 < 100 ms: {'met' if p95 < 0.1 else 'MISSED'})",
        ]
    pairs = [
        training_pair(args.budget, settings, app_first=bool(i % 2), inside=args.inside) for i in range(args.rounds)
    ]
    headless = statistics.mean(p[0] for p in pairs)
    in_app = statistics.mean(p[1] for p in pairs)
    rounds = ", ".join(f"{app / alone:.1%}" for alone, app in pairs)
    lines.append(
        f"training: headless {headless:,.0f} chars/s, in the app {in_app:,.0f} chars/s = {in_app / headless:.1%} "
        f"(target >= 90%: {'met' if in_app / headless >= 0.9 else 'MISSED'}); {args.rounds} rounds of "
        f"{args.budget:g} s ({rounds})"
    )
    append_results(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
