"""Kill a real training run with SIGKILL at random moments, resume it each time, and count what survived.

A third of the kills land at a random moment (start-up, training,
evaluation, saving); a third wait until a checkpoint is being written (its
temporary folder exists) and kill then; a third wait until this start has
written a checkpoint and kill soon after, so the next start has one to
resume from however slow the machine is. Every wait is for something the
run does, never a time that assumes a speed. After each kill the run
directory is opened and its newest checkpoint loaded, as `--resume` would;
the next start resumes it and must continue from exactly that checkpoint,
and so must one last start, which then trains on.

    python benchmarks/fault_injection.py [--kills 30] [--seed 0]

Prints, and appends to benchmarks/results/fault_injection.txt:
kills, successful resumes (continued from the newest checkpoint on disk),
corrupt runs (a run directory that could not be opened or loaded: must be 0).
Exit status 1 if anything was lost or corrupt.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from versions import versions_line  # noqa: E402

CORPUS = HERE.parent.parent / "shared" / "corpora" / "nietzsche.txt"
# A small model that saves often: many checkpoints are in flight during the kills.
TRAIN_FLAGS = [
    "--units",
    "32",
    "--embedding-dim",
    "16",
    "--seq-len",
    "32",
    "--batch-size",
    "16",
    "--threads",
    "1",
    "--steps-per-execution",
    "1",
    "--checkpoint-every",
    "0.5",
    "--epochs",
    "100000",
]


def sample_text(chars: int) -> str:
    if CORPUS.is_file():
        return CORPUS.read_text(encoding="utf-8")[:chars]
    words = [
        "the",
        "of",
        "and",
        "to",
        "in",
        "is",
        "that",
        "it",
        "for",
        "as",
        "with",
        "was",
        "on",
        "be",
        "by",
        "this",
        "not",
        "are",
        "from",
        "or",
        "have",
        "an",
        "they",
        "which",
    ]
    rng = random.Random(0)
    return " ".join(rng.choice(words) for _ in range(chars // 4))[:chars]


class Training:
    """`charlm train` in a subprocess, its output collected by a thread."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tui_charlm.cli", "train", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=60)
        self.reader.join(timeout=10)


# How long a kill waits for what it waits for (a save under way, a checkpoint written) before calling it a hang.
PATIENCE = 300.0


def wait_for_save(run: Path, training: Training) -> bool:
    """True as soon as this start is writing a checkpoint (its temporary folder exists); False if it never does."""
    deadline = time.monotonic() + PATIENCE
    checkpoints = run / "checkpoints"
    while time.monotonic() < deadline and training.process.poll() is None:
        try:
            # this process's own save in progress (a killed one may have left its temporary folder behind)
            if any(
                p.name.startswith(".tmp-") and p.name.endswith(f"-{training.process.pid}")
                for p in checkpoints.iterdir()
            ):
                return True
        except OSError:
            pass
        time.sleep(0.002)
    return False


def wait_for_checkpoint(training: Training) -> bool:
    """True as soon as this start has written a checkpoint (it printed the line); False if it never does."""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline and training.process.poll() is None:
        if any(line.startswith("checkpoint (") for line in list(training.lines)):
            return True
        time.sleep(0.01)
    return False


def resumed_at(training: Training) -> int | None:
    """The step this start said it resumed from, or None if it had not said so."""
    head = next((line for line in training.lines if line.startswith(("resuming", "training"))), "")
    found = re.search(r"step (\d+)", head) if head.startswith("resuming") else None
    return int(found.group(1)) if found else None


def newest_loadable(run: Path) -> tuple[str, int | None]:
    """('ok', step of the checkpoint --resume would use, None if none yet) or ('corrupt', None) or ('absent', None)."""
    from tui_charlm.core.checkpoints import RunDirectory
    from tui_charlm.core.errors import CharlmError

    if not (run / "run.json").exists():
        return "absent", None  # killed while the directory was being created: nothing to resume yet
    try:
        directory = RunDirectory.open(run)
        _, checkpoint = directory.load_model(compile=False)
    except CharlmError as error:
        print(f"  corrupt: {error}", flush=True)
        return "corrupt", None
    return "ok", (checkpoint.state.step if checkpoint else None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-delay", type=float, default=8.0, help="latest random kill, seconds after start")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "fault_injection.txt")
    parser.add_argument("--no-record", action="store_true", help="do not append to the results file")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="charlm-faults-"))
    env = dict(os.environ, KERAS_HOME=str(tmp / "keras"), CHARLM_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3")
    corpus = tmp / "corpus.txt"
    corpus.write_text(sample_text(200_000), encoding="utf-8")
    run = tmp / "run"
    from tui_charlm.core.tf_startup import import_tensorflow

    import_tensorflow(1)
    kills = resumes = corrupt = lost = 0
    expected: int | None = None  # the step the next start must resume from
    started_at = time.monotonic()
    try:
        for index in range(args.kills):
            fresh = not (run / "run.json").exists()
            if fresh:
                shutil.rmtree(run, ignore_errors=True)
                training = Training(["--corpus", str(corpus), "--run-dir", str(run), *TRAIN_FLAGS], env)
            else:
                training = Training(["--resume", str(run)], env)
            kind = ("at a random moment", "while saving", "after a checkpoint")[index % 3]
            if kind == "while saving":
                if not wait_for_save(run, training):
                    kind = "(no save began)"
            elif kind == "after a checkpoint":
                if wait_for_checkpoint(training):
                    time.sleep(rng.uniform(0.0, 0.5))
                else:
                    kind = "(no checkpoint came)"
            else:
                time.sleep(rng.uniform(0.05, args.max_delay))
            training.kill()
            kills += 1
            head = next((line for line in training.lines if line.startswith(("resuming", "training"))), "")
            if not fresh and head.startswith("resuming"):
                step = resumed_at(training)
                if expected is None or step == expected:
                    resumes += 1
                else:
                    lost += 1
                    print(f"  resumed at step {step}, but the newest checkpoint was step {expected}", flush=True)
            elif not fresh and training.process.returncode not in (-signal.SIGKILL,):
                lost += 1
                print("  resume failed:\n    " + "\n    ".join(training.lines[-5:]), flush=True)
            status, step = newest_loadable(run)
            corrupt += status == "corrupt"
            if status == "corrupt":
                break
            expected = step if status == "ok" else None
            print(
                f"kill {kills:>2} {kind:<20} {head[:60] or '(before training started)'}; newest checkpoint: "
                f"{'none yet' if step is None else f'step {step}'}",
                flush=True,
            )
        # One last start must resume from the newest checkpoint and train on.
        final = Training(["--resume", str(run)], env) if (run / "run.json").exists() else None
        if final is not None:
            deadline = time.monotonic() + PATIENCE
            while time.monotonic() < deadline and not any(" batch " in line for line in final.lines):
                if final.process.poll() is not None:
                    break
                time.sleep(0.1)
            trained_on = any(" batch " in line for line in final.lines)
            final.process.send_signal(signal.SIGTERM)
            final.process.wait(timeout=PATIENCE)
            step = resumed_at(final)
            if not trained_on or (expected is not None and step != expected):
                lost += 1
                print("  the final resume did not go on:\n    " + "\n    ".join(final.lines[-5:]), flush=True)
            elif expected is not None:
                resumes += 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = (
        f"kills: {kills}, successful resumes: {resumes} (continued from the newest checkpoint), "
        f"lost or failed resumes: {lost}, corrupt runs: {corrupt} "
        f"({time.monotonic() - started_at:.0f} s)"
    )
    print(summary)
    if not args.no_record:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a") as handle:
            handle.write(
                f"# {time.strftime('%Y-%m-%d %H:%M')}  {versions_line()};\n"
                f"# command: python benchmarks/fault_injection.py "
                f"--kills {args.kills} --seed {args.seed}\n{summary}\n\n"
            )
    return 1 if corrupt or lost else 0


if __name__ == "__main__":
    sys.exit(main())
