"""Run one fuzz target of tests/fuzz/targets.py under atheris, or without it.

Each fuzz_<target>.py calls `main(<target>)`. Arguments are libFuzzer's (corpus directories,
-max_total_time=N, -runs=N, ...).

Modes:
- atheris (`pip install -e '.[fuzz]'`): coverage-guided; aiomove's modules are instrumented.
- FALLBACK (atheris missing, or FUZZ_FALLBACK=1): NOT coverage-guided. Replays the corpus,
  then applies random mutations (bit flips, truncation, splicing, inserted bytes, lying
  16/32-bit length fields) to corpus inputs until -max_total_time seconds have passed. A
  failing input is written to <-artifact_prefix>crash-<sha1>; the exit status is then 1.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

try:
    import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]
except ImportError:  # the fallback mode below
    atheris = None
if os.environ.get("FUZZ_FALLBACK"):  # force the fallback mode, e.g. to compare
    atheris = None


def _load(target: str) -> Callable[[bytes], None]:
    if atheris is not None:
        with atheris.instrument_imports(include=["aiomove", "tests.fuzz"]):
            from tests.fuzz import targets
    else:
        from tests.fuzz import targets
    return targets.TARGETS[target]


def main(target: str, argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    function = _load(target)
    if atheris is not None:
        atheris.Setup(argv, function)
        atheris.Fuzz()
    else:
        sys.exit(fallback(function, argv))


# --- fallback: replay + random mutation ----------------------------------------------------


def _options(argv: list[str]) -> tuple[list[Path], dict[str, str]]:
    dirs, options = [], {}
    for arg in argv[1:]:
        if arg.startswith("-") and "=" in arg:
            key, value = arg[1:].split("=", 1)
            options[key] = value
        elif not arg.startswith("-"):
            dirs.append(Path(arg))
    return dirs, options


def mutate(data: bytes, corpus: list[bytes], rng: random.Random) -> bytes:
    """One to four random edits, favouring what breaks binary protocols: lengths."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(7)
        pos = rng.randrange(len(out) + 1)
        if kind == 0 and out:  # bit flip
            pos = min(pos, len(out) - 1)
            out[pos] ^= 1 << rng.randrange(8)
        elif kind == 1:  # truncate
            del out[pos:]
        elif kind == 2:  # insert random bytes
            out[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif kind == 3 and len(out) >= pos + 2:  # lying 16-bit big endian length
            value = rng.choice((0, 1, 0xFFFF, rng.randrange(0x10000)))
            out[pos : pos + 2] = value.to_bytes(2, "big")
        elif kind == 4 and len(out) >= pos + 4:  # lying 32-bit length, either byte order
            value = rng.choice((0, 0xFFFFFFFF, 0x7FFFFFFF, rng.randrange(1 << 32)))
            out[pos : pos + 4] = value.to_bytes(4, rng.choice(("big", "little")))
        elif kind == 5 and corpus:  # splice another input in
            other = rng.choice(corpus)
            start = rng.randrange(len(other) + 1)
            out[pos:] = other[start:]
        elif kind == 6 and out:  # duplicate a slice
            end = rng.randint(pos, len(out))
            out[pos:pos] = out[pos:end]
    return bytes(out[:65536])


def _run_one(function: Callable[[bytes], None], data: bytes, prefix: str) -> bool:
    try:
        function(data)
    except Exception:
        path = Path(f"{prefix}crash-{hashlib.sha1(data).hexdigest()}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        traceback.print_exc()
        print(f"FALLBACK: failing input written to {path}", file=sys.stderr)
        return False
    return True


def fallback(function: Callable[[bytes], None], argv: list[str]) -> int:
    dirs, options = _options(argv)
    seconds = float(options.get("max_total_time", "60"))
    runs = int(options.get("runs", "-1"))
    prefix = options.get("artifact_prefix", "./")
    rng = random.Random(int(options.get("seed", str(time.time_ns()))))
    print(
        "FALLBACK MODE (atheris not installed, or FUZZ_FALLBACK set): replaying the corpus "
        "and applying random mutations; NOT coverage-guided",
        file=sys.stderr,
    )
    files = [f for d in dirs if d.is_dir() for f in sorted(d.iterdir()) if f.is_file()]
    files += [d for d in dirs if d.is_file()]
    corpus = [f.read_bytes() for f in files] or [b""]
    for data in corpus:
        if not _run_one(function, data, prefix):
            return 1
    deadline = time.monotonic() + seconds
    done = 0
    while time.monotonic() < deadline and done != runs:
        data = mutate(rng.choice(corpus), corpus, rng)
        if not _run_one(function, data, prefix):
            return 1
        done += 1
    print(f"FALLBACK: {len(corpus)} replayed, {done} mutated inputs, no failure", file=sys.stderr)
    return 0
