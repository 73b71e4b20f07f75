"""A corpus larger than a laptop would like: encode time, cache reuse, and peak memory while training.

Builds the nietzsche text repeated to `--size` bytes (default 1 GB) in a
temporary folder, then, each in a fresh process so peak memory is its own:

1. encodes it (the streaming pass into the cached memory-mapped id file);
2. opens it again (the cache is reused: no re-encoding);
3. trains the default model on it for `--train-seconds` with `charlm train`
   (windows read from the memory map).

Peak memory is the process's maximum resident set size (os.wait4). Target:
under 2 GB for a 1 GB corpus.

    python benchmarks/large_corpus.py [--size 1e9] [--train-seconds 60]

Results are appended to benchmarks/results/large_corpus.txt.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from versions import append_results, versions_line  # noqa: E402

CORPUS = HERE.parent.parent / "shared" / "corpora" / "nietzsche.txt"
TARGET_BYTES = 2 << 30

ENCODE = """
import sys, time
from tui_charlm.core.corpus import load_corpus
started = time.perf_counter()
corpus = load_corpus(sys.argv[1], log=lambda _: None)
print(f"{time.perf_counter() - started:.2f} {len(corpus)} {len(corpus.vocab)} {type(corpus.ids).__name__}")
"""


def peak_of(command: list[str], env: dict[str, str]) -> tuple[str, float, float]:
    """Run `command`, returning (stdout, wall seconds, peak resident MB) for that process alone."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command[:5])} failed ({process.returncode}):\n{text[-3000:]}")
    return text, wall, usage.ru_maxrss / 1024  # Linux reports KB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=float, default=1e9, help="corpus bytes")
    parser.add_argument("--train-seconds", type=float, default=60)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "large_corpus.txt")
    args = parser.parse_args()
    if not CORPUS.is_file():
        print(f"{CORPUS} not found; skipping", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory(prefix="charlm-large-") as tmp:
        env = dict(os.environ, KERAS_HOME=str(Path(tmp) / "keras"), CHARLM_OFFLINE="1")
        big = Path(tmp) / "big.txt"
        piece = CORPUS.read_bytes()
        size = int(args.size)
        with open(big, "wb") as handle:
            written = 0
            while written < size:
                chunk = piece[: size - written]
                handle.write(chunk)
                written += len(chunk)
        python = [sys.executable, "-c", ENCODE, str(big)]
        out, _wall, encode_peak = peak_of(python, env)
        encode_seconds, chars, vocab, kind = out.split()[-4:]
        out, _reuse_wall, reuse_peak = peak_of(python, env)
        reuse_seconds = out.split()[-4]
        train = [
            sys.executable,
            "-m",
            "tui_charlm.cli",
            "train",
            "--corpus",
            str(big),
            "--run-dir",
            str(Path(tmp) / "run"),
            "--time-budget",
            str(args.train_seconds),
            "--checkpoint-every",
            "0",
        ]
        out, train_wall, train_peak = peak_of(train, env)
        steps = [line for line in out.splitlines() if " batch " in line]
        last = steps[-1] if steps else "(no batch line)"
    gb = size / 1e9
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')}  {versions_line()};  "
        f"nietzsche repeated to {gb:.2f} GB ({int(chars):,} chars, "
        f"{vocab} distinct, ids as {kind})",
        f"# command: python benchmarks/large_corpus.py --size {args.size:g} --train-seconds {args.train_seconds:g}",
        f"encode (first run):  {float(encode_seconds):7.1f} s   peak memory {encode_peak:7.0f} MB",
        f"open (cache reused): {float(reuse_seconds):7.2f} s   peak memory {reuse_peak:7.0f} MB",
        f"train {args.train_seconds:g} s (default model), whole process: peak memory {train_peak:7.0f} MB "
        f"({train_wall:.0f} s wall including start-up); last progress line: {last.strip()}",
        f"target: peak memory under {TARGET_BYTES / 2**30:.0f} GB: "
        f"{'met' if max(encode_peak, reuse_peak, train_peak) * 2**20 < TARGET_BYTES else 'MISSED'}",
    ]
    append_results(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
